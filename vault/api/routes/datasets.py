"""Datasets the caller may see, and what one holds (sizes rounded, small groups unnamed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from vault.api import models as m
from vault.api.deps import ServicesDep
from vault.api.guard import Outcome, disclosure_of
from vault.api.routes.statistics import DatasetId
from vault.policy import visible_datasets
from vault.policy.model import QueryRequest

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def _meta(services: Any, dataset: str) -> dict[str, Any]:
    info = services.guard.policies.current().datasets.get(dataset)
    if info is None:
        return {"description": None, "consent": [], "tier": None}
    consent = info.consent
    codes = [consent.permission, *consent.modifiers]
    if consent.disease:
        codes.append(consent.disease)
    return {"description": info.description or None, "consent": codes, "tier": info.tier}


@router.get("", response_model=m.DatasetList, summary="datasets visible to the caller")
def list_datasets(request: Request, services: ServicesDep) -> dict[str, Any]:
    qreq = QueryRequest(action="list_datasets")

    def compute(decision: Any) -> Outcome:
        principal = request.state.principal
        present = set(services.store.list())
        names = [d for d in visible_datasets(principal, services.guard.policies.current())
                 if d in present]
        return Outcome({"datasets": [{"id": d, **_meta(services, d)} for d in names]},
                       len(names))

    body = services.guard.run(request, qreq, compute)
    body.pop("policy", None)
    return body


@router.get("/{dataset}", response_model=m.DatasetDetail, summary="one dataset")
def describe(request: Request, services: ServicesDep, dataset: DatasetId) -> dict[str, Any]:
    qreq = QueryRequest(action="describe_dataset", dataset=dataset)

    def compute(decision: Any) -> Outcome:
        allowed = getattr(decision.obligations, "allowed_group_by", None)
        body = services.query.describe(dataset, disclosure_of(decision),
                                       list(allowed) if allowed else None)
        return Outcome({"id": dataset, **_meta(services, dataset), **body}, 1)

    return services.guard.run(request, qreq, compute)
