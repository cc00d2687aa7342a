"""Whose visas a passport may use (GA4GH Passport v1.2): a Visa Identity is the {sub, iss}
pair, and "When combining Visas with multiple Visa Identities for the purposes of evaluating
authorization, a Passport Clearinghouse MUST check the LinkedIdentities Visas by trusted
issuers". Visas of several identities are combined only when LinkedIdentities visas of an
issuer trusted to link join them (to the passport's own identity when any grant is the
holder's); a passport of one other identity counts when it names the holder's sub. Also:
two trusted issuers with one ``iss`` are refused, and an issuer's JWKS URL that redirects is
not followed. Local keys play every issuer; the JWKS servers listen on loopback."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.passport import Issuer, linked_value
from vault.passport import TrustedIssuer, VisaRefused, verify_passport, verify_visa
from vault.passport.credential import CredentialRefused, passport_principal
from vault.policy import load_policy
from vault.policy.loader import PolicyLoadError
from vault.policy.spec import IssuerSpec, PassportSpec

BROKER = Issuer("https://broker.example.org", kid="b1")
DAC = Issuer("https://dac.example.org", kid="d1")
IDP = Issuer("https://idp.example.org", kid="i1")
ROGUE = Issuer("https://rogue.example.org", kid="r1")
GRANT = "https://genovault.example/datasets/cancer"
ALICE, MALLORY = "alice", "mallory"
LINKS = ("passports", "visas", "links")


def spec(broker: tuple[str, ...] = LINKS, dac: tuple[str, ...] = ("visas",),
         idp: tuple[str, ...] = ("visas", "links")) -> PassportSpec:
    return PassportSpec({
        "broker": IssuerSpec("broker", BROKER.iss, BROKER.jwks(), None, signs=broker),
        "dac": IssuerSpec("dac", DAC.iss, DAC.jwks(), None, signs=dac),
        "idp": IssuerSpec("idp", IDP.iss, IDP.jwks(), None, signs=idp),
    })


def _grant(sub: str = ALICE, issuer: Issuer = DAC) -> str:
    return issuer.visa(sub, "ControlledAccessGrants", GRANT)


def _counted(passport: str, s: PassportSpec | None = None) -> list[tuple[str, str, str]]:
    """(type, sub, iss) of the visas the passport's principal carries."""
    p, _ = passport_principal(passport, s or spec())
    return [(v.type, v.sub, v.iss) for v in p.visas]


def _refused(passport: str, s: PassportSpec | None = None) -> list[tuple[int, str]]:
    with pytest.raises(CredentialRefused) as exc:
        passport_principal(passport, s or spec())
    assert exc.value.reason == "no_valid_visa"
    return [(v["index"], v["reason"]) for v in exc.value.visas]


def test_identity__a_visa_of_another_sub_than_the_passport_is_not_counted() -> None:
    # mallory's passport carrying alice's grant (same issuer as the passport): not hers
    assert _refused(BROKER.passport(MALLORY, [_grant(ALICE, BROKER)])) == [
        (0, "identity_not_linked")]
    # beside a visa of her own, alice's is dropped and named, hers still counts
    token = BROKER.passport(MALLORY, [_grant(ALICE, BROKER),
                                      BROKER.visa(MALLORY, "ResearcherStatus", "x", by="so")])
    p, info = passport_principal(token, spec())
    assert [(v.type, v.sub) for v in p.visas] == [("ResearcherStatus", MALLORY)]
    assert [(r["index"], r["reason"]) for r in info.refused_visas] == [
        (0, "identity_not_linked")]
    assert p.entity_id == f"ga4gh:{BROKER.iss}#{MALLORY}"


