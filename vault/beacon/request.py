"""Beacon v2 requests: GET query strings and POST bodies -> :class:`BeaconRequest`.

Coordinates: Beacon's ``start`` is 0-based inclusive and ``end`` 0-based exclusive
(interbase, GA4GH's convention); the store holds VCF positions (1-based, the first base of
REF). A variant at VCF ``POS`` with REF of length L spans the 0-based interval
``[POS-1, POS-1+L)``. Alleles are compared the way VCF writes them (with the padding base of
an indel), so a sequence query for the VCF record ``20 1000 . A G`` is
``start=999, referenceBases=A, alternateBases=G``.

* sequence query (``start`` = one value, no ``end``; ``alternateBases`` required): the
  variants with ``POS = start + 1`` and the given alleles;
* range query (one ``start``, one ``end``): every variant overlapping ``[start, end)``,
  i.e. ``POS - 1 < end`` and ``POS - 1 + len(REF) > start`` (variants starting up to
  LOOKBACK bases before ``start`` are looked at);
* bracket query (two ``start``, two ``end``): variants whose 0-based start lies in
  ``[start[0], start[1])`` and whose 0-based (exclusive) end lies in ``[end[0], end[1])`` —
  half-open like every GA4GH interval, so ``start[1] = start[0] + 1`` is a precise start.

Alleles: ``[ACGTN]+`` (N = any one base). Trimmed (empty) alleles, other IUPAC codes,
symbolic alleles (``<DEL>``), breakends and ``*`` are not answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vault.store.reader import Region

GRANULARITIES = ("boolean", "count", "record")
INCLUDE = ("ALL", "HIT", "MISS", "NONE")
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
#: a range query also finds variants that start this many bases before ``start`` and reach
#: into the range (longer deletions starting earlier are not found)
LOOKBACK = 1000
MAX_COORD = 1 << 40
_BASES = re.compile(r"^[ACGTN]{1,1000}$")
_NAME = re.compile(r"^[A-Za-z0-9._:|-]{1,100}$")
_DATASET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: variantType -> a condition on the (split, VCF-style) alleles
VARIANT_TYPES = {
    "SNP": "length(ref) = 1 AND length(alt) = 1",
    "SNV": "length(ref) = 1 AND length(alt) = 1",
    "MNP": "length(ref) = length(alt) AND length(ref) > 1",
    "INDEL": "length(ref) <> length(alt)",
    "DEL": "length(ref) > length(alt)",
    "INS": "length(ref) < length(alt)",
}
#: what is never a sequence allele (symbolic, breakend, spanning deletion, no ALT)
_SEQUENCE_ONLY = ("NOT contains(alt, '<') AND NOT contains(alt, '[') AND NOT "
                  "contains(alt, ']') AND alt NOT IN ('*', '.')")
#: g_variant parameters the schema defines that this beacon does not answer
UNSUPPORTED = ("geneId", "aminoacidChange", "genomicAlleleShortForm", "mateName",
               "variantMinLength", "variantMaxLength")
_PARAMS = ("referenceName", "start", "end", "referenceBases", "alternateBases", "variantType",
           "assemblyId", *UNSUPPORTED)


class BeaconError(Exception):
    """A request this beacon cannot answer: HTTP ``status`` and a message for the caller."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class VariantQuery:
    """The g_variant parameters of a request, checked."""

    reference_name: str | None = None
    start: tuple[int, ...] = ()
    end: tuple[int, ...] = ()
    reference_bases: str | None = None
    alternate_bases: str | None = None
    variant_type: str | None = None
    assembly_id: str | None = None

    @property
    def kind(self) -> str:
        if self.reference_name is None:
            return "all"
        if not self.start:
            return "contig"
        if not self.end:
            return "sequence"
        return "range" if len(self.start) == 1 else "bracket"

    def exact_allele(self) -> tuple[int, str, str] | None:
        """(POS, REF, ALT) of a sequence query naming both alleles without wildcards and
        without a ``variantType``."""
        return None if self.variant_type is not None else self.named_allele()

    def named_allele(self) -> tuple[int, str, str] | None:
        """(POS, REF, ALT) of a sequence query naming both alleles without wildcards,
        whatever its ``variantType`` (which can only narrow it further)."""
        if self.kind != "sequence" or self.reference_bases is None \
                or self.alternate_bases is None:
            return None
        if "N" in self.reference_bases or "N" in self.alternate_bases:
            return None
        return self.start[0] + 1, self.reference_bases, self.alternate_bases

    def region(self, chrom: str) -> Region | None:
        """The 1-based positions (VCF POS) that can hold a match on ``chrom``."""
        k = self.kind
        if k == "all":
            return None
        if k == "contig":
            return Region(chrom)
        if k == "sequence":
            return Region(chrom, self.start[0] + 1, self.start[0] + 1)
        if k == "range":
            return Region(chrom, max(1, self.start[0] + 1 - LOOKBACK), self.end[0])
        return Region(chrom, self.start[0] + 1, self.start[1])

    def span_bp(self, whole: int) -> int:
        """The bases :meth:`region` covers (``whole`` for a whole contig or dataset): the
        request's size for the policy's ``max_region_bp``."""
        r = self.region("_")
        return whole if r is None or r.length is None else r.length

    def filter_text(self) -> str:
        """The site-filter expression (vault.query.sitefilter) every match satisfies, built
        from checked integers and ``[ACGTN]`` strings only."""
        parts = [_SEQUENCE_ONLY]
        k = self.kind
        if k == "range":
            parts.append(f"pos + length(ref) > {self.start[0] + 1}")
        elif k == "bracket":
            parts.append(f"pos + length(ref) - 1 >= {self.end[0]}")
            parts.append(f"pos + length(ref) - 1 < {self.end[1]}")
        for column, bases in (("ref", self.reference_bases), ("alt", self.alternate_bases)):
            if bases is not None:
                if "N" in bases:
                    parts.append(f"{column} LIKE '{bases.replace('N', '_')}'")
                else:
                    parts.append(f"{column} = '{bases}'")
        if self.variant_type is not None:
            parts.append(VARIANT_TYPES[self.variant_type])
        return " AND ".join(f"({p})" for p in parts)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (("assemblyId", self.assembly_id),
                           ("referenceName", self.reference_name),
                           ("start", list(self.start) or None), ("end", list(self.end) or None),
                           ("referenceBases", self.reference_bases),
                           ("alternateBases", self.alternate_bases),
                           ("variantType", self.variant_type)):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class BeaconRequest:
    """One Beacon request, as this beacon understood it."""

    granularity: str = "boolean"
    skip: int = 0  # pages to skip (Beacon's definition), not records
    limit: int = DEFAULT_LIMIT
    include: str = "HIT"
    filters: tuple[dict[str, Any], ...] = ()
    variant: VariantQuery = field(default_factory=VariantQuery)
    dataset_ids: tuple[str, ...] | None = None
    api_version: str = "v2.0.0"
    requested_schemas: tuple[dict[str, Any], ...] = ()
    test_mode: bool = False
    #: what the caller asked for when the beacon answers at a lower granularity (PUBLIC:
    #: boolean only); receivedRequestSummary echoes the request, not the answer
    asked_granularity: str | None = None

    @property
    def offset(self) -> int:
        return self.skip * self.limit

    def summary(self) -> dict[str, Any]:
        """``meta.receivedRequestSummary``: the request as it was interpreted."""
        out: dict[str, Any] = {
            "apiVersion": self.api_version,
            "requestedSchemas": [dict(s) for s in self.requested_schemas],
            "pagination": {"skip": self.skip, "limit": self.limit},
            "requestedGranularity": self.asked_granularity or self.granularity,
            "includeResultsetResponses": self.include,
        }
        if self.filters:
            out["filters"] = [str(f.get("id")) for f in self.filters]
        params: dict[str, Any] = {}
        if self.variant.summary():
            params["g_variant"] = self.variant.summary()
        if self.dataset_ids is not None:
            params["datasets"] = {"datasetIds": list(self.dataset_ids)}
        if params:
            out["requestParameters"] = params
        if self.test_mode:
            out["testMode"] = True
        return out


