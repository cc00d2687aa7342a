"""Researcher SQL over already disclosure-controlled aggregate views, on a locked-down DuckDB.

``run_sql(query, views)`` runs exactly one read-only ``SELECT`` (or ``WITH … SELECT``) over the
Arrow tables in ``views`` — tables the service computed and suppressed itself (for example a
per-variant allele-frequency table). Genotypes and raw sites are never registered here; this
module only guarantees that the SQL cannot reach anything *but* the views it is given.

Two independent layers, each enough on its own for the file/extension/settings cases:

1. The engine. Every call opens a fresh connection (a cursor) to an in-memory DuckDB database
   with external access off (no file, network, ATTACH, COPY, INSTALL/LOAD), extension
   autoload/autoinstall off, the ``LocalFileSystem`` disabled (this also closes the
   ``<cwd>/:memory:`` entry that DuckDB puts on ``allowed_paths`` of an in-memory database), no
   temp directory (nothing spills to disk), one thread, a memory limit, Python replacement scans
   off, and ``lock_configuration`` so no ``SET``/``RESET``/``PRAGMA`` can undo any of it. The
   database is made (and locked) once per process and memory limit, because opening one costs
   tens of milliseconds of CPU; the views are registered on the call's own connection as
   temporary views, which no other connection sees, and dropped with it. Nothing else may
   persist between calls: the statement layer lets only a SELECT run, and after each query
   ``run_sql`` checks that the shared catalogue holds no table, view or sequence (else the
   database is discarded and the answer refused). The memory limit holds for the queries
   running at the same time together.
2. The statement. DuckDB itself parses the text (``extract_statements`` and
   ``json_serialize_sql``): exactly one statement, of type ``SELECT``; every relation it names is
   a registered view, one of its own CTEs, or ``information_schema``/``pg_catalog``; every table
   function is on a short allowlist; a few scalar functions that reveal server settings are
   refused.

A timer thread calls ``con.interrupt()`` after ``timeout_s``. Results are capped at ``max_rows``
rows; ``max_rows + 1`` are fetched so ``truncated`` is honest. Error messages say what was
refused and why; DuckDB's own text is passed on only as its first line with every absolute path
replaced by ``<path>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from vault.errors import ConfigError

__all__ = [
    "ALLOWED_TABLE_FUNCTIONS",
    "VIEW_NAME",
    "SqlError",
    "SqlRefused",
    "SqlResult",
    "SqlTimeout",
    "locked_connection",
    "run_sql",
]


class SqlError(ConfigError):
    """A researcher SQL query could not be run (base of the SQL errors)."""


class SqlRefused(SqlError):
    """The query (or one of its parts) is not allowed, or hit a resource limit."""


class SqlTimeout(SqlError):
    """The query ran longer than its time limit and was interrupted."""


@dataclass(frozen=True)
class SqlResult:
    """At most ``max_rows`` rows; ``truncated`` is True iff the query produced more."""

    table: pa.Table
    truncated: bool
    columns: list[str]


VIEW_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Table functions a query may call: generators and the catalogue (which holds only the views).
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_columns",
        "duckdb_schemas",
    }
)

#: Scalar functions refused: they expose server configuration or session state.
#: ``json_serialize_plan`` binds (and with ``optimize := true`` constant-folds) the SQL text it
#: is given, which no statement check sees: ``current_setting(…)`` inside it is folded into the
#: plan as its value.
_REFUSED_SCALAR_FUNCTIONS = frozenset(
    {"current_setting", "getenv", "getvariable", "json_serialize_plan"}
)

_METADATA_SCHEMAS = frozenset({"information_schema", "pg_catalog"})
#: metadata views refused although their schema is allowed: ``pg_catalog.pg_settings`` is a
#: view of ``duckdb_settings()`` (every setting's value, e.g. the working directory in
#: ``allowed_paths``).
_REFUSED_METADATA_VIEWS = frozenset({"pg_settings"})
_OWN_CATALOGS = frozenset({"", "memory", "temp"})
_OWN_SCHEMAS = frozenset({"", "main"})

_TABLE_REF_TYPES = frozenset(
    {
        "BASE_TABLE",
        "SUBQUERY",
        "JOIN",
        "TABLE_FUNCTION",
        "EXPRESSION_LIST",
        "EMPTY",
        "PIVOT",
        "SHOW_REF",
    }
)

_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)", re.IGNORECASE)

# An absolute POSIX path (/x/y, possibly quoted) or a Windows drive path (C:\x or C:/x).
_ABS_PATH = re.compile(r"""(?<![\w.])(?:[A-Za-z]:[\\/]|/)[^\s"'`,;()\[\]]*""")

_BATCH_ROWS = 2048


def _base_config(max_memory: str) -> dict[str, Any]:
    """The connect-time settings (the rest are SET before the lock: see ``locked_connection``)."""
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,
        "threads": 1,
        "memory_limit": max_memory,
        "temp_directory": "",
        "secret_directory": "/nonexistent",
    }