def test_identity__the_same_sub_at_another_issuer_is_another_identity() -> None:
    # alone in the passport, a visa issuer's grant that names the holder's sub counts: one
    # Visa Identity, nothing combined (a DAC naming users by the broker's id)
    assert _counted(BROKER.passport(ALICE, [_grant(ALICE, DAC)])) == [
        ("ControlledAccessGrants", ALICE, DAC.iss)]
    # but a sub is unique only within its issuer: beside the holder's own visas alice@dac is
    # another identity, not combined without a link ...
    own = BROKER.visa(ALICE, "ResearcherStatus", "x", by="so")
    p, info = passport_principal(BROKER.passport(ALICE, [_grant(ALICE, DAC), own]), spec())
    assert [(v.type, v.iss) for v in p.visas] == [("ResearcherStatus", BROKER.iss)]
    assert [(r["index"], r["reason"]) for r in info.refused_visas] == [
        (0, "identity_not_linked")]
    # ... nor beside a third identity: alice@dac and alice@idp are two Visa Identities
    assert _refused(BROKER.passport(ALICE, [_grant(ALICE, DAC), _grant(ALICE, IDP)])) == [
        (0, "identity_not_linked"), (1, "identity_not_linked")]
    # linked to each other by a trusted linker, they are combined
    link = IDP.link(ALICE, (ALICE, DAC.iss))
    assert len(_counted(BROKER.passport(ALICE, [_grant(ALICE, DAC), _grant(ALICE, IDP),
                                                link]))) == 3


def test_identity__the_passports_own_identity_counts() -> None:
    assert _counted(BROKER.passport(ALICE, [_grant(ALICE, BROKER)])) == [
        ("ControlledAccessGrants", ALICE, BROKER.iss)]


def test_identity__a_trusted_linked_identities_visa_counts_the_linked_visa() -> None:
    link = BROKER.link(ALICE, ("a-17", DAC.iss))
    assert _counted(BROKER.passport(ALICE, [_grant("a-17", DAC), link])) == [
        ("ControlledAccessGrants", "a-17", DAC.iss), ("LinkedIdentities", ALICE, BROKER.iss)]
    # a link from another trusted linker, about the passport's identity, works as well
    link = IDP.link("u-9", (ALICE, BROKER.iss), ("a-17", DAC.iss))
    assert [t for t, *_ in _counted(BROKER.passport(ALICE, [_grant("a-17", DAC), link]))] == [
        "ControlledAccessGrants", "LinkedIdentities"]


def test_identity__links_chain_across_visas() -> None:
    # Passport v1.2, LinkedIdentities example 3: visas that chain identities together
    first = BROKER.link(ALICE, ("u-9", IDP.iss))
    second = IDP.link("u-9", ("a-17", DAC.iss))
    assert [s for _, s, _ in _counted(BROKER.passport(ALICE, [_grant("a-17", DAC), second,
                                                              first]))] == [
        "a-17", "u-9", ALICE]


def test_identity__a_forged_link_from_an_untrusted_issuer_is_not_counted() -> None:
    # mallory holds alice's grant and a "link" signed by a key nobody trusts
    forged = ROGUE.link(MALLORY, (MALLORY, BROKER.iss), ("a-17", DAC.iss))
    assert _refused(BROKER.passport(MALLORY, [_grant("a-17", DAC), forged])) == [
        (0, "identity_not_linked"), (1, "untrusted_issuer")]
    # nor one claiming a trusted iss but signed with another key
    claims = BROKER.visa_claims(MALLORY, "LinkedIdentities",
                                linked_value(("a-17", DAC.iss)), by="system")
    forged = BROKER.sign(claims, key=ROGUE.key)
    assert _refused(BROKER.passport(MALLORY, [_grant("a-17", DAC), forged])) == [
        (0, "identity_not_linked"), (1, "bad_signature")]


def test_identity__a_link_by_an_issuer_not_trusted_to_link_is_refused() -> None:
    # the DAC is trusted for its grants, not to say two accounts are one person
    link = DAC.link("a-17", (MALLORY, BROKER.iss))
    assert _refused(BROKER.passport(MALLORY, [_grant("a-17", DAC), link])) == [
        (0, "identity_not_linked"), (1, "links_not_trusted")]
    # the same link from the broker, trusted to link, joins them
    assert len(_counted(BROKER.passport(MALLORY, [
        _grant("a-17", DAC), BROKER.link(MALLORY, ("a-17", DAC.iss))]))) == 2


