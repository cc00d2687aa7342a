"""A GA4GH passport or visa as the bearer credential: the token -> a passport Principal.

``is_jwt`` tells a JWT from a Vault token: Vault tokens carry a type prefix (``hvs.``,
``hvb.``, ``hvr.``, ``s.``, ``b.``, ``r.``) and are looked up in Vault; a JWT is three
base64url parts whose first decodes to a JSON object naming ``alg``. Anything else goes to
Vault (which refuses what it does not know).

``passport_principal(token, spec)`` verifies the credential against the policy's trusted
issuers (``passports:``, docs/policy.md):

* a **passport** (a broker-signed JWT with ``ga4gh_passport_v1``): the passport itself, then
  each visa; visas that fail are dropped and named (index, reason) -- among them every visa
  whose identity (``sub``, ``iss``) is neither the passport's nor linked to it by
  LinkedIdentities visas of issuers trusted to link (``identity_not_linked``) -- and if
  none is left the credential is refused (``no_valid_visa``);
* a single **visa** (``ga4gh_visa_v1``): refused with its reason if it fails.

The Principal carries the verified visas (:class:`vault.policy.model.VisaAssertion`), never
the JWTs; which roles they give is the policy's business (vault.policy.grants).
:class:`CredentialRefused` carries the reason code and what the token *claimed* (issuer,
subject, visa type; unverified, capped in length) for the audit record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jwt

from vault.passport.visa import (
    TrustedIssuer,
    Visa,
    VisaRefused,
    verify_passport,
    verify_passport_token,
    verify_visa,
)
from vault.policy.model import Principal, VisaAssertion
from vault.policy.spec import PassportSpec

VAULT_PREFIXES = ("hvs.", "hvb.", "hvr.", "s.", "b.", "r.")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
#: the longest bearer JWT read (a passport of many visas is a few tens of kB)
MAX_JWT_BYTES = 256 << 10


class CredentialRefused(Exception):
    """A passport or visa that is not accepted: ``reason`` (a code), what it claimed."""

    def __init__(self, reason: str, message: str, claimed: dict[str, Any] | None = None,
                 visas: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.claimed = claimed or {}
        self.visas = visas or []


@dataclass(frozen=True)
class PassportInfo:
    """What the audit record says of an accepted credential (never the JWT)."""

    kind: str  # "passport" or "visa"
    iss: str
    sub: str
    jti: str | None
    refused_visas: tuple[dict[str, Any], ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "iss": self.iss, "sub": self.sub,
                               "jti": self.jti}
        if self.refused_visas:
            out["refused_visas"] = list(self.refused_visas)
        return out


def is_jwt(token: str) -> bool:
    """Is this bearer credential a JWT (rather than a Vault token)?"""
    if token.startswith(VAULT_PREFIXES) or len(token) > MAX_JWT_BYTES:
        return False
    parts = token.split(".")
    if len(parts) != 3 or not _B64URL.fullmatch(parts[0]) or not _B64URL.fullmatch(parts[1]):
        return False
    if parts[2] and not _B64URL.fullmatch(parts[2]):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # deep nesting: a few kB of "["
        return False
    return isinstance(header, dict) and "alg" in header


def _cap(value: Any, n: int = 200) -> str | None:
    return None if value is None else str(value)[:n]


def claimed(token: str) -> dict[str, Any]:
    """What an (unverified) JWT says of itself, for the audit record of a refusal."""
    try:
        body = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    # a header or payload nested thousands deep: RecursionError in PyJWT 2.9
    except (jwt.PyJWTError, RecursionError):
        return {"unreadable": True}
    visa = body.get("ga4gh_visa_v1")
    out: dict[str, Any] = {"iss": _cap(body.get("iss")), "sub": _cap(body.get("sub")),
           "jti": _cap(body.get("jti")), "alg": _cap(header.get("alg"), 20),
           "kid": _cap(header.get("kid"), 100), "verified": False,
           "sha256": hashlib.sha256(token.encode()).hexdigest()[:16]}
    if isinstance(visa, dict):
        out["visa_type"] = _cap(visa.get("type"), 60)
        out["value"] = _cap(visa.get("value"))
    if isinstance(body.get("ga4gh_passport_v1"), list):
        out["visas"] = len(body["ga4gh_passport_v1"])
    return {k: v for k, v in out.items() if v is not None}


def trusted_issuers(spec: PassportSpec) -> list[TrustedIssuer]:
    return [TrustedIssuer(i.iss, i.jwks, i.jku, i.jwks_url, i.signs)
            for i in spec.issuers.values()]


def _assertion(v: Visa) -> VisaAssertion:
    jti = v.claims.get("jti")
    return VisaAssertion(iss=v.iss, sub=v.sub, type=v.type, value=v.value, source=v.source,
                         by=v.by, asserted=v.asserted, exp=v.exp,
                         jti=None if jti is None else str(jti)[:200])


def passport_principal(token: str, spec: PassportSpec, *, now: float | None = None
                       ) -> tuple[Principal, PassportInfo]:
    """The passport Principal of a bearer passport or visa; CredentialRefused otherwise."""
    if not spec.enabled:
        raise CredentialRefused("passports_not_accepted", "this service trusts no passport "
                                "or visa issuer; use a Vault token", claimed(token))
    issuers = trusted_issuers(spec)
    try:
        body = jwt.decode(token, options={"verify_signature": False})
    # a header or payload nested thousands deep: RecursionError in PyJWT 2.9
    except (jwt.PyJWTError, RecursionError):
        raise CredentialRefused("malformed", "not a readable JWT", {"unreadable": True}) \
            from None
    refused: list[dict[str, Any]] = []
    try:
        if "ga4gh_passport_v1" in body:
            claims, tokens = verify_passport_token(token, issuers, audience=spec.audience,
                                                   now=now)
            # the passport's identity is who the visas must be about (or be linked to)
            accepted, bad = verify_passport(tokens, issuers,
                                            holder=(str(claims["sub"]), str(claims["iss"])),
                                            audience=spec.audience, now=now,
                                            aud_required=False)
            refused = [{"index": i, "reason": reason, **_brief(claimed(tokens[i]))}
                       for i, reason in bad]
            if not accepted:
                raise CredentialRefused(
                    "no_valid_visa", "the passport holds no valid visa ("
                    + (", ".join(sorted({r["reason"] for r in refused})) or "none given")
                    + ")", claimed(token), refused)
            info = PassportInfo("passport", str(claims["iss"]), str(claims["sub"]),
                                _cap(claims.get("jti")), tuple(refused))
        elif "ga4gh_visa_v1" in body:
            accepted = [verify_visa(token, issuers, audience=spec.audience, now=now)]
            info = PassportInfo("visa", accepted[0].iss, accepted[0].sub,
                                _cap(accepted[0].claims.get("jti")))
        else:
            raise CredentialRefused("not_a_passport", "the JWT is neither a GA4GH passport "
                                    "(ga4gh_passport_v1) nor a visa (ga4gh_visa_v1)",
                                    claimed(token))
    except VisaRefused as exc:
        raise CredentialRefused(exc.reason, str(exc).split(": ", 1)[-1], claimed(token)) \
            from None
    visas = tuple(_assertion(v) for v in accepted)
    # whose budget and rate limit: the identity (iss, sub) of the visas that assert
    # something (not the LinkedIdentities visas that join identities), the least when
    # several -- never the broker that wrapped them, else one visa (with aud) sent bare
    # and inside a passport, or inside the passports of two brokers, would be several
    # principals with a budget each
    asserting = [v for v in visas if v.type != "LinkedIdentities"] or list(visas)
    owner, sub = min((v.iss, v.sub) for v in asserting)
    principal = Principal(entity_id=f"ga4gh:{owner}#{sub}"[:500], display_name=sub[:200],
                          vault_policies=(), auth="passport", visas=visas)
    return principal, info


def _brief(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c[k] for k in ("iss", "sub", "visa_type", "jti") if k in c}
