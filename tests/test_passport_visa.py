"""GA4GH Passport visas: a local key plays the DAC (no network). Each way a visa can be wrong
is refused with its own reason; a good one is accepted."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from vault.passport import TrustedIssuer, VisaRefused, verify_passport, verify_visa

DAC = "https://dac.example.org"
NOW = 1_800_000_000


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = _rsa()
OTHER = _rsa()
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(public: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = RSAAlgorithm if alg == "RS256" else ECAlgorithm
    jwk = json.loads(algo.to_jwk(public))
    return jwk | {"kid": kid, "alg": alg, "use": "sig"}


ISSUER = TrustedIssuer(DAC, {"keys": [_jwk(KEY.public_key(), "k1", "RS256"),
                                      _jwk(EC_KEY.public_key(), "e1", "ES256")]},
                       jku=(DAC + "/jwks",))


def _claims(**over: Any) -> dict[str, Any]:
    visa = {"type": "ControlledAccessGrants", "asserted": NOW - 3600,
            "value": "https://genovault.example/datasets/demo", "source": DAC, "by": "dac"}
    base = {"iss": DAC, "sub": "researcher-a@example.org", "iat": NOW - 60,
            "exp": NOW + 3600, "jti": "v1", "ga4gh_visa_v1": visa}
    for k, v in over.items():
        if k.startswith("visa_"):
            visa[k[5:]] = v
        elif v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def _sign(claims: dict[str, Any], key: Any = KEY, kid: str = "k1", alg: str = "RS256",
          **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg,
                      headers={"kid": kid, "typ": "vnd.ga4gh.visa+jwt", **headers})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_visa__a_good_visa_is_accepted() -> None:
    v = verify_visa(_sign(_claims()), [ISSUER], now=NOW)
    assert (v.type, v.value, v.by, v.sub) == ("ControlledAccessGrants",
                                              "https://genovault.example/datasets/demo", "dac",
                                              "researcher-a@example.org")
    ec_visa = verify_visa(_sign(_claims(visa_type="ResearcherStatus"), EC_KEY, "e1", "ES256"),
                          [ISSUER], now=NOW)
    assert ec_visa.type == "ResearcherStatus"
    aud = verify_visa(_sign(_claims(aud="genovault")), [ISSUER], audience="genovault", now=NOW)
    assert aud.iss == DAC
    # with the real clock too (a visa valid now)
    now = int(time.time())
    assert verify_visa(_sign(_claims(iat=now - 5, exp=now + 600, visa_asserted=now - 10)),
                       [ISSUER]).sub


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{_b64(claims)}."


def _hs256_with_public_key() -> str:
    """The algorithm-confusion attack: HS256 with the issuer's public key as the secret."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    body = _b64(_claims())
    sig = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def _tampered() -> str:
    head, _, sig = _sign(_claims()).split(".")
    return f"{head}.{_b64(_claims(sub='someone-else'))}.{sig}"


@pytest.mark.parametrize("token,reason,kw", [
    (_unsigned(_claims()), "alg_not_allowed", {}),
    (_hs256_with_public_key(), "alg_not_allowed", {}),
    (_sign(_claims(exp=NOW - 120)), "expired", {}),
    (_sign(_claims(iat=NOW + 600)), "not_yet_valid", {}),
    (_sign(_claims(nbf=NOW + 600)), "not_yet_valid", {}),
    (_sign(_claims(), OTHER), "bad_signature", {}),
    (_tampered(), "bad_signature", {}),
    (_sign(_claims(iss="https://rogue.example")), "untrusted_issuer", {}),
    (_sign(_claims(), OTHER, "k9"), "unknown_key", {}),
    (_sign(_claims(), jku="https://rogue.example/jwks"), "jku_not_trusted", {}),
    (_sign(_claims(aud="another-service")), "wrong_audience", {"audience": "genovault"}),
    (_sign(_claims()), "wrong_audience", {"audience": "genovault"}),
    (_sign(_claims(aud="genovault")), "wrong_audience", {}),
    (_sign(_claims(sub=None)), "missing_claim:sub", {}),
    (_sign(_claims(exp=None)), "missing_claim:exp", {}),
    (_sign(_claims(visa_type="Unheard")), "unknown_type", {}),
    (_sign(_claims(visa_asserted="yesterday")), "bad_visa", {}),
    (_sign(_claims(visa_by="friend")), "bad_visa", {}),
    (_sign(_claims(ga4gh_visa_v1="yes")), "bad_visa", {}),
    (_sign(_claims(), EC_KEY, "k1", "ES256"), "alg_not_allowed", {}),
    ("not.a-jwt", "malformed", {}),
    ("abc", "malformed", {}),
])
def test_visa__refusals_have_their_reason(token: str, reason: str, kw: dict) -> None:
    with pytest.raises(VisaRefused) as info:
        verify_visa(token, [ISSUER], now=NOW, **kw)
    assert info.value.reason == reason


def test_visa__a_passport_keeps_good_visas_and_names_the_bad_ones() -> None:
    good = _sign(_claims())
    status = _sign(_claims(visa_type="ResearcherStatus", visa_by="so"))
    expired = _sign(_claims(exp=NOW - 120))
    accepted, refused = verify_passport([good, expired, status], [ISSUER], now=NOW)
    assert [v.type for v in accepted] == ["ControlledAccessGrants", "ResearcherStatus"]
    assert refused == [(1, "expired")]
    other = _sign(_claims(sub="someone-else@example.org"))
    accepted, refused = verify_passport([expired, good, other], [ISSUER], now=NOW)
    assert accepted == []
    assert refused == [(0, "expired"), (1, "subject_mismatch"), (2, "subject_mismatch")]
