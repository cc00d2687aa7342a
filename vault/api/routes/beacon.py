"""GA4GH Beacon v2 under ``/beacon/v2``: the framework's informational endpoints and the
genomic variations entry type, on the same guard, policy and query service as ``/v1``.

Every ``g_variants`` answer of a dataset is one ``Guard.run``: one policy decision (action
``presence`` for a boolean or count answer to a sequence query naming both alleles,
``frequency`` otherwise), the same disclosure control (small cells, rare variants, DP noise
and budget for the registered tier) and one audit record, whose ``query_id`` the Beacon
response carries in ``info``. A dataset that is hidden from the caller answers exactly like
one that does not exist. The informational documents (info, service-info, configuration,
map, entry types, filtering terms) say nothing about any dataset and need no token; every
other endpoint needs a credential (a Vault token, or a GA4GH passport or visa), except when
the policy gives callers without one a public role (``match: {anonymous: true}``, Beacon's
PUBLIC level): they then get boolean answers only, under that role's disclosure control and
rate limit (docs/beacon.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from vault.api.deps import ServicesDep
from vault.api.guard import Outcome, disclosure_of, not_found
from vault.beacon import response as br
from vault.beacon.filters import Filters, consent_matches, filtering_terms, parse_filters
from vault.beacon.request import (
    BeaconError,
    BeaconRequest,
    VariantQuery,
    parse_body,
    parse_query,
    parse_variant_id,
    resolve_contig,
)
from vault.errors import ConfigError, DatasetNotFound
from vault.policy import visible_datasets
from vault.policy.model import WHOLE_BP, QueryRequest
from vault.query import advanced, sitefilter
from vault.query.service import MAX_TABLE_PAGE, FilterTally, Selection

_DOCUMENT = {"application/json": {"schema": {"type": "object",
                                             "description": "a Beacon v2 document"}}}
#: every answer, refusals too, is a Beacon v2 document (errors: beaconErrorResponse, also for
#: the framework's own errors under the prefix: vault.api.app)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": what, "content": _DOCUMENT}
    for code, what in ((400, "bad request (beaconErrorResponse)"),
                       (401, "no valid token (beaconErrorResponse)"),
                       (403, "refused by the policy (beaconErrorResponse)"),
                       (404, "no such dataset, or not visible to the caller"),
                       (422, "the body is not JSON, or a path parameter is invalid "
                             "(beaconErrorResponse)"), (429, "rate limit or budget exhausted"),
                       (500, "server error"), (503, "Vault or the audit trail unavailable"))}
router = APIRouter(prefix="/beacon/v2", tags=["beacon"], responses=_RESPONSES)

DatasetId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                                description="dataset id")]
BeaconBody = Annotated[Any, Body(description="a Beacon v2 request body (beaconRequestBody)")]
#: the disclosure fields a Beacon answer repeats (not omitted_variants or new_cells: counts of
#: the variants that were not released would say that a rare variant exists)
_SHOWN = ("tier", "k", "noise", "epsilon_per_query", "epsilon_spent", "epsilon_remaining",
          "epsilon_budget", "presence_threshold", "presence_control", "presence_noise_scale",
          "presence_count", "member_budget_nats", "suppressed_cells", "rare_variant_cells")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _or_empty(body: Any) -> Any:
    """A POST without a body asks what a GET without parameters asks."""
    return {"meta": {}} if body is None else body


def _doc(doc: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=headers)


# -- informational endpoints (no data: public) ------------------------------------------
def _info(request: Request) -> JSONResponse:
    return _doc(br.info_document(_base(request), request.app.version))


def service_info(request: Request) -> JSONResponse:
    return _doc(br.service_info(_base(request), request.app.version))


def configuration(request: Request) -> JSONResponse:
    policy = request.app.state.services.guard.policies.current()
    return _doc(br.configuration(br.security_levels(policy)))


def beacon_map(request: Request) -> JSONResponse:
    return _doc(br.beacon_map(_base(request)))


def entry_types(request: Request) -> JSONResponse:
    return _doc(br.entry_types())


def filtering_terms_view(request: Request) -> JSONResponse:
    policy = request.app.state.services.guard.policies.current()
    return _doc(br.filtering_terms(filtering_terms(policy)))


for _path, _view, _summary, _methods in (
        ("", _info, "Beacon info", ("GET", "POST")),
        ("/", _info, "Beacon info", ("GET", "POST")),
        ("/info", _info, "Beacon info", ("GET", "POST")),
        ("/service-info", service_info, "GA4GH service-info", ("GET",)),
        ("/configuration", configuration, "Beacon configuration", ("GET", "POST")),
        ("/map", beacon_map, "Beacon map", ("GET", "POST")),
        ("/entry_types", entry_types, "Beacon entry types", ("GET", "POST")),
        ("/filtering_terms", filtering_terms_view, "Beacon filtering terms", ("GET", "POST"))):
    for _method in _methods:
        router.add_api_route(_path, _view, methods=[_method], summary=_summary,
                             operation_id=f"beacon_{_path.strip('/') or 'root'}_"
                                          f"{'slash_' if _path == '/' else ''}"
                                          f"{_method.lower()}".replace("-", "_"),
                             include_in_schema=_path not in ("", "/"))


# -- errors -----------------------------------------------------------------------------
def _error(req: BeaconRequest | None, exc: HTTPException, qids: list[str]) -> JSONResponse:
    headers = dict(exc.headers or {})
    qid = headers.get("X-Query-Id")
    if qid and qid not in qids:
        qids = [*qids, qid]
    return _doc(br.error_response(req, exc.status_code, str(exc.detail), qids),
                exc.status_code, headers)


def is_beacon_path(request: Request) -> bool:
    """Whether the request is under the Beacon prefix (its errors are Beacon documents)."""
    path = request.scope.get("path", "")
    return path == router.prefix or path.startswith(router.prefix + "/")


def framework_error(status: int, message: str,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    """An error raised before any Beacon route ran (no such path or method, a body that is
    not JSON, a path parameter out of pattern, a server failure) as a beaconErrorResponse,
    so that a Beacon client reads every error under the prefix the same way."""
    return _error(None, HTTPException(status, message, headers), [])


def _refuse_bad_request(request: Request, services: Any, exc: BeaconError) -> JSONResponse:
    """A request that cannot be understood: authenticated and audited like any other
    (a 400 of the guard), then answered as a Beacon error."""
    def compute(decision: Any) -> Outcome:
        raise ConfigError(exc.message)

    try:
        services.guard.run(request, QueryRequest(action="list_datasets"), compute,
                           {"beacon_error": exc.message}, anonymous=True)
    except HTTPException as refused:
        return _error(None, refused, [])
    raise AssertionError("unreachable: the computation always fails")  # pragma: no cover


# -- datasets ---------------------------------------------------------------------------
def _visible(request: Request, services: Any) -> list[str]:
    principal = request.state.principal
    present = set(services.store.list())
    return [d for d in visible_datasets(principal, services.guard.policies.current())
            if d in present]


def _datasets(request: Request, services: Any, parse: Callable[[], BeaconRequest],
              only: str | None = None) -> JSONResponse:
    """The visible datasets (``only``: the one of ``/datasets/{id}``, 404 like an absent
    one when it is hidden), each with its consent as ``dataUseConditions``; DUO filters keep
    those whose consent has the term (or one below it), other filters are not applied (a
    warning, as on g_variants)."""
    try:
        req = parse()
        flt = parse_filters(req.filters, services.guard.policies.current())
    except BeaconError as exc:
        return _refuse_bad_request(request, services, exc)
    unapplied = list(flt.unapplied)
    if flt.group is not None:
        unapplied.append({"filter": flt.group[0], "warning": "a group filter selects "
                          "genomic variations, not datasets"})

    def compute(decision: Any) -> Outcome:
        policy = services.guard.policies.current()
        out = []
        for d in _visible(request, services):
            if only is not None and d != only:
                continue
            info = policy.datasets.get(d)
            if flt.consent_terms and not consent_matches(info, flt.consent_terms):
                continue
            entry: dict[str, Any] = {"id": d, "name": d}
            if info is not None and info.description:
                entry["description"] = info.description
            if info is not None:
                entry["dataUseConditions"] = br.data_use_conditions(info.consent)
            out.append(entry)
        if only is not None and not out and not flt.consent_terms:
            raise DatasetNotFound(only)
        return Outcome({"collections": out}, len(out))

    try:
        body = services.guard.run(request, QueryRequest(action="list_datasets"), compute,
                                  {"beacon": req.summary()}, anonymous=True)
    except HTTPException as exc:
        if exc.status_code == 404 and only is not None:
            exc = HTTPException(404, not_found(only), exc.headers)
        return _error(req, exc, [])
    return _doc(br.datasets_response(req, body["collections"], body["query_id"], unapplied))


@router.get("/datasets", summary="datasets visible to the caller (Beacon collections)")
def datasets_get(request: Request, services: ServicesDep) -> JSONResponse:
    return _datasets(request, services, lambda: parse_query(request.query_params))


@router.post("/datasets", summary="datasets visible to the caller (Beacon collections)")
def datasets_post(request: Request, services: ServicesDep,
                  body: BeaconBody = None) -> JSONResponse:
    return _datasets(request, services, lambda: parse_body(_or_empty(body)))


@router.get("/datasets/{dataset}", summary="one dataset visible to the caller")
def dataset_get(request: Request, services: ServicesDep, dataset: DatasetId) -> JSONResponse:
    return _datasets(request, services, lambda: parse_query(request.query_params), dataset)


@router.post("/datasets/{dataset}", summary="one dataset visible to the caller")
def dataset_post(request: Request, services: ServicesDep, dataset: DatasetId,
                 body: BeaconBody = None) -> JSONResponse:
    return _datasets(request, services, lambda: parse_body(_or_empty(body)), dataset)


# -- genomic variations -----------------------------------------------------------------
def _selection(v: VariantQuery, chrom: str | None) -> Selection:
    if v.reference_name is not None and chrom is None:
        return Selection(variants=())  # a sequence the dataset does not have: nothing
    allele = v.named_allele()
    site_filter = sitefilter.parse(v.filter_text())
    if allele is not None and chrom is not None:
        # one named allele is a list of one variant: the registered tier then charges its
        # cell whether the dataset holds it or not (QueryService._charge_requested), so
        # what the answer costs does not say that a rare allele is stored there
        return Selection(variants=((chrom, *allele),), site_filter=site_filter,
                         tally=FilterTally())
    region = v.region(chrom) if chrom is not None else None
    return Selection(region=region, site_filter=site_filter, tally=FilterTally())


def _charge_position(svc: Any, dataset: str, v: VariantQuery, chrom: str | None,
                     disclosure: Any, group: str | None = None) -> None:
    """Registered tier, a sequence, range or bracket query whose alleles or ``variantType``
    pick among the variants of its positions (but that does not name one variant): every
    variant stored there that an answer may list is charged (with its ``group`` cells, for
    a group filter) before that filter picks, so that the cost counts what the positions
    list (docs/privacy.md, "What is not protected") and never says whether a given allele
    or type is stored there -- all of them, however many (a page of MAX_PAGE charged only
    the first 5,000: beyond them the allele filter decided what was charged)."""
    if disclosure.noise is None or v.kind not in ("sequence", "range", "bracket") \
            or chrom is None or v.named_allele() is not None or (
                v.reference_bases is None and v.alternate_bases is None
                and v.variant_type is None):
        return
    where = replace(v, reference_bases=None, alternate_bases=None, variant_type=None)
    svc.charge(dataset, _selection(where, chrom), group, disclosure)


def _shown(disclosure: dict[str, Any] | None) -> dict[str, Any]:
    d = disclosure or {}
    return {k: d[k] for k in _SHOWN if k in d}


def _one_dataset(request: Request, services: Any, req: BeaconRequest,
                 dataset: str, flt: Filters) -> br.DatasetAnswer:
    """One dataset's answer: one Guard.run (decision, disclosure control, audit record)."""
    v = req.variant
    exact = v.exact_allele()
    presence = exact is not None and req.granularity in ("boolean", "count") \
        and flt.group is None
    group = flt.group
    qreq = QueryRequest(action="presence" if presence else "frequency", dataset=dataset,
                        variant_count=1 if exact is not None else None,
                        group_by=(group[0],) if group else (),
                        filters=(f"{group[0]}={group[1]}",) if group else (),
                        region_bp=v.span_bp(WHOLE_BP))
    base = _base(request)

    def compute(decision: Any) -> Outcome:
        svc = services.query
        disclosure = disclosure_of(decision)
        version = svc.version(dataset)
        if flt.consent_terms and not consent_matches(
                services.guard.policies.current().datasets.get(dataset), flt.consent_terms):
            # a consent filter the dataset does not meet: asked (so hidden and absent
            # datasets still answer alike) and answered as no match
            return Outcome({"exists": False, "count": 0, "records": [],
                            "dataset_version": version.key,
                            "disclosure": {"tier": disclosure.tier, "k": disclosure.k}}, 0)
        chrom = resolve_contig(v.reference_name, version.manifest.contigs) \
            if v.reference_name is not None else None
        if disclosure.noise is not None and v.kind == "contig" and (
                v.reference_bases is not None or v.alternate_bases is not None
                or v.variant_type is not None):
            # what it would cost is the number of such variants stored on the whole contig:
            # for an allele found once (a long indel) that says whether it is stored
            raise ConfigError("registered tier: referenceBases, alternateBases and "
                              "variantType need start (a sequence, range or bracket query)")
        _charge_position(svc, dataset, v, chrom, disclosure, group[0] if group else None)
        if group is not None:
            return _group_filtered(svc, dataset, _selection(v, chrom), group, decision,
                                   disclosure, req, base)
        if presence:
            assert exact is not None
            pos, ref, alt = exact
            body = advanced.presence(svc, dataset, chrom or str(v.reference_name), pos, ref,
                                     alt, disclosure)
            found = body["exists"] is True
            return Outcome({"exists": found, "count": int(found), "records": [],
                            "dataset_version": body["dataset_version"],
                            "disclosure": body["disclosure"]}, 1)
        sel = _selection(v, chrom)
        if req.granularity == "boolean":
            page = svc.statistic(dataset, "frequency", sel, None, disclosure, 0, 1)
            return Outcome({"exists": page["count"] > 0, "count": None, "records": [],
                            "dataset_version": page["dataset_version"],
                            "disclosure": page["disclosure"]}, page["count"])
        env, _ = svc.statistic_table(dataset, "frequency", sel, None, disclosure, 0,
                                     MAX_TABLE_PAGE)
        total = int(env["count"])
        records: list[dict[str, Any]] = []
        shown = env["disclosure"]
        if req.granularity == "record" and req.include != "NONE":
            page = svc.statistic(dataset, "frequency", sel, None, disclosure, req.offset,
                                 req.limit)
            shown = page["disclosure"]
            rows = page["variants"]
            by_column = _group_cells(svc, dataset, sel, decision, disclosure, req, rows)
            records = [br.variant_record(dataset, page["dataset_version"], row,
                                         {c: cells[i] for c, cells in by_column.items()},
                                         base, br.wants_vrs(req))
                       for i, row in enumerate(rows)]
        return Outcome({"exists": total > 0, "count": total, "records": records,
                        "dataset_version": env["dataset_version"], "disclosure": shown},
                       len(records) if records else total)

    body = services.guard.run(request, qreq, compute, {"beacon": req.summary()},
                              anonymous=True)
    return br.DatasetAnswer(dataset=dataset, query_id=body["query_id"],
                            exists=bool(body["exists"]), count=body["count"],
                            records=body["records"],
                            info={"datasetVersion": body["dataset_version"],
                                  "disclosure": _shown(body.get("disclosure"))})


