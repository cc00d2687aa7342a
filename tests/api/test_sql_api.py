"""SQL for researchers through the API: only over disclosure-controlled views, locked down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.integration
Client = Callable[[str | None], httpx.Client]


def _sql(c: httpx.Client, query: str, **kw: object) -> httpx.Response:
    return c.post("/v1/datasets/demo/sql", json={"query": query, **kw})


def test_sql__aggregate_over_the_frequency_view(as_user: Client) -> None:
    r = _sql(as_user("researcher-a"),
             "SELECT grp, count(*) AS n, count(af) AS released FROM frequency "
             "WHERE grp IS NOT NULL GROUP BY grp ORDER BY grp", group_by="population",
             region="20:1-500000")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["grp", "n", "released"]
    assert [row[0] for row in body["rows"]] == ["pop1", "pop2", "pop3"]
    assert all(row[2] <= row[1] for row in body["rows"])
    assert body["query_id"] and body["disclosure"]["k"] == 11 and body["views"] == ["frequency"]


def test_sql__views_hold_no_small_counts(as_user: Client) -> None:
    r = _sql(as_user("researcher-a"),
             "SELECT count(*) FROM genotype_counts WHERE (het BETWEEN 1 AND 10) OR "
             "(hom_alt BETWEEN 1 AND 10) OR (hom_ref BETWEEN 1 AND 10)", group_by="population")
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[0]]
    nulls = _sql(as_user("researcher-a"), "SELECT count(*) FROM genotype_counts WHERE het IS "
                 "NULL", group_by="population").json()["rows"][0][0]
    assert nulls > 0


def test_sql__policy_applies_to_sql_too(as_user: Client) -> None:
    r = _sql(as_user("researcher-b"), "SELECT count(*) FROM frequency", group_by="population")
    assert r.status_code == 403
    r = _sql(as_user("nobody"), "SELECT count(*) FROM frequency")
    assert r.status_code == 403


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM glob('/etc/*')",
    "COPY (SELECT * FROM frequency) TO '{out}'",
    "ATTACH '{out}.db' AS x",
    "SET enable_external_access = true",
    "PRAGMA enable_external_access",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CREATE TABLE t AS SELECT * FROM frequency",
    "SELECT 1; SELECT 2",
    "SELECT getenv('HOME') FROM frequency",
    "SELECT current_setting('temp_directory') FROM frequency",
])
def test_sql__escapes_are_refused(as_user: Client, tmp_path: Path, query: str) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\nTOPSECRET,1\n")
    q = query.format(secret=secret, out=tmp_path / "out.csv")
    if "frequency" not in q:
        q += " -- frequency"
    r = _sql(as_user("researcher-a"), q)
    assert r.status_code == 400, r.text
    assert "TOPSECRET" not in r.text and str(tmp_path) not in r.text
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.db").exists()


def test_sql__row_limit_is_explicit(as_user: Client) -> None:
    r = _sql(as_user("researcher-a"), "SELECT pos FROM frequency", max_rows=5)
    body = r.json()
    assert r.status_code == 200 and body["count"] == 5 and body["truncated"] is True


def test_sql__audited(api: Api, as_user: Client) -> None:
    import json

    from vault.audit.paths import audit_log_path

    r = _sql(as_user("researcher-a"), "SELECT count(*) FROM frequency")
    qid = r.json()["query_id"]
    recs = [json.loads(x) for x in audit_log_path(api.services.settings).read_text().splitlines()]
    mine = [x for x in recs if x["query_id"] == qid]
    assert [x["type"] for x in mine] == ["complete"]
    assert mine[0]["request"]["action"] == "sql"
    # the trail names the query by its hash (enough to prove what ran), not its text
    assert "SELECT" not in json.dumps(mine)
    import hashlib

    assert mine[0]["request"]["body"]["sql_sha256"] == hashlib.sha256(
        b"SELECT count(*) FROM frequency").hexdigest()


def test_sql__a_list_column_is_a_clear_400_and_the_connection_stays_usable(
        as_user: Client) -> None:
    """A result column of a non-scalar type once failed the response model: 500, and the
    next request on the same connection was reset."""
    c = as_user("researcher-a")
    r = _sql(c, "SELECT list(af) AS afs, avg(af) AS m FROM frequency", region="20:1-50000")
    assert r.status_code == 400, r.text
    assert "scalar columns only" in r.json()["detail"] and r.json()["query_id"]
    r = _sql(c, "SELECT 1.5::DECIMAL(10, 2) AS d, DATE '2020-01-02' AS day, count(*) AS n "
                "FROM frequency", region="20:1-50000")
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0][:2] == [1.5, "2020-01-02"]


@pytest.mark.parametrize("query", [
    "SELECT array_to_string(allowed_paths, ',') AS p FROM (SHOW allowed_paths), frequency "
    "LIMIT 1",
    "SHOW secret_directory -- frequency",
])
def test_sql__show_of_a_setting_is_refused(as_user: Client, query: str) -> None:
    """``SHOW <setting>`` answered the setting (allowed_paths: the server's directory)."""
    import os

    r = _sql(as_user("researcher-a"), query, region="20:1-1000")
    assert r.status_code == 400, r.text
    assert "SHOW is allowed only for a registered view" in r.text
    assert os.getcwd() not in r.text and "nonexistent" not in r.text
