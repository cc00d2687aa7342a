"""Beacon v2 conformance the way an external verifier (the GA4GH beacon-verifier) checks a
beacon: start from ``/map``, call every endpoint it announces (framework documents, entry
type roots, single entries ``/{entry}/{id}`` and ``/datasets/{id}/g_variants``) with GET and
POST, and validate every answer against the framework and default-model schemas (resolved
from the local copy, tests/data/beacon-v2); then the request rules: the
receivedRequestSummary echo, returnedGranularity never above requestedGranularity,
pagination, includeResultsetResponses, testMode, filters (ontology, alphanumeric, custom,
unknown: warnings in ``info``), and bad requests as beaconErrorResponse documents (400, never
FastAPI's 422 ``detail`` shape). Real HTTP (uvicorn, OpenBao, userpass tokens)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api
from tests.api.test_beacon import (
    BOOLEAN,
    COUNT,
    ERROR,
    GV,
    RESULTSETS,
    Client,
    _audited,
    _common,
    _sequence,
    validate,
)
from tests.api.test_beacon_schemas import RESPONSES
from vault.beacon.filters import consent_matches, parse_filters
from vault.beacon.request import BeaconError
from vault.policy.duo import TERMS, descendants, make_consent

pytestmark = pytest.mark.integration

B = "/beacon/v2"
COLLECTIONS = RESPONSES + "beaconCollectionsResponse.json"
DATASET = "models/json/beacon-v2-default-model/datasets/defaultSchema.json"
BY_GRANULARITY = {"boolean": BOOLEAN, "count": COUNT, "record": RESULTSETS}
RANK = {"boolean": 0, "count": 1, "record": 2}
FRAMEWORK = {"": "beaconInfoResponse.json", "/": "beaconInfoResponse.json",
             "/info": "beaconInfoResponse.json",
             "/configuration": "beaconConfigurationResponse.json",
             "/map": "beaconMapResponse.json",
             "/entry_types": "beaconEntryTypesResponse.json",
             "/filtering_terms": "beaconFilteringTermsResponse.json"}


def _check(r: httpx.Response, requested: str | None = None) -> dict[str, Any]:
    """Validate an answer by what it says it is: an error document, a collections
    response, or the response schema of its returnedGranularity (never above the request's)."""
    body = r.json()
    assert "detail" not in body, r.text  # never FastAPI's own error shape
    if r.status_code != 200:
        validate(body, ERROR)
        assert body["error"]["errorCode"] == r.status_code
        return body
    returned = body["meta"]["returnedGranularity"]
    summary = body["meta"]["receivedRequestSummary"]
    if "collections" in body.get("response", {}):
        validate(body, COLLECTIONS)
        for ds in body["response"]["collections"]:
            validate(ds, DATASET)
        return body
    validate(body, BY_GRANULARITY[returned])
    asked = requested or summary["requestedGranularity"]
    assert summary["requestedGranularity"] == asked
    assert RANK[returned] <= RANK[asked], (returned, asked)
    return body


def _body(granularity: str = "boolean", **query: Any) -> dict[str, Any]:
    return {"meta": {"apiVersion": "v2.0.0"},
            "query": {"requestedGranularity": granularity, **query}}


# -- framework documents ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", list(FRAMEWORK))
def test_verifier__framework_documents_on_get_and_post(as_user: Client, path: str,
                                                      method: str) -> None:
    kwargs = {"json": {"meta": {"apiVersion": "v2.0.0"}}} if method == "POST" else {}
    r = as_user(None).request(method, B + path, **kwargs)
    assert r.status_code == 200, r.text
    validate(r.json(), RESPONSES + FRAMEWORK[path])


def test_verifier__service_info_is_ga4gh_service_info(as_user: Client) -> None:
    r = as_user(None).get(B + "/service-info")
    assert r.status_code == 200, r.text
    doc = r.json()
    validate(doc, RESPONSES + "ga4gh-service-info-1-0-0-schema.json")
    assert doc["type"] == {"group": "org.ga4gh", "artifact": "beacon", "version": "v2.0.0"}
    assert doc["id"] == as_user(None).get(B + "/info").json()["response"]["id"]


def test_verifier__filtering_terms_name_their_ontology(as_user: Client) -> None:
    """Every ontology filtering term's prefix has its ``resources`` entry
    (beaconFilteringTermsResults.json Resource)."""
    doc = as_user(None).get(B + "/filtering_terms").json()["response"]
    prefixes = {r["nameSpacePrefix"] for r in doc["resources"]}
    ontology = [t for t in doc["filteringTerms"] if t["type"] == "ontologyTerm"]
    assert ontology and {t["id"].split(":")[0] for t in ontology} <= prefixes
    assert {t["scopes"][0] for t in doc["filteringTerms"]} <= {"dataset", "genomicVariation"}


def _announced(as_user: Client) -> list[tuple[str, str]]:
    """(entry type, URL template) of every endpoint the map announces."""
    sets = as_user(None).get(B + "/map").json()["response"]["endpointSets"]
    out = []
    for name, s in sets.items():
        out.append((name, s["rootUrl"]))
        if "singleEntryUrl" in s:
            out.append((name, s["singleEntryUrl"]))
        out += [(e["returnedEntryType"], e["url"]) for e in s.get("endpoints", {}).values()]
    return out


def test_verifier__the_map_announces_single_entry_urls(as_user: Client) -> None:
    sets = as_user(None).get(B + "/map").json()["response"]["endpointSets"]
    assert {n: s.get("singleEntryUrl", "").rsplit("/beacon/v2", 1)[-1]
            for n, s in sets.items()} == {"genomicVariation": "/g_variants/{id}",
                                          "dataset": "/datasets/{id}"}
    entry_types = as_user(None).get(B + "/entry_types").json()["response"]["entryTypes"]
    assert set(sets) == set(entry_types)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verifier__every_announced_endpoint_answers_and_validates(as_user: Client,
                                                                 method: str) -> None:
    """Every URL of /map, with a visible id put in for ``{id}``: a 200 answer that validates
    (a verifier's first walk)."""
    c = as_user("researcher-a")
    pos, ref, alt = _common()
    ids = {"dataset": "demo", "genomicVariation": f"demo:20:{pos}:{ref}:{alt}"}
    walked = []
    for entry, template in _announced(as_user):
        # /datasets/{id}/g_variants: the id is the dataset's
        owner = "dataset" if "/datasets/{id}" in template else entry
        url = template.replace("{id}", ids[owner])
        path = url[url.index(B):]
        kwargs = {"json": _body()} if method == "POST" else {}
        r = c.request(method, path, **kwargs)
        assert r.status_code == 200, (path, r.text)
        _check(r)
        walked.append(template.rsplit("/beacon/v2", 1)[-1])
    assert sorted(walked) == ["/datasets", "/datasets/{id}", "/datasets/{id}/g_variants",
                              "/g_variants", "/g_variants/{id}"]


# -- datasets -------------------------------------------------------------------------------
def test_verifier__datasets_carry_their_duo_consent(as_user: Client) -> None:
    """Each dataset has ``dataUseConditions.duoDataUse`` in the default model's shape
    (common/dataUseConditions.json: an ontology term with ``version``, modifiers as terms):
    the consent the access policy matches uses against."""
    body = _check(as_user("researcher-a").get(B + "/datasets"))
    by_id = {d["id"]: d for d in body["response"]["collections"]}
    assert set(by_id) == {"demo", "ceu"}
    for ds in by_id.values():
        (use,) = ds["dataUseConditions"]["duoDataUse"]
        assert use["id"] in TERMS and use["label"] == TERMS[use["id"]][2] and use["version"]
    assert by_id["demo"]["dataUseConditions"]["duoDataUse"][0]["id"] == "DUO:0000042"


@pytest.mark.parametrize("consent,want", [
    (("GRU",), {"id": "DUO:0000042", "label": "general research use"}),
    (("DS", "MONDO:0004992", "cancer", ("NPOA", "IRB")),
     {"id": "DUO:0000007", "label": "disease specific research", "modifiers": [
         {"id": "MONDO:0004992", "label": "cancer"},
         {"id": "DUO:0000044",
          "label": "population origins or ancestry research prohibited"},
         {"id": "DUO:0000021", "label": "ethics approval required"}]}),
    (("HMB", None, None, ("NPUNCU",)), {"id": "DUO:0000006", "modifiers": [
        {"id": "DUO:0000018", "label": "not for profit, non commercial use only"}]}),
])
def test_verifier__data_use_conditions_shape(consent: tuple, want: dict) -> None:
    """The dataset's consent in the default model's dataUseConditions (with a DS disease
    and modifiers too), valid against common/dataUseConditions.json."""
    from vault.beacon.response import data_use_conditions

    doc = data_use_conditions(make_consent(*consent))
    validate(doc, "models/json/beacon-v2-default-model/common/dataUseConditions.json")
    validate({"id": "x", "name": "x", "dataUseConditions": doc}, DATASET)
    (use,) = doc["duoDataUse"]
    assert {k: use[k] for k in want} == want and use["version"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verifier__one_dataset_and_a_hidden_one(as_user: Client, method: str) -> None:
    c = as_user("researcher-a")
    kwargs = {"json": _body()} if method == "POST" else {}
    one = _check(c.request(method, B + "/datasets/demo", **kwargs))
    assert [d["id"] for d in one["response"]["collections"]] == ["demo"]
    assert one["responseSummary"] == {"exists": True, "numTotalResults": 1}
    got = {}
    for name in ("hidden", "nosuch"):
        r = c.request(method, f"{B}/datasets/{name}", **kwargs)
        assert r.status_code == 404, r.text
        got[name] = _check(r)["error"]["errorMessage"].replace(name, "X")
    assert got["hidden"] == got["nosuch"]  # hidden reads exactly like absent


@pytest.mark.parametrize("flt,kept,warned", [
    ({"id": "DUO:0000042"}, {"demo", "ceu"}, False),          # their consent: GRU
    ({"id": "DUO:0000001"}, {"demo", "ceu"}, True),           # an ontology root: unknown
    ({"id": "DUO:0000007"}, set(), False),                    # DS: neither
    ({"id": "DUO:0000006"}, set(), False),                    # HMB is below GRU, not above
    ({"id": "HP:0000118"}, {"demo", "ceu"}, True),
    ({"id": "population", "operator": "=", "value": "pop1"}, {"demo", "ceu"}, True),
])
def test_verifier__datasets_apply_consent_filters(as_user: Client, flt: dict, kept: set,
                                                  warned: bool) -> None:
    """Filters on the datasets endpoint: a DUO term selects datasets by their consent (with
    DUO's descendants), anything else is a warning in ``info``."""
    c = as_user("researcher-a")
    for r in (c.post(B + "/datasets", json=_body(filters=[flt])),
              c.get(B + "/datasets", params={"filters": flt["id"]}) if "value" not in flt
              else None):
        if r is None:
            continue
        body = _check(r)
        assert {d["id"] for d in body["response"]["collections"]} == kept
        assert body["responseSummary"]["exists"] is bool(kept)
        assert ("warnings" in body["info"]) is warned
        if warned:
            assert body["info"]["unappliedFilters"] == [flt["id"]]
    one = _check(c.post(B + "/datasets/demo", json=_body(filters=[flt])))
    assert [d["id"] for d in one["response"]["collections"]] == sorted(kept & {"demo"})


def test_verifier__datasets_need_a_credential(as_user: Client) -> None:
    for path in ("/datasets", "/datasets/demo"):
        r = as_user(None).get(B + path)
        assert r.status_code == 401, r.text
        _check(r)


# -- single genomic variation ----------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verifier__a_variant_by_its_id(as_user: Client, method: str) -> None:
    """``/g_variants/{id}`` with the variantInternalId of a record answers that record."""
    c = as_user("researcher-a")
    pos, ref, alt = _common()
    rec_doc = _check(c.post(B + "/datasets/demo/g_variants",
                            json=_sequence(pos, ref, alt, "record")), "record")
    (rec,) = rec_doc["response"]["resultSets"][0]["results"]
    vid = rec["variantInternalId"]
    kwargs = ({"json": _body("record")} if method == "POST"
              else {"params": {"requestedGranularity": "record"}})
    body = _check(c.request(method, f"{B}/g_variants/{vid}", **kwargs), "record")
    (rs,) = body["response"]["resultSets"]
    assert rs["id"] == "demo" and [r["variantInternalId"] for r in rs["results"]] == [vid]
    validate(rs["results"][0], GV)
    assert body["meta"]["receivedRequestSummary"]["requestParameters"]["g_variant"] == {
        "referenceName": "20", "start": [pos - 1], "referenceBases": ref,
        "alternateBases": alt}


@pytest.mark.parametrize("vid,status", [
    ("demo:20:x:A:G", 400), ("demo:20:100:A", 400), ("demo:20:100:A:<DEL>", 400),
    ("NOPE!:20:100:A:G", 400), ("hidden:20:100:A:G", 404), ("nosuch:20:100:A:G", 404),
])
def test_verifier__a_bad_variant_id_is_a_beacon_error(as_user: Client, vid: str,
                                                      status: int) -> None:
    r = as_user("researcher-a").get(f"{B}/g_variants/{vid}")
    assert r.status_code == status, r.text
    _check(r)


@pytest.mark.parametrize("params", [{"referenceName": "21", "start": 5, "end": 9},
                                    {"datasetIds": "ceu"}])
def test_verifier__a_variant_id_takes_no_other_variant_parameters(as_user: Client,
                                                                  params: dict) -> None:
    pos, ref, alt = _common()
    r = as_user("researcher-a").get(f"{B}/g_variants/demo:20:{pos}:{ref}:{alt}",
                                    params=params)
    assert r.status_code == 400, r.text
    assert "from the id" in _check(r)["error"]["errorMessage"]


# -- request rules ------------------------------------------------------------------------
@pytest.mark.parametrize("granularity", ["boolean", "count", "record"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verifier__summary_echoes_the_request(as_user: Client, granularity: str,
                                              method: str) -> None:
    pos, ref, alt = _common()
    g = {"referenceName": "20", "start": [pos - 1], "referenceBases": ref,
         "alternateBases": alt}
    if method == "GET":
        r = as_user("researcher-a").get(B + "/datasets/demo/g_variants", params={
            **g, "start": pos - 1, "requestedGranularity": granularity, "skip": 0,
            "limit": 5, "filters": "DUO:0000042", "testMode": "true"})
    else:
        r = as_user("researcher-a").post(B + "/datasets/demo/g_variants", json=_body(
            granularity, requestParameters=g, pagination={"skip": 0, "limit": 5},
            filters=[{"id": "DUO:0000042"}], testMode=True))
    body = _check(r, granularity)
    s = body["meta"]["receivedRequestSummary"]
    assert s["requestedGranularity"] == granularity
    assert s["pagination"] == {"skip": 0, "limit": 5}
    assert s["filters"] == ["DUO:0000042"]
    assert s["requestParameters"]["g_variant"] == g
    assert s["testMode"] is True
    assert body["meta"]["testMode"] is True  # beaconResponseMeta.testMode


@pytest.mark.parametrize("granularity", ["boolean", "count", "record"])
def test_verifier__test_mode_reads_no_data(api: Api, as_user: Client,
                                           granularity: str) -> None:
    """TestMode (beaconCommonComponents.json): the beacon "MUST respond the request but it
    SHOULD use virtual or non-sensitive data". A test-mode request for a variant demo holds
    is answered in the right shape, audited, and empty: no dataset is read or charged."""
    c = as_user("researcher-a")
    pos, ref, alt = _common()
    real = _check(c.post(B + "/datasets/demo/g_variants",
                         json=_sequence(pos, ref, alt, granularity)), granularity)
    assert real["responseSummary"]["exists"] is True
    asked = _sequence(pos, ref, alt, granularity)
    asked["query"]["testMode"] = True
    for path in ("/datasets/demo/g_variants", "/g_variants",
                 f"/g_variants/demo:20:{pos}:{ref}:{alt}"):
        body = dict(asked) if "/g_variants/" not in path else _body(granularity,
                                                                   testMode=True)
        doc = _check(c.post(B + path, json=body), granularity)
        assert doc["meta"]["testMode"] is True
        assert doc["meta"]["returnedGranularity"] == granularity
        assert doc["responseSummary"]["exists"] is False
        assert doc["responseSummary"].get("numTotalResults", 0) == 0
        assert doc.get("response", {}).get("resultSets", []) == []
        assert "testMode" in doc["info"] and doc["info"].get("datasets", []) == []
        (qid,) = doc["info"]["queryIds"]
        assert _audited(api, [qid])[qid]["request"]["action"] == "list_datasets"
    # without a credential a test-mode request is refused like any other
    r = as_user(None).post(B + "/g_variants", json=asked)
    assert r.status_code == 401, r.text
    _check(r)


def test_verifier__get_requested_schema(as_user: Client) -> None:
    """GET names the results' schema with ``requestedSchema`` (genomicVariations
    endpoints.json); the additionally supported VRS schema is then returned, as on POST."""
    from vault.beacon.response import VRS_SCHEMA_ID

    pos, ref, alt = _common()
    params = {"referenceName": "20", "start": pos - 1, "referenceBases": ref,
              "alternateBases": alt, "requestedGranularity": "record"}
    c = as_user("researcher-a")
    vrs = _check(c.get(B + "/datasets/demo/g_variants",
                       params={**params, "requestedSchema": VRS_SCHEMA_ID}), "record")
    assert vrs["meta"]["returnedSchemas"][0]["schema"] == VRS_SCHEMA_ID
    assert vrs["meta"]["receivedRequestSummary"]["requestedSchemas"] == [
        {"entityType": "genomicVariation", "schema": VRS_SCHEMA_ID}]
    (rec,) = vrs["response"]["resultSets"][0]["results"]
    assert rec["variation"]["type"] == "Allele"
    plain = _check(c.get(B + "/datasets/demo/g_variants", params=params), "record")
    assert "referenceBases" in plain["response"]["resultSets"][0]["results"][0]["variation"]


def test_verifier__pagination_pages_records(as_user: Client) -> None:
    c = as_user("researcher-a")
    q = {"referenceName": "20", "start": [0], "end": [10_000_000]}
    pages = []
    for skip in (0, 1):
        body = _check(c.post(B + "/datasets/demo/g_variants", json=_body(
            "record", requestParameters=q, pagination={"skip": skip, "limit": 3})), "record")
        (rs,) = body["response"]["resultSets"]
        assert len(rs["results"]) == 3 and rs["resultsCount"] > 6
        pages.append([x["variantInternalId"] for x in rs["results"]])
    assert not set(pages[0]) & set(pages[1])


@pytest.mark.parametrize("include,expect", [("HIT", {"demo"}), ("MISS", {"ceu"}),
                                            ("ALL", {"demo", "ceu"}), ("NONE", None)])
def test_verifier__include_resultset_responses(as_user: Client, include: str,
                                               expect: set[str] | None) -> None:
    """A demo variant asked of demo and ceu: HIT lists the datasets with it, MISS those
    without, ALL both, NONE no result sets (a count answer)."""
    pos, ref, alt = _common()
    body = _check(as_user("researcher-a").post(B + "/g_variants", json=_body(
        "record", includeResultsetResponses=include, requestParameters={
            "referenceName": "20", "start": [pos - 1], "referenceBases": ref,
            "alternateBases": alt, "datasets": {"datasetIds": ["demo", "ceu"]}})), "record")
    assert body["meta"]["receivedRequestSummary"]["includeResultsetResponses"] == include
    if expect is None:
        assert body["meta"]["returnedGranularity"] == "count" and "response" not in body
        assert body["responseSummary"] == {"exists": True, "numTotalResults": 1}
        return
    assert {rs["id"] for rs in body["response"]["resultSets"]} == expect


@pytest.mark.parametrize("flt,applied", [
    ({"id": "DUO:0000042"}, True),                                      # ontology (DUO)
    ({"id": "DUO:0000042", "includeDescendantTerms": False}, True),
    ({"id": "population", "operator": "=", "value": "pop1"}, True),     # alphanumeric
    ({"id": "HP:0000118"}, False),                                      # unknown ontology term
    ({"id": "myCustomTerm"}, False),                                    # custom term
    ({"id": "age", "operator": ">", "value": "P40Y"}, False),           # unknown alphanumeric
    ({"id": "EFO:0009655", "scope": "biosamples"}, False),              # another entry type
])
def test_verifier__filters_applied_or_warned(as_user: Client, flt: dict,
                                             applied: bool) -> None:
    """An unknown or unsupported filter is a warning in ``info``, not an error: the answer
    says which filter was not applied."""
    body = _check(as_user("researcher-a").post(B + "/datasets/demo/g_variants", json=_body(
        "count", filters=[flt], requestParameters={
            "referenceName": "20", "start": [0], "end": [10_000_000]})), "count")
    assert body["meta"]["receivedRequestSummary"]["filters"] == [flt["id"]]
    if applied:
        assert "warnings" not in body["info"] and "unappliedFilters" not in body["info"]
        assert body["responseSummary"]["exists"] is True
    else:
        assert body["info"]["unappliedFilters"] == [flt["id"]]
        (warning,) = body["info"]["warnings"]
        assert flt["id"] in warning


@pytest.mark.parametrize("query,why", [
    ({"requestParameters": "x"}, "requestParameters"),
    ({"requestParameters": {"g_variant": {"referenceName": 20}}}, "referenceName"),
    ({"requestParameters": {"start": ["a"]}}, "start"),
    ({"requestParameters": {"nonsense": 1, "g_variant": {"bogus": 1}}}, "bogus"),
    ({"pagination": {"limit": "ten"}}, "limit"),
    ({"pagination": {"skip": -1}}, "skip"),
    ({"pagination": []}, "pagination"),
    ({"includeResultsetResponses": "SOME"}, "includeResultsetResponses"),
    ({"requestedGranularity": "aggregated"}, "requestedGranularity"),
    ({"testMode": "yes"}, "testMode"),
    ({"filters": "DUO:0000042"}, "filters"),
    ({"filters": [{"operator": "="}]}, "id"),
    ({"filters": [{"id": "DUO:0000042", "includeDescendantTerms": "yes"}]},
     "includeDescendantTerms"),
])
@pytest.mark.parametrize("path", ["/g_variants", "/datasets/demo/g_variants", "/datasets",
                                  "/datasets/demo"])
def test_verifier__bad_request_parameters_are_400_beacon_errors(as_user: Client, path: str,
                                                                query: dict, why: str) -> None:
    r = as_user("researcher-a").post(B + path, json={"meta": {"apiVersion": "v2.0.0"},
                                                     "query": query})
    assert r.status_code == 400, r.text
    body = _check(r)
    assert why in body["error"]["errorMessage"]


@pytest.mark.parametrize("meta", [{"requestedSchemas": [{"schema": 5}]},
                                  {"requestedSchemas": [{"entityType": ["x"]}]},
                                  {"requestedSchemas": "x"}, {"apiVersion": 2}, []])
@pytest.mark.parametrize("path", ["/g_variants", "/datasets/demo/g_variants", "/datasets"])
def test_verifier__bad_request_meta_is_a_400_beacon_error(as_user: Client, path: str,
                                                          meta: Any) -> None:
    """meta is echoed in receivedRequestSummary (requestedSchemas, apiVersion): what does
    not fit beaconRequestMeta is refused, never echoed into an invalid response."""
    r = as_user("researcher-a").post(B + path, json={"meta": meta, "query": {}})
    assert r.status_code == 400, r.text
    _check(r)


@pytest.mark.parametrize("params,why", [
    ({"limit": "ten"}, "limit"), ({"skip": "-1"}, "skip"),
    ({"requestedGranularity": "aggregated"}, "requestedGranularity"),
    ({"includeResultsetResponses": "SOME"}, "includeResultsetResponses"),
    ({"referenceName": "20", "start": "x", "end": "9"}, "start"),
])
@pytest.mark.parametrize("path", ["/g_variants", "/datasets/demo/g_variants", "/datasets"])
def test_verifier__bad_get_parameters_are_400_beacon_errors(as_user: Client, path: str,
                                                            params: dict, why: str) -> None:
    r = as_user("researcher-a").get(B + path, params=params)
    assert r.status_code == 400, r.text
    assert why in _check(r)["error"]["errorMessage"]


# -- ontology filters: DUO's hierarchy ------------------------------------------------------
_NO_GROUPS = SimpleNamespace(datasets={}, roles={})


def _dataset(permission: str, disease: str | None = None,
             modifiers: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(consent=make_consent(permission, disease, modifiers=modifiers))


@pytest.mark.parametrize("flt,consent,kept", [
    # includeDescendantTerms (default true): a term keeps the datasets annotated with it or
    # with a term below it (duo.owl: DS < HMB < GRU; NPU, NCU < NPUNCU)
    ({"id": "DUO:0000042"}, ("HMB",), True),
    ({"id": "DUO:0000042"}, ("DS", "MONDO:0004992"), True),
    ({"id": "DUO:0000006"}, ("DS", "MONDO:0004992"), True),
    ({"id": "DUO:0000018"}, ("GRU", None, ("NPU",)), True),
    ({"id": "DUO:0000042", "includeDescendantTerms": False}, ("HMB",), False),
    ({"id": "DUO:0000042", "includeDescendantTerms": False}, ("GRU",), True),
    # never upwards: an HMB filter does not keep a GRU or NRES dataset, DS not an HMB one
    ({"id": "DUO:0000006"}, ("GRU",), False),
    ({"id": "DUO:0000006"}, ("NRES",), False),
    ({"id": "DUO:0000007"}, ("HMB",), False),
    ({"id": "DUO:0000045"}, ("GRU", None, ("NPUNCU",)), False),
])
def test_verifier__ontology_filters_include_descendant_terms(flt: dict, consent: tuple,
                                                             kept: bool) -> None:
    """Beacon filters imply a hierarchical search unless ``includeDescendantTerms`` is
    false (framework requests/filteringTerms.json: default true)."""
    parsed = parse_filters((flt,), _NO_GROUPS)  # type: ignore[arg-type]
    assert not parsed.unapplied
    assert consent_matches(_dataset(*consent), parsed.consent_terms) is kept


def test_verifier__duo_descendants() -> None:
    assert descendants("GRU") == {"DUO:0000042", "DUO:0000006", "DUO:0000007"}
    assert descendants("DUO:0000007") == {"DUO:0000007"}
    assert descendants("NPUNCU") == {"DUO:0000018", "DUO:0000045", "DUO:0000046"}
    with pytest.raises(BeaconError, match="includeDescendantTerms"):
        parse_filters(({"id": "DUO:0000042", "includeDescendantTerms": 1},),
                      _NO_GROUPS)  # type: ignore[arg-type]
