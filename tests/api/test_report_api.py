"""GET /v1/datasets/{id}/report through real HTTP: uvicorn on loopback, real OpenBao tokens.

The whole report for admins (JSON and the HTML page with its CSP header); its representation
part for a researcher role granted ``representation``; refusals for everyone else (a
registered-tier role granted the action fails closed). Every answer, and every refusal, has a
query id naming one audit record; no body holds a sample id or pseudonym.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import DEMO, PASSWORD, Api, vauth_login
from vault.audit.paths import audit_log_path
from vault.keys import auth as vauth
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import Keyring
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration

Client = Callable[[str | None], httpx.Client]
URL = "/v1/datasets/demo/report"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
ADMIN = "report-admin"
#: every body any test of this module received, checked for identifiers at the end
BODIES: list[str] = []


def _sheet() -> list[dict[str, str]]:
    lines = (DEMO / "demo_cohort_samples.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


def _records(api: Api, query_id: str) -> list[dict[str, Any]]:
    path = audit_log_path(api.services.settings)
    return [r for r in (json.loads(line) for line in path.read_text().splitlines())
            if r["query_id"] == query_id]


def _get(api: Api, token: str, **params: Any) -> httpx.Response:
    r = httpx.get(f"{api.url}{URL}", params=params, timeout=120,
                  headers={"Authorization": f"Bearer {token}"})
    BODIES.append(r.text)
    return r


@pytest.fixture(scope="module")
def tokens(api: Api) -> dict[str, str]:
    """The conftest's users plus an admin (Vault policy genovault-admin)."""
    vauth.create_user(api.bao.client(), ADMIN, PASSWORD, ["genovault-admin"])
    return {**api.tokens, ADMIN: vauth_login(api.bao.addr, ADMIN)}


@pytest.fixture(scope="module")
def admin_json(api: Api, tokens: dict[str, str]) -> httpx.Response:
    return _get(api, tokens[ADMIN])


@pytest.fixture(scope="module")
def representation(api: Api, tokens: dict[str, str]) -> httpx.Response:
    return _get(api, tokens["researcher-a"], part="representation")


def test_report_api__admin_gets_the_whole_report_as_json(api: Api,
                                                         admin_json: httpx.Response) -> None:
    assert admin_json.status_code == 200, admin_json.text
    body = admin_json.json()
    assert body["part"] == "all" and {"quality", "representation", "summary"} <= set(body)
    sheet = _sheet()
    for col in ("population", "sex", "phenotype"):
        got = {g: c["samples"] for g, c in
               body["representation"]["columns"][col]["groups"].items()}
        assert got == dict(Counter(s[col] for s in sheet)), col
    assert body["quality"]["overall"]["samples"] == 300
    assert body["disclosure"]["kind"] == "report"
    recs = _records(api, body["query_id"])
    assert len(recs) == 1
    assert recs[0]["request"]["action"] == "report" and recs[0]["result"]["status"] == 200
    assert recs[0]["principal"]["role"] == "admin"
    assert body["generated_by"] == {"role": "admin", "query_id": body["query_id"]}


def test_report_api__admin_gets_the_html_page_with_its_csp(api: Api,
                                                           tokens: dict[str, str]) -> None:
    r = _get(api, tokens[ADMIN], format="html")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    qid = r.headers["x-query-id"]
    assert qid in r.text  # the page names its audit record
    page = r.text
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 9
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    for section in ('id="summary"', 'id="representation"', 'id="quality"', 'id="disclosure"'):
        assert section in page
    recs = _records(api, qid)
    assert len(recs) == 1 and recs[0]["result"]["status"] == 200
    assert recs[0]["request"]["params"].get("format") == "html"


def test_report_api__researcher_gets_the_representation_part_only(
        api: Api, representation: httpx.Response, admin_json: httpx.Response) -> None:
    assert representation.status_code == 200, representation.text
    body = representation.json()
    assert body["part"] == "representation"
    assert "quality" not in body and "answers" not in body["disclosure"]
    assert set(body["representation"]) == {"columns", "crosstabs", "reference",
                                           "group_quality"}
    assert body["disclosure"]["kind"] == "representation"
    # the role's group-by columns, the same cells as the admin's whole report
    whole = admin_json.json()["representation"]
    assert list(body["representation"]["columns"]) == ["population", "sex", "phenotype"]
    assert body["representation"]["columns"] == whole["columns"]
    assert body["representation"]["crosstabs"] == whole["crosstabs"]
    for col, q in body["representation"]["group_quality"].items():
        assert q == whole["group_quality"][col]
    pops = body["representation"]["group_quality"]["population"]["groups"]
    assert set(pops) == {"pop1", "pop2", "pop3"}
    assert all(0.5 < g["mean_call_rate"] <= 1 for g in pops.values())
    recs = _records(api, body["query_id"])
    assert len(recs) == 1
    rec = recs[0]
    assert rec["request"]["action"] == "representation"
    assert rec["principal"]["role"] == "grouped-researcher"
    assert rec["result"]["status"] == 200 and rec["result"]["disclosure"]["kind"] == \
        "representation"
    assert rec["request"]["body"]["part"] == "representation"


