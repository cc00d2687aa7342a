"""Large answers without per-row pydantic validation (it cost more than the query itself).

A page of up to 5,000 variants is checked by shape instead: the envelope is validated with
its response model (without the rows), and every row and cell may only hold the keys its
model declares — so nothing but the model's aggregates can leave, as with full validation —
then the body is serialised with orjson. The OpenAPI schema still documents the full model
(and schemathesis checks real answers against it).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response
from pydantic import BaseModel

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
