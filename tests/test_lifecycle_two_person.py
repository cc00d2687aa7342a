"""Crypto-shredding needs two people, and Vault (not only GenoVault) enforces it: a key is
deleted only if a genovault-shred-request holder marked it deletable and a
genovault-shred-approve holder deletes it; an admin holding one of them cannot do the other
half, grant it to itself, or destroy key versions another way (trim). Real OpenBao."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from tests.support.baodev import DevServer
from tests.support.vaultasserts import forbidden
from tests.support.vcfgen import cohort_vcf
from vault.errors import ConfigError, VaultForbidden
from vault.ingest.pipeline import IngestResult
from vault.keys import lifecycle
from vault.keys.auth import create_user
from vault.store.dataset import Store

pytestmark = pytest.mark.integration


def _person(bao_server: DevServer, name: str, policies: list[str]) -> hvac.Client:
    create_user(bao_server.client(), name, "pw-" + name, policies)
    c = hvac.Client(url=bao_server.addr)
    c.auth.userpass.login(name, "pw-" + name)
    return c


@pytest.fixture
def people(bao_server: DevServer, bootstrapped: object) -> tuple[hvac.Client, hvac.Client]:
    tag = uuid.uuid4().hex[:6]
    alice = _person(bao_server, f"alice{tag}", ["genovault-admin", "genovault-shred-request"])
    bob = _person(bao_server, f"bob{tag}", ["genovault-admin", "genovault-shred-approve"])
    return alice, bob


def _key(bao_server: DevServer) -> tuple[str, str]:
    root = bao_server.client()
    name = f"genovault.tp{uuid.uuid4().hex[:8]}.genotypes"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    ct = root.secrets.transit.encrypt_data(
        name, plaintext=base64.b64encode(b"k" * 32).decode())["data"]["ciphertext"]
    return name, ct


def test_two_person__neither_half_alone_deletes_or_destroys_a_key(
        bao_server: DevServer, people: tuple[hvac.Client, hvac.Client]) -> None:
    alice, bob = people
    name, ct = _key(bao_server)
    k = f"/v1/transit/keys/{name}"
    # the approver cannot mark a key, nor delete an unmarked one
    forbidden(bob.adapter.post, f"{k}/config", json={"deletion_allowed": "true"})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="deletion is not allowed"):
        bob.adapter.delete(k)
    # the requester cannot delete, trim or soft-delete; nor lift any other guard
    forbidden(alice.adapter.delete, k)
    alice.adapter.post(f"{k}/rotate")  # an admin right ...
    alice.adapter.post(f"{k}/config", json={"min_decryption_version": 2,
                                           "min_encryption_version": 2})
    forbidden(alice.adapter.post, f"{k}/trim", json={"min_available_version": 2})  # ... not this
    forbidden(alice.adapter.post, f"{k}/soft-delete")
    forbidden(alice.adapter.post, f"{k}/config", json={"exportable": True})
    alice.adapter.post(f"{k}/config", json={"min_decryption_version": 1})  # reversible
    root = bao_server.client()
    assert root.secrets.transit.decrypt_data(name, ciphertext=ct)["data"]["plaintext"]
    # neither can give itself the other half: no token creation, no policy, no identity,
    # no own userpass entry, no remount of transit
    for who, other in ((alice, "genovault-shred-approve"), (bob, "genovault-shred-request")):
        forbidden(who.auth.token.create, policies=[other])
        forbidden(who.adapter.post, f"/v1/auth/token/create/{other}", json={})
        forbidden(who.adapter.post, "/v1/auth/token/create/genovault-shredder", json={})
        forbidden(who.sys.create_or_update_acl_policy, "genovault-admin",
                  'path "transit/*" { capabilities = ["sudo"] }')
        forbidden(who.adapter.post, "/v1/identity/entity", json={"policies": [other]})
        forbidden(who.adapter.post, "/v1/identity/group", json={"policies": [other]})
        user = who.lookup_token()["data"]["meta"]["username"]
        forbidden(who.adapter.post, f"/v1/auth/userpass/users/{user}",
                  json={"token_policies": [other]})
        forbidden(who.adapter.delete, "/v1/sys/mounts/transit")
        forbidden(who.adapter.post, f"/v1/transit/restore/{name}", json={"backup": "x",
                                                                          "force": True})
    # one marks, the other deletes: only both together
    alice.adapter.post(f"{k}/config", json={"deletion_allowed": "true"})
    forbidden(alice.adapter.delete, k)
    bob.adapter.delete(k)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key(name)


def test_two_person__destroy_request_marks_and_a_different_person_deletes(
        tmp_path: Path, store: Store, ingest_file: Callable[..., IngestResult],
        bao_server: DevServer, people: tuple[hvac.Client, hvac.Client]) -> None:
    alice, bob = people
    ds = f"tp-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"P{i}" for i in range(4)], 20)
    ingest_file(vcf, ds)
    keys = lifecycle._dataset_keys(store.manifest(ds))
    root = bao_server.client()
    # the approver alone cannot even file a request that marks the keys
    with pytest.raises(VaultForbidden, match="deletable"):
        lifecycle.request_destroy(store, ds, bob, marker=bob)
    assert not any(root.secrets.transit.read_key(n)["data"]["deletion_allowed"] for n in keys)
    rid = lifecycle.request_destroy(store, ds, alice, marker=alice)
    assert all(root.secrets.transit.read_key(n)["data"]["deletion_allowed"] for n in keys)
    # the requester cannot approve (GenoVault), and her token could not delete anyway (Vault)
    with pytest.raises(ConfigError, match="different admin"):
        lifecycle.approve_destroy(store, ds, rid, alice, alice)
    for n in keys:
        forbidden(alice.adapter.delete, f"/v1/transit/keys/{n}")
    done = lifecycle.approve_destroy(store, ds, rid, bob, bob)
    assert done.tombstone is not None and sorted(done.tombstone.keys) == keys
    for n in keys:
        with pytest.raises(hvac.exceptions.InvalidPath):
            root.secrets.transit.read_key(n)
