"""Site filters: a boolean SQL expression over the site columns of the candidate variants.

``FILTER = 'PASS' AND VQSLOD > 0`` keeps the variants whose sites satisfy it; the statistic is
then computed on those variants only. The expression sees one row per (split) variant with the
columns ``chrom pos id ref alt qual filter`` and the INFO fields the dataset was ingested with
(``--info``), by their INFO ID. It never sees genotypes, samples or anything derived from them,
so it selects variants, never people.

Safety, in two independent layers (each enough on its own for file and extension access):

1. The expression is parsed by DuckDB itself, as the WHERE clause of ``SELECT * FROM sites
   WHERE <expression>`` (``extract_statements`` and ``json_serialize_sql``): exactly one
   SELECT statement whose every part other than the WHERE clause is that of the template (so
   no ``;``, UNION, ORDER BY, LIMIT, GROUP BY …), and a WHERE clause built only from an
   allow-list: column references (one unqualified name each), literals, comparisons, AND, OR,
   NOT, IN, IS [NOT] NULL, BETWEEN, LIKE/ILIKE, CASE, CAST to a few plain types, COALESCE,
   list indexing, arithmetic and the pure functions of ``ALLOWED_FUNCTIONS``. No subquery,
   table function, parameter, lambda, window or anything else. What runs is not the text the
   caller sent but DuckDB's own rendering of the checked syntax tree (``json_deserialize_sql``).
2. It runs on the locked-down connection of vault.query.sql (no external access, no local file
   system, no extensions, locked configuration, memory limit, one thread) holding one table:
   the candidate sites. A timer interrupts it.

The names an expression references are the request's *filter fields*: the policy decides which
of them a role may use (``filters:`` in the role). Fixed column names are case-insensitive and
reported in lower case; INFO IDs are case-sensitive (as in the header), so the policy sees
exactly the column that is read. Rows where the expression is NULL are dropped (SQL WHERE).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from vault.errors import ConfigError
from vault.query.sql import locked_connection, scrub
from vault.store import format as fmt

__all__ = ["ALLOWED_FUNCTIONS", "FIXED_COLUMNS", "MAX_CHARS", "SiteFilter", "SiteFilterError",
           "parse"]

#: the fixed site columns a filter may reference (besides the INFO fields)
FIXED_COLUMNS = ("chrom", "pos", "id", "ref", "alt", "qual", "filter")
MAX_CHARS = 2000
MAX_NODES = 300
TIMEOUT_S = 5.0
_ROW = "__gv_row"
_TEMPLATE = "SELECT * FROM sites WHERE TRUE"
_RUN_TEMPLATE = f"SELECT {_ROW} FROM sites WHERE TRUE"  # noqa: S608 (constants only)
_TRY_TEMPLATE = f"SELECT {_ROW} FROM sites WHERE try(TRUE)"  # noqa: S608 (constants only)

#: Scalar functions (and the operator names DuckDB parses them into) a filter may call: pure
#: arithmetic, string and list functions. ``~~`` is LIKE, ``!~~`` NOT LIKE, ``~~*`` ILIKE.
ALLOWED_FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "abs", "round", "floor", "ceil", "sign", "sqrt", "ln",
    "log10", "log2", "least", "greatest", "isnan", "isinf", "isfinite",
    "~~", "!~~", "~~*", "!~~*", "||", "lower", "upper", "length", "starts_with", "ends_with",
    "contains", "prefix", "suffix",
    "list_value", "list_contains", "list_has_any", "list_has_all", "len", "array_length",
    "list_extract", "list_min", "list_max",
})
_OPERATORS = frozenset({"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL",
                        "COMPARE_IN", "COMPARE_NOT_IN", "OPERATOR_COALESCE", "ARRAY_EXTRACT"})
_CAST_TYPES = frozenset({"integer", "int", "int4", "int8", "bigint", "double", "float",
                         "real", "varchar", "text", "string", "boolean", "bool", "list"})
_LITERALS = frozenset({"STRING", "INTEGER", "NUMERIC", "BIGINT", "HUGEINT", "DOUBLE",
                       "BOOLEAN", "NULL_LITERAL", "DECIMAL", "FLOAT", "UBIGINT"})
# keys that only statements and table references have: never inside a filter expression
_STATEMENT_KEYS = frozenset({"node", "from_table", "table_name", "select_list", "cte_map",
                             "subquery", "function"})


class SiteFilterError(ConfigError):
    """A site filter that does not parse, uses something not allowed, or names no column."""


@dataclass(frozen=True)
class SiteFilter:
    """A parsed, checked site filter."""

    text: str  # as the caller wrote it
    canonical: str  # DuckDB's rendering of the checked expression (what runs)
    fields: tuple[str, ...]  # the columns it references: fixed ones lower-case, INFO IDs as is
    _sql: str  # the statement that runs: row numbers of the sites that satisfy it

    def check_columns(self, info_ids: Collection[str]) -> None:
        """SiteFilterError for a referenced name that is neither a fixed column nor one of
        the dataset's INFO fields (``info_ids``), with the names that exist."""
        exact = set(info_ids)
        lower = {i.lower(): i for i in info_ids}
        for name in self.fields:
            if name in FIXED_COLUMNS or name in exact:
                continue
            if name.lower() in lower:
                raise SiteFilterError(f"unknown column {name!r} in the filter: INFO field "
                                      f"names are case-sensitive, this dataset has "
                                      f"{lower[name.lower()]!r}")
            have = ", ".join([*FIXED_COLUMNS, *sorted(exact)])
            raise SiteFilterError(f"unknown column {name!r} in the filter; this dataset's "
                                  f"site columns are: {have}")

    def describe(self, considered: int, kept: int) -> dict[str, Any]:
        """What the answer's disclosure section says about the filter."""
        return {"expression": self.canonical, "fields": list(self.fields),
                "variants_considered": considered, "variants_excluded": considered - kept}

    def select(self, sites: pa.Table, timeout_s: float = TIMEOUT_S) -> np.ndarray:
        """Boolean mask of the rows of ``sites`` that satisfy the filter (NULL counts as
        false). ``sites`` has the filter-view columns (FIXED_COLUMNS and the INFO IDs)."""
        n = sites.num_rows
        table = sites.append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
        con = locked_connection({"sites": table})
        timer = threading.Timer(timeout_s, lambda: _interrupt(con))
        timer.daemon = True
        timer.start()
        try:
            rows = np.asarray(con.execute(self._sql).fetchnumpy()[_ROW])
        except duckdb.InterruptException:
            raise SiteFilterError(f"the filter ran longer than {timeout_s:g} s and was "
                                  "stopped: simplify it") from None
        except (duckdb.BinderException, duckdb.ParserException,
                duckdb.CatalogException) as exc:
            raise SiteFilterError(f"the filter cannot be applied: {scrub(str(exc))}") from None
        except duckdb.Error:
            # a runtime error that TRY did not catch: DuckDB's text would quote the value of
            # some site, so it is not passed on
            raise SiteFilterError("the filter failed on the sites' values (a CAST or an "
                                  "operation that some value does not support); compare "
                                  "each column with values of its own type, or use "
                                  "TRY_CAST") from None
        finally:
            timer.cancel()
            con.close()
        mask = np.zeros(n, np.bool_)
        mask[rows.astype(np.int64)] = True
        return mask


