"""SQL for researchers over views of answers that already passed disclosure control.

A view is the flattened answer of one statistic (one row per variant overall, plus one row
per variant and group with ``group_by``), computed by the query service with the caller's
obligations: suppressed cells are NULL in the view exactly as in the JSON answer, and rare
variants are absent. DuckDB (locked down, vault.query.sql) then only ever sees these rows —
never genotypes, never raw sites.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from vault.errors import ConfigError
from vault.query.service import MAX_PAGE, Disclosure, QueryService, Selection
from vault.query.sql import SqlRefused, SqlResult, run_sql

#: views a query may use, and the statistic each flattens
VIEWS = {"frequency": "frequency", "genotype_counts": "genotype_counts",
         "hardy_weinberg": "hardy_weinberg", "missingness": "missingness"}
#: the most variants a view may hold (ask with a region for more)
MAX_VIEW_VARIANTS = 100_000

_SCHEMA_FIELDS = {
    "chrom": pa.string(), "pos": pa.int64(), "ref": pa.string(), "alt": pa.string(),
    "grp": pa.string(), "n": pa.int64(), "n_called": pa.int64(), "an": pa.int64(),
    "ac": pa.int64(), "af": pa.float64(), "missing": pa.int64(), "hom_ref": pa.int64(),
    "het": pa.int64(), "hom_alt": pa.int64(), "hwe_p": pa.float64(), "hwe_midp": pa.float64(),
    "exc_het": pa.float64(), "inbreeding_f": pa.float64(), "call_rate": pa.float64(),
    "f_missing": pa.float64(), "status": pa.string(),
}


def referenced_views(query: str) -> list[str]:
    words = set(re.findall(r"[a-z_][a-z0-9_]*", query.lower()))
    return [v for v in VIEWS if v in words]


def build_view(svc: QueryService, dataset: str, stat: str, selection: Selection,
               group_by: str | None, disclosure: Disclosure) -> tuple[pa.Table, dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor, variants = 0, 0
    disclosure_out: dict[str, Any] = {}
    while True:
        page = svc.statistic(dataset, stat, selection, group_by, disclosure, cursor, MAX_PAGE)
        disclosure_out = page["disclosure"]
        for v in page["variants"]:
            site = {k: v[k] for k in ("chrom", "pos", "ref", "alt")}
            rows.append({**site, "grp": None, **v["overall"]})
            for name, cell in (v.get("groups") or {}).items():
                rows.append({**site, "grp": name, **cell})
        variants += page["count"]
        if variants > MAX_VIEW_VARIANTS:
            raise ConfigError(f"the {stat} view would hold more than {MAX_VIEW_VARIANTS:,} "
                              "variants: give a region")
        if not page["truncated"]:
            break
        cursor = page["next_cursor"]
    used = [f for f in _SCHEMA_FIELDS if any(f in r for r in rows[:1])] or list(_SCHEMA_FIELDS)
    schema = pa.schema([(f, _SCHEMA_FIELDS[f]) for f in used])
    table = pa.Table.from_pylist([{f: r.get(f) for f in used} for r in rows], schema=schema)
    return table, disclosure_out


def answer_sql(svc: QueryService, dataset: str, query: str, selection: Selection,
               group_by: str | None, disclosure: Disclosure, max_rows: int) -> dict[str, Any]:
    names = referenced_views(query)
    if not names:
        raise ConfigError(f"the query uses none of the views {', '.join(VIEWS)}")
    views, disclosures = {}, {}
    for name in names:
        views[name], disclosures[name] = build_view(svc, dataset, VIEWS[name], selection,
                                                    group_by, disclosure)
    result: SqlResult = run_sql(query, views, max_rows=max_rows)
    first = next(iter(disclosures.values()))
    return {
        "dataset_version": svc.version(dataset).key,
        "columns": result.columns,
        "rows": json_rows(result.table),
        "count": result.table.num_rows,
        "truncated": result.truncated,
        "views": names,
        "disclosure": {**first, "rules": [*first["rules"], "SQL runs over these views only: "
                                          "suppressed cells are NULL, rare variants absent"]},
    }


def _scalar(field: pa.Field) -> Any:
    """How a result column's values become JSON: None to keep them, a function to convert
    them; SqlRefused for a type that is not a scalar (a list, struct, map, blob …)."""
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t)
            or pa.types.is_floating(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t)):
        return None
    if pa.types.is_decimal(t):
        return (lambda x: int(x)) if t.scale == 0 else (lambda x: float(x))
    if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
        return lambda x: x.isoformat()
    raise SqlRefused(f"result column {field.name!r} has type {t}; an answer holds scalar "
                     "columns only (numbers, strings, booleans, dates): cast or unnest it")


def json_rows(table: pa.Table) -> list[list[Any]]:
    """The result's rows as JSON scalars (decimals as numbers, dates and times as ISO 8601
    text); a column of another type is refused (400), never a server error."""
    convert = [_scalar(f) for f in table.schema]
    rows = []
    for r in table.to_pylist():
        values = list(r.values())
        for i, fn in enumerate(convert):
            if fn is not None and values[i] is not None:
                values[i] = fn(values[i])
        rows.append(values)
    return rows
