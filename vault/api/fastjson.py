"""Large answers without per-row pydantic validation (it cost more than the query itself).

Two encodings of a statistic answer: JSON (one object per variant) and, with
``format=arrow``, one Apache Arrow IPC stream (one row per variant, the envelope in the
schema metadata), which costs bytes instead of Python objects per row.

A page of up to 5,000 variants is checked by shape instead: the envelope is validated with
its response model (without the rows), and every row and cell may only hold the keys its
model declares — so nothing but the model's aggregates can leave, as with full validation —
then the body is serialised with orjson. The OpenAPI schema still documents the full model
(and schemathesis checks real answers against it).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
import pyarrow as pa
from fastapi import Response
from pydantic import BaseModel, TypeAdapter

from vault.api import models as m

_ROW = set(m.VariantRow.model_fields)
_CELL = set(m.Cell.model_fields)
_SUPPRESSED = set(m.SuppressedCell.model_fields)


class ShapeError(ValueError):
    """An answer row holds a key its response model does not declare."""


def _check_row(row: dict[str, Any]) -> None:
    if not row.keys() <= _ROW:
        raise ShapeError(f"row keys {sorted(row.keys() - _ROW)}")
    if not row["overall"].keys() <= _CELL:
        raise ShapeError("cell keys")
    for cell in (row.get("groups") or {}).values():
        if not cell.keys() <= _CELL:
            raise ShapeError("cell keys")
    for s in row["suppressed"]:
        if not s.keys() <= _SUPPRESSED:
            raise ShapeError("suppressed keys")


def statistic_answer(body: dict[str, Any], model: type[BaseModel] = m.StatisticAnswer,
                     rows_key: str = "variants") -> Response:
    rows = body.get(rows_key) or []
    model.model_validate({**body, rows_key: rows[:1]})
    if rows_key == "variants":
        for row in rows:
            _check_row(row)
    return Response(orjson.dumps(body), media_type="application/json")


#: the media type of an Arrow IPC stream
ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: where a computation leaves its Arrow table in the answer body (taken out before the
#: envelope is validated and encoded)
TABLE_KEY = "_table"
_SITE = ("chrom", "pos", "ref", "alt", "id")


def _check_columns(table: pa.Table) -> None:
    """Only the site columns and per-cell aggregate fields may leave: ``<cell>.<field>``
    where ``<cell>`` is ``overall`` or ``groups.<name>`` and ``<field>`` a Cell field."""
    names = table.column_names
    if tuple(names[:len(_SITE)]) != _SITE:
        raise ShapeError("site columns")
    for name in names[len(_SITE):]:
        cell, _, fld = name.rpartition(".")
        if not (cell == "overall" or cell.startswith("groups.")) or fld not in (
                _CELL | {"suppressed"}):
            raise ShapeError(f"column {name!r}")


def table_answer(body: dict[str, Any], model: type[BaseModel] = m.StatisticAnswer) -> Response:
    """The Arrow IPC stream of a columnar answer; the envelope is validated by ``model``."""
    body = dict(body)
    table: pa.Table = body.pop(TABLE_KEY)
    model.model_validate({**body, "variants": []})
    _check_columns(table)
    meta = dict(table.schema.metadata or {})
    meta[b"genovault"] = orjson.dumps(body)
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    headers = {"X-Query-Id": str(body.get("query_id", ""))}
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM, headers=headers)


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def model_answer(body: dict[str, Any], model: type[BaseModel]) -> Response:
    """``body`` validated by its response ``model`` and serialised by alias: what FastAPI's
    response_model does for a route (validate with ``from_attributes``, then ``dump_json``),
    done in the route's worker thread instead of a second trip through the thread pool
    (validation) and the event loop (serialisation). Invalid bodies raise
    pydantic.ValidationError (a 500, as a response-model failure would be)."""
    adapter = _adapter(model)
    value = adapter.validate_python(body, from_attributes=True)
    return Response(adapter.dump_json(value, by_alias=True), media_type="application/json")
