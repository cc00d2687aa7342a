"""Beacon v2 response documents: meta sections, the framework's informational documents
(info, service-info, configuration, map, entry types, filtering terms), boolean / count /
result-set responses, errors, and genomic variation records built from the query service's
protected frequency rows (aggregates only: never a sample, an individual or a genotype)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vault.beacon.request import BeaconRequest, default_summary

BEACON_ID = "org.genovault.beacon"
API_VERSION = "v2.0.0"
NAME = "GenoVault Beacon"
SCHEMA_BASE = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
GV_SCHEMA = {"entityType": "genomicVariation",
             "schema": SCHEMA_BASE + "models/json/beacon-v2-default-model/genomicVariations/"
                                     "defaultSchema.json"}
DATASET_SCHEMA = {"entityType": "dataset",
                  "schema": SCHEMA_BASE + "models/json/beacon-v2-default-model/datasets/"
                                          "defaultSchema.json"}
#: the additionally supported schema whose ``variation`` is a VRS 1.3 Allele (asked for with
#: ``meta.requestedSchemas``); the default is the Beacon LegacyVariation
VRS_SCHEMA_ID = "ga4gh-beacon-variant-vrs-allele-v2.0.0"
GV_VRS_SCHEMA = {"entityType": "genomicVariation", "schema": VRS_SCHEMA_ID}


def wants_vrs(req: BeaconRequest) -> bool:
    """Did the request ask for genomic variations with VRS 1.3 Alleles?"""
    return any(s.get("schema") == VRS_SCHEMA_ID for s in req.requested_schemas)


#: Beacon security levels -> the access policy's tiers (docs/beacon.md)
SECURITY_LEVELS = {"REGISTERED": "registered", "CONTROLLED": "controlled"}


def security_levels(policy: Any) -> list[str]:
    """The Beacon security levels the policy offers: PUBLIC when callers without a
    credential have a role, REGISTERED / CONTROLLED when a role (reachable through a
    principal or visa rule) answers statistics at that tier."""
    reachable = {r.role for r in policy.principals} | {r.role for r in policy.passports.rules}
    tiers: set[str] = set()
    for role in policy.roles.values():
        if role.id not in reachable or not role.statistics:
            continue
        for ds in role.datasets:
            spec = policy.datasets.get(ds)
            tiers.add(role.tier or (spec.tier if spec else None) or "registered")
    out = ["PUBLIC"] if policy.public_roles else []
    return out + [level for level, tier in SECURITY_LEVELS.items() if tier in tiers]


@dataclass
class DatasetAnswer:
    """What one dataset answered (after its own policy decision and audit record)."""

    dataset: str
    query_id: str
    exists: bool
    count: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def info_meta(entity: str, schema: str) -> dict[str, Any]:
    return {"beaconId": BEACON_ID, "apiVersion": API_VERSION,
            "returnedSchemas": [{"entityType": entity, "schema": schema}]}


def response_meta(req: BeaconRequest | None, granularity: str,
                  schemas: list[dict[str, Any]]) -> dict[str, Any]:
    summary = req.summary() if req is not None else default_summary()
    meta: dict[str, Any] = {"beaconId": BEACON_ID, "apiVersion": API_VERSION,
                            "returnedGranularity": granularity,
                            "receivedRequestSummary": summary, "returnedSchemas": schemas}
    if req is not None and req.test_mode:
        # beaconResponseMeta.testMode: the response answers a request made in a test
        # context (this beacon has no separate test data: the answer is the real one)
        meta["testMode"] = True
    return meta


def organization(base_url: str) -> dict[str, Any]:
    return {"id": "genovault", "name": "GenoVault", "welcomeUrl": base_url}


def info_document(base_url: str, version: str) -> dict[str, Any]:
    return {"meta": info_meta("info", "beacon-info-v2.0.0"),
            "response": {"id": BEACON_ID, "name": NAME, "apiVersion": API_VERSION,
                         "environment": "prod", "version": version,
                         "description": "Aggregate genomic variation answers over encrypted "
                                        "cohorts: every answer is a policy decision with "
                                        "small-cell suppression, differential privacy for "
                                        "registered users, and an audit record.",
                         "organization": organization(base_url)}}


def service_info(base_url: str, version: str) -> dict[str, Any]:
    return {"id": BEACON_ID, "name": NAME,
            "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
            "description": "GA4GH Beacon v2 over GenoVault's policy-enforced query service",
            "organization": {"name": "GenoVault", "url": base_url},
            "environment": "prod", "version": version}


def _entry_types() -> dict[str, Any]:
    return {
        "genomicVariation": {
            "id": "genomicVariation", "name": "Genomic Variants",
            "ontologyTermForThisType": {"id": "ENSGLOSSARY:0000092", "label": "Variant"},
            "partOfSpecification": "Beacon v2.0.0",
            "description": "A variant (one ALT allele of a VCF record, multiallelic records "
                           "split) with its aggregate frequencies; never case-level data.",
            "defaultSchema": {"id": "ga4gh-beacon-variant-v2.0.0",
                              "name": "Default schema for a genomic variation",
                              "referenceToSchemaDefinition": GV_SCHEMA["schema"],
                              "schemaVersion": "v2.0.0"},
            "additionallySupportedSchemas": [{
                "id": VRS_SCHEMA_ID,
                "name": "Genomic variation whose variation is a GA4GH VRS 1.3 Allele",
                "referenceToSchemaDefinition": GV_SCHEMA["schema"],
                "schemaVersion": "v2.0.0"}],
        },
        "dataset": {
            "id": "dataset", "name": "Dataset",
            "ontologyTermForThisType": {"id": "NCIT:C47824", "label": "Data set"},
            "partOfSpecification": "Beacon v2.0.0",
            "description": "A cohort held in the vault.",
            "defaultSchema": {"id": "ga4gh-beacon-dataset-v2.0.0",
                              "name": "Default schema for datasets",
                              "referenceToSchemaDefinition": DATASET_SCHEMA["schema"],
                              "schemaVersion": "v2.0.0"},
            "aCollectionOf": [{"id": "genomicVariation", "name": "Genomic Variants"}],
            "additionallySupportedSchemas": [],
        },
    }


def configuration(levels: list[str] | None = None) -> dict[str, Any]:
    return {"meta": info_meta("configuration", "beacon-configuration-v2.0.0"),
            "response": {"$schema": SCHEMA_BASE + "framework/json/configuration/"
                                                  "beaconConfigurationSchema.json",
                         "maturityAttributes": {"productionStatus": "PROD"},
                         "securityAttributes": {"defaultGranularity": "boolean",
                                                "securityLevels": list(SECURITY_LEVELS)
                                                if levels is None else levels},
                         "entryTypes": _entry_types()}}


def entry_types() -> dict[str, Any]:
    return {"meta": info_meta("entryType", "beacon-entry-types-v2.0.0"),
            "response": {"entryTypes": _entry_types()}}


def beacon_map(base_url: str) -> dict[str, Any]:
    root = base_url.rstrip("/") + "/beacon/v2"
    return {"meta": info_meta("map", "beacon-map-v2.0.0"),
            "response": {"$schema": SCHEMA_BASE + "framework/json/configuration/"
                                                  "beaconMapSchema.json",
                         "endpointSets": {
                             "genomicVariation": {
                                 "entryType": "genomicVariation",
                                 "rootUrl": root + "/g_variants",
                                 "singleEntryUrl": root + "/g_variants/{id}",
                                 "openAPIEndpointsDefinition": base_url.rstrip("/")
                                 + "/openapi.json"},
                             "dataset": {
                                 "entryType": "dataset", "rootUrl": root + "/datasets",
                                 "singleEntryUrl": root + "/datasets/{id}",
                                 "openAPIEndpointsDefinition": base_url.rstrip("/")
                                 + "/openapi.json",
                                 "endpoints": {"genomicVariation": {
                                     "returnedEntryType": "genomicVariation",
                                     "url": root + "/datasets/{id}/g_variants"}}}}}}


#: the ontology of the ontology filtering terms (beaconFilteringTermsResults ``resources``)
DUO_RESOURCE = {"id": "duo", "name": "Data Use Ontology",
                "url": "http://purl.obolibrary.org/obo/duo.owl", "version": "2021-02-23",
                "nameSpacePrefix": "DUO", "iriPrefix": "http://purl.obolibrary.org/obo/DUO_"}


def filtering_terms(terms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"meta": info_meta("filteringTerm", "beacon-filtering-terms-v2.0.0"),
            "response": {"filteringTerms": terms or [], "resources": [DUO_RESOURCE]}}


#: the DUO release the term labels come from (duo.owl versionIRI of EBISPOT/DUO 81f5c3d)
DUO_VERSION = DUO_RESOURCE["version"]


def data_use_conditions(consent: Any) -> dict[str, Any]:
    """A dataset's consent as the default model's ``dataUseConditions`` (datasets
    defaultSchema -> common/dataUseConditions.json): one ``duoDataUse`` term, the permission,
    whose ``modifiers`` are the DS disease (an ontology term, as in the schema's example) and
    the DUO modifiers."""
    from vault.policy.duo import TERMS

    modifiers: list[dict[str, Any]] = []
    if consent.disease:
        term: dict[str, Any] = {"id": consent.disease}
        if consent.disease_label:
            term["label"] = consent.disease_label
        modifiers.append(term)
    modifiers += [{"id": m, "label": TERMS[m][2]} for m in consent.modifiers]
    use: dict[str, Any] = {"id": consent.permission, "label": TERMS[consent.permission][2],
                           "version": DUO_VERSION}
    if modifiers:
        use["modifiers"] = modifiers
    return {"duoDataUse": [use]}


def _warn(info: dict[str, Any], unapplied_filters: list[dict[str, str]]) -> None:
    if unapplied_filters:  # filters this beacon does not apply: a warning, not an error
        info["unappliedFilters"] = [f["filter"] for f in unapplied_filters]
        info["warnings"] = [f"filter {f['filter']!r} not applied: {f['warning']}"
                            for f in unapplied_filters]


def datasets_response(req: BeaconRequest, collections: list[dict[str, Any]],
                      query_id: str, unapplied_filters: list[dict[str, str]] | None = None
                      ) -> dict[str, Any]:
    info: dict[str, Any] = {"queryIds": [query_id]}
    _warn(info, unapplied_filters or [])
    return {"meta": response_meta(req, "record", [DATASET_SCHEMA]),
            "responseSummary": {"exists": bool(collections),
                                "numTotalResults": len(collections)},
            "response": {"collections": collections}, "info": info}


def error_response(req: BeaconRequest | None, status: int, message: str,
                   query_ids: list[str]) -> dict[str, Any]:
    granularity = req.granularity if req is not None else "boolean"
    return {"meta": response_meta(req, granularity, []),
            "error": {"errorCode": status, "errorMessage": message},
            "info": {"queryIds": query_ids}}


def g_variants_response(req: BeaconRequest, answers: list[DatasetAnswer],
                        refused: list[dict[str, Any]], query_ids: list[str],
                        unapplied_filters: list[dict[str, str]]) -> dict[str, Any]:
    """The boolean, count or result-set response for the answers of the datasets asked."""
    exists = any(a.exists for a in answers)
    info: dict[str, Any] = {"queryIds": query_ids}
    if refused:
        info["refusedDatasets"] = refused
    _warn(info, unapplied_filters)
    granularity = req.granularity
    if granularity == "record" and req.include == "NONE":
        granularity = "count"
    summary: dict[str, Any] = {"exists": exists}
    if granularity in ("count", "record"):
        summary["numTotalResults"] = sum(a.count or 0 for a in answers)
    schema = GV_VRS_SCHEMA if wants_vrs(req) else GV_SCHEMA
    doc: dict[str, Any] = {"meta": response_meta(req, granularity, [schema]),
                           "responseSummary": summary, "info": info}
    if granularity != "record":
        info["datasets"] = [{"id": a.dataset, "queryId": a.query_id, **a.info}
                            for a in answers]
        return doc
    keep = {"ALL": lambda a: True, "HIT": lambda a: a.exists,
            "MISS": lambda a: not a.exists}[req.include]
    doc["response"] = {"resultSets": [
        {"id": a.dataset, "setType": "dataset", "exists": a.exists,
         "resultsCount": a.count or 0, "results": a.records,
         "info": {"queryId": a.query_id, **a.info}}
        for a in answers if keep(a)]}
    return doc


def variant_type(ref: str, alt: str) -> str:
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "DEL" if len(ref) > len(alt) else "INS"


def _frequency(population: str, cell: dict[str, Any] | None) -> dict[str, Any] | None:
    """A released cell as a PopulationFrequency (None when suppressed or not assessed)."""
    if not cell or cell.get("af") is None:
        return None
    out: dict[str, Any] = {"population": population, "alleleFrequency": float(cell["af"])}
    for src, dst in (("ac", "alleleCount"), ("an", "alleleNumber")):
        if cell.get(src) is not None:
            out[dst] = int(cell[src])
    return out


def variant_record(dataset: str, dataset_version: str, row: dict[str, Any],
                   groups: dict[str, dict[str, Any]], base_url: str,
                   vrs: bool = False) -> dict[str, Any]:
    """One genomicVariation record: the variant and its frequencies overall and per released
    group of each group column (``groups``: column -> {group -> cell}); suppressed cells
    are left out, never shown as zero. ``variation`` is a LegacyVariation, or with ``vrs``
    a VRS 1.3 Allele: the VCF alleles as they are (with an indel's padding base, not VRS
    normalized), the interval 0-based over REF, ``sequence_id`` ``contig:<name>`` (the
    dataset records no refget digest), and no computed VRS identifier."""
    chrom, pos, ref, alt = row["chrom"], int(row["pos"]), row["ref"], row["alt"]
    populations = []
    overall = _frequency("all", row.get("overall"))
    if overall is not None:
        populations.append({"source": f"GenoVault dataset {dataset}",
                            "sourceReference": f"{base_url.rstrip('/')}/v1/datasets/{dataset}",
                            "version": dataset_version, "frequencies": [overall]})
    for column, cells in groups.items():
        freqs = [f for f in (_frequency(f"{column}={name}", cell)
                             for name, cell in cells.items()) if f is not None]
        if freqs:
            populations.append({"source": f"GenoVault dataset {dataset}, by {column}",
                                "sourceReference": f"{base_url.rstrip('/')}/v1/datasets/"
                                                   f"{dataset}",
                                "version": dataset_version, "frequencies": freqs})
    location = {"type": "SequenceLocation", "sequence_id": f"contig:{chrom}",
                "interval": {"type": "SequenceInterval",
                             "start": {"type": "Number", "value": pos - 1},
                             "end": {"type": "Number", "value": pos - 1 + len(ref)}}}
    variation: dict[str, Any] = {
        "type": "Allele", "location": location,
        "state": {"type": "LiteralSequenceExpression", "sequence": alt}} if vrs else {
        "referenceBases": ref, "alternateBases": alt, "variantType": variant_type(ref, alt),
        "location": location}
    record: dict[str, Any] = {
        "variantInternalId": f"{dataset}:{chrom}:{pos}:{ref}:{alt}",
        "variation": variation,
    }
    if populations:
        record["frequencyInPopulations"] = populations
    vid = row.get("id")
    if isinstance(vid, str) and vid.startswith("rs") and vid[2:].isdigit():
        record["identifiers"] = {"variantAlternativeIds": [
            {"id": f"dbSNP:{vid}", "reference": f"https://www.ncbi.nlm.nih.gov/snp/{vid}"}]}
    return record
