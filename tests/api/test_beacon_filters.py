"""Beacon v2 filters through real HTTP: the announced filtering terms, a group filter
checked against /v1's group cells, dataset consent (DUO) filters, and unknown filters
answered with a warning. Every response validates against the Beacon v2 schemas."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import Api
from tests.api.test_beacon import COUNT, ERROR, RESPONSES, RESULTSETS, _audited, validate

pytestmark = pytest.mark.integration

Client = Callable[[str | None], httpx.Client]
B = "/beacon/v2"
START, END = 99_999, 160_000  # Beacon [99999, 160000) = VCF POS 100000..160000


def _body(granularity: str, filters: list[dict], **pagination: int) -> dict:
    q: dict = {"requestParameters": {"g_variant": {"referenceName": "20", "start": [START],
                                                   "end": [END]}},
               "requestedGranularity": granularity, "filters": filters}
    if pagination:
        q["pagination"] = pagination
    return {"meta": {"apiVersion": "v2.0.0"}, "query": q}


def _pop(name: str) -> dict:
    return {"id": "population", "operator": "=", "value": name, "scope": "genomicVariation"}


def test_beacon_filters__the_terms_are_announced(as_user: Client) -> None:
    doc = as_user(None).get(B + "/filtering_terms").json()
    validate(doc, RESPONSES + "beaconFilteringTermsResponse.json")
    terms = {t["id"]: t for t in doc["response"]["filteringTerms"]}
    assert terms["population"]["type"] == "alphanumeric"
    assert terms["DUO:0000042"]["type"] == "ontologyTerm"
    assert "pop1" not in str(doc)  # group names are not announced


def test_beacon_filters__a_group_filter_gives_the_v1_group_cells(api: Api,
                                                                 as_user: Client) -> None:
    c = as_user("researcher-a")
    v1 = c.get("/v1/datasets/demo/frequency", params={
        "region": f"20:{START + 1}-{END}", "group_by": "population", "limit": 5000}).json()
    want = [(v["pos"], v["ref"], v["alt"]) for v in v1["variants"]
            if (v["groups"].get("pop1") or {}).get("ac")]
    assert 10 < len(want) < len(v1["variants"])  # the filter keeps some, not all
    r = c.post(B + "/datasets/demo/g_variants", json=_body("count", [_pop("pop1")]))
    assert r.status_code == 200, r.text
    doc = r.json()
    validate(doc, COUNT)
    assert doc["responseSummary"]["numTotalResults"] == len(want)
    assert "warnings" not in doc["info"]
    rec = _audited(api, doc["info"]["queryIds"])[doc["info"]["queryIds"][0]]
    assert rec["decision"]["allowed"]
    got: list = []
    skip = 0
    while True:
        page = c.post(B + "/datasets/demo/g_variants",
                      json=_body("record", [_pop("pop1")], skip=skip, limit=25)).json()
        validate(page, RESULTSETS)
        results = page["response"]["resultSets"][0]["results"] \
            if page["response"]["resultSets"] else []
        for res in results:
            got.append((res["variation"]["location"]["interval"]["start"]["value"] + 1,
                        res["variation"]["referenceBases"], res["variation"]["alternateBases"]))
            pops = {f["population"] for p in res["frequencyInPopulations"]
                    for f in p["frequencies"]}
            assert "population=pop1" in pops
        if len(results) < 25:
            break
        skip += 1
    assert got == want


@pytest.mark.parametrize("user,filters,reason", [
    ("researcher-a", [_pop("pop9")], "filter_not_allowed"),  # not a declared group
    ("researcher-b", [_pop("pop1")], "group_by_not_allowed"),  # registered: no grouping
])
def test_beacon_filters__the_policy_decides_a_group_filter(as_user: Client, user: str,
                                                           filters: list, reason: str) -> None:
    r = as_user(user).post(B + "/datasets/demo/g_variants", json=_body("count", filters))
    assert r.status_code == 403, r.text
    doc = r.json()
    validate(doc, ERROR)
    assert reason in doc["error"]["errorMessage"]


def test_beacon_filters__dataset_consent_terms(as_user: Client) -> None:
    c = as_user("researcher-a")
    plain = c.post(B + "/datasets/demo/g_variants", json=_body("count", [])).json()
    gru = c.post(B + "/datasets/demo/g_variants",
                 json=_body("count", [{"id": "DUO:0000042", "scope": "dataset"}])).json()
    ds = c.post(B + "/datasets/demo/g_variants",
                json=_body("count", [{"id": "DUO:0000007"}])).json()
    for doc in (plain, gru, ds):
        validate(doc, COUNT)
    assert plain["responseSummary"]["numTotalResults"] > 0
    assert gru["responseSummary"] == plain["responseSummary"]  # demo's consent is GRU
    assert ds["responseSummary"] == {"exists": False, "numTotalResults": 0}  # not DS


def test_beacon_filters__unknown_filters_are_a_warning(as_user: Client) -> None:
    c = as_user("researcher-a")
    plain = c.post(B + "/datasets/demo/g_variants", json=_body("count", [])).json()
    odd = [{"id": "EFO:0001212", "scope": "biosamples"}, {"id": "HP:0002664"},
           {"id": "age", "operator": ">=", "value": "P70Y"},
           {"id": "population", "operator": ">", "value": "pop1"}]
    doc = c.post(B + "/datasets/demo/g_variants", json=_body("count", odd)).json()
    validate(doc, COUNT)
    assert doc["responseSummary"] == plain["responseSummary"]
    assert doc["info"]["unappliedFilters"] == ["EFO:0001212", "HP:0002664", "age",
                                               "population"]
    assert len(doc["info"]["warnings"]) == 4
    assert "biosamples" in doc["info"]["warnings"][0]
    r = c.post(B + "/datasets/demo/g_variants", json=_body("count", [_pop("pop1"),
                                                                     _pop("pop2")]))
    assert r.status_code == 400
    validate(r.json(), ERROR)


def test_beacon_vrs__records_as_vrs_alleles_when_asked(as_user: Client) -> None:
    """``meta.requestedSchemas`` with the additionally supported schema: ``variation`` is a
    VRS 1.3 Allele, valid against the Beacon schema and VRS's own Allele definition."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

    from tests.api.test_beacon_schemas import VRS, registry
    from vault.beacon.response import VRS_SCHEMA_ID

    c = as_user("researcher-a")
    body = _body("record", [], limit=5)
    legacy = c.post(B + "/datasets/demo/g_variants", json=body).json()
    body["meta"]["requestedSchemas"] = [{"entityType": "genomicVariation",
                                         "schema": VRS_SCHEMA_ID}]
    doc = c.post(B + "/datasets/demo/g_variants", json=body).json()
    validate(doc, RESULTSETS)
    assert doc["meta"]["returnedSchemas"] == [{"entityType": "genomicVariation",
                                               "schema": VRS_SCHEMA_ID}]
    allele = Draft202012Validator({"$ref": VRS + "#/definitions/Allele"}, registry=registry())
    old = legacy["response"]["resultSets"][0]["results"]
    new = doc["response"]["resultSets"][0]["results"]
    assert len(new) == len(old) == 5
    for a, b in zip(old, new, strict=True):
        allele.validate(b["variation"])
        assert b["variation"]["type"] == "Allele"
        assert b["variation"]["location"] == a["variation"]["location"]
        assert b["variation"]["state"] == {"type": "LiteralSequenceExpression",
                                           "sequence": a["variation"]["alternateBases"]}
        assert b["variantInternalId"] == a["variantInternalId"]
    with pytest.raises(ValidationError):  # the validator really checks
        allele.validate({"type": "Allele", "location": new[0]["variation"]["location"],
                         "state": {}})
    types = as_user(None).get(B + "/entry_types").json()["response"]["entryTypes"]
    assert [s["id"] for s in types["genomicVariation"]["additionallySupportedSchemas"]] == [
        VRS_SCHEMA_ID]


