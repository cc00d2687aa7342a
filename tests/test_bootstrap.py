"""bootstrap(): idempotence, and — the main tests — what each role's token must NOT be able to do.

Every "cannot" is checked against the real OpenBao server: Vault must answer 403 Forbidden.
"""

from __future__ import annotations

import base64
import itertools
import re

import hvac
import hvac.exceptions
import pytest

from tests.support.vaultasserts import forbidden
from vault.errors import ConfigError, VaultForbidden
from vault.keys.bootstrap import (
    POLICIES,
    bootstrap,
    mint_role_token,
    query_policy_hcl,
    write_query_policy,
)
from vault.keys.transit import create_transit_key

pytestmark = pytest.mark.integration

CLASSES = ("genotypes", "sites", "samples", "footer", "pseudonym")
PLAINTEXT = base64.b64encode(b"a data key, 32 bytes long.......").decode()
_counter = itertools.count()


def fresh_dataset(prefix: str = "ds") -> str:
    """A dataset id not used by any other test in this run."""
    return f"{prefix}{next(_counter)}"


def key(ds: str, cls: str = "genotypes") -> str:
    return f"genovault.{ds}.{cls}"


@pytest.fixture
def root(bao_server, bootstrapped) -> hvac.Client:
    return bao_server.client()


@pytest.fixture
def dataset(root) -> str:
    """A dataset whose five keys exist (created by root) with one ciphertext per key."""
    ds = fresh_dataset()
    for cls in CLASSES:
        root.secrets.transit.create_key(key(ds, cls), key_type="aes256-gcm96")
    return ds


def encrypt(client: hvac.Client, name: str) -> str:
    return client.secrets.transit.encrypt_data(name, plaintext=PLAINTEXT)["data"]["ciphertext"]


# --- idempotence ---------------------------------------------------------------------------


def test_bootstrap__first_run_changed_things(bootstrapped):
    assert bootstrapped.changed_anything
    assert any("Transit" in c for c in bootstrapped.changed)
    assert any("policy genovault-ingest" in c for c in bootstrapped.changed)


def test_bootstrap__second_run_changes_nothing_and_policies_identical(root):
    before = {name: root.sys.read_acl_policy(name)["data"]["policy"] for name in POLICIES}
    report = bootstrap(root)
    assert not report.changed_anything, report.changed
    assert report.changed == []
    assert "nothing to change" in report.lines()[0]
    after = {name: root.sys.read_acl_policy(name)["data"]["policy"] for name in POLICIES}
    assert after == before
    assert all(after[name] == hcl for name, hcl in POLICIES.items())


def test_bootstrap__repairs_a_tampered_policy(root):
    root.sys.create_or_update_acl_policy(
        "genovault-ingest", 'path "transit/decrypt/*" { capabilities = ["update"] }'
    )
    try:
        report = bootstrap(root)
    finally:
        root.sys.create_or_update_acl_policy("genovault-ingest", POLICIES["genovault-ingest"])
    assert report.changed == ["updated policy genovault-ingest"]


def test_bootstrap__brings_an_existing_vault_to_the_worker_token_roles(root):
    """A Vault bootstrapped before the worker token roles (or tampered with): its service
    policy minted through genovault-query (orphans, renewable to 24 h); bootstrap repairs a
    loosened worker role, creates a missing one, and then changes nothing."""
    loose = {"allowed_policies_glob": ["genovault-*"], "orphan": True, "renewable": True,
             "token_explicit_max_ttl": 24 * 3600, "allowed_entity_aliases": ["*"]}
    old_service = ('path "transit/decrypt/genovault.*" { capabilities = ["update"] }\n'
                   'path "auth/token/create/genovault-query" { capabilities = ["update"] }\n')
    root.adapter.post("/v1/auth/token/roles/genovault-query-worker", json=loose)
    root.adapter.delete("/v1/auth/token/roles/genovault-ingest-worker")
    root.sys.create_or_update_acl_policy("genovault-service", old_service)
    try:
        report = bootstrap(root)
        again = bootstrap(root)
    finally:
        bootstrap(root)
    assert {"updated token role genovault-query-worker",
            "created token role genovault-ingest-worker",
            "updated policy genovault-service"} <= set(report.changed), report.changed
    assert again.changed == []
    for role, glob, cap in (("query-worker", "genovault-query-*", 30 * 60),
                            ("ingest-worker", "genovault-ingest-*.encrypt", 60 * 60)):
        have = root.auth.token.read_role(f"genovault-{role}")["data"]
        assert have["orphan"] is False and have["renewable"] is False
        assert have["token_explicit_max_ttl"] == cap
        assert have["allowed_policies"] == [] and have["allowed_policies_glob"] == [glob]
        assert have["token_no_default_policy"] is True and have["token_type"] == "service"
        assert not have["allowed_entity_aliases"]
    service = root.sys.read_acl_policy("genovault-service")["data"]["policy"]
    assert 'path "auth/token/create/genovault-query-worker"' in service
    assert 'path "auth/token/create/genovault-query"' not in service