def _group_filtered(svc: Any, dataset: str, sel: Selection, group: tuple[str, str],
                    decision: Any, disclosure: Any, req: BeaconRequest, base: str) -> Outcome:
    """The variants whose released cell of group ``group`` (column, name) has ALT alleles:
    the group cells /v1 frequency shows with ``group_by=<column>``."""
    import pyarrow.compute as pc

    column, name = group
    env, table = svc.statistic_table(dataset, "frequency", sel, column, disclosure, 0,
                                     MAX_TABLE_PAGE)
    ac = f"groups.{name}.ac"
    if ac not in table.column_names:  # a group refused (too small) or not in the data
        keys: list[tuple[str, int, str, str]] = []
    else:
        kept = table.filter(pc.fill_null(pc.greater(table[ac], 0), False))
        keys = list(zip(kept["chrom"].cast("string").to_pylist(), kept["pos"].to_pylist(),
                        kept["ref"].to_pylist(), kept["alt"].to_pylist(), strict=True))
    records: list[dict[str, Any]] = []
    shown = env["disclosure"]
    if req.granularity == "record" and req.include != "NONE":
        chosen = keys[req.offset:req.offset + req.limit]
        if chosen:
            page_sel = Selection(variants=tuple(chosen))
            page = svc.statistic(dataset, "frequency", page_sel, None, disclosure, 0,
                                 len(chosen))
            shown = page["disclosure"]
            rows = page["variants"]
            by_column = _group_cells(svc, dataset, page_sel, decision, disclosure,
                                     replace(req, skip=0), rows)
            records = [br.variant_record(dataset, page["dataset_version"], row,
                                         {c: cells[i] for c, cells in by_column.items()},
                                         base, br.wants_vrs(req))
                       for i, row in enumerate(rows)]
    total = len(keys)
    return Outcome({"exists": total > 0,
                    "count": total if req.granularity != "boolean" else None,
                    "records": records, "dataset_version": env["dataset_version"],
                    "disclosure": shown}, len(records) if records else total)


