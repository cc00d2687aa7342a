"""Header and claim checks of visas and passports beyond the signature (a review against
GA4GH Passport v1.2, AAI 1.2 and the JWT RFCs): explicit typing, critical header
extensions, the subject's type, and keys published for encryption. A local key plays each
issuer (no network)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from tests.support.passport import Issuer
from vault.passport import TrustedIssuer, VisaRefused, verify_passport_token, verify_visa

DAC = Issuer("https://dac.example.org")
BROKER = Issuer("https://broker.example.org", kid="b1")
GRANT = "https://genovault.example/datasets/cancer"
ISSUERS = [TrustedIssuer(DAC.iss, DAC.jwks()),
           TrustedIssuer(BROKER.iss, BROKER.jwks(), signs=("passports", "visas"))]


def _visa(typ: str | None = "vnd.ga4gh.visa+jwt", **headers: Any) -> str:
    claims = DAC.visa_claims("alice", "ControlledAccessGrants", GRANT)
    # typ None: no typ at all (PyJWT drops a typ given as None)
    return jwt.encode(claims, DAC.key, algorithm="RS256",
                      headers={"kid": DAC.kid, "typ": typ, **headers})


@pytest.mark.parametrize("typ", ["vnd.ga4gh.visa+jwt", "application/vnd.ga4gh.visa+jwt",
                                 "JWT", "jwt", "at+jwt", None])
def test_headers__a_visa_typ_is_accepted(typ: str | None) -> None:
    token = _visa(typ)
    assert jwt.get_unverified_header(token).get("typ") == typ
    assert verify_visa(token, ISSUERS).sub == "alice"


@pytest.mark.parametrize("typ", ["vnd.ga4gh.passport+jwt", "logout+jwt", "secevent+jwt",
                                 "dpop+jwt", "vnd.ga4gh.visa+json"])
def test_headers__a_token_typed_as_another_kind_is_not_a_visa(typ: str) -> None:
    with pytest.raises(VisaRefused) as exc:
        verify_visa(_visa(typ), ISSUERS)
    assert exc.value.reason == "wrong_typ"


def test_headers__a_visa_typed_token_is_not_a_passport() -> None:
    claims = {"iss": BROKER.iss, "sub": "alice", "iat": DAC.visa_claims("a", "x", "y")["iat"],
              "exp": DAC.visa_claims("a", "x", "y")["exp"], "ga4gh_passport_v1": []}
    as_visa = BROKER.sign(claims, typ="vnd.ga4gh.visa+jwt")
    with pytest.raises(VisaRefused) as exc:
        verify_passport_token(as_visa, ISSUERS)
    assert exc.value.reason == "wrong_typ"
    assert verify_passport_token(BROKER.sign(claims, typ="vnd.ga4gh.passport+jwt"),
                                 ISSUERS)[0]["sub"] == "alice"


@pytest.mark.parametrize("headers", [{"crit": ["urn:example:must-understand"],
                                      "urn:example:must-understand": True},
                                     {"crit": ["b64"], "b64": True}],
                         ids=["unknown-extension", "b64"])
def test_headers__critical_extensions_are_refused(headers: dict[str, Any]) -> None:
    # RFC 7515 4.1.11: extensions in crit that the recipient does not understand MUST make
    # it reject the JWS (PyJWT 2.15 refuses unknown ones itself, 2.9 ignores crit)
    with pytest.raises(VisaRefused) as exc:
        verify_visa(_visa(**headers), ISSUERS)
    assert exc.value.reason in ("unsupported_header", "malformed")


@pytest.mark.parametrize("sub", [123, "", ["alice"]], ids=["number", "empty", "list"])
def test_headers__sub_must_be_a_non_empty_string(sub: Any) -> None:
    claims = DAC.visa_claims("alice", "ControlledAccessGrants", GRANT)
    claims["sub"] = sub
    with pytest.raises(VisaRefused) as exc:
        verify_visa(DAC.sign(claims), ISSUERS)
    assert exc.value.reason == "invalid"


def test_headers__a_key_published_for_encryption_verifies_nothing() -> None:
    enc = {"keys": [DAC.jwks()["keys"][0] | {"use": "enc"}]}
    with pytest.raises(VisaRefused) as exc:
        verify_visa(_visa(), [TrustedIssuer(DAC.iss, enc)])
    assert exc.value.reason == "unknown_key"
    no_use = {"keys": [{k: v for k, v in DAC.jwks()["keys"][0].items() if k != "use"}]}
    assert verify_visa(_visa(), [TrustedIssuer(DAC.iss, no_use)]).sub == "alice"