@pytest.mark.parametrize("role", ["query", "ingest", "admin"])
def test_role_token__cannot_be_renewed(bao_server, root, role):
    """The role tokens (one per command run) were renewable up to 24 h, though nothing in
    GenoVault renews them: a leaked 15-minute token could be kept alive for a day. Vault now
    refuses the renewal."""
    import hvac

    from vault.keys.bootstrap import mint_role_token

    token = mint_role_token(root, role, ttl="2m")
    info = root.auth.token.lookup(token)["data"]
    assert info["renewable"] is False and 0 < info["ttl"] <= 120
    with pytest.raises(hvac.exceptions.InvalidRequest, match="not renewable"):
        bao_server.client(token).auth.token.renew_self(increment="24h")


def test_bootstrap__non_admin_token_is_forbidden(role_client):
    with pytest.raises(VaultForbidden, match="admin token"):
        bootstrap(role_client("admin"))


# --- ingest: can add data, never read it back -------------------------------------------------


def test_ingest__creates_keys_encrypts_and_hmacs(role_client, root):
    ingest = role_client("ingest")
    ds = fresh_dataset()
    for cls in CLASSES:
        create_transit_key(ingest, key(ds, cls))
        create_transit_key(ingest, key(ds, cls))  # second call is a no-op, not an error
    assert encrypt(ingest, key(ds)).startswith("vault:v1:")
    mac = ingest.secrets.transit.generate_hmac(key(ds, "pseudonym"), PLAINTEXT, key_version="1")
    assert mac["data"]["hmac"].startswith("vault:v1:")
    for cls in CLASSES:
        info = root.secrets.transit.read_key(key(ds, cls))["data"]
        assert info["type"] == "aes256-gcm96"
        assert info["exportable"] is False
        assert info["allow_plaintext_backup"] is False
        assert info["derived"] is False
        assert info["latest_version"] == 1


def test_ingest__batch_hmac_works_and_is_deterministic(role_client):
    ingest = role_client("ingest")
    ds = fresh_dataset()
    create_transit_key(ingest, key(ds, "pseudonym"))
    batch = [{"input": base64.b64encode(s.encode()).decode()} for s in ("S1", "S2", "S1")]
    resp = ingest.adapter.post(
        f"/v1/transit/hmac/{key(ds, 'pseudonym')}/sha2-256",
        json={"batch_input": batch, "key_version": "1"})
    macs = [r["hmac"] for r in resp["data"]["batch_results"]]
    assert macs[0] == macs[2] != macs[1]


def test_ingest__encrypt_on_a_new_name_creates_a_safe_key(role_client, root):
    """Encrypt-upsert is how ingest creates keys: always aes256-gcm96, never exportable."""
    ingest = role_client("ingest")
    ds = fresh_dataset()
    encrypt(ingest, key(ds))
    info = root.secrets.transit.read_key(key(ds))["data"]
    assert (info["type"], info["exportable"], info["allow_plaintext_backup"]) == (
        "aes256-gcm96", False, False)


def test_ingest__cannot_batch_encrypt_to_upsert_derived_keys(role_client, root):
    ingest = role_client("ingest")
    ds = fresh_dataset()
    forbidden(ingest.secrets.transit.encrypt_data, key(ds),
              batch_input=[{"plaintext": PLAINTEXT, "context": PLAINTEXT}])
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key(key(ds))


