"""GA4GH passports and visas as credentials, and the PUBLIC level, through real HTTP on the
session API (uvicorn, OpenBao). The API's policy is, for this module, the test policy plus
a ``passports:`` section trusting a local issuer whose key is made here (it plays the DAC),
and a public role. Every response validates against the Beacon v2 schemas; every refusal
has its audit record, which names the visa's issuer and subject and never holds the JWT."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import POLICIES, Api
from tests.api.test_beacon import BOOLEAN, COUNT, ERROR, _audited, _common, _sequence, validate
from tests.support.passport import Issuer, unsigned
from vault.api.ratelimit import RateLimiter
from vault.policy import PolicyStore

pytestmark = pytest.mark.integration

B = "/beacon/v2"
DAC = Issuer("https://dac.genovault.test")
ROGUE = Issuer("https://rogue.example.org")
GRANT = "https://genovault.test/datasets/demo"
BONA_FIDE = "https://doi.org/10.1038/s41431-018-0219-y"
AUD = "https://genovault.test"
SUB = "researcher-v@example.org"
PUBLIC_LIMIT = 4

PASSPORTS = f"""
version: 1
roles:
  public-beacon:
    description: callers without a credential (Beacon PUBLIC), presence only
    tier: controlled
    datasets: [demo]
    statistics: [presence]
    actions: [list_datasets, describe_dataset]
    use: GRU
    k: 11
    rate_limit: {{requests: {PUBLIC_LIMIT}, per_seconds: 600}}
principals:
  - match: {{anonymous: true}}
    role: public-beacon
passports:
  audience: {AUD}
  issuers:
    test-dac: {{iss: "{DAC.iss}", jwks: dac.jwks.json}}
  visas:
    - require: [{{type: ControlledAccessGrants, issuer: test-dac, value: "{GRANT}"}}]
      role: grouped-researcher
      datasets: [demo]
    - require: [{{type: ResearcherStatus, issuer: test-dac, value: "{BONA_FIDE}",
                 by: [so, system]}}]
      role: overall-researcher
"""


@pytest.fixture(scope="module")
def papi(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The session API under the passport policy (and a fresh rate limiter) for this
    module; the test policy and limiter are back afterwards."""
    d = tmp_path_factory.mktemp("passport-policy")
    shutil.copy(POLICIES, d / "genovault.yaml")
    (d / "passports.yaml").write_text(PASSPORTS)
    DAC.write_jwks(d / "dac.jwks.json")
    guard = api.services.guard
    saved = guard.policies, guard.limiter
    guard.policies, guard.limiter = PolicyStore(d), RateLimiter()
    try:
        yield api
    finally:
        guard.policies, guard.limiter = saved


def _visa(vtype: str = "ControlledAccessGrants", value: str = GRANT, **kw: object) -> str:
    return DAC.sign(DAC.visa_claims(SUB, vtype, value, aud=AUD, **kw))  # type: ignore[arg-type]


def _client(api: Api, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api.url, headers=headers, timeout=30)


def _record(api: Api, qid: str) -> dict:
    return _audited(api, [qid])[qid]


def _raw_line(api: Api, qid: str) -> str:
    from vault.audit.paths import audit_log_path

    return next(line for line in audit_log_path(api.services.settings).read_text()
                .splitlines() if qid in line)


