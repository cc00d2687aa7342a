"""Verify GA4GH Passport visas (ga4gh_passport_v1 / ga4gh_visa_v1) with PyJWT — no
hand-written crypto, no network.

A visa is accepted only when all of these hold, else :class:`VisaRefused` says which failed
(``reason`` is a stable code):

* it is a compact JWS whose header ``alg`` is RS256 or ES256 (``alg_not_allowed``: ``none``,
  HS256 and every other algorithm are refused before any key is looked at) and that names a
  ``kid`` (``no_kid``); a header with ``crit`` or ``b64`` is ``unsupported_header`` (no
  extension is understood); a ``typ``, when present, is one of :data:`TYPS` for its kind
  (``wrong_typ``: a passport is not a visa, nor is a logout or event token);
* its ``iss`` is a configured :class:`TrustedIssuer` (``untrusted_issuer``), a ``jku`` in the
  header is one that issuer allows (``jku_not_trusted``; it is never fetched), and the issuer's
  JWKS has the ``kid`` for signatures (``unknown_key``; a key with ``use: enc`` is not one);
* the signature verifies with that key (``bad_signature``); ``exp`` is in the future
  (``expired``), ``nbf``/``iat`` are not (``not_yet_valid``), ``iss``, ``sub``, ``iat``, ``exp``
  are present (``missing_claim:<name>``), ``sub`` a non-empty string (``invalid``); with an
  expected audience, ``aud`` holds it (``wrong_audience``); a visa carrying ``aud`` is
  refused when no audience is expected;
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

Identities (Passport v1.2: a Visa Identity is the {``sub``, ``iss``} pair; "When combining
Visas with multiple Visa Identities for the purposes of evaluating authorization, a Passport
Clearinghouse MUST check the LinkedIdentities Visas by trusted issuers and ensure that
trusted sources have asserted that these Visa Identities represent the same end user"): a
passport's visas of different identities are combined only when LinkedIdentities visas
(``value`` = ``<sub>,<iss>`` entries, URI-encoded, ``;``-separated) signed by issuers trusted
to link (``links`` in their ``signs``) join them. When a grant visa is the passport's own
identity (or linked to it), visas of any other identity are ``identity_not_linked``; when
none is (a broker carrying one visa issuer's visas, which name the user by the broker's
``sub``), its visas count if they have one identity, or identities linked to one another,
and one of them has the holder's ``sub``; none counts otherwise. A ``sub`` that merely reads
the same at another issuer is another identity: beside the holder's own visas, or beside a
third identity, it needs a link.

An issuer's keys come from a JWKS given out of band (a dict) or from an https URL, read
(cached, a short timeout, a size cap) from exactly that URL: a redirect is never followed
(to any host); a key that cannot be read is ``issuer_keys_unavailable``. Two trusted issuers
with one ``iss`` are a ValueError (the policy loader refuses them first).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWKSet

ALGORITHMS = ("RS256", "ES256")
#: the ``typ`` a visa's or a passport's header may carry (Passport v1.2: OPTIONAL for visas,
#: RECOMMENDED ``vnd.ga4gh.visa+jwt``, ``JWT`` allowed, likely ``at+jwt`` for Visa Access
#: Tokens), compared case-insensitively without an ``application/`` prefix (RFC 7515 4.1.9)
TYPS = {"visas": ("jwt", "vnd.ga4gh.visa+jwt", "at+jwt"),
        "passports": ("jwt", "vnd.ga4gh.passport+jwt", "at+jwt")}
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
#: the largest JWKS answer read from a URL
JWKS_MAX_BYTES = 256 << 10
#: the most identities one LinkedIdentities visa may link
MAX_LINKED = 100
_CLIENTS: dict[str, _JwksUrl] = {}
_CLIENTS_LOCK = threading.Lock()

#: an identity as the Passport spec defines it (Visa Identity): the {sub, iss} pair
Identity = tuple[str, str]


class _RefuseRedirect(urllib.request.HTTPRedirectHandler):
    """A JWKS URL that answers with a redirect is not followed (to any host, same or
    other): the keys of an issuer are read from exactly the configured URL."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        fp.close()
        raise urllib.error.HTTPError(req.full_url, code, "a JWKS URL that redirects is not "
                                     "followed", headers, None)


