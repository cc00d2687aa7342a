"""The FastAPI application: ``create_app(services)`` and ``build_services(settings)``.

Errors are answered as ``{"error", "detail", "query_id"}`` and never carry a stack trace,
a token, a path of the server or anything about samples.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vault.api import logs
from vault.api.deps import Services
from vault.api.routes import budget, datasets, ops, statistics

_TITLES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
           405: "method_not_allowed", 413: "too_large", 422: "invalid_request",
           429: "rate_limited", 500: "internal_error", 503: "unavailable"}


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="GenoVault", version="0.2.0",
                  description="Aggregate statistics over encrypted genomic data. Every answer "
                              "passes one policy decision, one disclosure-control step and "
                              "one audit record.")
    app.state.services = services
    log = logs.configure()
    for router in (ops.router, datasets.router, statistics.router, budget.router):
        app.include_router(router)

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            dt = time.perf_counter() - t0
            services.metrics.requests.labels(template, str(status)).inc()
            services.metrics.latency.labels(template).observe(dt)
            log.info("request", extra={"fields": {
                "method": request.method, "route": template, "status": status,
                "ms": round(dt * 1000, 2)}})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        body = {"error": _TITLES.get(exc.status_code, "error"), "detail": str(exc.detail),
                "query_id": headers.get("X-Query-Id")}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        return JSONResponse({"error": "invalid_request", "detail": "; ".join(problems),
                             "query_id": None}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger(logs.LOGGER).error("unexpected error", extra={"fields": {
            "route": getattr(request.scope.get("route"), "path", "unmatched"),
            "error": type(exc).__name__}})
        return JSONResponse({"error": "internal_error", "detail": "the server failed to "
                             "answer; nothing was disclosed", "query_id": None},
                            status_code=500)

    return app