# -- accepted ------------------------------------------------------------------------------
def test_passport__a_dac_grant_gives_the_controlled_tier_on_v1_and_beacon(papi: Api) -> None:
    token = _visa()
    pos, ref, alt = _common()
    with _client(papi, token) as c:
        r = c.get("/v1/datasets/demo/frequency", params={"region": f"20:{pos}-{pos}",
                                                         "group_by": "population"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["policy"]["role"] == "grouped-researcher"
        assert body["disclosure"]["tier"] == "controlled"
        rec = _record(papi, body["query_id"])
        assert rec["principal"]["auth"] == "passport"
        assert rec["principal"]["visas"][0]["iss"] == DAC.iss
        assert rec["principal"]["visas"][0]["sub"] == SUB
        assert rec["credential"]["kind"] == "visa"
        assert token not in _raw_line(papi, body["query_id"])
        assert token.split(".")[2] not in _raw_line(papi, body["query_id"])
        # the grant is for demo: the role's other dataset stays hidden (404, as absent)
        r = c.get("/v1/datasets/ceu/frequency", params={"region": "1:1-100000"})
        assert r.status_code == 404, r.text
        for granularity, schema in (("boolean", BOOLEAN), ("count", COUNT)):
            r = c.post(B + "/g_variants", json=_sequence(pos, ref, alt, granularity))
            assert r.status_code == 200, r.text
            doc = r.json()
            validate(doc, schema)
            assert doc["responseSummary"]["exists"] is True
            assert [d["id"] for d in doc["info"]["datasets"]] == ["demo"]
            for qid in doc["info"]["queryIds"]:
                assert _record(papi, qid)["principal"]["visas"][0]["sub"] == SUB


def test_passport__researcher_status_gives_registered_access(papi: Api) -> None:
    token = _visa("ResearcherStatus", BONA_FIDE, by="so")
    with _client(papi, token) as c:
        r = c.get("/v1/datasets/demo/frequency", params={"region": "20:1-2000",
                                                         "group_by": "population"})
        assert r.status_code == 403, r.text  # registered: no grouping
        r = c.get("/v1/datasets/demo/frequency", params={"region": "20:1-2000", "limit": 2})
        assert r.status_code == 200, r.text
        assert r.json()["disclosure"]["tier"] == "registered"
        assert r.json()["disclosure"]["noise"]
        r = c.post(B + "/datasets/demo/g_variants",
                   json=_sequence(*_common(), "count"))
        assert r.status_code == 200, r.text
        validate(r.json(), COUNT)
        assert r.json()["info"]["datasets"][0]["disclosure"]["tier"] == "registered"


def test_passport__a_valid_visa_the_policy_does_not_map_is_403(papi: Api) -> None:
    token = _visa("AffiliationAndRole", "faculty@example.org", by="so")
    with _client(papi, token) as c:
        r = c.get("/v1/datasets/demo/frequency", params={"region": "20:1-2000"})
        assert r.status_code == 403, r.text
        assert "no_role" in r.json()["detail"]
        r = c.get(B + "/datasets/demo/g_variants", params={
            "referenceName": "20", "start": 0, "end": 2000})
        assert r.status_code == 403, r.text
        validate(r.json(), ERROR)


# -- refused -------------------------------------------------------------------------------
def _defects() -> list:
    claims = DAC.visa_claims(SUB, "ControlledAccessGrants", GRANT, aud=AUD)
    return [
        pytest.param(unsigned(claims), "alg_not_allowed", id="unsigned-alg-none"),
        pytest.param(DAC.sign({**claims, "exp": claims["iat"] - 7200}), "expired",
                     id="expired"),
        pytest.param(DAC.sign({**claims, "nbf": claims["iat"] + 86400}), "not_yet_valid",
                     id="not-yet-valid"),
        pytest.param(DAC.sign(claims, key=ROGUE.key), "bad_signature", id="wrongly-signed"),
        pytest.param(ROGUE.sign({**claims, "iss": ROGUE.iss}), "untrusted_issuer",
                     id="untrusted-issuer"),
        pytest.param(DAC.sign({**claims, "aud": "https://another.example"}), "wrong_audience",
                     id="wrong-audience"),
        pytest.param(DAC.sign({k: v for k, v in claims.items() if k != "aud"}),
                     "wrong_audience", id="no-audience"),
    ]


@pytest.mark.parametrize("token,reason", _defects())
@pytest.mark.parametrize("route", ["v1", "beacon"])
def test_passport__defective_visas_are_401_with_their_reason_and_audited(
        papi: Api, token: str, reason: str, route: str) -> None:
    with _client(papi, token) as c:
        if route == "v1":
            r = c.get("/v1/datasets/demo/frequency", params={"region": "20:1-2000"})
            qid = r.json()["query_id"]
            assert f"({reason})" in r.json()["detail"]
        else:
            r = c.post(B + "/g_variants", json=_sequence(*_common(), "boolean"))
            doc = r.json()
            validate(doc, ERROR)
            assert doc["error"]["errorCode"] == 401
            assert f"({reason})" in doc["error"]["errorMessage"]
            (qid,) = doc["info"]["queryIds"]
    assert r.status_code == 401, r.text
    assert f'error_description="{reason}"' in r.headers["www-authenticate"]
    rec = _record(papi, qid)
    assert rec["result"] == {"status": 401, "reasons": [reason]}
    assert rec["principal"] is None
    claimed = rec["credential"]["claimed"]
    assert claimed["sub"] == SUB and claimed["verified"] is False
    assert claimed["iss"] in (DAC.iss, ROGUE.iss)
    line = _raw_line(papi, qid)
    assert token not in line and token.split(".")[1] not in line


def test_passport__a_vault_token_still_works_beside_passports(papi: Api) -> None:
    with _client(papi, papi.tokens["researcher-a"]) as c:
        r = c.get("/v1/datasets/ceu/frequency", params={"region": "1:1-100000", "limit": 1})
        assert r.status_code == 200, r.text
        rec = _record(papi, r.json()["query_id"])
        assert "auth" not in rec["principal"] and "credential" not in rec


# -- PUBLIC ----------------------------------------------------------------------------------
def test_public__anonymous_boolean_with_the_presence_control_and_rate_limit(papi: Api) -> None:
    conf = httpx.get(papi.url + B + "/configuration").json()["response"]
    assert conf["securityAttributes"]["securityLevels"] == ["PUBLIC", "REGISTERED",
                                                            "CONTROLLED"]
    pos, ref, alt = _common()
    with _client(papi, None) as c:
        # a count is asked, a boolean is answered
        r = c.post(B + "/datasets/demo/g_variants", json=_sequence(pos, ref, alt, "count"))
        assert r.status_code == 200, r.text
        doc = r.json()
        validate(doc, BOOLEAN)
        assert doc["meta"]["returnedGranularity"] == "boolean"
        # receivedRequestSummary echoes the request (the count asked), not the answer
        assert doc["meta"]["receivedRequestSummary"]["requestedGranularity"] == "count"
        assert "numTotalResults" not in doc["responseSummary"]
        assert doc["responseSummary"]["exists"] is True
        rec = _record(papi, doc["info"]["queryIds"][0])
        assert rec["principal"]["auth"] == "anonymous"
        assert rec["decision"]["allowed"] and rec["request"]["action"] == "presence"
        # the public role has presence only: a range question is refused (403)
        r = c.get(B + "/datasets/demo/g_variants", params={
            "referenceName": "20", "start": 0, "end": 2000})
        assert r.status_code == 403, r.text
        validate(r.json(), ERROR)
        # /v1 never answers without a credential
        r = c.get("/v1/datasets/demo/presence", params={"chrom": "20", "pos": pos,
                                                        "ref": ref, "alt": alt})
        assert r.status_code == 401, r.text
        # the rate limit of the public role: of the requests above only the answered one
        # counted (a refusal is decided before the limit)
        codes = [c.post(B + "/datasets/demo/g_variants",
                        json=_sequence(pos, ref, alt, "boolean")).status_code
                 for _ in range(PUBLIC_LIMIT)]
    assert codes == [200] * (PUBLIC_LIMIT - 1) + [429]


def test_passport__without_the_policy_sections_no_passport_and_no_public(papi: Api) -> None:
    """The session policy (no passports section, no anonymous rule): the same good visa is
    refused, and no answer is given without a credential."""
    guard = papi.services.guard
    with_passports = guard.policies
    guard.policies = PolicyStore(POLICIES)
    try:
        with _client(papi, _visa()) as c:
            r = c.get("/v1/datasets/demo/frequency", params={"region": "20:1-2000"})
        assert r.status_code == 401
        assert "(passports_not_accepted)" in r.json()["detail"]
        conf = httpx.get(papi.url + B + "/configuration").json()["response"]
        assert "PUBLIC" not in conf["securityAttributes"]["securityLevels"]
        r = httpx.post(papi.url + B + "/datasets/demo/g_variants",
                       json=_sequence(*_common(), "boolean"))
        assert r.status_code == 401
        validate(r.json(), ERROR)
    finally:
        guard.policies = with_passports
