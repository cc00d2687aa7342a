"""The data-quality and representation report of a dataset.

The same report as ``genovault report``: built by vault.report from the query service's
disclosure-controlled answers, through the Guard (one decision, rate limit, one audit
record). ``part=all`` (default) is the whole report (action ``report``, admins);
``part=representation`` its representation part alone (action ``representation``, granted
to researcher roles), for the role's group-by columns or the ``group_by`` ones asked for,
which the policy checks like a statistic's. ``reference=column:group=share`` (repeated)
compares the cohort with a reference distribution. ``format=json`` (default) answers the
JSON; ``format=html`` the self-contained HTML page.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from vault.api.deps import ServicesDep
from vault.api.guard import Outcome, disclosure_of
from vault.api.routes.statistics import DatasetId
from vault.errors import ConfigError
from vault.policy.model import Decision, QueryRequest

router = APIRouter(prefix="/v1/datasets", tags=["report"])

#: the page's own policy: inline CSS and data: images only, nothing fetched, no script
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


_DOCUMENTED: dict[int | str, dict[str, Any]] = {
    200: {"description": "the report (JSON), or with format=html its self-contained page",
          "content": {"application/json": {"schema": {"type": "object"}},
                      "text/html": {"schema": {"type": "string"}}}}}


@router.get("/{dataset}/report", summary="data-quality and representation report",
            response_model=None, responses=_DOCUMENTED)
def report(request: Request, services: ServicesDep, dataset: DatasetId,
           format: Annotated[Literal["json", "html"], Query()] = "json",
           part: Annotated[Literal["all", "representation"], Query(
               description="all: the whole report (action report); representation: its "
                           "representation part (action representation)")] = "all",
           group_by: Annotated[list[str] | None, Query(
               max_length=16, description="part=representation: the columns to show "
                                          "(default: every column the role may group by)")
           ] = None,
           reference: Annotated[list[str] | None, Query(
               max_length=200, description="column:group=share, e.g. population:pop1=0.18; "
                                           "the shares of a column sum to 1")] = None,
           ) -> dict[str, Any] | HTMLResponse:
    from vault.report.build import build_report, build_representation
    from vault.report.html import render_html
    from vault.report.reference import reference_from_params

    columns = tuple(dict.fromkeys(group_by or ()))
    action = "report" if part == "all" else "representation"
    qreq = QueryRequest(action=action, dataset=dataset, group_by=columns)

    def compute(decision: Decision) -> Outcome:
        d = disclosure_of(decision)
        svc = services.query
        if part == "all":
            if columns:
                raise ConfigError("group_by applies to part=representation only; the whole "
                                  "report shows every column")
            shown = None
        elif columns:
            shown = list(columns)  # the policy has checked them against the role's
        else:
            ob = decision.obligations
            assert ob is not None
            have = svc.version(dataset).cohort.columns
            shown = [c for c in ob.allowed_group_by if c in have]
        ref = None
        if reference:
            desc = svc.describe(dataset, d, shown)
            ref = reference_from_params(reference, {c: [g["name"] for g in gs]
                                                    for c, gs in desc["group_columns"].items()})
        by = {"role": decision.role}
        if part == "all":
            body = build_report(svc, dataset, d, ref, generated_by=by)
            body["disclosure"] = {**body["disclosure"], "kind": "report"}
        else:
            body = build_representation(svc, dataset, d, shown, ref, generated_by=by)
        return Outcome(body, 1)

    audit = {"part": part, "group_by": list(columns), "reference": list(reference or ())}
    body = services.guard.run(request, qreq, compute, body=audit)
    body["generated_by"]["query_id"] = body.get("query_id")
    if format == "html":
        return HTMLResponse(render_html(body), headers={
            "Content-Security-Policy": HTML_CSP, "X-Query-Id": str(body.get("query_id"))})
    return body
