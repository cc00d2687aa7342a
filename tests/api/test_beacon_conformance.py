"""Beacon v2 GET requests written the way Beacon's own OpenAPI (genomicVariations
endpoints.json) describes them: array parameters (``start``, ``end``, ``filters``) in
OpenAPI's default form style, i.e. repeated (``start=1&start=2``), and the GET names
``geneid`` and ``allele`` of ``geneId`` and ``genomicAlleleShortForm``. Every response
validates against the Beacon v2 schemas."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from tests.api.test_beacon import COUNT, ERROR, Client, validate
from vault.api.app import MAX_BODY_BYTES
from vault.beacon.request import BeaconError, parse_query

pytestmark = pytest.mark.integration

B = "/beacon/v2"
DEMO = B + "/datasets/demo/g_variants"


def test_conformance__repeated_array_parameters_are_all_read() -> None:
    q = parse_query(QueryParams("referenceName=20&start=98&start=100&end=100&end=102"
                                "&filters=DUO:0000007&filters=DUO:0000042,DUO:0000006"
                                "&datasetIds=demo&datasetIds=ceu"))
    assert (q.variant.start, q.variant.end) == ((98, 100), (100, 102))
    assert [f["id"] for f in q.filters] == ["DUO:0000007", "DUO:0000042", "DUO:0000006"]
    assert q.dataset_ids == ("demo", "ceu")
    # the comma form is unchanged
    q = parse_query(QueryParams("referenceName=20&start=98,100&end=100,102"))
    assert (q.variant.start, q.variant.end) == ((98, 100), (100, 102))


@pytest.mark.parametrize("name,canonical", [("geneid", "geneId"),
                                            ("allele", "genomicAlleleShortForm")])
def test_conformance__get_names_of_unsupported_parameters_are_refused(name: str,
                                                                     canonical: str) -> None:
    with pytest.raises(BeaconError, match=canonical) as info:
        parse_query(QueryParams({name: "BRCA1"}))
    assert info.value.status == 400


def test_conformance__a_repeated_bracket_is_a_bracket(as_user: Client) -> None:
    c = as_user("researcher-a")
    base = {"referenceName": "20", "requestedGranularity": "count"}
    comma = c.get(DEMO, params={**base, "start": "99999,150000", "end": "100000,200000"})
    repeated = c.get(DEMO, params=[*base.items(), ("start", "99999"), ("start", "150000"),
                                   ("end", "100000"), ("end", "200000")])
    for r in (comma, repeated):
        assert r.status_code == 200, r.text
        validate(r.json(), COUNT)
    got = repeated.json()
    assert got["meta"]["receivedRequestSummary"]["requestParameters"]["g_variant"] == {
        "referenceName": "20", "start": [99999, 150000], "end": [100000, 200000]}
    assert got["responseSummary"] == comma.json()["responseSummary"]


def test_conformance__repeated_filters_are_all_applied(as_user: Client) -> None:
    """demo's consent is not DS (DUO:0000007): with that filter, repeated or not, demo
    answers as no match."""
    c = as_user("researcher-a")
    one = c.get(DEMO, params={"filters": "DUO:0000007", "requestedGranularity": "count"})
    repeated = c.get(DEMO, params=[("filters", "DUO:0000007"), ("filters", "DUO:0000042"),
                                   ("requestedGranularity", "count")])
    for r in (one, repeated):
        assert r.status_code == 200, r.text
        validate(r.json(), COUNT)
        assert r.json()["responseSummary"] == {"exists": False, "numTotalResults": 0}
    assert repeated.json()["meta"]["receivedRequestSummary"]["filters"] == [
        "DUO:0000007", "DUO:0000042"]


@pytest.mark.parametrize("name", ["geneid", "allele"])
def test_conformance__get_geneid_and_allele_are_refused_not_ignored(as_user: Client,
                                                                   name: str) -> None:
    r = as_user("researcher-a").get(DEMO, params={name: "BRCA1",
                                                  "requestedGranularity": "count"})
    assert r.status_code == 400, r.text
    body = r.json()
    validate(body, ERROR)
    assert "not supported" in body["error"]["errorMessage"]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("GET", B + "/individuals", {}, 404),                      # no such endpoint
    ("PUT", B + "/info", {}, 405),                             # no such method
    ("POST", B + "/service-info", {"json": {}}, 405),
    ("POST", DEMO, {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
     422),                                                     # a body that is not JSON
    ("GET", B + "/datasets/NOPE!/g_variants", {}, 422),        # a path parameter out of pattern
    ("POST", DEMO, {"content": b" " * (MAX_BODY_BYTES + 1),    # a body over the limit
                    "headers": {"Content-Type": "application/json"}}, 413),
])
def test_conformance__framework_errors_under_the_prefix_are_beacon_errors(
        as_user: Client, method: str, path: str, kwargs: dict, status: int) -> None:
    """Errors raised before a Beacon route runs are beaconErrorResponse documents too (a
    Beacon client reads every error under /beacon/v2 the same way); /v1 keeps its own."""
    r = as_user("researcher-a").request(method, path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    validate(body, ERROR)
    assert body["error"]["errorCode"] == status and body["error"]["errorMessage"]
    assert "Traceback" not in r.text
    v1 = as_user("researcher-a").get("/v1/no-such-route")
    assert v1.status_code == 404 and v1.json()["error"] == "not_found"
