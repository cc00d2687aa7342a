"""The researcher SQL of vault/query/sql.py: only the registered views, nothing else.

Two layers are tested separately so that removing either one makes a test fail:
``run_sql`` (statement checks + engine) and ``locked_connection`` (the engine alone, raw SQL
sent straight to DuckDB, no statement checks).
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vault.errors import ConfigError, GenoVaultError
from vault.query.sql import (
    SqlError,
    SqlRefused,
    SqlResult,
    SqlTimeout,
    locked_connection,
    run_sql,
    scrub,
)

SECRET = "TOPSECRET_GENOTYPE_0xC0FFEE"


@pytest.fixture
def views() -> dict[str, pa.Table]:
    af = pa.table(
        {
            "variant_id": ["1:100:A:G", "1:200:C:T", "2:300:G:A", "2:400:T:C"],
            "chrom": ["1", "1", "2", "2"],
            "af": [0.10, 0.25, 0.40, 0.05],
            "n_called": [120, 118, 119, 121],
        }
    )
    genes = pa.table({"variant_id": ["1:100:A:G", "2:300:G:A"], "gene": ["BRCA2", "TP53"]})
    return {"allele_freq": af, "genes": genes}


@pytest.fixture
def secret_files(tmp_path: Path) -> dict[str, Path]:
    csv = tmp_path / "secret.csv"
    csv.write_text(f"id,value\n1,{SECRET}\n")
    parquet = tmp_path / "secret.parquet"
    pq.write_table(pa.table({"value": [SECRET]}), parquet)
    db = tmp_path / "secret.duckdb"
    with duckdb.connect(str(db)) as c:
        c.execute(f"CREATE TABLE s AS SELECT '{SECRET}' AS value")
    return {"csv": csv, "parquet": parquet, "db": db, "dir": tmp_path}


def _refused(query: str, views: dict[str, pa.Table], *, leak: str | None = None) -> SqlError:
    with pytest.raises(SqlError) as info:
        run_sql(query, views)
    message = str(info.value)
    assert SECRET not in message
    if leak is not None:
        assert leak not in message
    return info.value


def _engine_refuses(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    with pytest.raises(duckdb.Error) as info:
        con.execute(sql).fetchall()
    assert SECRET not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------ happy paths


def test_aggregation_where_order_by(views: dict[str, pa.Table]) -> None:
    result = run_sql(
        "SELECT chrom, count(*) AS n, round(avg(af), 3) AS mean_af FROM allele_freq "
        "WHERE af >= 0.1 GROUP BY chrom ORDER BY chrom",
        views,
    )
    assert isinstance(result, SqlResult)
    assert result.columns == ["chrom", "n", "mean_af"]
    assert result.table.to_pylist() == [
        {"chrom": "1", "n": 2, "mean_af": 0.175},
        {"chrom": "2", "n": 1, "mean_af": 0.4},
    ]
    assert result.truncated is False


def test_join_of_two_views_and_cte(views: dict[str, pa.Table]) -> None:
    result = run_sql(
        "WITH common AS (SELECT * FROM allele_freq WHERE af > 0.05) "
        "SELECT g.gene, c.af FROM common c JOIN genes g USING (variant_id) ORDER BY g.gene",
        views,
    )
    assert result.table.to_pylist() == [
        {"gene": "BRCA2", "af": 0.10},
        {"gene": "TP53", "af": 0.40},
    ]


def test_catalogue_holds_only_the_views(views: dict[str, pa.Table]) -> None:
    tables = run_sql(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "ORDER BY table_name",
        views,
    ).table.to_pylist()
    assert [(t["table_name"], t["table_type"]) for t in tables] == [
        ("allele_freq", "VIEW"),
        ("genes", "VIEW"),
    ]
    assert run_sql("SELECT * FROM duckdb_tables()", views).table.num_rows == 0
    own = (
        run_sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1", views)
        .table.column("view_name")
        .to_pylist()
    )
    assert own == ["allele_freq", "genes"]
    databases = (
        locked_connection(views)
        .execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal")
        .fetchall()
    )
    assert databases == [("memory",)]


def test_registered_view_cannot_reach_python_objects(views: dict[str, pa.Table]) -> None:
    # A Python variable in the calling frame: a replacement scan would find it by name.
    hidden_genotypes = pa.table({"value": [SECRET]})
    assert hidden_genotypes.num_rows == 1
    con = locked_connection(views)
    _engine_refuses(con, "SELECT * FROM hidden_genotypes")
    _refused("SELECT * FROM hidden_genotypes", views)
    # the internal scans behind a registered view are not callable either
    for fn in ("arrow_scan", "python_arrow_scan", "arrow_scan_dumb", "query_table", "query"):
        err = _refused(f"SELECT * FROM {fn}('allele_freq')", views)
        assert isinstance(err, SqlRefused) and "not allowed" in str(err)


# ------------------------------------------------------------------ reading files


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM read_csv('{csv}')",
        "SELECT * FROM read_csv_auto('{csv}')",
        "SELECT * FROM read_parquet('{parquet}')",
        "SELECT * FROM parquet_metadata('{parquet}')",
        "SELECT * FROM read_text('{csv}')",
        "SELECT * FROM read_blob('{csv}')",
        "SELECT * FROM read_json('{csv}')",
        "SELECT * FROM sniff_csv('{csv}')",
        "SELECT * FROM glob('{dir}/*')",
        "SELECT * FROM '{csv}'",
        'SELECT * FROM "{parquet}"',
        "SELECT (SELECT count(*) FROM read_text('{csv}')) AS n FROM allele_freq",
        "WITH x AS (SELECT * FROM read_csv('{csv}')) SELECT * FROM x",
    ],
)
def test_files_cannot_be_read(
    template: str, views: dict[str, pa.Table], secret_files: dict[str, Path]
) -> None:
    query = template.format(**{k: str(v) for k, v in secret_files.items()})
    err = _refused(query, views, leak=str(secret_files["dir"]))
    assert isinstance(err, SqlRefused)
    # the engine alone refuses it as well (external access / LocalFileSystem are off)
    message = _engine_refuses(locked_connection(views), query)
    assert "disabled" in message or "does not exist" in message


def test_engine_alone_refuses_every_file_function(
    views: dict[str, pa.Table], secret_files: dict[str, Path]
) -> None:
    con = locked_connection(views)
    csv, parquet = secret_files["csv"], secret_files["parquet"]
    for sql in (
        f"SELECT * FROM read_csv('{csv}')",
        f"SELECT * FROM read_parquet('{parquet}')",
        f"SELECT * FROM read_text('{csv}')",
        f"SELECT * FROM glob('{secret_files['dir']}/*')",
        f"SELECT * FROM sniff_csv('{csv}')",
    ):
        assert "disabled by configuration" in _engine_refuses(con, sql)


# ------------------------------------------------------------------ writing files


@pytest.mark.parametrize(
    "template",
    [
        "COPY allele_freq TO '{dir}/out.csv'",
        "COPY (SELECT * FROM allele_freq) TO '{dir}/out.parquet' (FORMAT parquet)",
        "EXPORT DATABASE '{dir}/export'",
        "COPY allele_freq FROM '{csv}'",
        "IMPORT DATABASE '{dir}'",
    ],
)
def test_files_cannot_be_written(
    template: str, views: dict[str, pa.Table], secret_files: dict[str, Path]
) -> None:
    before = sorted(secret_files["dir"].iterdir())
    query = template.format(**{k: str(v) for k, v in secret_files.items()})
    err = _refused(query, views, leak=str(secret_files["dir"]))
    assert isinstance(err, SqlRefused) and "only a read-only SELECT" in str(err)
    _engine_refuses(locked_connection(views), query)
    assert sorted(secret_files["dir"].iterdir()) == before


def test_in_memory_and_temp_paths_are_not_writable(
    views: dict[str, pa.Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB puts '<cwd>/:memory:' on allowed_paths of an in-memory database and '<cwd>/.tmp/'
    # on allowed_directories while a temp directory is set; LocalFileSystem off closes both.
    monkeypatch.chdir(tmp_path)
    con = locked_connection(views)
    _engine_refuses(con, f"COPY (SELECT 1) TO '{tmp_path}/:memory:'")
    _engine_refuses(con, f"COPY (SELECT 1) TO '{tmp_path}/.tmp/x.csv'")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ attach / extensions


def test_attach_is_refused(views: dict[str, pa.Table], secret_files: dict[str, Path]) -> None:
    db = secret_files["db"]
    for sql in (f"ATTACH '{db}' AS s", f"ATTACH '{db}' AS s (READ_ONLY)", "ATTACH ':memory:' AS m"):
        err = _refused(sql, views, leak=str(db))
        assert "ATTACH" in str(err)
    _engine_refuses(locked_connection(views), f"ATTACH '{db}' AS s")
    _refused("DETACH memory", views)


@pytest.mark.parametrize(
    "sql", ["INSTALL httpfs", "LOAD httpfs", "INSTALL json", "LOAD parquet", "FORCE INSTALL x"]
)
def test_extensions_cannot_be_installed_or_loaded(sql: str, views: dict[str, pa.Table]) -> None:
    err = _refused(sql, views, leak="/root")
    assert isinstance(err, SqlRefused)
    if sql != "LOAD parquet":  # parquet is built in and already loaded: LOAD is a no-op
        _engine_refuses(locked_connection(views), sql)


def test_extension_autoload_is_off(views: dict[str, pa.Table]) -> None:
    # httpfs is not built in: with autoload/autoinstall on, this would try to fetch it
    message = _engine_refuses(
        locked_connection(views), "SELECT * FROM read_csv('https://example.invalid/x.csv')"
    )
    assert "disabled" in message or "not loaded" in message or "autoload" in message.lower()


# ------------------------------------------------------------------ settings


SETTING_STATEMENTS = [
    "SET enable_external_access = true",
    "SET GLOBAL enable_external_access = true",
    "RESET enable_external_access",
    "PRAGMA enable_external_access = true",
    "SET lock_configuration = false",
    "SET threads = 8",
    "SET memory_limit = '64GB'",
    "SET temp_directory = '/tmp'",
    "SET disabled_filesystems = ''",
    "SET autoload_known_extensions = true",
    "RESET ALL",
    "PRAGMA threads = 8",
]


@pytest.mark.parametrize("sql", SETTING_STATEMENTS)
def test_settings_cannot_be_changed(sql: str, views: dict[str, pa.Table]) -> None:
    err = _refused(sql, views)
    assert isinstance(err, SqlRefused)
    con = locked_connection(views)
    message = _engine_refuses(con, sql)
    assert "locked" in message or sql == "RESET ALL"  # RESET ALL does not even parse
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)


def test_locked_connection_settings(views: dict[str, pa.Table]) -> None:
    con = locked_connection(views, max_memory="128MB")
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings()").fetchall())
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["allow_community_extensions"] == "false"
    assert settings["allow_unsigned_extensions"] == "false"
    assert settings["allow_persistent_secrets"] == "false"
    assert settings["python_enable_replacements"] == "false"
    assert settings["threads"] == "1"
    assert settings["temp_directory"] == ""
    assert settings["allowed_directories"] == "[]"
    assert settings["memory_limit"].endswith("MiB")
    assert float(settings["memory_limit"].split()[0]) <= 128


def test_settings_functions_are_refused(views: dict[str, pa.Table]) -> None:
    for sql in (
        "SELECT current_setting('secret_directory')",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM duckdb_extensions()",
        "SELECT * FROM pragma_database_size()",
    ):
        assert isinstance(_refused(sql, views, leak="/root"), SqlRefused)


# ------------------------------------------------------------------ statement shape


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "SELECT 1 FROM allele_freq; DROP VIEW allele_freq",
        "CREATE TABLE t AS SELECT * FROM allele_freq",
        "CREATE VIEW v AS SELECT 1",
        "CREATE MACRO m(x) AS x",
        "INSERT INTO allele_freq VALUES ('x', '1', 0.1, 1)",
        "UPDATE allele_freq SET af = 0",
        "DELETE FROM allele_freq",
        "DROP VIEW allele_freq",
        "CALL pragma_version()",
        "EXPLAIN SELECT 1",
        "PIVOT allele_freq ON chrom",
        "SET VARIABLE x = 1",
        "BEGIN TRANSACTION",
        "CHECKPOINT",
        "",
        "   ",
        "SELEC 1",
    ],
)
def test_only_one_select(sql: str, views: dict[str, pa.Table]) -> None:
    err = _refused(sql, views)
    assert isinstance(err, SqlRefused)
    assert isinstance(err, ConfigError) and isinstance(err, GenoVaultError)
    # the views are still intact afterwards (nothing was executed)
    assert run_sql("SELECT count(*) AS n FROM allele_freq", views).table.to_pylist() == [{"n": 4}]


def test_multiple_statements_message(views: dict[str, pa.Table]) -> None:
    err = _refused("SELECT 1; SELECT 2", views)
    assert "exactly one statement" in str(err)


def test_unknown_relation_is_named_not_echoed_as_path(
    views: dict[str, pa.Table], secret_files: dict[str, Path]
) -> None:
    err = _refused("SELECT * FROM nope", views)
    assert "nope" in str(err) and "allele_freq" in str(err)
    err = _refused(f"SELECT * FROM '{secret_files['csv']}'", views, leak=str(secret_files["dir"]))
    assert "<not a view name>" in str(err)


def test_errors_do_not_echo_paths(views: dict[str, pa.Table]) -> None:
    err = _refused("SELECT no_such_column FROM allele_freq", views)
    assert "no_such_column" in str(err)
    err = _refused("SELECT '/etc/passwd'::INTEGER FROM allele_freq", views, leak="/etc/passwd")
    assert "<path>" in str(err)
    assert scrub('Cannot access file "/home/u/x.csv" - disabled') == (
        'Cannot access file "<path>" - disabled'
    )
    assert "C:" not in scrub(r"file C:\Users\x\y.parquet missing")


# ------------------------------------------------------------------ limits


def test_row_limit_sets_truncated(views: dict[str, pa.Table]) -> None:
    full = run_sql("SELECT * FROM range(5000)", views, max_rows=5000)
    assert (full.table.num_rows, full.truncated) == (5000, False)
    cut = run_sql("SELECT * FROM range(5001)", views, max_rows=5000)
    assert (cut.table.num_rows, cut.truncated) == (5000, True)
    assert cut.table.column("range").to_pylist()[-1] == 4999
    # streamed: only the first batch is computed (md5 of 1e8 rows would overrun the timeout)
    big = run_sql(
        "SELECT md5(range::VARCHAR) AS h FROM range(100000000)", views, max_rows=10, timeout_s=2.0
    )
    assert (big.table.num_rows, big.truncated) == (10, True)
    none = run_sql("SELECT * FROM allele_freq", views, max_rows=0)
    assert (none.table.num_rows, none.truncated, none.columns) == (
        0,
        True,
        ["variant_id", "chrom", "af", "n_called"],
    )
    empty = run_sql("SELECT * FROM allele_freq WHERE af > 1", views)
    assert (empty.table.num_rows, empty.truncated) == (0, False)
    assert empty.columns == ["variant_id", "chrom", "af", "n_called"]


def test_timeout_interrupts_a_long_query(views: dict[str, pa.Table]) -> None:
    start = time.monotonic()
    with pytest.raises(SqlTimeout, match=r"longer than 0\.5 s"):
        run_sql(
            "SELECT sum(a.range * b.range) FROM range(100000000) a CROSS JOIN range(1000) b",
            views,
            timeout_s=0.5,
        )
    assert time.monotonic() - start < 3.0
    with pytest.raises(SqlTimeout):
        run_sql(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
            "SELECT count(*) FROM r",
            views,
            timeout_s=0.5,
            max_memory="1GB",
        )


def test_memory_limit(views: dict[str, pa.Table]) -> None:
    with pytest.raises(SqlRefused, match="memory limit"):
        run_sql(
            "SELECT count(*) FROM (SELECT range::VARCHAR || repeat('x', 40) AS s "
            "FROM range(5000000) ORDER BY s)",
            views,
            max_memory="32MB",
        )


def test_arguments_are_checked(views: dict[str, pa.Table]) -> None:
    for bad in ("Allele", "1abc", "a-b", "a" * 64, "x; DROP", ""):
        with pytest.raises(SqlRefused, match="view name"):
            run_sql("SELECT 1", {bad: views["genes"]})
    assert run_sql("SELECT 1 AS x FROM " + "a" * 63, {"a" * 63: views["genes"]}).table.num_rows
    with pytest.raises(SqlRefused, match=r"pyarrow\.Table"):
        run_sql("SELECT 1", {"v": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(SqlRefused, match="max_rows"):
        run_sql("SELECT 1", views, max_rows=-1)
    with pytest.raises(SqlRefused, match="timeout_s"):
        run_sql("SELECT 1", views, timeout_s=0)
    with pytest.raises(SqlRefused, match="max_memory"):
        run_sql("SELECT 1", views, max_memory="256MB'; SET threads=8; --")


def test_errors_in_later_chunks_are_translated(views: dict[str, pa.Table]) -> None:
    # The first chunk is fine; the error surfaces mid-stream (through Arrow, as OSError).
    with pytest.raises(SqlError, match="boom") as info:
        run_sql(
            "SELECT CASE WHEN range > 5000 THEN error('boom at /srv/data/x') END AS e "
            "FROM range(100000)",
            views,
            max_rows=50_000,
        )
    assert "/srv" not in str(info.value) and "<path>" in str(info.value)
    with pytest.raises(SqlTimeout):
        run_sql(
            "SELECT md5(range::VARCHAR) AS h FROM range(100000000) ORDER BY h",
            views,
            max_rows=10**9,
            timeout_s=0.5,
        )
    with pytest.raises(SqlTimeout):  # interrupted while streaming, not while planning
        run_sql(
            "SELECT md5(range::VARCHAR) AS h FROM range(100000000)",
            views,
            max_rows=10**9,
            timeout_s=0.5,
        )
