"""Finding "ingest tokens are a pseudonym oracle" (HIGH) and "minted role tokens" (LOW).

A dataset-scoped ingest token (mint_role_token(..., dataset=...)) may HMAC, encrypt and register
for its dataset only; minted tokens carry no default policy, live 15 minutes, record who minted
them, and session() revokes them. Vault's audit device records every HMAC and registry request.
All against the real OpenBao.
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from tests.support.baodev import dev_server
from tests.support.vaultasserts import forbidden
from vault.errors import ConfigError, VaultUnauthenticated
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys.bootstrap import bootstrap, mint_role_token
from vault.keys.client import session, token_identity
from vault.keys.kms import Keyring
from vault.keys.transit import create_transit_key
from vault.settings import load_settings
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

PLAINTEXT = base64.b64encode(b"S1").decode()
VCF = b"""##fileformat=VCFv4.2
##contig=<ID=1,length=1000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tSAMPLE_ALPHA\tSAMPLE_BETA
1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1
1\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/1
"""
_n = itertools.count()


def fresh(prefix: str = "scope") -> str:
    return f"{prefix}{next(_n)}"


@pytest.fixture
def root(bao_server, bootstrapped) -> hvac.Client:
    return bao_server.client()


def scoped(bao_server, root, dataset: str) -> hvac.Client:
    return bao_server.client(mint_role_token(root, "ingest", dataset=dataset))


# --- per-dataset ingest tokens ----------------------------------------------------------------


def test_scoped_ingest__has_only_its_dataset_policy(bao_server, root):
    ds = fresh()
    info = scoped(bao_server, root, ds).auth.token.lookup_self()["data"]
    assert info["policies"] == [f"genovault-ingest-{ds}"]
    assert info["meta"]["dataset"] == ds
    assert 0 < info["ttl"] <= 15 * 60


def test_scoped_ingest__can_ingest_its_dataset(bao_server, root, store, tmp_path):
    ds = fresh()
    vcf = tmp_path / "in.vcf"
    vcf.write_bytes(VCF)
    res = ingest(vcf, ds, client=scoped(bao_server, root, ds), store=store,
                 options=IngestOptions(progress=False))
    assert res.dataset == ds and store.exists(ds)


@pytest.mark.parametrize(("mine", "other"), [("p{n}", "q{n}"), ("a{n}", "a{n}-b"),
                                             ("a{n}-b", "a{n}")])
def test_scoped_ingest__cannot_touch_another_dataset(bao_server, root, mine, other):
    """The oracle: with a token of dataset `mine`, HMAC ids under `other`'s pseudonym key and
    probe `other`'s registry. Every step must be a 403."""
    n = next(_n)
    mine, other = mine.format(n=n), other.format(n=n)
    Keyring(root, other).ensure_keys()
    client = scoped(bao_server, root, mine)
    t = client.secrets.transit
    okey = f"genovault.{other}.pseudonym"
    forbidden(t.generate_hmac, okey, PLAINTEXT)
    forbidden(client.adapter.post, f"/v1/transit/hmac/{okey}/sha2-256",
              json={"batch_input": [{"input": PLAINTEXT}], "key_version": "1"})
    forbidden(t.encrypt_data, f"genovault.{other}.genotypes", plaintext=PLAINTEXT)
    forbidden(t.encrypt_data, f"genovault.{other}x.genotypes", plaintext=PLAINTEXT)  # new name
    forbidden(t.read_key, f"genovault.{other}.genotypes")
    forbidden(client.adapter.post, f"/v1/genovault-registry/{other}/ab/cd",
              json={"registered": "1"})
    forbidden(client.adapter.delete, f"/v1/genovault-registry/{other}/ab/cd")
    # and its own dataset works
    create_transit_key(client, f"genovault.{mine}.pseudonym")
    assert t.generate_hmac(f"genovault.{mine}.pseudonym", PLAINTEXT, key_version="1")