def _group_cells(svc: Any, dataset: str, sel: Selection, decision: Any, disclosure: Any,
                 req: BeaconRequest, rows: list[dict[str, Any]]
                 ) -> dict[str, list[dict[str, Any]]]:
    """Per group column the role may group by: the released group cells of the page's
    variants (the same page: which variants are listed never depends on the grouping)."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not rows:
        return out
    key = [(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in rows]
    for column in getattr(decision.obligations, "allowed_group_by", ()) or ():
        try:
            page = svc.statistic(dataset, "frequency", sel, column, disclosure, req.offset,
                                 req.limit)
        except ConfigError:
            continue  # a column the role names but this dataset does not have
        got = page["variants"]
        if [(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in got] != key:
            continue  # never mix up variants
        out[column] = [r.get("groups") or {} for r in got]
    return out


def _g_variants(request: Request, services: Any, parse: Callable[[], BeaconRequest],
                dataset: str | None) -> JSONResponse:
    try:
        req = parse()
        flt = parse_filters(req.filters, services.guard.policies.current())
    except BeaconError as exc:
        return _refuse_bad_request(request, services, exc)
    if not request.headers.get("authorization", "").strip() and req.granularity != "boolean":
        # PUBLIC (no credential): boolean answers only, whatever was asked (the guard
        # refuses the request outright when the policy has no public role)
        req = replace(req, granularity="boolean", asked_granularity=req.granularity)
    qids: list[str] = []
    if req.test_mode:
        return _test_mode(request, services, req, flt)
    if dataset is not None:
        names = [dataset]
    elif req.dataset_ids is not None:
        names = list(dict.fromkeys(req.dataset_ids))
    else:
        def listing(decision: Any) -> Outcome:
            names = _visible(request, services)
            return Outcome({"datasets": names}, len(names))

        try:
            listed = services.guard.run(request, QueryRequest(action="list_datasets"),
                                        listing, {"beacon": req.summary()}, anonymous=True)
        except HTTPException as exc:
            return _error(req, exc, qids)
        qids.append(listed["query_id"])
        names = listed["datasets"]
    answers: list[br.DatasetAnswer] = []
    refused: list[dict[str, Any]] = []
    for name in names:
        try:
            answer = _one_dataset(request, services, req, name, flt)
        except HTTPException as exc:
            qid = (exc.headers or {}).get("X-Query-Id")
            if exc.status_code == 404 and dataset is None:
                # absent or hidden: the same words either way
                if qid:
                    qids.append(qid)
                refused.append({"id": name, "errorCode": 404, "queryId": qid,
                                "errorMessage": str(exc.detail)})
                continue
            if exc.status_code in (400, 403) and len(names) > 1:
                # one of several datasets cannot take the request (it has no such group
                # column, or the policy refuses it there): that dataset is refused, the
                # others answer; asked alone, its error is the answer
                if qid:
                    qids.append(qid)
                refused.append({"id": name, "errorCode": exc.status_code, "queryId": qid,
                                "errorMessage": str(exc.detail)})
                continue
            return _error(req, exc, qids)
        qids.append(answer.query_id)
        answers.append(answer)
    return _doc(br.g_variants_response(req, answers, refused, qids, list(flt.unapplied)))


def _test_mode(request: Request, services: Any, req: BeaconRequest,
               flt: Filters) -> JSONResponse:
    """``testMode: true``: the request is understood, authenticated and audited like any
    other, and answered at its granularity with no data read (no dataset asked, nothing
    charged): Beacon's TestMode "MUST respond the request but it SHOULD use virtual or
    non-sensitive data"; this beacon has no virtual data, so the answer is empty."""
    def nothing(decision: Any) -> Outcome:
        return Outcome({}, 0)

    try:
        body = services.guard.run(request, QueryRequest(action="list_datasets"), nothing,
                                  {"beacon": req.summary()}, anonymous=True)
    except HTTPException as exc:
        return _error(req, exc, [])
    doc = br.g_variants_response(req, [], [], [body["query_id"]], list(flt.unapplied))
    doc["info"]["testMode"] = ("a test-mode request: no dataset was read, the answer only "
                               "shows the response's structure")
    return _doc(doc)


