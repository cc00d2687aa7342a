"""Health, readiness and metrics (no authentication; they reveal no data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vault.api import models as m
from vault.api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Vault reachable and unsealed, store readable",
            response_model=None, responses={
                200: {"model": m.Readiness, "description": "ready"},
                503: {"model": m.Readiness, "description": "not ready: checks say why"}})
def readyz(services: ServicesDep) -> Any:
    checks = services.readiness()
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
