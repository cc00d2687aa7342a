"""The researcher-SQL engine shares one locked DuckDB database per process (opening one costs
tens of milliseconds of CPU): each query's views stay its own, and anything a query could leave
in the shared catalogue makes the next query refused and the database replaced."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from vault.query import sql as S


def test_shared_engine__views_of_one_query_are_invisible_to_another() -> None:
    a = S.locked_connection({"mine": pa.table({"x": [1, 2, 3]})})
    b = S.locked_connection({"yours": pa.table({"y": [7]})})
    try:
        assert a.execute("SELECT sum(x) FROM mine").fetchone() == (6,)
        with pytest.raises(Exception, match="mine"):
            b.execute("SELECT * FROM mine").fetchall()
        listed = b.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        assert listed == [("yours",)]
    finally:
        a.close()
        b.close()
    after = S.run_sql("SELECT view_name FROM duckdb_views() WHERE NOT internal",
                      {"later": pa.table({"z": [0]})})
    assert after.table.column("view_name").to_pylist() == ["later"]


def test_shared_engine__concurrent_queries_see_their_own_views() -> None:
    errors: list[str] = []

    def ask(i: int) -> None:
        for _ in range(20):
            got = S.run_sql("SELECT sum(v) AS s FROM t", {"t": pa.table({"v": [i] * 10})})
            if got.table.column("s").to_pylist() != [10 * i]:
                errors.append(f"thread {i}: {got.table.to_pylist()}")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_shared_engine__a_leftover_object_refuses_and_replaces_the_database() -> None:
    views = {"t": pa.table({"v": [1]})}
    raw = S.locked_connection(views)  # the engine alone (no statement checks) allows CREATE
    try:
        raw.execute("CREATE TABLE leaked AS SELECT 42 AS secret")
    finally:
        raw.close()
    with pytest.raises(S.SqlRefused, match="left objects"):
        S.run_sql("SELECT * FROM t", views)
    again = S.run_sql("SELECT table_name FROM duckdb_tables()", views)
    assert again.table.num_rows == 0  # a fresh database: the leftover is gone
    assert S.run_sql("SELECT * FROM t", views).table.to_pylist() == [{"v": 1}]