@router.get("/g_variants", summary="genomic variations over the datasets visible to the caller")
def g_variants_get(request: Request, services: ServicesDep) -> JSONResponse:
    return _g_variants(request, services, lambda: parse_query(request.query_params), None)


@router.post("/g_variants", summary="genomic variations over the datasets visible to the caller")
def g_variants_post(request: Request, services: ServicesDep,
                    body: BeaconBody = None) -> JSONResponse:
    return _g_variants(request, services, lambda: parse_body(_or_empty(body)), None)


def _single(parse: Callable[[], BeaconRequest], variant_id: str
            ) -> tuple[str, Callable[[], BeaconRequest]]:
    """``/g_variants/{id}``: the dataset named by a ``variantInternalId``
    (``<dataset>:<chrom>:<pos>:<ref>:<alt>``) and a parser that asks for that one variant (a
    sequence query naming both alleles) with the request's granularity and pagination."""
    dataset = variant_id.split(":", 1)[0]

    def single() -> BeaconRequest:
        req = parse()
        vid = parse_variant_id(variant_id)
        if req.variant.summary() or req.dataset_ids is not None:
            raise BeaconError("/g_variants/{id} takes its variant and dataset from the id: "
                              "give no g_variant parameters or datasetIds")
        return replace(req, variant=vid.variant)

    return dataset, single


