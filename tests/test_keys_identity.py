"""Identities for the query service: userpass users, AppRole service/auditor policies,
lookup_token with the caller's own token. Against the real OpenBao."""

from __future__ import annotations

import base64
import uuid

import hvac
import hvac.exceptions
import pytest

from tests.support.baodev import dev_server, free_port
from tests.support.vaultasserts import forbidden
from vault.errors import ConfigError, VaultDown, VaultUnauthenticated
from vault.keys.auth import approle_credentials, approle_login, create_user, lookup_token
from vault.keys.kms import Keyring

pytestmark = pytest.mark.integration
PLAINTEXT = base64.b64encode(b"k").decode()


@pytest.fixture
def root(bao_server, bootstrapped) -> hvac.Client:
    return bao_server.client()


def test_userpass_user__logs_in_and_lookup_token_shows_its_policies(bao_server, root):
    create_user(root, "alice", "correct horse battery", ["genovault-auditor"])
    login = hvac.Client(url=bao_server.addr).auth.userpass.login(
        "alice", "correct horse battery", use_token=False)
    token = login["auth"]["client_token"]
    root.secrets.identity.create_or_update_group(
        "gv-researchers", policies=["genovault-query-none"],
        member_entity_ids=[login["auth"]["entity_id"]])
    who = lookup_token(bao_server.addr, token)
    assert who["display_name"] == "userpass-alice"
    assert who["entity_id"] == login["auth"]["entity_id"]
    assert "genovault-auditor" in who["token_policies"]
    assert who["identity_policies"] == ["genovault-query-none"]
    assert set(who["policies"]) >= {"genovault-auditor", "genovault-query-none"}
    assert who["meta"] == {"username": "alice"}
    assert 0 < who["ttl"] <= 8 * 3600 and who["expire_time"]
    # OpenBao's default policy reads its own entity (group ids) but not the groups' names
    group_id = root.secrets.identity.read_group_by_name("gv-researchers")["data"]["id"]
    assert who["groups"] == [group_id]
    assert token not in repr(who)


def test_lookup_token__groups_when_the_token_may_read_its_entity(bao_server, root):
    root.sys.create_or_update_acl_policy("gv-self-identity", '''
path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }
path "identity/group/id/*" { capabilities = ["read"] }
''')
    create_user(root, "bob", "another long password", ["gv-self-identity"])
    login = hvac.Client(url=bao_server.addr).auth.userpass.login(
        "bob", "another long password", use_token=False)
    root.secrets.identity.create_or_update_group(
        "gv-cohort-a", member_entity_ids=[login["auth"]["entity_id"]])
    assert lookup_token(bao_server.addr, login["auth"]["client_token"])["groups"] == [
        "gv-cohort-a"]


def test_lookup_token__revoked_token_is_unauthenticated(bao_server, root):
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    root.auth.token.revoke(token)
    with pytest.raises(VaultUnauthenticated) as info:
        lookup_token(bao_server.addr, token)
    assert token not in str(info.value)
    with pytest.raises(VaultUnauthenticated):
        lookup_token(bao_server.addr, "s.not-a-token-at-all")


def test_lookup_token__unreachable_and_sealed_are_vaultdown(tmp_path):
    with pytest.raises(VaultDown):
        lookup_token(f"http://127.0.0.1:{free_port()}", "s.whatever")
    with dev_server(tmp_path) as server:
        token = server.client().auth.token.create(ttl="5m")["auth"]["client_token"]
        server.client().sys.seal()
        with pytest.raises(VaultDown):
            lookup_token(server.addr, token)


def test_create_user__rejects_bad_names(root):
    with pytest.raises(ConfigError):
        create_user(root, "../root", "pw", [])
    with pytest.raises(ConfigError):
        create_user(root, "carol", "", [])