def test_ingest__cannot_decrypt_403(role_client, root, dataset):
    ingest = role_client("ingest")
    ciphertext = encrypt(ingest, key(dataset))
    forbidden(ingest.secrets.transit.decrypt_data, key(dataset), ciphertext=ciphertext)
    with pytest.raises(hvac.exceptions.Forbidden) as info:
        ingest.secrets.transit.decrypt_data(key(dataset), ciphertext=ciphertext)
    assert "permission denied" in str(info.value)
    # root can, so the 403 is about rights, not a broken ciphertext
    assert root.secrets.transit.decrypt_data(key(dataset), ciphertext=ciphertext)["data"][
        "plaintext"] == PLAINTEXT


def test_ingest__cannot_create_exportable_or_backup_or_other_type_keys(role_client, root):
    ingest = role_client("ingest")
    ds = fresh_dataset()
    t = ingest.secrets.transit
    forbidden(t.create_key, key(ds), key_type="aes256-gcm96", exportable=True)
    forbidden(t.create_key, key(ds), key_type="aes256-gcm96", allow_plaintext_backup=True)
    forbidden(t.create_key, key(ds), key_type="aes256-gcm96")  # no transit/keys access at all
    forbidden(t.encrypt_data, key(ds), plaintext=PLAINTEXT, type="chacha20-poly1305")
    forbidden(t.encrypt_data, key(ds), plaintext=PLAINTEXT, convergent_encryption=True)
    forbidden(t.encrypt_data, key(ds), plaintext=PLAINTEXT, context=PLAINTEXT,
              convergent_encryption=True)
    forbidden(t.encrypt_data, key(ds), plaintext=PLAINTEXT, context=PLAINTEXT,
              type="chacha20-poly1305")
    assert ds not in str(root.secrets.transit.list_keys()["data"]["keys"])


def test_ingest__a_context_upsert_makes_a_derived_never_convergent_key(role_client, root):
    """Bound datasets (schema 6) need derived keys: ingest may send ``context``, and the key
    it creates so is derived, not convergent, not exportable."""
    ingest = role_client("ingest")
    ds = fresh_dataset()
    ingest.secrets.transit.encrypt_data(key(ds), plaintext=PLAINTEXT, context=PLAINTEXT,
                                        type="aes256-gcm96")
    info = root.secrets.transit.read_key(key(ds))["data"]
    assert (info["type"], info["derived"], info["convergent_encryption"], info["exportable"],
            info["allow_plaintext_backup"]) == ("aes256-gcm96", True, False, False, False)


def test_ingest__cannot_rotate_configure_read_export_or_delete(role_client, dataset):
    t = role_client("ingest").secrets.transit
    forbidden(t.rotate_key, key(dataset))
    forbidden(t.update_key_configuration, key(dataset), min_decryption_version=1)
    forbidden(t.update_key_configuration, key(dataset), exportable=True)
    forbidden(t.update_key_configuration, key(dataset), deletion_allowed=True)
    # read is allowed (so ingest can refuse foreign keys) and shows metadata, never material
    info = t.read_key(key(dataset))["data"]
    assert set(info["keys"]) == {"1"} and isinstance(info["keys"]["1"], int)  # a timestamp
    forbidden(t.list_keys)
    forbidden(t.export_key, key(dataset), key_type="encryption-key")
    forbidden(t.backup_key, key(dataset))
    forbidden(t.delete_key, key(dataset))
    forbidden(t.trim_key, key(dataset), min_version=1)
    forbidden(t.rewrap_data, key(dataset), ciphertext="vault:v1:AAAA")
    forbidden(t.generate_data_key, key(dataset), key_type="plaintext")


def test_ingest__cannot_touch_other_paths(role_client, root):
    ingest = role_client("ingest")
    root.secrets.transit.create_key("not-genovault", key_type="aes256-gcm96")
    forbidden(ingest.secrets.transit.encrypt_data, "not-genovault", plaintext=PLAINTEXT)
    forbidden(ingest.secrets.transit.generate_hmac, "not-genovault", PLAINTEXT)
    forbidden(ingest.sys.read_acl_policy, "genovault-query")
    forbidden(ingest.sys.create_or_update_acl_policy, "x", 'path "*" { capabilities=["sudo"] }')
    forbidden(ingest.auth.token.create, role_name="genovault-query")
    forbidden(ingest.sys.list_mounted_secrets_engines)


# --- query: decrypt only ----------------------------------------------------------------------