def test_beacon_filters__a_group_filter_over_several_datasets_refuses_only_those_without_it(
        api: Api, as_user: Client) -> None:
    """Without datasetIds a group filter is asked of every visible dataset; one without that
    column (ceu has no population) used to make the whole request a 400. It is now that
    dataset's refusal (info.refusedDatasets, audited); the others answer."""
    c = as_user("researcher-a")
    r = c.post(B + "/g_variants", json=_body("count", [_pop("pop1")]))
    assert r.status_code == 200, r.text
    doc = r.json()
    validate(doc, COUNT)
    refused = {d["id"]: d for d in doc["info"].get("refusedDatasets", [])}
    assert refused["ceu"]["errorCode"] == 400 and refused["ceu"]["queryId"]
    assert "demo" not in refused
    alone = c.post(B + "/datasets/demo/g_variants", json=_body("count", [_pop("pop1")]))
    assert doc["responseSummary"]["numTotalResults"] == \
        alone.json()["responseSummary"]["numTotalResults"] > 0
    records = _audited(api, [refused["ceu"]["queryId"]])
    assert records[refused["ceu"]["queryId"]]["result"]["status"] == 400
    # asked of ceu alone, the error is the answer, as before
    only = c.post(B + "/datasets/ceu/g_variants", json=_body("count", [_pop("pop1")]))
    assert only.status_code == 400