def scrub(text: str) -> str:
    """First line of ``text`` with every absolute path replaced by ``<path>``."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return _ABS_PATH.sub("<path>", first)[:300]


def locked_connection(
    views: Mapping[str, pa.Table], *, max_memory: str = "256MB"
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection holding only ``views``, with its configuration locked.

    Public so the tests can check the engine layer without the statement checks of ``run_sql``.
    """
    _check_views(views)
    if not isinstance(max_memory, str) or not _MEMORY.fullmatch(max_memory.strip()):
        raise SqlRefused(f"max_memory must look like '256MB', got {max_memory!r}")
    con = _shared_database(max_memory.strip()).cursor()
    try:
        for name, table in views.items():
            con.register(name, table)
    except BaseException:
        con.close()
        raise
    return con


_DATABASES: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_DATABASES_LOCK = threading.Lock()

#: data-holding objects a query could leave in the shared catalogue (none may exist: see
#: run_sql). Macros and types are left to the statement checks (CREATE is never a SELECT):
#: listing the functions costs as much as a new database.
_LEFTOVERS = (
    "SELECT (SELECT count(*) FROM duckdb_tables() WHERE NOT temporary)"
    " + (SELECT count(*) FROM duckdb_views() WHERE NOT internal AND NOT temporary)"
    " + (SELECT count(*) FROM duckdb_sequences() WHERE NOT temporary)"
)


def _shared_database(max_memory: str) -> duckdb.DuckDBPyConnection:
    """The locked in-memory database of this process for ``max_memory`` (made on first use;
    a forked child makes its own). Cursors are taken under the lock."""
    key = (os.getpid(), max_memory)
    with _DATABASES_LOCK:
        db = _DATABASES.get(key)
        if db is None:
            db = duckdb.connect(":memory:", config=_base_config(max_memory))
            try:
                # Not settable at connect time in DuckDB 2.0; SET before the lock instead.
                db.execute("SET disabled_filesystems = 'LocalFileSystem'")
                db.execute("SET lock_configuration = true")
            except BaseException:
                db.close()
                raise
            _DATABASES[key] = db
        return db.cursor()


def _left_over(max_memory: str) -> bool:
    """Whether the shared database's catalogue holds a table, view or sequence (seen from a
    connection of its own: temporary views are not in it)."""
    check = _shared_database(max_memory)
    try:
        return check.execute(_LEFTOVERS).fetchone() != (0,)
    finally:
        check.close()


def _discard_database(max_memory: str) -> None:
    with _DATABASES_LOCK:
        db = _DATABASES.pop((os.getpid(), max_memory), None)
    if db is not None:
        with contextlib.suppress(duckdb.Error):
            db.close()


def _check_views(views: Mapping[str, pa.Table]) -> None:
    for name, table in views.items():
        if not isinstance(name, str) or not VIEW_NAME.fullmatch(name):
            raise SqlRefused(f"view name {name!r} is not allowed: use [a-z_][a-z0-9_]{{0,62}}")
        if not isinstance(table, pa.Table):
            raise SqlRefused(f"view {name!r} must be a pyarrow.Table")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _check_statement(con: duckdb.DuckDBPyConnection, query: str, views: set[str]) -> None:
    """One SELECT statement whose relations and functions are all allowed, else SqlRefused."""
    if not isinstance(query, str) or not query.strip():
        raise SqlRefused("the query is empty")
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise SqlRefused(f"the query does not parse: {scrub(str(exc))}") from None
    if len(statements) != 1:
        raise SqlRefused(
            f"exactly one statement is allowed, got {len(statements)}: send one SELECT"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise SqlRefused(f"only a read-only SELECT (or WITH … SELECT) is allowed, not {kind.name}")
    rows = con.execute("SELECT json_serialize_sql($1)", [query]).fetchall()
    row = rows[0] if rows else None
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        raise SqlRefused("only a read-only SELECT (or WITH … SELECT) is allowed")

    nodes = list(_walk(tree["statements"][0]))
    ctes = {
        str(entry.get("key", "")).lower()
        for node in nodes
        if isinstance(node.get("cte_map"), dict)
        for entry in node["cte_map"].get("map", [])
        if isinstance(entry, dict)
    }
    for node in nodes:
        if node.get("class") == "FUNCTION":
            fname = str(node.get("function_name", "")).lower()
            if fname in _REFUSED_SCALAR_FUNCTIONS:
                raise SqlRefused(f"function {fname}() is not available: it exposes server state")
            continue
        if "class" in node or "alias" not in node or "sample" not in node:
            continue  # not a table reference
        ref = node.get("type")
        if ref not in _TABLE_REF_TYPES:
            raise SqlRefused(f"this kind of FROM item ({ref}) is not allowed")
        if ref == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            fname = str(fn.get("function_name", "")).lower()
            if fname not in ALLOWED_TABLE_FUNCTIONS or fn.get("schema") or fn.get("catalog"):
                raise SqlRefused(
                    f"table function {fname}() is not allowed: queries may read only the "
                    f"registered views (allowed table functions: "
                    f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})"
                )
        elif ref == "SHOW_REF" and node.get("show_type") == "SHOW" and not node.get("query"):
            # ``SHOW <name>`` of a name that is not a relation answers the *setting* of that
            # name (``SHOW allowed_paths`` gives the working directory): registered views only
            table = str(node.get("table_name", "")).lower()
            if node.get("catalog_name") or node.get("schema_name") or table not in views:
                raise SqlRefused(
                    "SHOW is allowed only for a registered view (SHOW <view>) or SHOW TABLES: "
                    f"available views are {', '.join(sorted(views)) or '(none)'}")
        elif ref == "BASE_TABLE":
            catalog = str(node.get("catalog_name", "")).lower()
            schema = str(node.get("schema_name", "")).lower()
            table = str(node.get("table_name", "")).lower()
            own = (
                catalog in _OWN_CATALOGS
                and schema in _OWN_SCHEMAS
                and (table in views or (table in ctes and not catalog and not schema))
            )
            meta = (
                catalog in {"", "memory", "system"}
                and (schema in _METADATA_SCHEMAS or (not schema and catalog in _METADATA_SCHEMAS))
                and table not in _REFUSED_METADATA_VIEWS
            )
            if not (own or meta):
                parts = [p for p in (catalog, schema, table) if p]
                shown = (
                    ".".join(parts)
                    if all(VIEW_NAME.fullmatch(p) for p in parts)
                    else "<not a view name>"
                )
                raise SqlRefused(
                    f"relation {shown} is not a registered view: available views are "
                    f"{', '.join(sorted(views)) or '(none)'}"
                )