def test_query__can_decrypt(role_client, root, dataset):
    ciphertext = encrypt(root, key(dataset))
    plain = role_client("query").secrets.transit.decrypt_data(key(dataset), ciphertext=ciphertext)
    assert plain["data"]["plaintext"] == PLAINTEXT


def test_query__cannot_encrypt_rotate_create_hmac(role_client, dataset):
    t = role_client("query").secrets.transit
    forbidden(t.encrypt_data, key(dataset), plaintext=PLAINTEXT)
    forbidden(t.rotate_key, key(dataset))
    forbidden(t.create_key, key(fresh_dataset()), key_type="aes256-gcm96")
    forbidden(t.encrypt_data, key(fresh_dataset()), plaintext=PLAINTEXT)
    forbidden(t.generate_hmac, key(dataset, "pseudonym"), PLAINTEXT)
    forbidden(t.rewrap_data, key(dataset), ciphertext="vault:v1:AAAA")
    forbidden(t.delete_key, key(dataset))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("qa{n}", "qb{n}", id="unrelated"),
        pytest.param("a{n}", "a{n}-b", id="prefix-of-other"),
        pytest.param("a{n}-b", "a{n}", id="other-is-prefix"),
        pytest.param("x{n}", "x{n}_1", id="underscore-suffix"),
    ],
)
def test_scoped_query__decrypts_only_its_own_dataset(bao_server, root, a, b):
    run = next(_counter)
    a, b = a.format(n=run), b.format(n=run)
    for ds in (a, b):
        root.secrets.transit.create_key(key(ds), key_type="aes256-gcm96")
    ct_a, ct_b = encrypt(root, key(a)), encrypt(root, key(b))
    name = f"genovault-query-only-{a}"
    assert write_query_policy(root, name, [a]) is True
    assert write_query_policy(root, name, [a]) is False  # idempotent
    token = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    t = bao_server.client(token).secrets.transit
    assert t.decrypt_data(key(a), ciphertext=ct_a)["data"]["plaintext"] == PLAINTEXT
    forbidden(t.decrypt_data, key(b), ciphertext=ct_b)
    forbidden(t.encrypt_data, key(a), plaintext=PLAINTEXT)


def test_scoped_query__two_datasets_in_one_policy(bao_server, root):
    run = next(_counter)
    mine, also, other = f"m{run}", f"m{run}-2", f"m{run}-3"
    for ds in (mine, also, other):
        root.secrets.transit.create_key(key(ds), key_type="aes256-gcm96")
    name = f"genovault-query-two-{run}"
    write_query_policy(root, name, [mine, also])
    token = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    t = bao_server.client(token).secrets.transit
    for ds in (mine, also):
        assert t.decrypt_data(key(ds), ciphertext=encrypt(root, key(ds)))["data"]["plaintext"]
    forbidden(t.decrypt_data, key(other), ciphertext=encrypt(root, key(other)))


def test_query_policy_hcl__scoped_globs_end_with_a_dot():
    hcl = query_policy_hcl(["a", "a-b"])
    assert 'path "transit/decrypt/genovault.a.*"' in hcl
    assert 'path "transit/decrypt/genovault.a-b.*"' in hcl
    paths = re.findall(r'^path "([^"]+)"', hcl, flags=re.MULTILINE)
    # decrypt for the named datasets; reading the manifest signing key and the datasets' own
    # manifest anchors (signed manifests, docs/lifecycle.md)
    assert paths == ["transit/keys/genovault.manifest",
                     "transit/decrypt/genovault.a.*", "genovault-anchors/data/manifest/a",
                     "genovault-lifecycle/manifest/a",
                     "transit/decrypt/genovault.a-b.*", "genovault-anchors/data/manifest/a-b",
                     "genovault-lifecycle/manifest/a-b"]


@pytest.mark.parametrize(
    ("name", "datasets"),
    [
        pytest.param("genovault-query-x", [], id="no-datasets"),
        pytest.param("genovault-query-x", ["a.b"], id="dot-in-dataset"),
        pytest.param("genovault-query-x", ["*"], id="glob-dataset"),
        pytest.param("genovault-admin", ["a"], id="overwrite-admin-policy"),
        pytest.param("root", ["a"], id="root-name"),
    ],
)
def test_write_query_policy__rejects_bad_input(root, name, datasets):
    with pytest.raises(ConfigError):
        write_query_policy(root, name, datasets)


