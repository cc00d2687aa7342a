"""The FastAPI application: ``create_app(services)`` and ``build_services(settings)``.

Errors are answered as ``{"error", "detail", "query_id"}`` and never carry a stack trace,
a token, a path of the server or anything about samples.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vault.api import logs
from vault.api import models as m
from vault.api.deps import Services
from vault.api.routes import beacon, budget, datasets, ops, report, statistics

_TITLES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
           405: "method_not_allowed", 413: "too_large", 422: "invalid_request",
           429: "rate_limited", 500: "internal_error", 503: "unavailable"}

#: the error answers of the data routes, documented with the body they really have (Problem;
#: 422 too, replacing FastAPI's default HTTPValidationError, which this app never sends)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": m.Problem, "description": _TITLES[code].replace("_", " ")}
    for code in (400, 401, 403, 404, 413, 422, 429, 500, 503)}

#: the largest request body the app reads (a batch of 10,000 variants is ~1 MB; 413 beyond):
#: without it a body is read, and parsed into objects, whatever its size
MAX_BODY_BYTES = 8 << 20


class BodyLimit:
    """Refuse (413) a request body over ``limit`` bytes, declared or streamed, before it is
    read whole: the route reading the body gets an HTTPException, answered as a Problem."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                raise HTTPException(413, detail=f"the request body is over {self.limit} bytes")
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, detail=f"the request body is over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class Observe:
    """Metrics (count and latency per route template and status) and one structured log
    line per request. Plain ASGI: Starlette's BaseHTTPMiddleware costs a task group and a
    stream per request (about a millisecond)."""

    def __init__(self, app: Any, services: Services, log: logging.Logger) -> None:
        self.app = app
        self.services = services
        self.log = log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def observed(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            dt = time.perf_counter() - t0
            metrics = self.services.metrics
            metrics.requests.labels(template, str(status)).inc()
            metrics.latency.labels(template).observe(dt)
            self.log.info("request", extra={"fields": {
                "method": scope.get("method"), "route": template, "status": status,
                "ms": round(dt * 1000, 2)}})


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="GenoVault", version="0.2.0",
                  description="Aggregate statistics over encrypted genomic data. Every answer "
                              "passes one policy decision, one disclosure-control step and "
                              "one audit record.")
    app.state.services = services
    log = logs.configure()
    app.include_router(ops.router)
    app.include_router(beacon.router)  # Beacon v2: errors as Beacon error documents
    for router in (datasets.router, statistics.router, budget.router, report.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)  # inside observe: 413s are counted

    app.add_middleware(Observe, services=services, log=log)

    # Starlette's HTTPException, of which FastAPI's is a subclass: routing raises Starlette's
    # (404/405 for an unmatched path or method, 400 for an unparsable body)
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if beacon.is_beacon_path(request):
            return beacon.framework_error(exc.status_code, str(exc.detail), headers)
        body = {"error": _TITLES.get(exc.status_code, "error"), "detail": str(exc.detail),
                "query_id": headers.get("X-Query-Id")}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        if beacon.is_beacon_path(request):
            return beacon.framework_error(422, "; ".join(problems))
        return JSONResponse({"error": "invalid_request", "detail": "; ".join(problems),
                             "query_id": None}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger(logs.LOGGER).error("unexpected error", extra={"fields": {
            "route": getattr(request.scope.get("route"), "path", "unmatched"),
            "error": type(exc).__name__}})
        if beacon.is_beacon_path(request):
            return beacon.framework_error(500, "the server failed to answer; nothing was "
                                               "disclosed")
        return JSONResponse({"error": "internal_error", "detail": "the server failed to "
                             "answer; nothing was disclosed", "query_id": None},
                            status_code=500)

    return app
