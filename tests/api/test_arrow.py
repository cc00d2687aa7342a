"""Columnar answers (format=arrow): the same variants, values, nulls and disclosure as JSON.

The Arrow IPC stream is a second encoding of the same page: every JSON cell must reappear in
its columns (a suppressed cell as null with its reason, a value that was not assessed as
null, 0 as 0), the envelope (disclosure, query_id, policy) rides in the schema metadata, the
request has its one audit record, and nothing but site columns and aggregate fields leaves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa
import pytest

from tests.api.conftest import Api
from vault.api.fastjson import ARROW_STREAM, ShapeError, _check_columns
from vault.audit.paths import audit_log_path
from vault.client import Client as ResearchClient
from vault.query.service import MAX_PAGE

pytestmark = pytest.mark.integration

Client = Callable[[str | None], httpx.Client]
REGION = "20:1-200000"


def _table(r: httpx.Response) -> tuple[pa.Table, dict[str, Any]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ARROW_STREAM
    table = pa.ipc.open_stream(r.content).read_all()
    meta = json.loads(table.schema.metadata[b"genovault"])
    assert r.headers["x-query-id"] == meta["query_id"]
    return table, meta


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _assert_equal(json_body: dict[str, Any], table: pa.Table, meta: dict[str, Any]) -> int:
    rows = table.to_pylist()
    assert len(rows) == json_body["count"] == meta["count"]
    for k in ("dataset_version", "statistic", "group_by", "truncated", "next_cursor"):
        assert meta[k] == json_body[k], k
    assert {k: v for k, v in meta["disclosure"].items()} == json_body["disclosure"]
    nulls = 0
    for row, v in zip(rows, json_body["variants"], strict=True):
        for k in ("chrom", "pos", "ref", "alt", "id"):
            assert row[k] == v[k], (k, row[k], v[k])
        reasons = {s["cell"]: s["reason"] for s in v["suppressed"]}
        cells = [("overall", v["overall"])] + [
            (f"groups.{g}", c) for g, c in (v.get("groups") or {}).items()]
        for prefix, cell in cells:
            for field, value in cell.items():
                got = row[f"{prefix}.{field}"]
                assert _same(got, value), (v["pos"], prefix, field, got, value)
                nulls += value is None
            assert row[f"{prefix}.suppressed"] == reasons.get(prefix)
        # no column beyond the cells of the JSON answer
        assert {c.rsplit(".", 1)[0] for c in row if "." in c} == {p for p, _ in cells}
    return nulls


@pytest.mark.parametrize("route", ["frequency", "genotype-counts", "hardy-weinberg",
                                   "missingness"])
@pytest.mark.parametrize("group_by", [None, "population"])
def test_arrow__same_page_as_json(as_user: Client, route: str, group_by: str | None) -> None:
    c = as_user("researcher-a")
    params: dict[str, Any] = {"region": REGION, "limit": MAX_PAGE}
    if group_by:
        params["group_by"] = group_by
    j = c.get(f"/v1/datasets/demo/{route}", params=params)
    assert j.status_code == 200, j.text
    table, meta = _table(c.get(f"/v1/datasets/demo/{route}",
                               params={**params, "format": "arrow"}))
    nulls = _assert_equal(j.json(), table, meta)
    if group_by and route != "missingness":
        assert nulls > 0, "the demo cohort has small cells: some must be null"
    assert meta["policy"]["role"] == "grouped-researcher"


def test_arrow__accept_header_chooses_arrow(as_user: Client) -> None:
    c = as_user("researcher-a")
    r = c.get("/v1/datasets/demo/frequency", params={"region": REGION},
              headers={"Accept": ARROW_STREAM})
    table, meta = _table(r)
    assert table.num_rows == meta["count"] > 0


def test_arrow__one_page_holds_what_json_pages_through(as_user: Client) -> None:
    """A whole-dataset arrow page equals the JSON pages concatenated (no silent cap)."""
    c = as_user("researcher-a")
    rows: list[dict[str, Any]] = []
    cursor, pages = 0, 0
    while True:
        body = c.get("/v1/datasets/demo/frequency",
                     params={"limit": 1000, "cursor": cursor}).json()
        rows += body["variants"]
        pages += 1
        if not body["truncated"]:
            break
        cursor = body["next_cursor"]
    assert pages > 1
    table, meta = _table(c.get("/v1/datasets/demo/frequency", params={"format": "arrow"}))
    assert meta["truncated"] is False and meta["next_cursor"] is None
    assert table.column("pos").to_pylist() == [v["pos"] for v in rows]
    assert table.column("overall.ac").to_pylist() == [v["overall"]["ac"] for v in rows]
    # and an arrow page is truncated honestly, with a cursor that continues it
    first, m1 = _table(c.get("/v1/datasets/demo/frequency",
                             params={"format": "arrow", "limit": 700}))
    assert m1["truncated"] is True and m1["next_cursor"] == 700 == first.num_rows
    rest, m2 = _table(c.get("/v1/datasets/demo/frequency",
                            params={"format": "arrow", "cursor": 700}))
    assert m2["truncated"] is False
    assert first.num_rows + rest.num_rows == table.num_rows
    assert rest.column("pos").to_pylist() == table.column("pos").to_pylist()[700:]


def test_arrow__post_batch(as_user: Client) -> None:
    c = as_user("researcher-a")
    body = {"regions": [REGION], "group_by": "population", "limit": 50}
    j = c.post("/v1/datasets/demo/frequency", json=body)
    assert j.status_code == 200, j.text
    table, meta = _table(c.post("/v1/datasets/demo/frequency",
                                json={**body, "format": "arrow"}))
    _assert_equal(j.json(), table, meta)


def test_arrow__json_page_limit_is_still_enforced(as_user: Client) -> None:
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency",
                                    params={"limit": MAX_PAGE + 1})
    assert r.status_code == 400
    assert "format=arrow" in r.json()["detail"]
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency", params={"format": "xml"})
    assert r.status_code == 422


def test_arrow__refusals_stay_json_and_audited(api: Api, as_user: Client) -> None:
    r = as_user("researcher-b").get("/v1/datasets/demo/frequency",
                                    params={"group_by": "population", "format": "arrow"})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] and body["query_id"]
    recs = [json.loads(x) for x in audit_log_path(api.services.settings).read_text()
            .splitlines()]
    assert [x["result"]["status"] for x in recs if x["query_id"] == body["query_id"]] == [403]
    r = as_user(None).get("/v1/datasets/demo/frequency", params={"format": "arrow"})
    assert r.status_code == 401


def test_arrow__one_audit_record_with_the_answer(api: Api, as_user: Client) -> None:
    _, meta = _table(as_user("researcher-a").get(
        "/v1/datasets/demo/frequency", params={"region": REGION, "format": "arrow",
                                               "group_by": "population"}))
    recs = [json.loads(x) for x in audit_log_path(api.services.settings).read_text()
            .splitlines()]
    mine = [x for x in recs if x["query_id"] == meta["query_id"]]
    assert [x["type"] for x in mine] == ["complete"]
    assert mine[0]["result"]["rows"] == meta["count"]
    assert mine[0]["request"]["params"]["format"] == "arrow"
    assert mine[0]["result"]["disclosure"]["suppressed_cells"] == \
        meta["disclosure"]["suppressed_cells"]


def test_arrow__registered_tier_is_noised_the_same_way(as_user: Client) -> None:
    """researcher-b (DP): the arrow page carries the same noisy counts and budget summary as
    the same question asked in JSON (a repeated cell costs nothing and is the same)."""
    c = as_user("researcher-b")
    params = {"region": "20:60000-61000"}
    j = c.get("/v1/datasets/demo/frequency", params=params)
    assert j.status_code == 200, j.text
    table, meta = _table(c.get("/v1/datasets/demo/frequency",
                               params={**params, "format": "arrow"}))
    assert meta["disclosure"]["noise"] == j.json()["disclosure"]["noise"]
    assert table.column("overall.ac").to_pylist() == \
        [v["overall"]["ac"] for v in j.json()["variants"]]


def test_arrow__research_client_table(api: Api) -> None:
    with ResearchClient(api.url, api.tokens["researcher-a"]) as rc:
        t = rc.table("frequency", "demo", region=REGION, group_by="population")
        assert t.num_rows == rc.last["count"] > 0
        assert rc.last["query_id"] and rc.last["disclosure"]["k"] == 11
        long = rc.frequency("demo", region=REGION, group_by="population")
        overall = [r for r in long.to_pylist() if r["group"] is None]
        assert [r["ac"] for r in overall] == t.column("overall.ac").to_pylist()


@pytest.mark.parametrize("names", [
    ["chrom", "pos", "ref", "alt", "id", "overall.genotype"],
    ["chrom", "pos", "ref", "alt", "id", "sample.af"],
    ["chrom", "pos", "ref", "alt", "overall.af"],
    ["pseudonym", "pos", "ref", "alt", "id"],
])
def test_arrow__shape_check_refuses_unknown_columns(names: list[str]) -> None:
    with pytest.raises(ShapeError):
        _check_columns(pa.table({n: pa.array([1]) for n in names}))
