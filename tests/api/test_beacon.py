"""Beacon v2 through real HTTP (uvicorn, OpenBao, userpass tokens): every response validates
against the Beacon v2 schemas, answers go through the same guard and disclosure control as
/v1, and every answer has its audit record."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import DEMO, Api
from tests.api.test_beacon_schemas import REQUEST_EXAMPLES, RESPONSES
from tests.api.test_beacon_schemas import validate as _validate
from vault.audit.paths import audit_log_path

pytestmark = pytest.mark.integration

Client = Callable[[str | None], httpx.Client]
BOOLEAN = RESPONSES + "beaconBooleanResponse.json"
COUNT = RESPONSES + "beaconCountResponse.json"
RESULTSETS = RESPONSES + "beaconResultsetsResponse.json"
ERROR = RESPONSES + "beaconErrorResponse.json"
GV = "models/json/beacon-v2-default-model/genomicVariations/defaultSchema.json"
B = "/beacon/v2"


def validate(doc: dict, schema: str) -> None:
    """Validate a response; in a result-set response every record too (the result-set
    schema says only 'object' of them)."""
    _validate(doc, schema)
    if schema == RESULTSETS:
        for rs in doc["response"]["resultSets"]:
            for rec in rs["results"]:
                _validate(rec, GV)


def _audited(api: Api, qids: list[str]) -> dict[str, dict]:
    path = audit_log_path(api.services.settings)
    found = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["query_id"] in qids:
            found[rec["query_id"]] = rec
    return found


@cache
def _demo_sites() -> list[tuple[int, str, str, int, int]]:
    """(POS, REF, ALT, AC, AN) of the demo VCF's biallelic records, counted here from the
    file (no vault code): the oracle for what is rare."""
    out = []
    with gzip.open(Path(DEMO) / "demo_cohort.vcf.gz", "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            if "," in f[4]:
                continue
            alleles = [a for gt in f[9:] for a in gt.replace("|", "/").split("/") if a != "."]
            out.append((int(f[1]), f[3], f[4], alleles.count("1"), len(alleles)))
    return out


def _rare() -> tuple[int, str, str]:
    pos, ref, alt, _, _ = next(s for s in _demo_sites() if 1 <= s[3] <= 5 and s[4] - s[3] > 50)
    return pos, ref, alt


def _common(skip: int = 0) -> tuple[int, str, str]:
    common = [s for s in _demo_sites() if 150 <= s[3] <= s[4] - 150]
    pos, ref, alt, _, _ = common[-1 - skip]
    return pos, ref, alt


def _sequence(pos: int, ref: str, alt: str, granularity: str) -> dict:
    return {"meta": {"apiVersion": "v2.0.0"},
            "query": {"requestParameters": {"g_variant": {
                "referenceName": "20", "start": [pos - 1], "referenceBases": ref,
                "alternateBases": alt}}, "requestedGranularity": granularity}}


# -- informational endpoints ---------------------------------------------------------------
@pytest.mark.parametrize("path,schema", [
    ("", "beaconInfoResponse.json"), ("/", "beaconInfoResponse.json"),
    ("/info", "beaconInfoResponse.json"),
    ("/service-info", "ga4gh-service-info-1-0-0-schema.json"),
    ("/configuration", "beaconConfigurationResponse.json"),
    ("/map", "beaconMapResponse.json"), ("/entry_types", "beaconEntryTypesResponse.json"),
    ("/filtering_terms", "beaconFilteringTermsResponse.json"),
])
def test_beacon__framework_documents_validate(as_user: Client, path: str, schema: str) -> None:
    r = as_user(None).get(B + path)
    assert r.status_code == 200, r.text
    validate(r.json(), RESPONSES + schema)
    assert "demo" not in r.text  # they say nothing about the datasets


def test_beacon__configuration_declares_the_security_levels(as_user: Client) -> None:
    conf = as_user(None).get(B + "/configuration").json()["response"]
    assert conf["securityAttributes"]["securityLevels"] == ["REGISTERED", "CONTROLLED"]
    assert set(conf["entryTypes"]) == {"genomicVariation", "dataset"}


# -- authentication, datasets, hidden ------------------------------------------------------
def test_beacon__data_needs_a_token_and_the_refusal_is_audited(api: Api,
                                                              as_user: Client) -> None:
    for method, path in (("GET", "/g_variants"), ("POST", "/g_variants"),
                         ("GET", "/datasets"), ("GET", "/datasets/demo/g_variants")):
        r = as_user(None).request(method, B + path, json={"meta": {"apiVersion": "v2.0"}}
                                  if method == "POST" else None)
        assert r.status_code == 401, (path, r.text)
        body = r.json()
        validate(body, ERROR)
        assert body["error"]["errorCode"] == 401
        (qid,) = body["info"]["queryIds"]
        assert _audited(api, [qid])[qid]["result"]["status"] == 401


def test_beacon__datasets_lists_only_visible_ones(api: Api, as_user: Client) -> None:
    r = as_user("researcher-a").get(B + "/datasets")
    assert r.status_code == 200, r.text
    body = r.json()
    validate(body, RESPONSES + "beaconCollectionsResponse.json")
    ids = [c["id"] for c in body["response"]["collections"]]
    assert ids == ["demo", "ceu"]
    assert "hidden" not in r.text
    assert _audited(api, body["info"]["queryIds"])


def test_beacon__hidden_dataset_answers_like_an_absent_one(api: Api, as_user: Client) -> None:
    c = as_user("researcher-a")
    pos, ref, alt = _common()
    answers = {}
    for name in ("hidden", "nosuch"):
        r = c.post(f"{B}/datasets/{name}/g_variants", json=_sequence(pos, ref, alt, "count"))
        validate(r.json(), ERROR)
        answers[name] = r
    a, b = answers["hidden"], answers["nosuch"]
    assert a.status_code == b.status_code == 404
    strip = [(x.json()["error"]["errorMessage"].replace(name, "X"))
             for x, name in ((a, "hidden"), (b, "nosuch"))]
    assert strip[0] == strip[1]
    assert set(a.json()) == set(b.json())
    # through /g_variants with datasetIds: the same too
    shown = []
    for name in ("hidden", "nosuch"):
        body = c.get(B + "/g_variants", params={
            "datasetIds": name, "referenceName": "20", "start": pos - 1, "referenceBases": ref,
            "alternateBases": alt, "requestedGranularity": "count"}).json()
        validate(body, COUNT)
        assert body["responseSummary"] == {"exists": False, "numTotalResults": 0}
        (refused,) = body["info"]["refusedDatasets"]
        shown.append({k: v for k, v in refused.items() if k not in ("id", "queryId")}
                     | {"errorMessage": refused["errorMessage"].replace(name, "X")})
        assert _audited(api, body["info"]["queryIds"])
    assert shown[0] == shown[1]


# -- granularities (controlled tier) -------------------------------------------------------
def test_beacon__boolean_count_record_for_a_common_variant(api: Api, as_user: Client) -> None:
    c = as_user("researcher-a")
    pos, ref, alt = _common()
    v1 = c.get("/v1/datasets/demo/frequency", params={
        "region": f"20:{pos}-{pos}", "group_by": "population"}).json()["variants"]
    (row,) = [v for v in v1 if (v["ref"], v["alt"]) == (ref, alt)]
    seen = []
    for granularity, schema in (("boolean", BOOLEAN), ("count", COUNT),
                                ("record", RESULTSETS)):
        r = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, alt, granularity))
        assert r.status_code == 200, r.text
        body = r.json()
        validate(body, schema)
        assert body["meta"]["returnedGranularity"] == granularity
        assert body["meta"]["receivedRequestSummary"]["requestedGranularity"] == granularity
        assert body["responseSummary"]["exists"] is True
        seen += body["info"]["queryIds"]
        if granularity == "count":
            assert body["responseSummary"]["numTotalResults"] == 1
            assert body["info"]["datasets"][0]["disclosure"]["tier"] == "controlled"
    (rs,) = body["response"]["resultSets"]
    assert rs["id"] == "demo" and rs["resultsCount"] == 1
    (rec,) = rs["results"]
    validate(rec, GV)
    assert rec["variation"]["location"]["interval"]["start"]["value"] == pos - 1
    assert rec["variation"]["location"]["interval"]["end"]["value"] == pos - 1 + len(ref)
    freqs = {f["population"]: f for p in rec["frequencyInPopulations"] for f in p["frequencies"]}
    assert freqs["all"]["alleleFrequency"] == pytest.approx(row["overall"]["af"])
    assert freqs["all"]["alleleCount"] == row["overall"]["ac"]
    for name, cell in row["groups"].items():
        if cell.get("af") is not None:
            assert freqs[f"population={name}"]["alleleFrequency"] == pytest.approx(cell["af"])
        else:  # a suppressed cell is left out, never shown as 0
            assert f"population={name}" not in freqs
    assert "caseLevelData" not in json.dumps(body)
    # one decision, one record per dataset answer
    records = _audited(api, seen)
    assert set(records) == set(seen) and len(seen) == 3
    assert {r["request"]["action"] for r in records.values()} == {"presence", "frequency"}
    assert all(r["result"]["status"] == 200 for r in records.values())


def test_beacon__range_counts_and_pages_agree_with_v1(as_user: Client) -> None:
    c = as_user("researcher-a")
    start, end = 99_999, 160_000  # Beacon [99999, 160000) = VCF POS 100000..160000
    v1 = c.get("/v1/datasets/demo/frequency", params={"region": f"20:{start + 1}-{end}",
                                                      "limit": 5000}).json()["variants"]
    v1_keys = [(v["pos"], v["ref"], v["alt"]) for v in v1]
    assert len(v1_keys) > 20  # several pages
    params = {"referenceName": "20", "start": start, "end": end}
    count = c.get(B + "/datasets/demo/g_variants",
                  params={**params, "requestedGranularity": "count"}).json()
    validate(count, COUNT)
    assert count["responseSummary"]["numTotalResults"] == len(v1_keys)
    got, skip = [], 0
    while True:
        page = c.get(B + "/datasets/demo/g_variants", params={
            **params, "requestedGranularity": "record", "skip": skip, "limit": 10}).json()
        validate(page, RESULTSETS)
        (rs,) = page["response"]["resultSets"] or [{"results": [], "resultsCount": 0}]
        assert page["responseSummary"]["numTotalResults"] == len(v1_keys)
        got += [(r["variation"]["location"]["interval"]["start"]["value"] + 1,
                 r["variation"]["referenceBases"], r["variation"]["alternateBases"])
                for r in rs["results"]]
        if len(rs["results"]) < 10:
            break
        skip += 1
    assert got == v1_keys
    # the edges: a range ending just before the first variant finds nothing of it
    first = v1_keys[0][0]
    edge = c.get(B + "/datasets/demo/g_variants", params={
        "referenceName": "chr20", "start": first - 2, "end": first - 1,
        "requestedGranularity": "count"}).json()
    assert edge["responseSummary"]["numTotalResults"] == 0
    hit = c.get(B + "/datasets/demo/g_variants", params={
        "referenceName": "chr20", "start": first - 1, "end": first,
        "requestedGranularity": "count"}).json()
    assert hit["responseSummary"]["numTotalResults"] == sum(k[0] == first for k in v1_keys)


def test_beacon__a_rare_variant_is_not_revealed(as_user: Client) -> None:
    c = as_user("researcher-a")
    pos, ref, alt = _rare()
    never = "T" if alt != "T" and ref != "T" else "G"
    for granularity, schema in (("boolean", BOOLEAN), ("count", COUNT),
                                ("record", RESULTSETS)):
        rare = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, alt,
                                                                       granularity)).json()
        absent = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, never,
                                                                         granularity)).json()
        for body in (rare, absent):
            validate(body, schema)
            assert body["responseSummary"]["exists"] is False
        assert rare["responseSummary"] == absent["responseSummary"]
        assert rare["info"].get("datasets") == absent["info"].get("datasets") or all(
            d["disclosure"] == e["disclosure"] for d, e in
            zip(rare["info"]["datasets"], absent["info"]["datasets"], strict=True))
    # nor by a range that holds only it, nor through the disclosure section
    r = c.get(B + "/datasets/demo/g_variants", params={
        "referenceName": "20", "start": pos - 1, "end": pos, "requestedGranularity": "count"})
    body = r.json()
    assert body["responseSummary"]["numTotalResults"] == sum(
        s[0] == pos and 11 <= s[3] <= s[4] - 11 for s in _demo_sites())
    assert "omitted" not in r.text


# -- registered tier: noise and budget -----------------------------------------------------
def test_beacon__registered_answers_are_noised_and_cost_budget(api: Api,
                                                              as_user: Client) -> None:
    c = as_user("researcher-b")
    pos, ref, alt = _common(skip=3)
    before = c.get("/v1/budget").json()["budget"]["epsilon_spent"]
    r = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, alt, "boolean"))
    assert r.status_code == 200, r.text
    body = r.json()
    validate(body, BOOLEAN)
    assert body["responseSummary"]["exists"] is True
    (ds,) = body["info"]["datasets"]
    d = ds["disclosure"]
    assert d["tier"] == "registered" and d["noise"] == "discrete_laplace"
    assert d["epsilon_spent"] == pytest.approx(0.25) and d["presence_threshold"] > 11
    after = c.get("/v1/budget").json()["budget"]["epsilon_spent"]
    assert after == pytest.approx(before + 0.25)
    (rec,) = _audited(api, [ds["queryId"]]).values()
    assert rec["result"]["disclosure"]["epsilon_spent"] == pytest.approx(0.25)
    # the same question again: the same answer, free
    again = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, alt, "boolean"))
    assert again.json()["info"]["datasets"][0]["disclosure"]["epsilon_spent"] == 0.0
    # records carry the noisy frequencies, overall only (the role has no group columns)
    rec_body = c.post(B + "/datasets/demo/g_variants",
                      json=_sequence(pos, ref, alt, "record")).json()
    validate(rec_body, RESULTSETS)
    (rs,) = rec_body["response"]["resultSets"]
    (result,) = rs["results"]
    pops = result["frequencyInPopulations"]
    assert [f["population"] for p in pops for f in p["frequencies"]] == ["all"]
    exact = next(s for s in _demo_sites() if s[:3] == (pos, ref, alt))
    assert pops[0]["frequencies"][0]["alleleFrequency"] == pytest.approx(exact[3] / exact[4],
                                                                         abs=0.1)
    assert rs["info"]["disclosure"]["noise"] == "discrete_laplace"


def test_beacon__registered_rare_variant_is_not_revealed(as_user: Client) -> None:
    c = as_user("researcher-b")
    pos, ref, alt = _rare()
    body = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, alt,
                                                                   "boolean")).json()
    validate(body, BOOLEAN)
    assert body["responseSummary"]["exists"] is False


def _rare_lone_snvs() -> list[tuple[int, str, str]]:
    """Rare SNVs (AC 1..5) alone at their position in the demo VCF."""
    sites = _demo_sites()
    at: dict[int, int] = {}
    for s in sites:
        at[s[0]] = at.get(s[0], 0) + 1
    return [(p, r, a) for p, r, a, ac, _ in sites
            if 1 <= ac <= 5 and len(r) == len(a) == 1 and at[p] == 1]


@pytest.mark.parametrize("granularity,extra,which", [
    ("record", {}, -1), ("count", {"variantType": "SNP"}, -2),
    ("boolean", {"variantType": "SNP"}, -3), ("record", {"referenceBases": None}, -4),
    ("count", {"referenceBases": "N"}, -5), ("count", {"range": True}, -6),
    ("record", {"range": True, "referenceBases": None}, -7)])
def test_beacon__registered_cost_does_not_say_which_allele_is_stored(
        as_user: Client, granularity: str, extra: dict, which: int) -> None:
    """A review asked the registered tier for a rare stored SNV and for an allele the cohort
    does not hold at the same position (record granularity, or with variantType, or without
    REF): the rare one cost ε and the absent one nothing, so epsilon_spent said that a carrier
    of the rare allele is in the cohort. Now a named allele is charged stored or not, and a
    query that does not name both alleles pays for the position's stored variants that an
    answer may list (what a region of one position costs, docs/privacy.md) before the allele
    filter, as does a range with alleles -- never a rare one: the absent allele costs what
    the rare one does."""
    c = as_user("researcher-b")
    pos, ref, alt = _rare_lone_snvs()[which]
    never = next(b for b in "ACGT" if b not in (ref, alt))
    spent = []
    for a in (never, alt):
        body = _sequence(pos, ref, a, granularity)
        g = body["query"]["requestParameters"]["g_variant"]
        g.update({k: v for k, v in extra.items() if v is not None and k != "range"})
        for k in [k for k, v in extra.items() if v is None]:
            del g[k]
        if extra.get("range"):  # a range of the one position, with the alleles
            g["end"] = [pos]
        body["query"]["includeResultsetResponses"] = "ALL"
        r = c.post(B + "/datasets/demo/g_variants", json=body)
        assert r.status_code == 200, r.text
        doc = r.json()
        infos = doc["info"].get("datasets") or [
            rs["info"] for rs in doc["response"]["resultSets"]]
        (info,) = infos
        spent.append(info["disclosure"]["epsilon_spent"])
    if g.get("referenceBases") in (None, "N") or "end" in g:
        # the position's stored variants are charged before the allele filter, but a rare
        # one is never listed, so never charged: both cost what an empty position costs
        assert spent == [0.0, 0.0]
    else:  # a named allele is one requested variant, charged stored or not
        assert spent == [pytest.approx(0.25), pytest.approx(0.25)]


def test_beacon__registered_rare_variants_are_never_listed(as_user: Client) -> None:
    """A review asked the registered tier for 150 rare stored SNVs (AC 1..5) and for an
    allele the cohort does not hold at each position (count granularity with variantType,
    i.e. the frequency listing): 40 rare ones were listed (their noisy AC reached k; a
    quarter of the singletons) and no absent one ever is, so one listing proved that a
    carrier is in the cohort. A variant rare in fact is now never listed, noise or not —
    through Beacon and through /v1 alike."""
    c = as_user("researcher-b")
    rares = _rare_lone_snvs()[100:160]
    for pos, ref, alt in rares:
        body = _sequence(pos, ref, alt, "count")
        body["query"]["requestParameters"]["g_variant"]["variantType"] = "SNP"
        r = c.post(B + "/datasets/demo/g_variants", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["responseSummary"] == {"exists": False, "numTotalResults": 0}, pos
    v1 = c.post("/v1/datasets/demo/frequency", json={"variants": [
        {"chrom": "20", "pos": p, "ref": r, "alt": a} for p, r, a in rares]})
    assert v1.status_code == 200, v1.text
    assert v1.json()["variants"] == []


@pytest.mark.parametrize("params", [{"alternateBases": "ACGTACGTAC"},
                                    {"referenceBases": "A", "alternateBases": "G"},
                                    {"variantType": "INS"}])
def test_beacon__registered_contig_wide_allele_search_is_refused(api: Api, as_user: Client,
                                                                 params: dict) -> None:
    """A contig-wide query with alleles or a type charged every such variant stored on the
    contig: for an allele found once (a long indel, a rare MNP) ε was spent exactly when it
    is stored. The registered tier now needs start with them; nothing is charged."""
    c = as_user("researcher-b")
    before = c.get("/v1/budget").json()["budget"]["epsilon_spent"]
    r = c.get(B + "/datasets/demo/g_variants",
              params={"referenceName": "20", "requestedGranularity": "count", **params})
    assert r.status_code == 400, r.text
    validate(r.json(), ERROR)
    assert "need start" in r.json()["error"]["errorMessage"]
    assert c.get("/v1/budget").json()["budget"]["epsilon_spent"] == pytest.approx(before)
    ok = as_user("researcher-a").get(B + "/datasets/demo/g_variants", params={
        "referenceName": "20", "requestedGranularity": "count", **params})
    assert ok.status_code == 200, ok.text  # the controlled tier is not charged: answered


# -- requests: the schema's examples, GET and POST, errors ----------------------------------
@pytest.mark.parametrize("path", REQUEST_EXAMPLES, ids=lambda p: p.name)
def test_beacon__request_examples_are_accepted(api: Api, as_user: Client, path: Path) -> None:
    doc = json.loads(path.read_text())
    r = as_user("researcher-a").post(B + "/g_variants", json=doc)
    assert r.status_code == 200, r.text
    body = r.json()
    schema = {"boolean": BOOLEAN, "count": COUNT, "record": RESULTSETS}[
        body["meta"]["returnedGranularity"]]
    validate(body, schema)
    assert _audited(api, body["info"]["queryIds"]).keys() == set(body["info"]["queryIds"])


def test_beacon__all_visible_datasets_are_asked_each_with_its_record(api: Api,
                                                                    as_user: Client) -> None:
    pos, ref, alt = _common()
    body = as_user("researcher-a").get(B + "/g_variants", params={
        "referenceName": "20", "start": pos - 1, "referenceBases": ref, "alternateBases": alt,
        "requestedGranularity": "record", "includeResultsetResponses": "ALL"}).json()
    validate(body, RESULTSETS)
    sets = {rs["id"]: rs for rs in body["response"]["resultSets"]}
    assert set(sets) == {"demo", "ceu"}
    assert sets["demo"]["exists"] is True
    # listing + one answer per dataset, each audited
    qids = body["info"]["queryIds"]
    assert len(qids) == 3 and _audited(api, qids).keys() == set(qids)


@pytest.mark.parametrize("params,why", [
    ({"referenceName": "20", "start": "100"}, "alternateBases"),
    ({"referenceName": "20", "start": "100", "end": "50"}, "end must be greater"),
    ({"requestedGranularity": "everything"}, "requestedGranularity"),
    ({"referenceName": "20", "start": "1", "end": "9", "geneId": "BRCA1"}, "not supported"),
])
def test_beacon__bad_requests_are_beacon_errors_and_audited(api: Api, as_user: Client,
                                                            params: dict, why: str) -> None:
    r = as_user("researcher-a").get(B + "/datasets/demo/g_variants", params=params)
    assert r.status_code == 400
    body = r.json()
    validate(body, ERROR)
    assert why in body["error"]["errorMessage"]
    (qid,) = body["info"]["queryIds"]
    assert _audited(api, [qid])[qid]["result"]["status"] == 400


def test_beacon__rate_limit_refusal_is_a_beacon_error(api: Api, as_user: Client) -> None:
    """The role's rate limit (3 per 20 s) applies to Beacon answers like to /v1 ones."""
    c = as_user("limited")
    params = {"referenceName": "20", "start": 99_999, "end": 100_500,
              "requestedGranularity": "count"}
    for _ in range(5):
        r = c.get(B + "/datasets/demo/g_variants", params=params)
        if r.status_code != 200:
            break
        validate(r.json(), COUNT)
    assert r.status_code == 429, r.text
    body = r.json()
    validate(body, ERROR)
    assert int(r.headers["retry-after"]) >= 1
    (qid,) = body["info"]["queryIds"]
    assert _audited(api, [qid])[qid]["result"]["reasons"] == ["rate_limited"]


def test_beacon__post_without_a_body_is_a_request_without_parameters(as_user: Client) -> None:
    r = as_user("researcher-a").post(B + "/datasets/ceu/g_variants")
    assert r.status_code == 200, r.text
    body = r.json()
    validate(body, BOOLEAN)
    assert body["responseSummary"]["exists"] is True
