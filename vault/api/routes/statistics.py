"""One route per statistic. Routes parse input and describe the request; the guard decides,
audits and applies disclosure control (they never decide access themselves)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from vault.api import models as m
from vault.api.deps import ServicesDep
from vault.api.fastjson import (
    ARROW_STREAM,
    TABLE_KEY,
    model_answer,
    statistic_answer,
    table_answer,
)
from vault.api.guard import Outcome, disclosure_of
from vault.errors import ConfigError
from vault.policy.model import WHOLE_BP, QueryRequest
from vault.query import advanced, sitefilter
from vault.query.service import (
    DEFAULT_PAGE,
    MAX_PAGE,
    MAX_TABLE_PAGE,
    FilterTally,
    QueryService,
    Selection,
)
from vault.store.reader import Region

router = APIRouter(prefix="/v1/datasets/{dataset}", tags=["statistics"])

DatasetId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                                description="dataset id")]
RegionQ = Annotated[str | None, Query(max_length=200, description="CHROM, CHROM:START-END or "
                                      "CHROM:START- (1-based, inclusive); omit for the whole "
                                      "dataset")]
GroupByQ = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                                       description="a grouping column, e.g. population")]
CursorQ = Annotated[int, Query(ge=0, le=10**9, description="variants to skip (from "
                                                           "next_cursor)")]
LimitQ = Annotated[int, Query(ge=1, le=MAX_PAGE, description="variants per page")]
TableLimitQ = Annotated[int | None, Query(
    ge=1, le=MAX_TABLE_PAGE,
    description=f"variants per page (default {DEFAULT_PAGE}, at most {MAX_PAGE} for JSON; "
                f"default and at most {MAX_TABLE_PAGE} for format=arrow)")]
FormatQ = Annotated[str | None, Query(
    pattern="^(json|arrow)$",
    description="json (default) or arrow: one Apache Arrow IPC stream, one row per variant, "
                "the envelope (disclosure, query_id, …) in the schema metadata under "
                "'genovault'; also chosen by Accept: " + ARROW_STREAM)]


def wants_table(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "arrow"
    return ARROW_STREAM in request.headers.get("accept", "")


def page_limit(limit: int | None, table: bool) -> int:
    if limit is None:
        return MAX_TABLE_PAGE if table else DEFAULT_PAGE
    if not table and limit > MAX_PAGE:
        raise ConfigError(f"limit must be between 1 and {MAX_PAGE} for JSON answers "
                          f"(up to {MAX_TABLE_PAGE} with format=arrow)")
    return limit
_FILTER_DOC = ("a site filter: a boolean SQL expression over the site columns chrom, pos, id, "
               "ref, alt, qual, filter and the dataset's INFO fields, e.g. "
               "FILTER = 'PASS' AND VQSLOD > 0 (docs/api.md)")
FilterQ = Annotated[str | None, Query(max_length=sitefilter.MAX_CHARS, description=_FILTER_DOC)]

_ROUTE_STATS = {"frequency": "frequency", "genotype-counts": "genotype_counts",
                "hardy-weinberg": "hardy_weinberg", "missingness": "missingness"}


class _Filter:
    """A request's site filter: parsed before the policy decision (its fields go to the
    policy as filter fields); a filter that does not parse is answered 400 after the decision,
    so the refusal is audited like any other answer."""

    def __init__(self, text: str | None) -> None:
        self.text = text if text is not None and text.strip() else None
        self.parsed: sitefilter.SiteFilter | None = None
        self.error: sitefilter.SiteFilterError | None = None
        if self.text is not None:
            try:
                self.parsed = sitefilter.parse(self.text)
            except sitefilter.SiteFilterError as exc:
                self.error = exc

    @property
    def fields(self) -> tuple[str, ...]:
        return self.parsed.fields if self.parsed is not None else ()

    def selection(self, **kw: Any) -> Selection:
        """A Selection with this filter (raises the parse error, if any)."""
        if self.error is not None:
            raise self.error
        return Selection(**kw, site_filter=self.parsed,
                         tally=FilterTally() if self.parsed is not None else None)

    def audit(self) -> dict[str, Any] | None:
        return None if self.text is None else {"filter": self.text}

    def disclose(self, body: dict[str, Any], sel: Selection) -> dict[str, Any]:
        """``body`` with the filter and its effect in its disclosure section."""
        extra = QueryService.filter_disclosure(sel, sel.tally)
        if extra:
            body = {**body, "disclosure": {**body.get("disclosure", {}), **extra}}
        return body


def parse_region(text: str | None) -> Region | None:
    if text is None or not text.strip():
        return None
    region = Region.parse(text)
    if region.start < 1:
        raise ConfigError(f"invalid region {text!r}: positions start at 1")
    return region


def region_span(texts: list[str | None], *, none_is_whole: bool = True) -> int | None:
    """The bases a request's regions cover, for the policy's ``max_region_bp``: their lengths
    summed, :data:`WHOLE_BP` for an open end or (``none_is_whole``) for no region at all;
    None when a region does not parse (the answer is then the parse error, 400)."""
    regions = [t for t in texts if t is not None and t.strip()]
    if not regions:
        return WHOLE_BP if none_is_whole else None
    total = 0
    for text in regions:
        try:
            r = parse_region(text)
        except ConfigError:
            return None
        if r is None or r.length is None:
            return WHOLE_BP
        total += r.length
    return min(total, WHOLE_BP)


class VariantKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chrom: str = Field(min_length=1, max_length=100, pattern=r"^[^\s:,]+$")
    pos: int = Field(ge=1, le=2**40)
    ref: str = Field(min_length=1, max_length=1000, pattern=r"^[ACGTNacgtn*]+$|^<[^<>]+>$")
    alt: str = Field(min_length=1, max_length=1000)


class BatchQuery(BaseModel):
    """A batch of variants and/or regions, paged with ``cursor``."""

    model_config = ConfigDict(extra="forbid")
    variants: list[VariantKey] = Field(default_factory=list, max_length=10_000)
    regions: list[str] = Field(default_factory=list, max_length=100)
    group_by: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    cursor: int = Field(default=0, ge=0, le=10**9)
    limit: int | None = Field(default=None, ge=1, le=MAX_TABLE_PAGE,
                              description=f"default {DEFAULT_PAGE}, at most {MAX_PAGE} for "
                                          f"JSON; up to {MAX_TABLE_PAGE} for format=arrow")
    format: str | None = Field(default=None, pattern="^(json|arrow)$")
    filter: str | None = Field(default=None, max_length=sitefilter.MAX_CHARS,
                               description=_FILTER_DOC)


def _stat_route(route: str, stat: str) -> None:
    def answer(request: Request, services: ServicesDep, dataset: DatasetId,
               qreq: QueryRequest, selection: Callable[[], Selection], group_by: str | None,
               cursor: int, limit: int | None, table: bool,
               audit: dict[str, Any] | None) -> Response:
        def compute(decision: Any) -> Outcome:
            sel = selection()
            n = page_limit(limit, table)
            if table:
                env, tab = services.query.statistic_table(
                    dataset, stat, sel, group_by, disclosure_of(decision), cursor, n)
                return Outcome({**env, "dataset": dataset, TABLE_KEY: tab}, env["count"])
            body = services.query.statistic(dataset, stat, sel, group_by,
                                            disclosure_of(decision), cursor, n)
            return Outcome({**body, "dataset": dataset}, body["count"])

        body = services.guard.run(request, qreq, compute, audit)
        return table_answer(body) if table else statistic_answer(body)

    def get_stat(request: Request, services: ServicesDep, dataset: DatasetId,
                 region: RegionQ = None, group_by: GroupByQ = None, cursor: CursorQ = 0,
                 limit: TableLimitQ = None, format: FormatQ = None,
                 filter: FilterQ = None) -> Response:
        flt = _Filter(filter)
        qreq = QueryRequest(action=stat, dataset=dataset,
                            group_by=(group_by,) if group_by else (), filter_fields=flt.fields,
                            region_bp=region_span([region]))
        return answer(request, services, dataset, qreq,
                      lambda: flt.selection(region=parse_region(region)), group_by, cursor,
                      limit, wants_table(request, format), flt.audit())

    def post_stat(request: Request, services: ServicesDep, dataset: DatasetId,
                  query: Annotated[BatchQuery, Body()]) -> Response:
        flt = _Filter(query.filter)
        qreq = QueryRequest(action=stat, dataset=dataset,
                            group_by=(query.group_by,) if query.group_by else (),
                            variant_count=len(query.variants) or None,
                            filter_fields=flt.fields,
                            region_bp=region_span(list(query.regions),
                                                  none_is_whole=not query.variants))

        def selection() -> Selection:
            regions = tuple(r for r in (parse_region(t) for t in query.regions) if r)
            if not query.variants and not regions:
                raise ConfigError("give variants and/or regions")
            return flt.selection(variants=tuple((v.chrom, v.pos, v.ref, v.alt)
                                                for v in query.variants) or None,
                                 more_regions=regions)

        audit = {"variants": len(query.variants), "regions": query.regions[:20],
                 "group_by": query.group_by, "cursor": query.cursor, "limit": query.limit,
                 "format": query.format, "filter": query.filter}
        return answer(request, services, dataset, qreq, selection, query.group_by,
                      query.cursor, query.limit, wants_table(request, query.format), audit)

    get_stat.__name__ = f"get_{stat}"
    post_stat.__name__ = f"post_{stat}"
    # exclude_unset: a cell carries the fields of its statistic only (a suppressed one has
    # them as null), not every field any statistic could have
    # answered by shape-checked orjson (vault/api/fastjson.py); the schema is documented in
    # full: a cell carries the fields of its statistic only (a suppressed one as null)
    documented: dict[int | str, dict[str, Any]] = {
        200: {"model": m.StatisticAnswer, "description": "one page of answers (JSON, or "
              "with format=arrow one Arrow IPC stream whose schema metadata 'genovault' holds "
              "this envelope without its variants)",
              "content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}}}
    router.add_api_route(f"/{route}", get_stat, methods=["GET"], response_model=None,
                         responses=documented, summary=f"{stat} per variant")
    router.add_api_route(f"/{route}", post_stat, methods=["POST"], response_model=None,
                         responses=documented,
                         summary=f"{stat} for a batch of variants/regions")


for _route, _stat in _ROUTE_STATS.items():
    _stat_route(_route, _stat)


@router.get("/association", response_model=m.AssociationAnswer,
            summary="case/control tests per variant")
def association(request: Request, services: ServicesDep, dataset: DatasetId,
                region: RegionQ = None,
                phenotype: Annotated[str, Query(max_length=64,
                                                pattern=r"^[A-Za-z0-9_.-]+$")] = "phenotype",
                case: Annotated[str, Query(max_length=64)] = "case",
                control: Annotated[str, Query(max_length=64)] = "control",
                cursor: CursorQ = 0, limit: LimitQ = DEFAULT_PAGE,
                filter: FilterQ = None) -> Response:
    flt = _Filter(filter)
    qreq = QueryRequest(action="association", dataset=dataset, group_by=(phenotype,),
                        filter_fields=flt.fields, region_bp=region_span([region]))

    def compute(decision: Any) -> Outcome:
        sel = flt.selection(region=parse_region(region))
        body = advanced.association(services.query, dataset, sel, phenotype, case, control,
                                    disclosure_of(decision), cursor, limit)
        return Outcome({**flt.disclose(body, sel), "dataset": dataset}, body["count"])

    return model_answer(services.guard.run(request, qreq, compute, flt.audit()),
                        m.AssociationAnswer)


@router.get("/ld", response_model=m.LdAnswer, summary="r² between variants of a region")
def ld(request: Request, services: ServicesDep, dataset: DatasetId,
       region: Annotated[str, Query(max_length=200)],
       window_variants: Annotated[int, Query(ge=1, le=advanced.MAX_LD_WINDOW)] = 10,
       window_bp: Annotated[int | None, Query(ge=1, le=10**9)] = None,
       min_r2: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
       cursor: CursorQ = 0, limit: LimitQ = DEFAULT_PAGE) -> dict[str, Any]:
    qreq = QueryRequest(action="ld", dataset=dataset, region_bp=region_span([region]))

    def compute(decision: Any) -> Outcome:
        reg = parse_region(region)
        if reg is None:
            raise ConfigError("LD needs a region")
        body = advanced.ld(services.query, dataset, reg, disclosure_of(decision),
                           window_variants, window_bp, min_r2, cursor, limit)
        return Outcome({**body, "dataset": dataset}, body["count"])

    return services.guard.run(request, qreq, compute)


@router.get("/sfs", response_model=m.SfsAnswer, summary="site-frequency spectrum")
def sfs(request: Request, services: ServicesDep, dataset: DatasetId, region: RegionQ = None,
        group_by: GroupByQ = None, folded: bool = False,
        filter: FilterQ = None) -> dict[str, Any]:
    flt = _Filter(filter)
    qreq = QueryRequest(action="sfs", dataset=dataset, group_by=(group_by,) if group_by else (),
                        filter_fields=flt.fields, region_bp=region_span([region]))

    def compute(decision: Any) -> Outcome:
        sel = flt.selection(region=parse_region(region))
        body = advanced.sfs(services.query, dataset, sel, group_by, disclosure_of(decision),
                            folded)
        return Outcome({**flt.disclose(body, sel), "dataset": dataset}, len(body["spectra"]))

    return services.guard.run(request, qreq, compute, flt.audit())


@router.get("/presence", response_model=m.PresenceAnswer,
            summary="is this allele present (at least k alleles)?")
def presence(request: Request, services: ServicesDep, dataset: DatasetId,
             chrom: Annotated[str, Query(min_length=1, max_length=100,
                                         pattern=r"^[^\s:,]+$")],
             pos: Annotated[int, Query(ge=1, le=2**40)],
             ref: Annotated[str, Query(min_length=1, max_length=1000)],
             alt: Annotated[str, Query(min_length=1, max_length=1000)]) -> Response:
    qreq = QueryRequest(action="presence", dataset=dataset, variant_count=1)

    def compute(decision: Any) -> Outcome:
        body = advanced.presence(services.query, dataset, chrom, pos, ref, alt,
                                 disclosure_of(decision))
        return Outcome({**body, "dataset": dataset}, 1)

    return model_answer(services.guard.run(request, qreq, compute), m.PresenceAnswer)


class SqlQuery(BaseModel):
    """A read-only SELECT over views of disclosure-controlled aggregates."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=20_000,
                       description="one SELECT over the views frequency, genotype_counts, "
                                   "hardy_weinberg, missingness")
    region: str | None = Field(default=None, max_length=200)
    group_by: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    max_rows: int = Field(default=1000, ge=1, le=10_000)
    filter: str | None = Field(default=None, max_length=sitefilter.MAX_CHARS,
                               description=_FILTER_DOC)


@router.post("/sql", response_model=m.SqlAnswer, summary="SQL over aggregate views")
def sql(request: Request, services: ServicesDep, dataset: DatasetId,
        body: Annotated[SqlQuery, Body()]) -> Response:
    flt = _Filter(body.filter)
    qreq = QueryRequest(action="sql", dataset=dataset,
                        group_by=(body.group_by,) if body.group_by else (),
                        filter_fields=flt.fields, region_bp=region_span([body.region]))

    def compute(decision: Any) -> Outcome:
        from vault.query.sqlviews import answer_sql

        out = answer_sql(services.query, dataset, body.query,
                         flt.selection(region=parse_region(body.region)), body.group_by,
                         disclosure_of(decision), body.max_rows)
        return Outcome({**out, "dataset": dataset}, out["count"])

    audit = {"sql_sha256": hashlib.sha256(body.query.encode()).hexdigest(),
             "sql_chars": len(body.query), "region": body.region, "group_by": body.group_by,
             "filter": body.filter}
    return model_answer(services.guard.run(request, qreq, compute, audit), m.SqlAnswer)
