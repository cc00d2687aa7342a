"""Attacks on the researcher SQL of vault/query/sql.py found in review: routes to server
settings that the statement checks did not see (a metadata view over ``duckdb_settings()``, and
SQL text bound and constant-folded inside a scalar function)."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pytest

from vault.query.sql import SqlRefused, locked_connection, run_sql

# DuckDB puts <cwd>/:memory: on allowed_paths of an in-memory database: the server's directory
CWD = os.getcwd()


@pytest.fixture
def views() -> dict[str, pa.Table]:
    return {"frequency": pa.table({"chrom": ["1", "2"], "af": [0.1, None]})}


@pytest.mark.parametrize("sql", [
    "SELECT name, setting FROM pg_catalog.pg_settings",
    "SELECT * FROM system.pg_catalog.pg_settings",
    "SELECT * FROM PG_CATALOG.\"PG_SETTINGS\"",
    "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'allowed_paths'",
    "SUMMARIZE pg_catalog.pg_settings",
    "DESCRIBE SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM frequency WHERE chrom IN (SELECT setting FROM pg_catalog.pg_settings)",
    "WITH s AS (SELECT * FROM pg_catalog.pg_settings) SELECT * FROM s",
])
def test_pg_settings_is_refused(sql: str, views: dict[str, pa.Table]) -> None:
    with pytest.raises(SqlRefused, match="not a registered view"):
        run_sql(sql, views)


def test_pg_settings_leaks_settings_on_the_engine_alone(views: dict[str, pa.Table]) -> None:
    # why the statement check is needed: the engine alone answers with the settings' values
    con = locked_connection(views)
    try:
        rows = con.execute("SELECT setting FROM pg_catalog.pg_settings "
                           "WHERE name = 'allowed_paths'").fetchall()
    finally:
        con.close()
    assert CWD in rows[0][0]


@pytest.mark.parametrize("sql", [
    "SELECT json_serialize_plan('SELECT current_setting(''allowed_paths'')', optimize := true)",
    "SELECT json_serialize_plan('SELECT 1')",
    "SELECT system.main.json_serialize_plan('SELECT 1')",
    "SELECT 'SELECT 1'.json_serialize_plan()",
    "SELECT (SELECT json_serialize_plan(chrom) FROM frequency LIMIT 1)",
])
def test_json_serialize_plan_is_refused(sql: str, views: dict[str, pa.Table]) -> None:
    with pytest.raises(SqlRefused, match="json_serialize_plan"):
        run_sql(sql, views)


def test_metadata_views_still_answer(views: dict[str, pa.Table]) -> None:
    got = run_sql("SELECT table_name FROM information_schema.tables", views)
    assert got.table.column("table_name").to_pylist() == ["frequency"]
    got = run_sql("SELECT count(*) AS n FROM pg_catalog.pg_namespace", views)
    assert got.table.column("n").to_pylist()[0] >= 1
    assert run_sql("SELECT json_serialize_sql('SELECT 1') IS NOT NULL AS ok",
                   views).table.column("ok").to_pylist() == [True]


@pytest.mark.parametrize(("select", "expect"), [
    ("1.5::DECIMAL(10,2)", 1.5), ("12::HUGEINT", 12), ("DATE '2020-01-02'", "2020-01-02"),
    ("TIMESTAMP '2020-01-02 03:04:05'", "2020-01-02T03:04:05"), ("'a'::ENUM('a','b')", "a"),
    ("NULL::DECIMAL(10,2)", None), ("1::UTINYINT", 1), ("true", True),
])
def test_sql_results__scalar_types_become_json(select: str, expect: object) -> None:
    import json

    from vault.query.sqlviews import json_rows

    table = duckdb.connect().sql(f"SELECT {select} AS x").to_arrow_table()
    rows = json_rows(table)
    assert rows == [[expect]] and json.dumps(rows)


@pytest.mark.parametrize("select", ["[1, 2]", "{'a': 1}", "MAP {'k': 1}", "'x'::BLOB",
                                    "INTERVAL 1 DAY"])
def test_sql_results__non_scalar_columns_are_refused_not_a_server_error(select: str) -> None:
    """A LIST column once reached the response model and answered 500."""
    from vault.query.sqlviews import json_rows

    table = duckdb.connect().sql(f"SELECT {select} AS x").to_arrow_table()
    with pytest.raises(SqlRefused, match="scalar columns only"):
        json_rows(table)


@pytest.mark.parametrize("sql", [
    "SHOW allowed_paths",
    "SHOW \"allowed_paths\"",
    "SHOW Allowed_Paths",
    "FROM (SHOW allowed_paths)",
    "SELECT * FROM frequency, (SHOW allowed_paths)",
    "WITH allowed_paths AS (SELECT 1) FROM (SHOW allowed_paths)",
    "SHOW secret_directory",
    "SHOW memory_limit",
])
def test_show_of_a_setting_is_refused(sql: str, views: dict[str, pa.Table]) -> None:
    """``SHOW <name>`` of a name that is no relation answers that setting's value (the
    working directory in ``allowed_paths``), past the pg_settings/current_setting refusals."""
    with pytest.raises(SqlRefused, match="SHOW is allowed only for a registered view"):
        run_sql(sql, views)


def test_show_of_a_setting_leaks_on_the_engine_alone(views: dict[str, pa.Table]) -> None:
    con = locked_connection(views)
    try:
        rows = con.execute("SHOW allowed_paths").fetchall()
    finally:
        con.close()
    assert any(CWD in p for p in rows[0][0])


@pytest.mark.parametrize("sql", ["SHOW frequency", "SHOW TABLES", "SHOW ALL TABLES",
                                 "DESCRIBE frequency", "SUMMARIZE frequency"])
def test_show_of_a_view_still_answers(sql: str, views: dict[str, pa.Table]) -> None:
    assert run_sql(sql, views).table.num_rows >= 1
