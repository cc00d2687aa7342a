"""A local GA4GH visa issuer for tests: a key made per test session plays the DAC (or the
passport broker); its public JWKS is written where a policy file can name it. No network."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

VISA_TYP = "vnd.ga4gh.visa+jwt"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class Issuer:
    """An issuer ``iss`` with its own RSA key (``kid``)."""

    iss: str
    kid: str = "k1"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def visa_claims(self, sub: str, vtype: str, value: str, *, by: str | None = "dac",
                    source: str | None = None, now: int | None = None,
                    **over: Any) -> dict[str, Any]:
        t = int(time.time()) if now is None else now
        visa: dict[str, Any] = {"type": vtype, "asserted": t - 3600, "value": value,
                                "source": source or self.iss}
        if by is not None:
            visa["by"] = by
        claims: dict[str, Any] = {"iss": self.iss, "sub": sub, "iat": t - 60, "exp": t + 3600,
                                  "jti": f"visa-{vtype}-{t}", "ga4gh_visa_v1": visa}
        for k, v in over.items():
            if v is None:
                claims.pop(k, None)
            else:
                claims[k] = v
        return claims

    def sign(self, claims: dict[str, Any], *, key: Any = None, kid: str | None = None,
             typ: str = VISA_TYP) -> str:
        return jwt.encode(claims, key or self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid, "typ": typ})

    def visa(self, sub: str, vtype: str, value: str, **kw: Any) -> str:
        return self.sign(self.visa_claims(sub, vtype, value, **kw))

    def link(self, sub: str, *identities: tuple[str, str], **kw: Any) -> str:
        """A LinkedIdentities visa: ``(sub, self.iss)`` is the same person as each
        ``(sub, iss)`` of ``identities``."""
        return self.visa(sub, "LinkedIdentities", linked_value(*identities), by="system",
                         **kw)

    def passport(self, sub: str, visas: list[str], **over: Any) -> str:
        t = int(time.time())
        claims: dict[str, Any] = {"iss": self.iss, "sub": sub, "iat": t - 60, "exp": t + 3600,
                                  "jti": f"passport-{t}", "ga4gh_passport_v1": visas}
        claims.update(over)
        return self.sign(claims, typ="vnd.ga4gh.passport+jwt")


def linked_value(*identities: tuple[str, str]) -> str:
    """A LinkedIdentities ``value``: ``<sub>,<iss>`` entries, each part URI-encoded, joined
    by ``;`` (Passport v1.2, LinkedIdentities)."""
    return ";".join(f"{urllib.parse.quote(sub, safe='')},{urllib.parse.quote(iss, safe='')}"
                    for sub, iss in identities)


def unsigned(claims: dict[str, Any], kid: str = "k1") -> str:
    """``alg: none``: a JWT with no signature at all."""
    return f"{_b64({'alg': 'none', 'typ': VISA_TYP, 'kid': kid})}.{_b64(claims)}."
