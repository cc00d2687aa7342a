"""The data-quality and representation report of a dataset (``report`` action, admins).

The same report as ``genovault report``: built by vault.report from the query service's
disclosure-controlled answers, through the Guard (decision, rate limit, one audit
record). ``format=json`` (default) answers the report's JSON; ``format=html`` the
self-contained HTML page.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from vault.api.deps import ServicesDep
from vault.api.guard import Outcome, disclosure_of
from vault.api.routes.statistics import DatasetId
from vault.policy.model import QueryRequest

router = APIRouter(prefix="/v1/datasets", tags=["report"])


@router.get("/{dataset}/report", summary="data-quality and representation report (admins)",
            response_model=None)
def report(request: Request, services: ServicesDep, dataset: DatasetId,
           format: Annotated[Literal["json", "html"], Query()] = "json"
           ) -> dict[str, Any] | HTMLResponse:
    from vault.report.build import build_report
    from vault.report.html import render_html

    qreq = QueryRequest(action="report", dataset=dataset)

    def compute(decision: Any) -> Outcome:
        body = build_report(services.query, dataset, disclosure_of(decision),
                            generated_by={"role": decision.role})
        disc = body["disclosure"]
        body["disclosure"] = {**disc, "kind": "report"}
        return Outcome(body, 1)

    body = services.guard.run(request, qreq, compute)
    body["generated_by"]["query_id"] = body.get("query_id")
    if format == "html":
        return HTMLResponse(render_html(body), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "img-src data:",
            "X-Query-Id": str(body.get("query_id"))})
    return body