class _JwksUrl:
    """The JWKS at one https URL: fetched without following redirects (the
    ``PyJWKClient`` of PyJWT 2.9, which pyproject allows, follows them), at most
    ``JWKS_MAX_BYTES``, parsed by PyJWT (``PyJWKSet``), cached ``JWKS_LIFESPAN_S``."""

    def __init__(self, url: str) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
            raise ValueError("a JWKS URL is https:// (or http:// on loopback)")
        self.url = url
        self._lock = threading.Lock()
        self._cached: tuple[float, PyJWKSet] | None = None
        self._opener = urllib.request.build_opener(_RefuseRedirect())

    def get_jwk_set(self) -> PyJWKSet:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] \
                    < JWKS_LIFESPAN_S:
                return self._cached[1]
        # the scheme is https or http (checked in __init__; http only on loopback, by the
        # policy loader), so no file: or custom scheme reaches urllib
        request = urllib.request.Request(self.url,  # noqa: S310
                                         headers={"Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=JWKS_TIMEOUT_S) as answer:
                if answer.geturl() != request.full_url:  # belt and braces: no other URL
                    raise ValueError("the JWKS was not read from the configured URL")
                body = answer.read(JWKS_MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()  # an error answer holds its connection open until closed
            raise
        if len(body) > JWKS_MAX_BYTES:
            raise ValueError("the JWKS answer is too large")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the JWKS answer is not a JSON object")
        keys = PyJWKSet.from_dict(data)
        with self._lock:
            self._cached = (time.monotonic(), keys)
        return keys


def _client(url: str) -> _JwksUrl:
    with _CLIENTS_LOCK:
        c = _CLIENTS.get(url)
        if c is None:
            c = _CLIENTS[url] = _JwksUrl(url)
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
            # a key published for encryption (use: enc) never verifies a signature (RFC 7517
            # 4.2); a key without use may be either
            if k.key_id == kid and k.public_key_use in (None, "sig"):
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
    #: a LinkedIdentities visa: the identities (sub, iss) its ``value`` lists
    links: tuple[Identity, ...] = ()

    @property
    def identity(self) -> Identity:
        """The Visa Identity: the (sub, iss) pair."""
        return (self.sub, self.iss)


def _by_iss(issuers: Iterable[TrustedIssuer]) -> dict[str, TrustedIssuer]:
    """The trusted issuers by ``iss``; two with one ``iss`` are a configuration error (the
    policy loader refuses them): which keys and rights would apply is ambiguous."""
    trusted: dict[str, TrustedIssuer] = {}
    for i in issuers:
        if i.iss in trusted:
            raise ValueError("two trusted issuers have the same iss; give each iss once")
        trusted[i.iss] = i
    return trusted


def _verify_jwt(token: str, issuers: Iterable[TrustedIssuer], audience: str | None,
                now: float | None, *, signs: str, aud_required: bool
                ) -> tuple[dict[str, Any], float]:
    """The verified claims of a compact JWS (header, issuer, signature, claims, times)."""
    trusted = _by_iss(issuers)
    if not isinstance(token, str) or token.count(".") != 2:
        raise VisaRefused("malformed", "a visa is a compact JWS (three dot-separated parts)")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    # a header or payload nested thousands deep: RecursionError in PyJWT 2.9
    except (jwt.PyJWTError, RecursionError) as exc:
        raise VisaRefused("malformed", f"not a readable JWT ({type(exc).__name__})") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise VisaRefused("alg_not_allowed", f"alg is not one of {', '.join(ALGORITHMS)}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VisaRefused("no_kid", "the visa header names no key (kid)")
    # RFC 7515 4.1.11: a recipient MUST reject a JWS whose crit lists an extension it does
    # not understand, and none is understood here (PyJWT 2.9 ignores crit altogether)
    if "crit" in header or "b64" in header:
        raise VisaRefused("unsupported_header", "the header names critical extensions "
                          "(crit, b64); none is supported")
    # explicit typing (RFC 8725 3.11): a token typed as another kind of JWT (a passport as
    # a visa, a visa as a passport, a logout or event token ...) is not this one
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower().removeprefix(
            "application/") not in TYPS[signs]):
        raise VisaRefused("wrong_typ", f"the header typ is not one {signs} may carry")
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
    # the identity is (sub, iss): both strings (RFC 7519 StringOrURI; PyJWT 2.9 lets a
    # number through, and 123 must not become the sub "123"), sub not empty
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise VisaRefused("invalid", "sub must be a non-empty string")
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
                    holder: Identity | None = None, audience: str | None = None,
                    now: float | None = None, aud_required: bool = True
                    ) -> tuple[list[Visa], list[tuple[int, str]]]:
    """Every visa of a passport (``ga4gh_passport_v1``): the accepted ones, and the refused
    ones as (index, reason). A refused visa never invalidates the others.

    ``holder`` is the passport's own identity (its ``sub`` and ``iss``). Visas of several
    identities are combined only when LinkedIdentities visas (:func:`linked_to`) join them:
    to the holder when any grant visa is the holder's, else to one another
    (:func:`_visa_group`); the others are refused ``identity_not_linked``;
    a LinkedIdentities visa of an issuer not trusted to link identities (``links`` not in
    its ``signs``) is refused ``links_not_trusted``. Without a holder (visas alone), all
    accepted visas must have one identity, else all are refused ``subject_mismatch``."""
    issuers = list(issuers)
    by_iss = _by_iss(issuers)
    accepted: list[tuple[int, Visa]] = []
    refused: list[tuple[int, str]] = []
    for i, token in enumerate(visas):
        try:
            v = verify_visa(token, issuers, audience=audience, now=now,
                            aud_required=aud_required)
        except VisaRefused as exc:
            refused.append((i, exc.reason))
            continue
        if v.type == "LinkedIdentities" and "links" not in by_iss[v.iss].signs:
            refused.append((i, "links_not_trusted"))
        else:
            accepted.append((i, v))
    if holder is None:
        if len({v.identity for _, v in accepted}) > 1:
            refused += [(i, "subject_mismatch") for i, _ in accepted]
            accepted = []
    else:
        group = _visa_group(holder, [v for _, v in accepted])
        refused += [(i, "identity_not_linked") for i, v in accepted if v.identity not in group]
        accepted = [(i, v) for i, v in accepted if v.identity in group]
    return [v for _, v in accepted], sorted(refused)


def _visa_group(holder: Identity, visas: list[Visa]) -> set[Identity]:
    """The identities whose visas a passport of ``holder`` may combine. Visas of the
    holder's own identity, or linked to it, exclude every other. A passport none of whose
    grant visas is the holder's (a broker carrying a DAC's visas for its user, the common
    case: the DAC names the user by its own ``sub``) has one Visa Identity, or identities
    linked together, or it combines nothing: "When combining Visas with multiple Visa
    Identities ... MUST check the LinkedIdentities Visas by trusted issuers" (Passport
    v1.2), and the broker that signed the passport vouches for whose visas it holds -- as
    long as that identity names the holder's ``sub`` (a visa issuer that names users by
    the broker's id); a visa of another ``sub`` needs a link to the holder."""
    same = linked_to(holder, visas)
    grants = [v for v in visas if v.type != "LinkedIdentities"]
    if not grants or any(v.identity in same for v in grants):
        return same
    one = linked_to(grants[0].identity, visas)
    if all(v.identity in one for v in grants) and any(sub == holder[0] for sub, _ in one):
        return one
    return set()


def linked_to(holder: Identity, visas: Iterable[Visa]) -> set[Identity]:
    """The identities that are the holder's: the holder, and every identity joined to it
    through verified LinkedIdentities visas (Passport v1.2: a LinkedIdentities visa says
    its own identity and the ones its ``value`` lists are one person). Links chain, and
    one visa may link several identities; other visas never link anything."""
    edges: dict[Identity, set[Identity]] = {}
    for v in visas:
        if v.type != "LinkedIdentities":
            continue
        for other in v.links:
            edges.setdefault(v.identity, set()).add(other)
            edges.setdefault(other, set()).add(v.identity)
    same, todo = {holder}, [holder]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in same:
                same.add(nxt)
                todo.append(nxt)
    return same


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
    links = linked_identities(value) if vtype == "LinkedIdentities" else ()
    return Visa(iss=str(claims["iss"]), sub=str(claims["sub"]), type=vtype, value=value,
                source=source, asserted=asserted, exp=int(claims["exp"]), by=by,
                conditions=body.get("conditions"), claims=dict(claims), links=links)


def linked_identities(value: str) -> tuple[Identity, ...]:
    """The identities of a LinkedIdentities ``value``: ``<sub>,<iss>`` entries separated by
    ``;``, each part URI-encoded (RFC 3986 percent-encoding; ``+`` is a plus), no added
    whitespace (Passport v1.2, LinkedIdentities). Anything else is ``bad_visa``."""
    entries = value.split(";")
    if len(entries) > MAX_LINKED:
        raise VisaRefused("bad_visa", f"a LinkedIdentities visa links at most {MAX_LINKED} "
                          "identities")
    out: list[Identity] = []
    for entry in entries:
        parts = entry.split(",")
        if len(parts) != 2 or not all(parts) or any(c.isspace() for c in entry):
            raise VisaRefused("bad_visa", "a LinkedIdentities value is <sub>,<iss> entries "
                              "(URI-encoded) separated by ';'")
        try:
            sub, iss = (urllib.parse.unquote(p, errors="strict") for p in parts)
        except UnicodeDecodeError:
            raise VisaRefused("bad_visa", "a LinkedIdentities entry is not UTF-8 once "
                              "decoded") from None
        out.append((sub, iss))
    return tuple(out)