@router.get("/g_variants/{variant_id}", summary="one genomic variation (by variantInternalId)")
def g_variant_get(request: Request, services: ServicesDep, variant_id: str) -> JSONResponse:
    dataset, single = _single(lambda: parse_query(request.query_params), variant_id)
    return _g_variants(request, services, single, dataset)


@router.post("/g_variants/{variant_id}", summary="one genomic variation (by variantInternalId)")
def g_variant_post(request: Request, services: ServicesDep, variant_id: str,
                   body: BeaconBody = None) -> JSONResponse:
    dataset, single = _single(lambda: parse_body(_or_empty(body)), variant_id)
    return _g_variants(request, services, single, dataset)


@router.get("/datasets/{dataset}/g_variants", summary="genomic variations of one dataset")
def dataset_g_variants_get(request: Request, services: ServicesDep,
                           dataset: DatasetId) -> JSONResponse:
    return _g_variants(request, services, lambda: parse_query(request.query_params), dataset)


@router.post("/datasets/{dataset}/g_variants", summary="genomic variations of one dataset")
def dataset_g_variants_post(request: Request, services: ServicesDep, dataset: DatasetId,
                            body: BeaconBody = None) -> JSONResponse:
    return _g_variants(request, services, lambda: parse_body(_or_empty(body)), dataset)