def test_identity__a_link_that_does_not_reach_the_passport_links_nothing() -> None:
    # a trusted link joining two other identities does not make them the holder's
    link = IDP.link("u-9", ("a-17", DAC.iss))
    assert _refused(BROKER.passport(MALLORY, [_grant("a-17", DAC), link])) == [
        (0, "identity_not_linked"), (1, "identity_not_linked")]


def test_identity__visas_alone_must_share_one_identity() -> None:
    issuers = [TrustedIssuer(DAC.iss, DAC.jwks()), TrustedIssuer(IDP.iss, IDP.jwks())]
    accepted, refused = verify_passport([_grant(ALICE, DAC), _grant(ALICE, IDP)], issuers)
    assert accepted == [] and refused == [(0, "subject_mismatch"), (1, "subject_mismatch")]
    accepted, _ = verify_passport([_grant(ALICE, DAC), _grant(ALICE, IDP)], issuers,
                                  holder=(ALICE, DAC.iss))
    assert [v.iss for v in accepted] == [DAC.iss]


@pytest.mark.parametrize("value,links", [
    ("123456,https%3A%2F%2Fexample.org%2Fa%7Cb%2Cc;7890,https%3A%2F%2Fexample2.org",
     [("123456", "https://example.org/a|b,c"), ("7890", "https://example2.org")]),
    ("a%3Bb%2Cc,https://idp.example.org", [("a;b,c", "https://idp.example.org")]),
    ("a+b,https://x.example", [("a+b", "https://x.example")]),  # RFC 3986: + is a plus
], ids=["spec-example", "encoded-separators", "plus"])
def test_linked_identities__value_is_uri_encoded_sub_iss_pairs(
        value: str, links: list[tuple[str, str]]) -> None:
    v = verify_visa(IDP.visa("u-9", "LinkedIdentities", value, by="system"),
                    [TrustedIssuer(IDP.iss, IDP.jwks())])
    assert list(v.links) == links


@pytest.mark.parametrize("value", [
    "", "u-9", "u-9,https://a.example,extra", ",https://a.example", "u-9,",
    "u-9,https://a.example; u-8,https://b.example", "u-9,https://a.example;",
    "u%FF,https://a.example", ";".join(f"u{i},https://a.example" for i in range(101)),
], ids=["empty", "no-iss", "three-parts", "no-sub", "empty-iss", "whitespace",
        "trailing-separator", "not-utf8", "too-many"])
def test_linked_identities__a_malformed_value_is_refused(value: str) -> None:
    with pytest.raises(VisaRefused) as exc:
        verify_visa(IDP.visa("u-9", "LinkedIdentities", value, by="system"),
                    [TrustedIssuer(IDP.iss, IDP.jwks())])
    assert exc.value.reason == "bad_visa"


# -- two trusted issuers with one iss ------------------------------------------------------

def test_trust__two_issuers_with_one_iss_do_not_load(tmp_path: Path) -> None:
    DAC.write_jwks(tmp_path / "dac.jwks.json")
    ROGUE.write_jwks(tmp_path / "other.jwks.json")
    (tmp_path / "p.yaml").write_text(f"""
version: 1
datasets: {{d: {{consent: {{permission: GRU}}}}}}
roles: {{r: {{datasets: [d], statistics: [presence], use: GRU, tier: controlled,
            actions: [describe_dataset]}}}}
passports:
  issuers:
    dac: {{iss: "{DAC.iss}", jwks: dac.jwks.json}}
    broker: {{iss: "{DAC.iss}", jwks: other.jwks.json, signs: [passports, visas]}}
""")
    with pytest.raises(PolicyLoadError) as exc:
        load_policy(tmp_path)
    msg = str(exc.value)
    assert "$.passports.issuers.broker.iss" in msg and "already the iss of issuer 'dac'" \
        in msg
    # the same iss in another policy file of the directory is refused too
    (tmp_path / "p.yaml").write_text((tmp_path / "p.yaml").read_text().split("    broker")[0])
    (tmp_path / "q.yaml").write_text(f"""
version: 1
passports:
  issuers:
    dac2: {{iss: "{DAC.iss}", jwks: other.jwks.json}}
""")
    with pytest.raises(PolicyLoadError, match="already the iss of issuer 'dac'"):
        load_policy(tmp_path)
    (tmp_path / "q.yaml").unlink()
    assert [i.iss for i in load_policy(tmp_path).passports.issuers.values()] == [DAC.iss]