def default_summary() -> dict[str, Any]:
    """The receivedRequestSummary of a request that could not be understood."""
    return BeaconRequest().summary()


#: GET names of g_variant parameters in Beacon's genomicVariations endpoints.json (OpenAPI)
#: that differ from the request schema's names
_GET_ALIASES = {"geneid": "geneId", "allele": "genomicAlleleShortForm"}


def _list(params: Mapping[str, str], key: str) -> list[str] | None:
    """Every value of an array parameter: comma-separated (``start=98,100``) and/or repeated
    (``start=98&start=100``, OpenAPI's default form style for Beacon's array parameters)."""
    if key not in params:
        return None
    getlist = getattr(params, "getlist", None)
    raw = getlist(key) if getlist is not None else [params[key]]
    return [v.strip() for value in raw for v in str(value).split(",") if v.strip()]


def parse_query(params: Mapping[str, str]) -> BeaconRequest:
    """A GET request: ``referenceName``, ``start`` and ``end`` (two values for brackets,
    comma-separated or repeated), ``referenceBases``, ``alternateBases``, ``variantType``,
    ``assemblyId``, ``requestedGranularity``, ``requestedSchema``, ``skip``, ``limit``,
    ``includeResultsetResponses``, ``filters`` and ``datasetIds`` (comma-separated or
    repeated), ``testMode``. ``geneid`` and ``allele`` (the GET names of ``geneId`` and
    ``genomicAlleleShortForm``) are refused like those."""
    variant: dict[str, Any] = {}
    for key in _PARAMS:
        if key in params:
            value: Any = params[key]
            if key in ("start", "end"):
                value = [_int(v, key) for v in _list(params, key) or []]
            variant[key] = value
    for alias, key in _GET_ALIASES.items():
        if alias in params and key not in variant:
            variant[key] = params[alias]
    pagination: dict[str, Any] = {}
    for key in ("skip", "limit"):
        if key in params:
            pagination[key] = _int(params[key], key)
    filters = [{"id": f} for f in _list(params, "filters") or []]
    ids = _list(params, "datasetIds")
    # endpoints.json: GET names one schema for the results (``requestedSchema``)
    schema = params.get("requestedSchema")
    if schema is not None and (not schema or len(schema) > 300):
        raise BeaconError("requestedSchema must be a schema id or URL")
    schemas = [] if schema is None else [{"entityType": "genomicVariation", "schema": schema}]
    return _build(variant=variant, granularity=params.get("requestedGranularity"),
                  pagination=pagination, include=params.get("includeResultsetResponses"),
                  filters=filters, dataset_ids=ids,
                  api_version=params.get("apiVersion"),
                  requested_schemas=schemas,
                  test_mode=str(params.get("testMode", "false")).lower() == "true")