def _interrupt(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):
        con.interrupt()


def sites_view(sites: pa.Table) -> pa.Table:
    """The site table as a filter sees it: fixed columns, then ``info_<ID>`` as ``<ID>``."""
    names = [fmt.info_id_of(c) or c for c in sites.column_names]
    return sites.rename_columns(names)


def parse(text: str) -> SiteFilter:
    """Parse and check ``text``; SiteFilterError says what is wrong or not allowed."""
    try:
        return _parse(text)
    except RecursionError:
        raise SiteFilterError("the filter is nested too deeply") from None
    except duckdb.Error as exc:  # e.g. a tree DuckDB cannot render back: refused, not a 500
        raise SiteFilterError(f"the filter cannot be used: {scrub(str(exc))}") from None
    except (KeyError, TypeError, ValueError, IndexError):  # an unexpected syntax tree shape
        raise SiteFilterError("the filter cannot be used: its syntax tree has an unexpected "
                              "shape") from None


def _parse(text: str) -> SiteFilter:
    if not isinstance(text, str) or not text.strip():
        raise SiteFilterError("the filter is empty")
    if len(text) > MAX_CHARS:
        raise SiteFilterError(f"the filter is longer than {MAX_CHARS} characters")
    if "\x00" in text:
        raise SiteFilterError("the filter contains a NUL character")
    con = locked_connection({})
    try:
        # parsed, never run: what runs is rebuilt from the checked syntax tree
        query = f"SELECT * FROM sites WHERE {text}"  # noqa: S608
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise SiteFilterError(f"the filter does not parse: {scrub(str(exc))}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise SiteFilterError("the filter must be one boolean expression (no ';', no "
                                  "statements)")
        tree = _serialize(con, query)
        if tree is None:
            raise SiteFilterError("the filter must be one boolean expression")
        where = tree["node"].pop("where_clause", None)
        template = _serialize(con, _TEMPLATE)
        assert template is not None
        template["node"].pop("where_clause", None)
        if where is None or _strip(tree) != _strip(template):
            raise SiteFilterError("the filter must be one boolean expression: no UNION, "
                                  "ORDER BY, LIMIT, GROUP BY, HAVING or other clauses")
        fields = _check(where)
        run = _serialize(con, _RUN_TEMPLATE)
        assert run is not None
        run["node"]["where_clause"] = where
        shown = _deserialize(con, run)
        canonical = shown.split(" WHERE ", 1)[1] if " WHERE " in shown else shown
        # what runs is the expression under TRY: a site whose values make it fail (a CAST,
        # an out-of-range operation) is dropped like one where it is NULL, never an error
        # for the whole request, which would say that such a site is stored in the
        # partition — `CASE WHEN pos = P AND alt = 'T' THEN CAST(alt AS INTEGER) > 0 ELSE
        # TRUE END` failed exactly when the cohort holds that allele, rare or not
        guarded = _serialize(con, _TRY_TEMPLATE)
        assert guarded is not None
        guarded["node"]["where_clause"]["children"] = [where]
        return SiteFilter(text, canonical, fields, _deserialize(con, guarded))
    finally:
        con.close()


def _serialize(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, Any] | None:
    row = con.execute("SELECT json_serialize_sql($1)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        msg = str(tree.get("error_message", ""))
        if tree.get("error_type") == "parser":
            raise SiteFilterError(f"the filter does not parse: {scrub(msg)}")
        return None
    statements = tree.get("statements")
    if not isinstance(statements, list) or len(statements) != 1:
        return None
    first: dict[str, Any] = statements[0]
    return first


def _deserialize(con: duckdb.DuckDBPyConnection, statement: dict[str, Any]) -> str:
    doc = json.dumps({"error": False, "statements": [statement]})
    row = con.execute("SELECT json_deserialize_sql($1::JSON)", [doc]).fetchone()
    if not row or not isinstance(row[0], str):
        raise SiteFilterError("the filter could not be rendered back to SQL")
    return row[0]


def _strip(node: Any) -> Any:
    """``node`` without source positions (which differ between texts of the same shape)."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if not k.startswith("query_location")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _check(where: Mapping[str, Any]) -> tuple[str, ...]:
    """Refuse anything not on the allow-list; return the referenced column names."""
    fields: dict[str, None] = {}
    nodes = list(_walk(where))
    expressions = [n for n in nodes if "class" in n]
    if len(expressions) > MAX_NODES:
        raise SiteFilterError(f"the filter is too complex (more than {MAX_NODES} parts)")
    for node in nodes:
        if _STATEMENT_KEYS & node.keys():
            raise SiteFilterError("subqueries, tables and table functions are not allowed in "
                                  "a filter: it reads the site columns only")
        cls = node.get("class")
        if cls is None:
            continue
        kind = node.get("type")
        if str(node.get("alias") or ""):
            raise SiteFilterError("aliases (AS …) are not allowed in a filter")
        if cls == "COLUMN_REF":
            parts = node.get("column_names") or []
            if len(parts) != 1 or not isinstance(parts[0], str):
                raise SiteFilterError("name columns without a table or schema prefix "
                                      f"(got {'.'.join(map(str, parts))[:80]!r})")
            name = parts[0]
            fields[name.lower() if name.lower() in FIXED_COLUMNS else name] = None
        elif cls == "CONSTANT":
            kind_lit = (node.get("literal") or {}).get("kind")
            if kind_lit not in _LITERALS:
                raise SiteFilterError(f"this kind of literal ({kind_lit}) is not allowed")
        elif cls == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name not in ALLOWED_FUNCTIONS:
                raise SiteFilterError(
                    f"function {name[:40]}() is not allowed in a filter; allowed: "
                    f"{', '.join(sorted(f for f in ALLOWED_FUNCTIONS if f.isalpha() or '_' in f))}"
                    ", arithmetic, LIKE, ILIKE, ||")
            orders = (node.get("order_bys") or {}).get("orders") or []
            if node.get("schema") or node.get("catalog") or node.get("distinct") \
                    or node.get("filter") is not None or orders or node.get("export_state"):
                raise SiteFilterError(f"function {name}() may only be called plainly "
                                      "(no schema, DISTINCT, FILTER or ORDER BY)")
        elif cls == "OPERATOR":
            if kind not in _OPERATORS:
                raise SiteFilterError(f"operator {str(kind).lower()} is not allowed in a "
                                      "filter")
        elif cls == "CAST":
            pass  # its TYPE child is checked below
        elif cls == "TYPE":
            tname = str(node.get("type_name", "")).lower()
            if tname not in _CAST_TYPES or node.get("schema") or node.get("catalog"):
                raise SiteFilterError(f"CAST to {tname[:30]} is not allowed; cast to "
                                      "INTEGER, BIGINT, DOUBLE, VARCHAR, BOOLEAN or a list "
                                      "of them")
        elif cls not in ("COMPARISON", "CONJUNCTION", "BETWEEN", "CASE"):
            raise SiteFilterError(f"{str(cls).lower().replace('_', ' ')} expressions are not "
                                  "allowed in a filter")
    if not fields:
        raise SiteFilterError("the filter references no site column")
    return tuple(fields)