def test_service_approle__decrypts_reads_keys_anchors_audit_and_nothing_else(bao_server, root):
    role_id, secret_id = approle_credentials(root, "service")
    token = approle_login(bao_server.addr, role_id, secret_id)
    svc = bao_server.client(token)
    assert lookup_token(bao_server.addr, token)["token_policies"] == ["genovault-service"]
    ds = "svc1"
    Keyring(root, ds).ensure_keys()
    name = f"genovault.{ds}.genotypes"
    ct = root.secrets.transit.encrypt_data(name, plaintext=PLAINTEXT)["data"]["ciphertext"]
    t = svc.secrets.transit
    assert t.decrypt_data(name, ciphertext=ct)["data"]["plaintext"] == PLAINTEXT
    assert t.read_key(name)["data"]["latest_version"] == 1
    head = f"/v1/genovault-anchors/data/audit/svc-{uuid.uuid4().hex}"
    svc.adapter.post(head, json={"options": {"cas": 0}, "data": {"seq": 1, "hash": "abc"}})
    assert svc.adapter.get(head)["data"]["data"]["hash"] == "abc"
    forbidden(svc.adapter.post, "/v1/genovault-audit/chain/head", json={"head": "abc"})
    forbidden(t.encrypt_data, name, plaintext=PLAINTEXT)
    forbidden(t.generate_hmac, f"genovault.{ds}.pseudonym", PLAINTEXT)
    forbidden(t.rotate_key, name)
    forbidden(t.list_keys)
    forbidden(svc.adapter.post, f"/v1/genovault-registry/{ds}/ab/cd", json={"r": "1"})
    forbidden(svc.adapter.delete, head)
    forbidden(svc.adapter.delete, head.replace("/data/", "/metadata/"))
    forbidden(svc.adapter.post, head.replace("/data/", "/destroy/"), json={"versions": [1]})
    forbidden(svc.adapter.list, "/v1/genovault-anchors/metadata/audit")
    forbidden(svc.adapter.list, "/v1/genovault-audit/chain")
    forbidden(svc.sys.read_acl_policy, "genovault-service")
    forbidden(svc.auth.token.create, policies=["genovault-service"])


def test_auditor_policy__reads_the_anchor_only(bao_server, root):
    root.adapter.post("/v1/genovault-audit/chain/head2", json={"head": "def"})
    head = f"/v1/genovault-anchors/data/audit/aud-{uuid.uuid4().hex}"
    root.adapter.post(head, json={"options": {"cas": 0}, "data": {"seq": 1, "hash": "def"}})
    token = root.auth.token.create(policies=["genovault-auditor"], no_default_policy=True,
                                   ttl="5m")["auth"]["client_token"]
    aud = bao_server.client(token)
    assert aud.adapter.get("/v1/genovault-audit/chain/head2")["data"]["head"] == "def"
    assert aud.adapter.get(head)["data"]["data"]["hash"] == "def"
    forbidden(aud.adapter.post, "/v1/genovault-audit/chain/head2", json={"head": "x"})
    forbidden(aud.adapter.post, head, json={"options": {"cas": 1}, "data": {"seq": 2}})
    forbidden(aud.adapter.delete, "/v1/genovault-audit/chain/head2")
    forbidden(aud.secrets.transit.decrypt_data, "genovault.svc1.genotypes",
              ciphertext="vault:v1:AAAA")


def test_approle_login__bad_secret_is_unauthenticated(bao_server, root):
    role_id, _ = approle_credentials(root, "service")
    with pytest.raises(VaultUnauthenticated):
        approle_login(bao_server.addr, role_id, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(ConfigError):
        approle_credentials(root, "superuser")


def test_bootstrap__mounts_userpass_and_audit_kv(root):
    assert root.sys.list_auth_methods()["data"]["userpass/"]["type"] == "userpass"
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    audit = mounts["genovault-audit/"]
    assert audit["type"] == "kv" and (audit.get("options") or {}).get("version") != "2"
    anchors = mounts["genovault-anchors/"]
    assert anchors["type"] == "kv" and anchors["options"]["version"] == "2"
    config = root.adapter.get("/v1/genovault-anchors/config")["data"]
    assert config["cas_required"] is True and config["max_versions"] == 32