def parse_body(body: Any) -> BeaconRequest:
    """A POST body (beaconRequestBody): ``meta`` and ``query`` {requestParameters, filters,
    includeResultsetResponses, pagination, requestedGranularity, testMode}.
    ``requestParameters`` may hold the g_variant parameters directly or under
    ``g_variant``, and ``datasets: {datasetIds}``; entries for other entry types are
    ignored. ``requestedGranularity`` and ``pagination`` are also read next to ``query``
    (where some clients put them)."""
    if not isinstance(body, dict):
        raise BeaconError("the request body must be a JSON object (beaconRequestBody)")
    meta = _given(body.get("meta"), {})
    query = _given(body.get("query"), {})
    if not isinstance(meta, dict) or not isinstance(query, dict):
        raise BeaconError("meta and query must be objects")
    params = _given(query.get("requestParameters"), {})
    if not isinstance(params, dict):
        raise BeaconError("query.requestParameters must be an object")
    variant: dict[str, Any] = {}
    nested = params.get("g_variant")
    if nested is not None:
        if not isinstance(nested, dict):
            raise BeaconError("requestParameters.g_variant must be an object")
        variant.update(nested)
    dataset_ids = None
    for key, value in params.items():
        if key in _PARAMS:
            variant[key] = value
        elif key == "datasets":
            if not isinstance(value, dict):
                raise BeaconError("requestParameters.datasets must be an object")
            ids = value.get("datasetIds", [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise BeaconError("requestParameters.datasets.datasetIds must be a list of "
                                  "strings")
            dataset_ids = ids
    unknown = set(variant) - set(_PARAMS)
    if unknown:
        raise BeaconError(f"unknown g_variant parameter(s): {', '.join(sorted(unknown))}")
    pagination = _given(query.get("pagination", body.get("pagination")), {})
    if not isinstance(pagination, dict):
        raise BeaconError("pagination must be an object")
    filters = _given(query.get("filters"), [])
    if not isinstance(filters, list):
        raise BeaconError("query.filters must be a list")
    filters = [f if isinstance(f, dict) else {"id": f} for f in filters]
    if not all(isinstance(f.get("id"), str) for f in filters):
        raise BeaconError("every filter needs an id")
    schemas = _given(meta.get("requestedSchemas"), [])
    if not isinstance(schemas, list) or not all(_schema_per_entity(s) for s in schemas):
        # receivedRequestSummary echoes them: they must be what SchemasPerEntity allows
        raise BeaconError("meta.requestedSchemas must be a list of {entityType, schema} "
                          "objects whose values are strings")
    test_mode = query.get("testMode", False)
    if not isinstance(test_mode, bool):
        raise BeaconError("testMode must be a boolean")
    return _build(variant=variant,
                  granularity=query.get("requestedGranularity",
                                        body.get("requestedGranularity")),
                  pagination=pagination, include=query.get("includeResultsetResponses"),
                  filters=filters, dataset_ids=dataset_ids, api_version=meta.get("apiVersion"),
                  requested_schemas=schemas, test_mode=test_mode)


def _schema_per_entity(item: Any) -> bool:
    """A SchemasPerEntity object: ``entityType`` and ``schema``, strings when present."""
    return isinstance(item, dict) and all(
        isinstance(item.get(k, ""), str) and len(item.get(k, "")) <= 300
        for k in ("entityType", "schema"))


def _given(value: Any, default: Any) -> Any:
    """A body member as given (``null`` or absent: ``default``). Never ``value or
    default``: an empty string or list where an object belongs must be refused, not read as
    the empty object."""
    return default if value is None else value


def resolve_contig(name: str, contigs: list[str] | tuple[str, ...]) -> str | None:
    """The dataset's contig for a Beacon ``referenceName``: the same name, the name with or
    without ``chr``, or a RefSeq accession of a human chromosome (``NC_000020.11``,
    ``refseq:NC_000020.11``; 23 = X, 24 = Y, ``NC_012920.1`` = MT). Whole names only."""
    have = set(contigs)
    text = name.split(":", 1)[1] if name.lower().startswith("refseq:") else name
    m = re.fullmatch(r"NC_0000(\d\d)\.\d+", text)
    if m:
        n = int(m.group(1))
        text = {23: "X", 24: "Y"}.get(n, str(n))
    elif re.fullmatch(r"NC_012920\.\d+", text):
        text = "MT"
    bare = text[3:] if text.lower().startswith("chr") else text
    for candidate in (text, bare, "chr" + bare, *(("M", "chrM") if bare == "MT" else ())):
        if candidate in have:
            return candidate
    return None


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise BeaconError(f"{key} must be an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise BeaconError(f"{key} must be an integer (got {str(value)[:40]!r})") from None


def _bases(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise BeaconError(f"{key} must be a string")
    text = value.upper()
    if text == "":
        raise BeaconError(f"{key}: trimmed (empty) alleles are not supported; give the "
                          "VCF-style alleles with their padding base")
    if not _BASES.fullmatch(text):
        raise BeaconError(f"{key} must be made of the bases A, C, G, T and the wildcard N "
                          "(other IUPAC codes and symbolic alleles are not supported)")
    return text


def _coords(value: Any, key: str, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int | str) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise BeaconError(f"{key} must be one or two integers")
    out = tuple(_int(v, key) for v in value)
    if any(v < minimum or v > MAX_COORD for v in out):
        raise BeaconError(f"{key} must be between {minimum} and {MAX_COORD}")
    return out


def _variant(raw: dict[str, Any]) -> VariantQuery:
    unsupported = [k for k in UNSUPPORTED if raw.get(k) is not None]
    if unsupported:
        raise BeaconError(f"not supported by this beacon: {', '.join(unsupported)}")
    name = raw.get("referenceName")
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise BeaconError("referenceName must be a sequence name such as 20, chr20 or "
                          "NC_000020.11")
    start = _coords(raw["start"], "start", 0) if raw.get("start") is not None else ()
    end = _coords(raw["end"], "end", 1) if raw.get("end") is not None else ()
    ref = _bases(raw["referenceBases"], "referenceBases") \
        if raw.get("referenceBases") is not None else None
    alt = _bases(raw["alternateBases"], "alternateBases") \
        if raw.get("alternateBases") is not None else None
    vtype = raw.get("variantType")
    if vtype is not None:
        if not isinstance(vtype, str) or vtype.upper() not in VARIANT_TYPES:
            raise BeaconError(f"variantType must be one of {', '.join(VARIANT_TYPES)} "
                              "(structural and ontology-coded types are not supported)")
        vtype = vtype.upper()
    assembly = raw.get("assemblyId")
    if assembly is not None and (not isinstance(assembly, str) or len(assembly) > 100):
        raise BeaconError("assemblyId must be a short string")
    if (start or end or ref or alt or vtype) and name is None:
        raise BeaconError("referenceName is required with start, end, bases or variantType")
    if end and not start:
        raise BeaconError("end needs start")
    if start and not end:
        if len(start) != 1:
            raise BeaconError("a bracket query needs two start and two end values")
        if alt is None:
            raise BeaconError("a sequence query (start without end) needs alternateBases")
    if start and end:
        if len(start) != len(end):
            raise BeaconError("a range query has one start and one end; a bracket query "
                              "two of each")
        if len(start) == 1 and end[0] <= start[0]:
            raise BeaconError("end must be greater than start (end is exclusive)")
        if len(start) == 2 and (start[1] <= start[0] or end[1] <= end[0]):
            raise BeaconError("a bracket query needs start[0] < start[1] and end[0] < end[1] "
                              "(half-open intervals)")
    return VariantQuery(name, start, end, ref, alt, vtype, assembly)


def _build(*, variant: dict[str, Any], granularity: Any, pagination: dict[str, Any],
           include: Any, filters: list[dict[str, Any]], dataset_ids: list[str] | None,
           api_version: Any, requested_schemas: list[dict[str, Any]],
           test_mode: bool) -> BeaconRequest:
    granularity = granularity or "boolean"
    if granularity not in GRANULARITIES:
        raise BeaconError(f"requestedGranularity must be one of {', '.join(GRANULARITIES)}")
    include = include or "HIT"
    if include not in INCLUDE:
        raise BeaconError(f"includeResultsetResponses must be one of {', '.join(INCLUDE)}")
    skip = _int(pagination.get("skip", 0), "skip")
    limit = _int(pagination.get("limit", DEFAULT_LIMIT), "limit")
    if skip < 0 or skip > 10**9:
        raise BeaconError("skip must be between 0 and 10^9 (pages)")
    if limit < 0:
        raise BeaconError("limit must be >= 0")
    limit = MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)
    if dataset_ids is not None and len(dataset_ids) > 100:
        raise BeaconError("at most 100 datasetIds")
    if api_version is not None and not isinstance(api_version, str):
        raise BeaconError("apiVersion must be a string")
    return BeaconRequest(granularity=granularity, skip=skip, limit=limit, include=include,
                         filters=tuple(filters[:50]), variant=_variant(variant),
                         dataset_ids=None if dataset_ids is None else tuple(dataset_ids),
                         api_version=api_version or "v2.0.0",
                         requested_schemas=tuple(requested_schemas[:10]),
                         test_mode=test_mode)


@dataclass(frozen=True)
class VariantId:
    """A ``variantInternalId`` as this beacon writes it: ``<dataset>:<chrom>:<POS>:<REF>:<ALT>``
    (VCF position and alleles; the chromosome may itself hold ``:``)."""

    dataset: str
    variant: VariantQuery


def parse_variant_id(text: str) -> VariantId:
    """The dataset and the sequence query (both alleles named) of a ``variantInternalId``;
    BeaconError (400) if it is not one."""
    dataset, _, rest = text.partition(":")
    parts = rest.rsplit(":", 3)
    if not valid_dataset_id(dataset) or len(parts) != 4:
        raise BeaconError("a genomic variation id is <dataset>:<chrom>:<pos>:<ref>:<alt> "
                          "(the variantInternalId of a record)")
    chrom, pos, ref, alt = parts
    start = _int(pos, "the id's position") - 1
    variant = _variant({"referenceName": chrom, "start": [start], "referenceBases": ref,
                        "alternateBases": alt})
    if "N" in (variant.reference_bases or "") + (variant.alternate_bases or ""):
        raise BeaconError("a genomic variation id names its alleles (no N)")
    return VariantId(dataset, variant)


def valid_dataset_id(name: str) -> bool:
    return bool(_DATASET.fullmatch(name))
