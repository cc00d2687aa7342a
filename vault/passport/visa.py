"""Verify GA4GH Passport visas (ga4gh_passport_v1 / ga4gh_visa_v1) with PyJWT — no
hand-written crypto, no network.

A visa is accepted only when all of these hold, else :class:`VisaRefused` says which failed
(``reason`` is a stable code):

* it is a compact JWS whose header ``alg`` is RS256 or ES256 (``alg_not_allowed``: ``none``,
  HS256 and every other algorithm are refused before any key is looked at) and that names a
  ``kid`` (``no_kid``);
* its ``iss`` is a configured :class:`TrustedIssuer` (``untrusted_issuer``), a ``jku`` in the
  header is one that issuer allows (``jku_not_trusted``; it is never fetched), and the issuer's
  JWKS has the ``kid`` (``unknown_key``);
* the signature verifies with that key (``bad_signature``); ``exp`` is in the future
  (``expired``), ``nbf``/``iat`` are not (``not_yet_valid``), ``iss``, ``sub``, ``iat``, ``exp``
  are present (``missing_claim:<name>``); with an expected audience, ``aud`` holds it
  (``wrong_audience``); a visa carrying ``aud`` is refused when no audience is expected;
* ``ga4gh_visa_v1`` is an object with ``type`` one of :data:`VISA_TYPES` (``unknown_type``),
  an integer ``asserted`` not in the future, string ``value`` and ``source`` (``bad_visa``);
  ``by``, when present, is one of self, peer, system, so, dac; a non-empty ``conditions``
  is refused (``conditions_unsupported``: conditions are not evaluated, and Passport v1.2
  says a clearinghouse that does not check them MUST reject such visas).

A Visa Access Token (``scope`` holds ``openid``) older than an hour by ``iat`` is refused
(``visa_access_token_stale``): AAI 1.2 makes it invalid unless access token polling confirms
it, and there is no polling here.

Refusal messages never repeat what the token says (its iss, kid, jku, alg or type).

Times are compared with a small leeway (``LEEWAY_S``) for clock skew.

A *passport* (:func:`verify_passport_token`) is a JWT signed by a trusted broker (an issuer
that ``signs`` passports) with the same header, issuer, signature, time and audience checks,
whose ``ga4gh_passport_v1`` claim lists visa JWTs (each then verified by
:func:`verify_passport`; a visa inside a passport may carry no ``aud``, and if it carries
one it must name the expected audience).

An issuer's keys come from a JWKS given out of band (a dict) or from an https URL, read with
PyJWT's ``PyJWKClient`` (one cached client per URL, a short timeout); a key that cannot be
read is ``issuer_keys_unavailable``.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWKClient, PyJWKSet

ALGORITHMS = ("RS256", "ES256")
VISA_TYPES = ("AffiliationAndRole", "AcceptedTermsAndPolicies", "ResearcherStatus",
              "ControlledAccessGrants", "LinkedIdentities")
BY = ("self", "peer", "system", "so", "dac")
#: the most visas one passport may carry
MAX_VISAS = 100
LEEWAY_S = 30
#: the oldest (by iat) a Visa Access Token may be without polling its issuer (AAI)
VISA_ACCESS_TOKEN_MAX_AGE_S = 3600
#: JWKS read from a URL: how long it is cached, how long a fetch may take
JWKS_LIFESPAN_S = 300
JWKS_TIMEOUT_S = 5
_CLIENTS: dict[str, PyJWKClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(url: str) -> PyJWKClient:
    with _CLIENTS_LOCK:
        c = _CLIENTS.get(url)
        if c is None:
            c = _CLIENTS[url] = PyJWKClient(url, cache_jwk_set=True, lifespan=JWKS_LIFESPAN_S,
                                            timeout=JWKS_TIMEOUT_S)
        return c


class VisaRefused(Exception):
    """A visa that is not accepted; ``reason`` is a code, the message says more."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer (broker or DAC) whose visas are accepted, with its keys (a JWKS, given out
    of band) and the ``jku`` URLs its visas may name."""

    iss: str
    jwks: Mapping[str, Any] | None
    jku: tuple[str, ...] = ()
    jwks_url: str | None = None
    signs: tuple[str, ...] = ("visas",)

    def key(self, kid: str) -> Any:
        if self.jwks is None:
            if self.jwks_url is None:
                raise VisaRefused("issuer_keys_unavailable", f"issuer {self.iss!r} has no keys")
            try:
                keys = _client(self.jwks_url).get_jwk_set()
            # not only PyJWKClientError: an answer that is not JSON (ValueError), a JWKS
            # without a usable key (PyJWKSetError), a connection cut mid-answer (OSError,
            # HTTPException) -- each is this issuer's keys being unavailable, never a crash
            except (jwt.PyJWTError, ValueError, OSError, http.client.HTTPException) as exc:
                raise VisaRefused("issuer_keys_unavailable", f"the keys of issuer {self.iss!r} "
                                  f"cannot be read ({type(exc).__name__})") from None
        else:
            try:
                keys = PyJWKSet.from_dict(dict(self.jwks))
            except jwt.PyJWTError:
                raise VisaRefused("issuer_keys_unavailable", f"issuer {self.iss!r}'s JWKS "
                                  "has no usable key") from None
        for k in keys.keys:
            if k.key_id == kid:
                return k
        raise VisaRefused("unknown_key", f"issuer {self.iss!r} has no key of that kid")


@dataclass(frozen=True)
class Visa:
    """An accepted visa: who it is about, who asserted what, until when."""

    iss: str
    sub: str
    type: str
    value: str
    source: str
    asserted: int
    exp: int
    by: str | None = None
    conditions: Any = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False)


def _verify_jwt(token: str, issuers: Iterable[TrustedIssuer], audience: str | None,
                now: float | None, *, signs: str, aud_required: bool
                ) -> tuple[dict[str, Any], float]:
    """The verified claims of a compact JWS (header, issuer, signature, claims, times)."""
    trusted = {i.iss: i for i in issuers}
    if not isinstance(token, str) or token.count(".") != 2:
        raise VisaRefused("malformed", "a visa is a compact JWS (three dot-separated parts)")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise VisaRefused("malformed", f"not a readable JWT ({type(exc).__name__})") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise VisaRefused("alg_not_allowed", f"alg is not one of {', '.join(ALGORITHMS)}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VisaRefused("no_kid", "the visa header names no key (kid)")
    iss = unverified.get("iss")
    issuer = trusted.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        raise VisaRefused("untrusted_issuer", "the issuer (iss) is not trusted")
    if signs not in issuer.signs:
        raise VisaRefused("untrusted_issuer", f"the issuer is not trusted to sign {signs}")
    jku = header.get("jku")
    if jku is not None and jku not in issuer.jku:
        raise VisaRefused("jku_not_trusted", "the jku is not one the issuer allows")
    key = issuer.key(kid)
    if key.algorithm_name != alg:
        raise VisaRefused("alg_not_allowed", f"the issuer's key is for {key.algorithm_name}, "
                          "not for the alg the header names")
    # times are checked below against one clock (``now``); the signature, the issuer, the
    # audience and the required claims by PyJWT
    check_aud = audience is not None and (aud_required or "aud" in unverified)
    options: Any = {"require": ["iss", "sub", "iat", "exp"], "verify_aud": check_aud,
                    "verify_exp": False, "verify_nbf": False, "verify_iat": False}
    try:
        claims = jwt.decode(token, key.key, algorithms=[alg], issuer=iss,
                            audience=audience if check_aud else None, options=options)
    except jwt.MissingRequiredClaimError as exc:
        if exc.claim == "aud":
            raise VisaRefused("wrong_audience", "the visa names no audience") from None
        raise VisaRefused(f"missing_claim:{exc.claim}", f"the visa has no {exc.claim}") \
            from None
    except jwt.InvalidAudienceError:
        raise VisaRefused("wrong_audience", "the visa is not for this service (aud)") from None
    except jwt.InvalidSignatureError:
        raise VisaRefused("bad_signature", "the signature does not verify with the issuer's "
                          "key") from None
    except jwt.InvalidIssuerError:
        raise VisaRefused("untrusted_issuer", "the issuer does not match") from None
    except jwt.PyJWTError as exc:
        raise VisaRefused("invalid", f"the visa is not valid ({type(exc).__name__})") from None
    if audience is None and "aud" in claims:
        raise VisaRefused("wrong_audience", "the visa names an audience and none is expected")
    clock = time.time() if now is None else now
    times = (claims["exp"], claims["iat"], claims.get("nbf", 0))
    try:
        # NumericDate (RFC 7519 2): a JSON number, never a string, a boolean or infinite
        if any(isinstance(t, bool) or not isinstance(t, int | float) for t in times):
            raise TypeError
        exp, iat, nbf = (int(t) for t in times)
    except (TypeError, ValueError, OverflowError):
        raise VisaRefused("invalid", "exp, iat and nbf must be times in seconds") from None
    if exp + LEEWAY_S <= clock:
        raise VisaRefused("expired", "the visa has expired (exp)")
    if max(iat, nbf) - LEEWAY_S > clock:
        raise VisaRefused("not_yet_valid", "the visa is not valid yet (nbf/iat)")
    return claims, clock


def verify_visa(token: str, issuers: Iterable[TrustedIssuer], *, audience: str | None = None,
                now: float | None = None, aud_required: bool = True) -> Visa:
    """The visa in ``token``, verified (see the module docstring), or VisaRefused.
    ``aud_required=False`` (a visa inside a verified passport): a visa without ``aud`` is
    accepted; one with ``aud`` must still name ``audience``."""
    claims, clock = _verify_jwt(token, issuers, audience, now, signs="visas",
                                aud_required=aud_required)
    scope = claims.get("scope")
    scopes = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) \
        else ()
    # AAI 1.2, Claim Clearinghouses 6.2: a Visa Access Token (scope holds "openid") more
    # than an hour old by iat is invalid unless access token polling confirms it, and
    # GenoVault does not poll
    if "openid" in scopes and clock - int(claims["iat"]) > VISA_ACCESS_TOKEN_MAX_AGE_S \
            + LEEWAY_S:
        raise VisaRefused("visa_access_token_stale", "a visa access token (scope openid) "
                          "more than an hour old is not accepted without polling its issuer")
    return _visa(claims, clock)


def verify_passport_token(token: str, issuers: Iterable[TrustedIssuer], *,
                          audience: str | None = None, now: float | None = None
                          ) -> tuple[dict[str, Any], list[str]]:
    """A broker-signed passport: its verified claims and its visa JWTs, or VisaRefused
    (``bad_passport`` when ``ga4gh_passport_v1`` is not a list of strings)."""
    claims, _ = _verify_jwt(token, issuers, audience, now, signs="passports",
                            aud_required=True)
    visas = claims.get("ga4gh_passport_v1")
    if not isinstance(visas, list) or not all(isinstance(v, str) for v in visas) \
            or len(visas) > MAX_VISAS:
        raise VisaRefused("bad_passport", f"ga4gh_passport_v1 must be a list of at most "
                          f"{MAX_VISAS} visa JWTs")
    return claims, visas


def verify_passport(visas: Iterable[str], issuers: Iterable[TrustedIssuer], *,
                    audience: str | None = None, now: float | None = None,
                    aud_required: bool = True
                    ) -> tuple[list[Visa], list[tuple[int, str]]]:
    """Every visa of a passport (``ga4gh_passport_v1``): the accepted ones, and the refused
    ones as (index, reason). A refused visa never invalidates the others; all accepted
    visas must be about the same subject (``sub``), else all are refused."""
    issuers = list(issuers)
    accepted: list[tuple[int, Visa]] = []
    refused: list[tuple[int, str]] = []
    for i, token in enumerate(visas):
        try:
            accepted.append((i, verify_visa(token, issuers, audience=audience, now=now,
                                            aud_required=aud_required)))
        except VisaRefused as exc:
            refused.append((i, exc.reason))
    if len({v.sub for _, v in accepted}) > 1:
        refused = sorted(refused + [(i, "subject_mismatch") for i, _ in accepted])
        accepted = []
    return [v for _, v in accepted], refused


def _visa(claims: Mapping[str, Any], now: float) -> Visa:
    body = claims.get("ga4gh_visa_v1")
    if not isinstance(body, dict):
        raise VisaRefused("bad_visa", "no ga4gh_visa_v1 object")
    vtype = body.get("type")
    if vtype not in VISA_TYPES:
        raise VisaRefused("unknown_type", f"the visa type is not one of "
                          f"{', '.join(VISA_TYPES)}")
    asserted, value, source = body.get("asserted"), body.get("value"), body.get("source")
    if isinstance(asserted, bool) or not isinstance(asserted, int) \
            or asserted - LEEWAY_S > now:
        raise VisaRefused("bad_visa", "asserted must be a time (seconds) not in the future")
    if not isinstance(value, str) or not isinstance(source, str):
        raise VisaRefused("bad_visa", "value and source must be strings")
    by = body.get("by")
    if by is not None and by not in BY:
        raise VisaRefused("bad_visa", f"by must be one of {', '.join(BY)}")
    # Passport v1.2, conditions: a clearinghouse without condition checking MUST reject
    # (ignore) every visa whose conditions field is non-empty
    if body.get("conditions") not in (None, []):
        raise VisaRefused("conditions_unsupported", "a visa with conditions is not accepted "
                          "(conditions are not evaluated)")
    return Visa(iss=str(claims["iss"]), sub=str(claims["sub"]), type=vtype, value=value,
                source=source, asserted=asserted, exp=int(claims["exp"]), by=by,
                conditions=body.get("conditions"), claims=dict(claims))