def test_trust__verifying_with_two_issuers_of_one_iss_is_an_error() -> None:
    # called directly (not through the loader): whichever came last used to win
    twice = [TrustedIssuer(DAC.iss, ROGUE.jwks()), TrustedIssuer(DAC.iss, DAC.jwks())]
    with pytest.raises(ValueError, match="same iss"):
        verify_visa(_grant(ALICE, DAC), twice)
    with pytest.raises(ValueError, match="same iss"):
        verify_passport([_grant(ALICE, DAC)], twice)


# -- a JWKS URL that redirects -------------------------------------------------------------

def _serve(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def redirecting() -> Iterator[tuple[str, str]]:
    """Two origins: the configured one redirects /jwks.json to the other (which serves the
    rogue's keys under the DAC's kid) and /same.json to its own /real.json (the DAC's)."""
    rogue_keys = {"keys": [ROGUE.jwks()["keys"][0] | {"kid": DAC.kid}]}
    other = _serve({"/jwks.json": (200, {"Content-Type": "application/json"},
                                   json.dumps(rogue_keys).encode())})
    other_url = f"http://127.0.0.1:{other.server_address[1]}/jwks.json"
    home = _serve({
        "/jwks.json": (302, {"Location": other_url}, b""),
        "/same.json": (301, {"Location": "/real.json"}, b""),
        "/real.json": (200, {"Content-Type": "application/json"},
                       json.dumps(DAC.jwks()).encode()),
    })
    try:
        yield (f"http://127.0.0.1:{home.server_address[1]}", other_url)
    finally:
        for s in (home, other):
            s.shutdown()
            s.server_close()


def test_jwks__a_redirect_to_another_host_is_not_followed(redirecting: tuple[str, str]) -> None:
    home, other_url = redirecting
    forged = DAC.sign(DAC.visa_claims(ALICE, "ControlledAccessGrants", GRANT), key=ROGUE.key)
    issuer = TrustedIssuer(DAC.iss, None, jwks_url=f"{home}/jwks.json")
    with pytest.raises(VisaRefused) as exc:
        verify_visa(forged, [issuer])
    assert exc.value.reason == "issuer_keys_unavailable"
    # the keys at the other origin are the rogue's: read directly, the forgery verifies
    assert verify_visa(forged, [TrustedIssuer(DAC.iss, None, jwks_url=other_url)]).sub == ALICE


def test_jwks__no_redirect_is_followed_even_on_the_same_origin(
        redirecting: tuple[str, str]) -> None:
    home, _ = redirecting
    good = _grant(ALICE, DAC)
    with pytest.raises(VisaRefused) as exc:
        verify_visa(good, [TrustedIssuer(DAC.iss, None, jwks_url=f"{home}/same.json")])
    assert exc.value.reason == "issuer_keys_unavailable"
    assert verify_visa(good, [TrustedIssuer(DAC.iss, None,
                                            jwks_url=f"{home}/real.json")]).sub == ALICE


def test_trust__links_without_visas_is_a_lint_error(tmp_path: Path) -> None:
    DAC.write_jwks(tmp_path / "dac.jwks.json")
    (tmp_path / "p.yaml").write_text(f"""
version: 1
datasets: {{d: {{consent: {{permission: GRU}}}}}}
roles: {{r: {{datasets: [d], statistics: [presence], use: GRU, tier: controlled,
            actions: [describe_dataset]}}}}
passports:
  issuers:
    dac: {{iss: "{DAC.iss}", jwks: dac.jwks.json, signs: [links]}}
""")
    with pytest.raises(PolicyLoadError, match="issuer_links_without_visas"):
        load_policy(tmp_path)
    (tmp_path / "p.yaml").write_text((tmp_path / "p.yaml").read_text().replace(
        "[links]", "[visas, links]"))
    assert load_policy(tmp_path).passports.issuers["dac"].signs == ("visas", "links")