def test_scoped_ingest__hmac_only_with_the_pseudonym_key_version_1(bao_server, root):
    ds = fresh()
    client = scoped(bao_server, root, ds)
    Keyring(client, ds).ensure_keys()
    t = client.secrets.transit
    forbidden(t.generate_hmac, f"genovault.{ds}.genotypes", PLAINTEXT)  # not the pseudonym key
    root.secrets.transit.rotate_key(f"genovault.{ds}.pseudonym")
    forbidden(t.generate_hmac, f"genovault.{ds}.pseudonym", PLAINTEXT, key_version=2)
    # without key_version Transit would use the latest version (v2): key_version is required
    forbidden(t.generate_hmac, f"genovault.{ds}.pseudonym", PLAINTEXT)
    forbidden(client.adapter.post, f"/v1/transit/hmac/genovault.{ds}.pseudonym/sha2-256",
              json={"batch_input": [{"input": PLAINTEXT}]})
    assert t.generate_hmac(f"genovault.{ds}.pseudonym", PLAINTEXT,
                           key_version="1")["data"]["hmac"].startswith("vault:v1:")
    forbidden(client.adapter.get, f"/v1/genovault-registry/{ds}/ab/cd")  # never read
    forbidden(client.adapter.list, f"/v1/genovault-registry/{ds}")  # never list
    forbidden(t.decrypt_data, f"genovault.{ds}.sites", ciphertext="vault:v1:AAAA")


def test_scoped_ingest__cannot_mint_or_write_policies(bao_server, root):
    client = scoped(bao_server, root, fresh())
    forbidden(client.sys.create_or_update_acl_policy, "genovault-ingest-x", 'path "*" {}')
    forbidden(client.auth.token.create, role_name="genovault-ingest", policies=["x"])


def test_mint_role_token__dataset_only_for_ingest(root):
    # ingest and query tokens can be scoped to one dataset (query: tests/test_lifecycle_sign.py)
    with pytest.raises(ConfigError, match="ingest and query roles only"):
        mint_role_token(root, "admin", dataset="x")
    with pytest.raises(ConfigError):
        mint_role_token(root, "ingest", dataset="bad.id")


