"""Conformance regressions against GA4GH Passport v1.2 and DUO (duo.csv): visas with
``conditions``, NumericDate times, refusal messages that never echo the token, and the
NPUNCU = NPU + NCU attestation. A local key plays each issuer (no network)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from tests.support.passport import Issuer
from vault.passport import VisaRefused, verify_visa
from vault.passport.credential import (
    CredentialRefused,
    is_jwt,
    passport_principal,
    trusted_issuers,
)
from vault.policy.duo import make_consent, make_use, match_consent
from vault.policy.spec import IssuerSpec, PassportSpec

DAC = "https://dac.example.org"
BROKER = "https://broker.example.org"
GRANT = "https://genovault.example/datasets/cancer"
DAC_ISSUER = Issuer(DAC)
BROKER_ISSUER = Issuer(BROKER)
SPEC = PassportSpec(issuers={
    "dac": IssuerSpec("dac", DAC, DAC_ISSUER.jwks(), None, (DAC + "/jwks",)),
    "broker": IssuerSpec("broker", BROKER, BROKER_ISSUER.jwks(), None, (),
                         ("passports", "visas", "links")),
})
ISSUERS = trusted_issuers(SPEC)


def _grant_claims(**visa_over: Any) -> dict[str, Any]:
    claims = DAC_ISSUER.visa_claims("alice", "ControlledAccessGrants", GRANT)
    claims["ga4gh_visa_v1"].update(visa_over)
    return claims


UNMET = [[{"type": "AffiliationAndRole", "value": "const:faculty@nowhere.example",
           "by": "const:so"}]]


def test_visa_with_conditions_is_refused_alone() -> None:
    # Passport v1.2, "conditions": a clearinghouse that does not check conditions MUST
    # reject (ignore) every visa whose conditions field is non-empty
    with pytest.raises(VisaRefused) as exc:
        verify_visa(DAC_ISSUER.sign(_grant_claims(conditions=UNMET)), ISSUERS)
    assert exc.value.reason == "conditions_unsupported"
    with pytest.raises(CredentialRefused) as cred:
        passport_principal(DAC_ISSUER.sign(_grant_claims(conditions=UNMET)), SPEC)
    assert cred.value.reason == "conditions_unsupported"


def test_visa_with_conditions_is_dropped_from_a_passport() -> None:
    conditioned = DAC_ISSUER.sign(_grant_claims(conditions=UNMET))
    with pytest.raises(CredentialRefused) as exc:
        passport_principal(BROKER_ISSUER.passport("alice", [conditioned]), SPEC)
    assert exc.value.reason == "no_valid_visa"
    assert [v["reason"] for v in exc.value.visas] == ["conditions_unsupported"]
    plain = DAC_ISSUER.visa("alice", "ResearcherStatus", "https://doi.org/10.1038/x", by="so")
    # the broker links its alice to the DAC's alice (a visa's identity is its sub *and* iss)
    link = BROKER_ISSUER.link("alice", ("alice", DAC))
    principal, info = passport_principal(
        BROKER_ISSUER.passport("alice", [conditioned, plain, link]), SPEC)
    assert [v.type for v in principal.visas] == ["ResearcherStatus", "LinkedIdentities"]
    assert [v["reason"] for v in info.refused_visas] == ["conditions_unsupported"]


@pytest.mark.parametrize("conditions", [None, []], ids=["absent", "empty"])
def test_visa_without_conditions_is_accepted(conditions: Any) -> None:
    claims = _grant_claims()
    if conditions is not None:
        claims["ga4gh_visa_v1"]["conditions"] = conditions
    assert verify_visa(DAC_ISSUER.sign(claims), ISSUERS).type == "ControlledAccessGrants"


@pytest.mark.parametrize("claim,value", [
    ("exp", float("inf")), ("exp", "4102444800"), ("iat", True), ("nbf", "0"),
], ids=["exp-infinite", "exp-string", "iat-bool", "nbf-string"])
def test_times_must_be_numeric_dates(claim: str, value: Any) -> None:
    # RFC 7519 section 2/4.1.4: NumericDate is a JSON number; an infinite exp crashed
    # (OverflowError) instead of being refused
    claims = _grant_claims()
    claims[claim] = value
    token = jwt.encode(claims, DAC_ISSUER.key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(VisaRefused) as exc:
        verify_visa(token, ISSUERS)
    assert exc.value.reason == "invalid"


def test_float_times_are_still_accepted() -> None:
    now = time.time()
    claims = _grant_claims()
    claims.update(iat=now - 60.5, exp=now + 600.5)
    assert verify_visa(DAC_ISSUER.sign(claims), ISSUERS).sub == "alice"


MARK = "INJECTED" + "x" * 500


@pytest.mark.parametrize("where", ["iss", "jku", "kid", "alg", "type"])
def test_refusal_message_never_echoes_the_token(where: str) -> None:
    claims = _grant_claims()
    headers: dict[str, Any] = {"kid": "k1"}
    if where == "iss":
        claims["iss"] = "https://" + MARK
    elif where == "jku":
        headers["jku"] = "https://" + MARK
    elif where == "kid":
        headers["kid"] = MARK
    elif where == "type":
        claims["ga4gh_visa_v1"]["type"] = MARK
    token = jwt.encode(claims, DAC_ISSUER.key, algorithm="RS256", headers=headers)
    if where == "alg":  # an unsigned token whose alg is the payload
        head, body, _ = token.split(".")
        head = base64.urlsafe_b64encode(json.dumps({"alg": MARK, "kid": "k1"}).encode()
                                        ).rstrip(b"=").decode()
        token = f"{head}.{body}."
    with pytest.raises(CredentialRefused) as exc:
        passport_principal(token, SPEC)
    assert "INJECTED" not in exc.value.message
    assert "INJECTED" not in exc.value.reason


@pytest.mark.parametrize("modifier,attests,ok", [
    ("NPU", ("NPUNCU",), True),
    ("NCU", ("NPUNCU",), True),
    ("NPU", ("NCU",), False),
    ("NCU", ("NPU",), False),
    ("NPUNCU", ("NPU", "NCU"), True),
    ("NPUNCU", ("NCU",), False),
])
def test_npuncu_attests_npu_and_ncu(modifier: str, attests: tuple[str, ...], ok: bool) -> None:
    # duo.csv: NPUNCU "limited to not-for-profit organizations and not-for-profit use,
    # non-commercial use" = NPU ("not-for-profit organizations") + NCU ("not-for-profit use")
    m = match_consent(make_consent("GRU", modifiers=(modifier,)),
                      make_use("HMB", attests=attests))
    assert m.ok is ok, m


@pytest.mark.parametrize("scope,age,ok", [
    ("openid ga4gh_passport_v1", 7200, False),
    (["openid"], 7200, False),
    ("openid", 600, True),
    ("ga4gh_passport_v1", 7200, True),
    (None, 7200, True),
], ids=["access-token-2h", "access-token-list-2h", "access-token-10min", "no-openid",
        "document-token"])
def test_visa_access_token_older_than_an_hour_is_refused(scope: Any, age: int,
                                                          ok: bool) -> None:
    # AAI 1.2, Claim Clearinghouses 6.2.2: a Visa Access Token more than 1 hour old (iat)
    # is invalid unless Access Token Polling confirms it; GenoVault does not poll
    now = int(time.time())
    claims = DAC_ISSUER.visa_claims("alice", "ControlledAccessGrants", GRANT, now=now,
                                    iat=now - age, exp=now + 86400)
    if scope is not None:
        claims["scope"] = scope
    token = DAC_ISSUER.sign(claims)
    if ok:
        assert verify_visa(token, ISSUERS).type == "ControlledAccessGrants"
    else:
        with pytest.raises(VisaRefused) as exc:
            verify_visa(token, ISSUERS)
        assert exc.value.reason == "visa_access_token_stale"


def test_a_deeply_nested_header_is_not_a_crash() -> None:
    # a 4 kB bearer token whose header is 1500 nested JSON arrays raised RecursionError in
    # is_jwt (a 500 before authentication, with no audit record); it is now not a JWT, so
    # it goes to Vault like any other token that is not one
    deep = b"[" * 1500 + b"]" * 1500
    token = (base64.urlsafe_b64encode(deep).rstrip(b"=").decode() + "."
             + base64.urlsafe_b64encode(b"{}").rstrip(b"=").decode() + ".x")
    assert is_jwt(token) is False
    with pytest.raises(CredentialRefused) as exc:
        passport_principal(token, SPEC)
    assert exc.value.reason == "malformed"