def _translate(exc: BaseException, timed_out: bool, timeout_s: float, max_memory: str) -> SqlError:
    text = str(exc)
    if timed_out or isinstance(exc, duckdb.InterruptException) or text.startswith("INTERRUPT"):
        return SqlTimeout(
            f"the query ran longer than {timeout_s:g} s and was stopped: narrow it "
            f"(WHERE, GROUP BY, LIMIT) and try again"
        )
    if isinstance(exc, duckdb.OutOfMemoryException) or text.startswith("Out of Memory"):
        return SqlRefused(
            f"the query needs more than the {max_memory} memory limit (nothing spills to "
            f"disk): aggregate or filter more"
        )
    if isinstance(exc, duckdb.PermissionException) or text.startswith("Permission Error"):
        return SqlRefused(
            "the query tried to use files, extensions or other external state, which is "
            "disabled: only the registered views can be queried"
        )
    return SqlError(f"the query failed: {scrub(text)}")


def run_sql(
    query: str,
    views: Mapping[str, pa.Table],
    *,
    max_rows: int = 10_000,
    timeout_s: float = 5.0,
    max_memory: str = "256MB",
) -> SqlResult:
    """Run one read-only SELECT over ``views`` on a fresh locked-down DuckDB connection.

    Raises ``SqlRefused`` for anything but a single allowed SELECT, for file/extension/setting
    access the engine refuses, and when the memory limit is hit; ``SqlTimeout`` after
    ``timeout_s``; ``SqlError`` for any other query error (unknown column, type error, …).
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise SqlRefused(f"max_rows must be a non-negative integer, got {max_rows!r}")
    if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 600:
        raise SqlRefused(f"timeout_s must be in (0, 600] seconds, got {timeout_s!r}")

    con = locked_connection(views, max_memory=max_memory)
    fired = threading.Event()
    guard = threading.Lock()
    done = False

    def _interrupt() -> None:
        with guard:
            if done:
                return
            fired.set()
            with contextlib.suppress(duckdb.Error):  # the query ended at that very moment
                con.interrupt()

    timer = threading.Timer(float(timeout_s), _interrupt)
    timer.daemon = True
    timer.start()
    try:
        _check_statement(con, query, set(views))
        reader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > max_rows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
        if _left_over(max_memory.strip()):
            # the statement checks let something but a SELECT run: this database is not
            # given to another query, and the answer is refused
            _discard_database(max_memory.strip())
            raise SqlRefused("the query left objects in the database; it was refused")
    except SqlError:
        raise
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        # Errors in the first chunk arrive as duckdb exceptions; errors in a later chunk come
        # through the Arrow stream as OSError carrying DuckDB's text ("INTERRUPT Error: …").
        raise _translate(exc, fired.is_set(), timeout_s, max_memory) from None
    finally:
        timer.cancel()
        with guard:
            done = True
            con.close()

    truncated = table.num_rows > max_rows
    if truncated:
        table = table.slice(0, max_rows)
    return SqlResult(table=table, truncated=truncated, columns=list(table.column_names))