# --- admin: key lifecycle, no plaintext -------------------------------------------------------


def test_admin__can_rotate_read_list_rewrap(role_client, root, dataset):
    """Admins manage existing keys (creation is ingest's encrypt-upsert; see test_keys_admin)."""
    t = role_client("admin").secrets.transit
    ciphertext = encrypt(root, key(dataset))
    t.rotate_key(key(dataset))
    assert t.read_key(key(dataset))["data"]["latest_version"] == 2
    assert key(dataset) in t.list_keys()["data"]["keys"]
    rewrapped = t.rewrap_data(key(dataset), ciphertext=ciphertext)["data"]["ciphertext"]
    assert rewrapped.startswith("vault:v2:")
    t.update_key_configuration(key(dataset), min_decryption_version=2)
    forbidden(t.update_key_configuration, key(dataset), deletion_allowed=True)
    forbidden(t.delete_key, key(dataset))


def test_admin__cannot_decrypt_encrypt_or_export(role_client, root, dataset):
    t = role_client("admin").secrets.transit
    ciphertext = encrypt(root, key(dataset))
    forbidden(t.decrypt_data, key(dataset), ciphertext=ciphertext)
    forbidden(t.encrypt_data, key(dataset), plaintext=PLAINTEXT)
    forbidden(t.generate_data_key, key(dataset), key_type="plaintext")
    forbidden(t.update_key_configuration, key(dataset), exportable=True)
    forbidden(t.update_key_configuration, key(dataset), allow_plaintext_backup=True)
    forbidden(t.create_key, key(fresh_dataset()), key_type="aes256-gcm96", exportable=True)
    forbidden(t.export_key, key(dataset), key_type="encryption-key")
    forbidden(t.backup_key, key(dataset))
    assert root.secrets.transit.read_key(key(dataset))["data"]["exportable"] is False


# --- default policy only: no transit at all ---------------------------------------------------


def test_default_policy_token__no_transit_at_all(bao_server, root, dataset):
    token = root.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    client = bao_server.client(token)
    assert client.auth.token.lookup_self()["data"]["policies"] == ["default"]
    t = client.secrets.transit
    ciphertext = encrypt(root, key(dataset))
    forbidden(t.encrypt_data, key(dataset), plaintext=PLAINTEXT)
    forbidden(t.encrypt_data, key(fresh_dataset()), plaintext=PLAINTEXT)
    forbidden(t.decrypt_data, key(dataset), ciphertext=ciphertext)
    forbidden(t.generate_hmac, key(dataset, "pseudonym"), PLAINTEXT)
    forbidden(t.create_key, key(fresh_dataset()), key_type="aes256-gcm96")
    forbidden(t.read_key, key(dataset))
    forbidden(t.list_keys)
    forbidden(t.rotate_key, key(dataset))
    forbidden(t.rewrap_data, key(dataset), ciphertext=ciphertext)


# --- auth roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["ingest", "query", "admin"])
def test_mint_role_token__has_exactly_the_role_policy(bao_server, root, role):
    token = mint_role_token(root, role, ttl="5m")
    info = bao_server.client(token).auth.token.lookup_self()["data"]
    assert info["policies"] == [f"genovault-{role}"]  # no default policy
    assert info["orphan"] is True
    assert 0 < info["ttl"] <= 300


def test_mint_role_token__role_token_cannot_mint_tokens(role_client):
    for role in ("ingest", "query", "admin"):
        with pytest.raises(VaultForbidden):
            mint_role_token(role_client(role), "admin")


def test_mint_role_token__unknown_role_is_config_error(root):
    with pytest.raises(ConfigError):
        mint_role_token(root, "researcher")


def test_approle__pipeline_login_gets_ingest_policy(bao_server, root):
    role_id = root.auth.approle.read_role_id("genovault-ingest")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("genovault-ingest")["data"]["secret_id"]
    pipeline = hvac.Client(url=bao_server.addr)
    login = pipeline.auth.approle.login(role_id=role_id, secret_id=secret_id, use_token=False)
    assert login["auth"]["token_policies"] == ["genovault-ingest"]
    assert login["auth"]["lease_duration"] <= 3600