def test_token_role__refuses_policies_outside_its_allowed_set(root):
    with pytest.raises(hvac.exceptions.InvalidRequest, match="subset"):
        root.auth.token.create(role_name="genovault-ingest", policies=["genovault-admin"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="subset"):
        root.auth.token.create(role_name="genovault-ingest", policies=["default"])


# --- minted tokens: no default policy, short, attributed, revoked -----------------------------


@pytest.mark.parametrize("role", ["ingest", "query", "admin"])
def test_minted_token__no_default_policy_and_short(bao_server, root, role):
    client = bao_server.client(mint_role_token(root, role))
    info = client.auth.token.lookup_self()["data"]
    assert "default" not in info["policies"]
    assert 0 < info["ttl"] <= 15 * 60
    minter = root.auth.token.lookup_self()["data"]
    assert info["meta"]["minted_by"] == minter["display_name"]
    forbidden(client.adapter.get, "/v1/cubbyhole/x")  # a default-policy right
    forbidden(client.adapter.post, "/v1/sys/wrapping/wrap", json={"a": "b"})


def test_session__revokes_the_token_it_minted(bao_server, root, monkeypatch, tmp_path):
    """Embedded-style session: monkeypatched credentials point at the test server."""
    import vault.keys.embedded as embedded_mod

    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("GENOVAULT_HOME", str(tmp_path))
    monkeypatch.setattr(embedded_mod, "read_embedded_credentials",
                        lambda home: (bao_server.addr, bao_server.root_token))
    ds = fresh()
    with session(load_settings(), "ingest", dataset=ds) as client:
        ident = token_identity(client)
        assert ident["policies"] == [f"genovault-ingest-{ds}"]
        assert ident["on_behalf_of"] == root.auth.token.lookup_self()["data"]["display_name"]
        token = client.token
    with pytest.raises(hvac.exceptions.Forbidden):
        bao_server.client(token).auth.token.lookup_self()
    with pytest.raises(VaultUnauthenticated):
        token_identity(bao_server.client(token))


def test_session__revokes_even_when_the_block_fails(bao_server, root, monkeypatch, tmp_path):
    import vault.keys.embedded as embedded_mod

    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("GENOVAULT_HOME", str(tmp_path))
    monkeypatch.setattr(embedded_mod, "read_embedded_credentials",
                        lambda home: (bao_server.addr, bao_server.root_token))
    token = ""
    with pytest.raises(RuntimeError), session(load_settings(), "query") as client:
        token = client.token
        raise RuntimeError("boom")
    with pytest.raises(hvac.exceptions.Forbidden):
        bao_server.client(token).auth.token.lookup_self()


def test_session__never_revokes_the_callers_own_token(bao_server, root, monkeypatch):
    own = root.auth.token.create(policies=["genovault-query"], ttl="10m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_ADDR", bao_server.addr)
    monkeypatch.setenv("VAULT_TOKEN", own)
    with session(load_settings(), "ingest", dataset="whatever") as client:
        assert client.token == own
    assert bao_server.client(own).auth.token.lookup_self()["data"]["policies"]


# --- the Vault audit device records HMAC and registry requests --------------------------------


def test_audit_device__records_hmac_and_registry_requests(tmp_path: Path):
    audit = tmp_path / "audit.log"
    with dev_server(tmp_path, audit_path=audit) as server:
        root = server.client()
        report = bootstrap(root, audit_path=audit)
        assert any("audit device(s) genovault/" in u for u in report.unchanged)
        assert not report.warnings
        ds = "audited"
        client = server.client(mint_role_token(root, "ingest", dataset=ds))
        vcf = tmp_path / "in.vcf"
        vcf.write_bytes(VCF)
        ingest(vcf, ds, client=client, store=Store(tmp_path / "store"),
               options=IngestOptions(progress=False))
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    requests_ = [e for e in lines if e["type"] == "request"]
    hmacs = [e for e in requests_ if e["request"]["path"].startswith(
        f"transit/hmac/genovault.{ds}.pseudonym")]
    registry = [e for e in requests_ if e["request"]["path"].startswith(
        f"genovault-registry/{ds}/")]
    assert hmacs and len(registry) == 2  # one create per sample
    for e in hmacs + registry:
        assert e["auth"]["policies"] == [f"genovault-ingest-{ds}"]
        assert e["auth"]["metadata"]["dataset"] == ds
        assert e["auth"]["client_token"].startswith("hmac-sha256:")
    batch = hmacs[0]["request"]["data"]["batch_input"]
    assert all(item["input"].startswith("hmac-sha256:") for item in batch)
    text = audit.read_text()
    for secret in ("SAMPLE_ALPHA", "SAMPLE_BETA",
                   base64.b64encode(b"SAMPLE_ALPHA").decode()):
        assert secret not in text  # sample ids only ever hashed


def test_bootstrap__warns_when_vault_has_no_audit_device(root):
    devices = root.sys.list_enabled_audit_devices()["data"]
    report = bootstrap(root)
    if devices:
        pytest.skip("the shared dev server has an audit device")
    assert any("no audit device" in w for w in report.warnings)
    assert any(line.startswith("WARNING:") for line in report.lines())


def test_bootstrap__audit_path_on_openbao_says_what_to_configure(root, tmp_path):
    """OpenBao refuses API-enabled audit devices: bootstrap reports the config stanza."""
    if root.sys.list_enabled_audit_devices()["data"]:
        pytest.skip("the shared dev server has an audit device")
    report = bootstrap(root, audit_path=tmp_path / "audit.log")
    assert any('audit "file" "genovault"' in w and str(tmp_path) in w for w in report.warnings)
    assert not root.sys.list_enabled_audit_devices()["data"]
