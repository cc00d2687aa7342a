"""A bearer passport or visa -> a passport Principal: JWT vs Vault token, the passport's own
checks, visas kept or dropped with their reason, what a refusal records. A local key plays
the DAC and the broker; the one JWKS URL is served on loopback."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from tests.support.passport import Issuer, unsigned
from vault.passport.credential import CredentialRefused, is_jwt, passport_principal
from vault.policy.spec import IssuerSpec, PassportSpec

DAC = Issuer("https://dac.example.org")
BROKER = Issuer("https://broker.example.org", kid="b1")
ROGUE = Issuer("https://rogue.example.org")
GRANT = "https://genovault.example/datasets/demo"
SUB = "r1@example.org"
#: a broker that signs passports, its own visas, and LinkedIdentities visas that count
LINKS = ("passports", "visas", "links")


def spec(audience: str | None = None, broker_signs: tuple[str, ...] = ("passports",),
         dac: Issuer = DAC) -> PassportSpec:
    return PassportSpec({
        "dac": IssuerSpec("dac", dac.iss, dac.jwks(), None),
        "broker": IssuerSpec("broker", BROKER.iss, BROKER.jwks(), None, signs=broker_signs),
    }, (), audience)


@pytest.mark.parametrize("token,jwt", [
    ("hvs.CAESIJ1x2y3", False), ("s.Abc123", False), ("b.AAAAAQ.x.y", False),
    ("hvb.AAAAAQJ.abc.def", False), ("root", False), ("a.b.c", False),
    ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", True),
    ("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln", False),  # a header without alg
    (unsigned({"sub": "x"}), True),
])
def test_credential__a_jwt_is_told_from_a_vault_token(token: str, jwt: bool) -> None:
    assert is_jwt(token) is jwt


def test_credential__a_bare_visa_gives_a_passport_principal() -> None:
    p, info = passport_principal(DAC.visa(SUB, "ControlledAccessGrants", GRANT), spec())
    assert p.auth == "passport" and p.vault_policies == ()
    (v,) = p.visas
    assert (v.iss, v.sub, v.type, v.value, v.by) == (DAC.iss, SUB, "ControlledAccessGrants",
                                                     GRANT, "dac")
    assert info.summary()["kind"] == "visa" and info.iss == DAC.iss and info.sub == SUB
    assert p.entity_id == f"ga4gh:{DAC.iss}#{SUB}"


def test_credential__one_visa_bare_or_wrapped_is_one_principal() -> None:
    """A review sent a DAC's visa (with aud) bare, then inside a broker's passport: two
    principals (ga4gh:<dac>#sub, ga4gh:<broker>#sub), so two ε budgets and rate limits for
    the same visa. The principal is named by the identity of the visas that assert something
    (not by the broker that wrapped them, nor by the LinkedIdentities visa that joins the
    broker's account to the DAC's)."""
    aud = "https://genovault.example"
    visa = DAC.visa(SUB, "ResearcherStatus", "https://doi.org/x", by="so", aud=aud)
    s = spec(audience=aud, broker_signs=LINKS)
    bare, _ = passport_principal(visa, s)
    link = BROKER.link(SUB, (SUB, DAC.iss))
    wrapped, _ = passport_principal(BROKER.passport(SUB, [visa, link], aud=aud), s)
    assert bare.entity_id == wrapped.entity_id == f"ga4gh:{DAC.iss}#{SUB}"
    # the visa inside the passport of someone else is not theirs (see test_passport_identity)
    assert _refused(BROKER.passport("someone-else", [visa], aud=aud), s).reason \
        == "no_valid_visa"


def test_credential__a_passport_keeps_its_good_visas_and_names_the_bad_ones() -> None:
    good = DAC.visa(SUB, "ControlledAccessGrants", GRANT)
    status = BROKER.visa(SUB, "ResearcherStatus", "https://doi.org/x", by="so")
    expired = DAC.visa(SUB, "ControlledAccessGrants", GRANT + "2", exp=1_000_000)
    rogue = ROGUE.visa(SUB, "ControlledAccessGrants", GRANT)
    link = BROKER.link(SUB, (SUB, DAC.iss))
    token = BROKER.passport(SUB, [good, expired, status, rogue, link])
    p, info = passport_principal(token, spec(broker_signs=LINKS))
    assert [v.type for v in p.visas] == ["ControlledAccessGrants", "ResearcherStatus",
                                         "LinkedIdentities"]
    assert [(r["index"], r["reason"]) for r in info.refused_visas] == [
        (1, "expired"), (3, "untrusted_issuer")]
    assert info.summary()["kind"] == "passport" and info.iss == BROKER.iss
    # the broker may sign visas but not link identities: its own visa counts, the DAC's
    # (another identity) no longer does
    p, info = passport_principal(token, spec(broker_signs=("passports", "visas")))
    assert [v.type for v in p.visas] == ["ResearcherStatus"]
    assert [(r["index"], r["reason"]) for r in info.refused_visas] == [
        (0, "identity_not_linked"), (1, "expired"), (3, "untrusted_issuer"),
        (4, "links_not_trusted")]
    # the broker may not sign visas unless the policy says so: the DAC's grant is then the
    # passport's one visa identity, and names the holder's sub, so it counts alone
    p, info = passport_principal(token, spec())
    assert [(v.type, v.iss) for v in p.visas] == [("ControlledAccessGrants", DAC.iss)]
    assert [(r["index"], r["reason"]) for r in info.refused_visas] == [
        (1, "expired"), (2, "untrusted_issuer"), (3, "untrusted_issuer"),
        (4, "untrusted_issuer")]


def _refused(token: str, s: PassportSpec | None = None) -> CredentialRefused:
    with pytest.raises(CredentialRefused) as info:
        passport_principal(token, s or spec())
    return info.value


def test_credential__refusals_name_their_reason_and_what_was_claimed() -> None:
    claims = DAC.visa_claims(SUB, "ControlledAccessGrants", GRANT)
    cases = {
        "alg_not_allowed": unsigned(claims),
        "expired": DAC.sign({**claims, "exp": 1_000_000}),
        "not_yet_valid": DAC.sign({**claims, "nbf": claims["iat"] + 86400}),
        "bad_signature": DAC.sign(claims, key=ROGUE.key),
        "untrusted_issuer": ROGUE.visa(SUB, "ControlledAccessGrants", GRANT),
        "wrong_audience": DAC.sign({**claims, "aud": "another-service"}),
        "not_a_passport": DAC.sign({k: v for k, v in claims.items() if k != "ga4gh_visa_v1"}),
    }
    for reason, token in cases.items():
        exc = _refused(token)
        assert exc.reason == reason, (reason, exc)
        assert exc.claimed.get("iss") == claims["iss"] or reason == "untrusted_issuer"
        assert exc.claimed.get("sub") == SUB
        assert token not in json.dumps(exc.claimed)  # never the JWT itself
    # the expected audience: required on a bearer visa, optional inside a passport
    aud = spec(audience="genovault", broker_signs=LINKS)
    assert _refused(DAC.sign(claims), aud).reason == "wrong_audience"
    inner = DAC.sign(claims)
    link = BROKER.link(SUB, (SUB, DAC.iss))
    p, _ = passport_principal(BROKER.passport(SUB, [inner, link], aud="genovault"), aud)
    assert [v.type for v in p.visas] == ["ControlledAccessGrants", "LinkedIdentities"]
    assert _refused(BROKER.passport(SUB, [inner]), aud).reason == "wrong_audience"
    assert _refused(BROKER.passport(SUB, [DAC.sign({**claims, "aud": "other"})],
                                    aud="genovault"), aud).reason == "no_valid_visa"


def test_credential__a_passport_without_a_valid_visa_is_refused() -> None:
    expired = DAC.visa(SUB, "ControlledAccessGrants", GRANT, exp=1_000_000)
    exc = _refused(BROKER.passport(SUB, [expired, "not-a-jwt"]))
    assert exc.reason == "no_valid_visa"
    assert [(v["index"], v["reason"]) for v in exc.visas] == [(0, "expired"), (1, "malformed")]
    assert _refused(BROKER.passport(SUB, "nope")).reason == "bad_passport"  # type: ignore[arg-type]
    # a passport signed by an issuer trusted for visas only
    assert _refused(DAC.passport(SUB, [DAC.visa(SUB, "ControlledAccessGrants", GRANT)])
                    ).reason == "untrusted_issuer"
    # visas of two subjects cannot be pooled into one principal
    other = DAC.visa("someone-else", "ResearcherStatus", "x", by="so")
    good = DAC.visa(SUB, "ControlledAccessGrants", GRANT)
    assert _refused(BROKER.passport(SUB, [good, other])).reason == "no_valid_visa"


def test_credential__no_trusted_issuer_no_passports() -> None:
    exc = _refused(DAC.visa(SUB, "ControlledAccessGrants", GRANT), PassportSpec({}))
    assert exc.reason == "passports_not_accepted"


@pytest.fixture
def jwks_url() -> Iterator[str]:
    body = json.dumps(DAC.jwks()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def test_credential__jwks_read_from_a_url(jwks_url: str) -> None:
    s = PassportSpec({"dac": IssuerSpec("dac", DAC.iss, None, jwks_url)})
    p, _ = passport_principal(DAC.visa(SUB, "ControlledAccessGrants", GRANT), s)
    assert p.visas[0].iss == DAC.iss
    down = PassportSpec({"dac": IssuerSpec("dac", DAC.iss, None,
                                           jwks_url.replace("jwks.json", "x").rsplit(":", 1)[0]
                                           + ":9/jwks.json")})
    assert _refused(DAC.visa(SUB, "ControlledAccessGrants", GRANT), down).reason == \
        "issuer_keys_unavailable"


@pytest.mark.parametrize("body", [b"<html>not json</html>", b'{"keys": []}'])
def test_credential__jwks_url_with_a_bad_answer_is_issuer_keys_unavailable(body: bytes) -> None:
    """A JWKS URL answering non-JSON or a key set without keys refuses that issuer's visas
    (issuer_keys_unavailable) instead of raising out of the verifier (a 500), and a passport's
    other visas are still judged on their own."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        bad = PassportSpec({"dac": IssuerSpec("dac", DAC.iss, None, url)})
        visa = DAC.visa(SUB, "ControlledAccessGrants", GRANT)
        assert _refused(visa, bad).reason == "issuer_keys_unavailable"
        other = Issuer("https://other.example.org", kid="o1")
        mixed = PassportSpec({
            "dac": IssuerSpec("dac", DAC.iss, None, url),
            "other": IssuerSpec("other", other.iss, other.jwks(), None),
            "broker": IssuerSpec("broker", BROKER.iss, BROKER.jwks(), None, signs=LINKS)})
        link = BROKER.link(SUB, (SUB, DAC.iss), (SUB, other.iss))
        p, info = passport_principal(BROKER.passport(SUB, [visa, other.visa(
            SUB, "ControlledAccessGrants", GRANT), link]), mixed)
        assert [v.iss for v in p.visas] == [other.iss, BROKER.iss]
        assert [r["reason"] for r in info.refused_visas] == ["issuer_keys_unavailable"]
    finally:
        server.shutdown()
        server.server_close()