def test_report_api__researcher_columns_and_reference(api: Api, tokens: dict[str, str],
                                                      representation: httpx.Response) -> None:
    ref = ["population:pop1=0.6", "population:pop2=0.22", "population:pop3=0.18"]
    r = _get(api, tokens["researcher-a"], part="representation", group_by="population",
             reference=ref)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["representation"]["columns"]) == ["population"]
    assert body["representation"]["crosstabs"] == []
    # fewer columns never change a cell: the same suppression as with every column
    assert body["representation"]["columns"]["population"] == \
        representation.json()["representation"]["columns"]["population"]
    rr = body["representation"]["reference"]["population"]
    assert rr["pop1"]["ratio"] == pytest.approx((100 / 300) / 0.6)
    assert any("Group pop1 (population) is 33.3 % of the cohort vs 60.0 % of the reference"
               in s for s in body["summary"])
    assert _records(api, body["query_id"])[0]["request"]["body"]["reference"] == ref


@pytest.mark.parametrize(("params", "status", "reason"), [
    pytest.param({"part": "representation", "group_by": "ancestry"}, 403,
                 "group_by_not_allowed:ancestry", id="column-not-granted"),
    pytest.param({"part": "representation", "reference": ["population:pop1=0.5",
                                                          "population:pop2=0.4"]}, 400,
                 "sum to 0.9000", id="shares-not-summing-to-1"),
    pytest.param({"part": "representation", "reference": ["population:popX=1"]}, 400,
                 "'popX' is not a reportable group", id="unknown-group"),
    pytest.param({"part": "representation", "reference": ["pop1=1"]}, 400,
                 "expected column:group=share", id="malformed-reference"),
    pytest.param({}, 403, "action_not_allowed", id="whole-report-is-for-admins"),
])
def test_report_api__researcher_bad_requests_are_refused_and_audited(
        api: Api, tokens: dict[str, str], params: dict[str, Any], status: int,
        reason: str) -> None:
    r = _get(api, tokens["researcher-a"], **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert reason in json.dumps(body)
    recs = _records(api, body["query_id"])
    assert len(recs) == 1 and recs[0]["result"]["status"] == status


@pytest.mark.parametrize(("user", "part", "status", "reason"), [
    pytest.param("researcher-b", "representation", 403, "action_not_allowed",
                 id="researcher-b-representation"),
    pytest.param("researcher-b", "all", 403, "action_not_allowed", id="researcher-b-all"),
    # a registered-tier (DP) role granted representation: exact counts only, so refused
    pytest.param("noisy", "representation", 403, "dp_unsupported:representation",
                 id="dp-role-fails-closed"),
    # the auditor sees no dataset at all: the same 404 as for an absent one
    pytest.param("auditor", "all", 404, "dataset_not_visible", id="auditor-all"),
    pytest.param("auditor", "representation", 404, "dataset_not_visible",
                 id="auditor-representation"),
    pytest.param(ADMIN, "representation", 403, "action_not_allowed",
                 id="admin-asks-the-whole-report"),
])
def test_report_api__refused_roles(api: Api, tokens: dict[str, str], user: str, part: str,
                                   status: int, reason: str) -> None:
    r = _get(api, tokens[user], part=part, format="html")
    assert r.status_code == status, r.text
    assert "content-security-policy" not in r.headers or status == 200
    body = r.json()
    assert "representation" not in body and "quality" not in body
    recs = _records(api, body["query_id"])
    assert len(recs) == 1
    assert recs[0]["result"]["status"] == status
    assert reason in recs[0]["result"]["reasons"] or reason in recs[0]["decision"]["reasons"]


def test_report_api__no_token_is_401(api: Api) -> None:
    r = httpx.get(f"{api.url}{URL}", params={"part": "representation"}, timeout=30)
    BODIES.append(r.text)
    assert r.status_code == 401 and _records(api, r.json()["query_id"])


def test_report_api__researcher_html_holds_the_representation_only(
        api: Api, tokens: dict[str, str]) -> None:
    r = _get(api, tokens["researcher-a"], part="representation", format="html")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-security-policy"] == CSP
    page = r.text
    assert 'id="representation"' in page and 'id="disclosure"' in page
    assert 'id="quality"' not in page and "Ti/Tv" not in page
    assert 'data-plot="share by population"' in page
    assert len(_records(api, r.headers["x-query-id"])) == 1


def test_report_api__no_sample_id_or_pseudonym_in_any_body(api: Api,
                                                           admin_json: httpx.Response,
                                                           representation: httpx.Response
                                                           ) -> None:
    root = api.bao.client()
    reader = DatasetReader(api.store, "demo", Keyring(api.bao.client(
        mint_role_token(root, "query", ttl="5m")), "demo"))
    pseudonyms = reader.samples(["pseudonym"]).column("pseudonym").to_pylist()
    samples = [s["sample"] for s in _sheet()]
    assert len(pseudonyms) == len(samples) == 300
    assert len(BODIES) >= 10  # the other tests of this module ran first and were collected
    for text in BODIES:
        for name in (*samples, *pseudonyms):
            assert name not in text
