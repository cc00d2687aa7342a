"""Part D of the lifecycle: crypto-shredding with two different admins. Afterwards nothing
decrypts — from copies of every file and key material, even with the root token."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import pyarrow.parquet as pq
import pytest

from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf
from vault.errors import ConfigError, DatasetNotFound, GenoVaultError, IngestError, VaultForbidden
from vault.ingest.pipeline import IngestResult
from vault.keys import lifecycle, signing
from vault.keys.auth import create_user
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import Keyring, place_context, wrapped_keys
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration


def _admin(bao_server: DevServer, name: str) -> hvac.Client:
    root = bao_server.client()
    create_user(root, name, "pw-" + name, ["genovault-admin"])
    c = hvac.Client(url=bao_server.addr)
    c.auth.userpass.login(name, "pw-" + name)
    return c


def test_destroy__two_admins_then_nothing_decrypts_even_for_root(
        tmp_path: Path, store: Store, ingest_file: Callable[..., IngestResult],
        bao_server: DevServer, query_client: hvac.Client) -> None:
    ds = f"del-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"D{i}" for i in range(8)], 100)
    ingest_file(vcf, ds)
    folder = store.dataset_dir(ds)
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    m = store.manifest(ds)
    alice, bob = _admin(bao_server, f"alice{ds[-4:]}"), _admin(bao_server, f"bob{ds[-4:]}")
    events: list[dict] = []
    rid = lifecycle.request_destroy(store, ds, alice, audit=events.append)
    with pytest.raises(ConfigError, match="different admin"):
        lifecycle.approve_destroy(store, ds, rid, alice, bao_server.client())
    with pytest.raises(ConfigError, match="not the open request"):
        lifecycle.approve_destroy(store, ds, "0" * 16, bob, bao_server.client())
    # an admin's own rights can neither mark nor delete keys: refused before anything is
    # committed
    with pytest.raises(VaultForbidden, match="deletable"):
        lifecycle.approve_destroy(store, ds, rid, bob, bob)
    assert store.manifest(ds).tombstone is None
    shredder = bao_server.client(mint_role_token(bao_server.client(), "shredder"))
    done = lifecycle.approve_destroy(store, ds, rid, bob, shredder, audit=events.append)
    assert done.tombstone is not None and done.tombstone.approved_by.display_name.endswith(
        f"bob{ds[-4:]}")
    assert done.tombstone.requested_by.display_name.endswith(f"alice{ds[-4:]}")
    assert not (folder / "batches").exists()
    assert [e["command"] for e in events] == ["datasets destroy --request",
                                              "datasets destroy --approve"]
    with pytest.raises(DatasetNotFound, match="destroyed"):
        DatasetReader(store, ds, Keyring(query_client, ds))
    with pytest.raises(IngestError, match="destroyed"):
        ingest_file(vcf, ds)
    # every key is gone; root cannot unwrap any stored wrapped key
    root = bao_server.client()
    assert m.batches[0].genotype_key in done.tombstone.keys
    for name in [*m.keys.values(), m.batches[0].genotype_key]:
        with pytest.raises(hvac.exceptions.InvalidPath):
            root.secrets.transit.read_key(name=name)
    restored = tmp_path / "restored"
    rs = Store(restored)
    shutil.copytree(backup, rs.dataset_dir(ds))
    opened = 0
    for f in m.files():
        path = rs.dataset_dir(ds) / f.path
        assert f.file_id is not None  # a bound dataset: the file's own context, as a reader
        context = base64.b64encode(place_context(ds, f.file_id).encode()).decode()
        for master, wrapped in wrapped_keys(str(path.parent /
                                                f"_KEY_MATERIAL_FOR_{path.name}.json")):
            with pytest.raises((hvac.exceptions.InvalidPath,
                                hvac.exceptions.InvalidRequest)) as gone:
                root.secrets.transit.decrypt_data(name=master, ciphertext=wrapped,
                                                  context=context)
            # the key itself is gone (not a wrong context or ciphertext)
            assert isinstance(gone.value, hvac.exceptions.InvalidPath) or \
                "encryption key not found" in str(gone.value)
        kr = Keyring(root, ds)
        with pytest.raises((GenoVaultError, OSError)):
            pq.ParquetFile(str(path), decryption_properties=kr.decryption_properties(
                str(path), f.file_id)).read()
        opened += 1
    assert opened == len(m.files())
    signing.forget()
    with pytest.raises(GenoVaultError):  # the old manifest: rolled back, and keys missing
        DatasetReader(rs, ds, Keyring(root, ds)).samples()
    assert "wrapped" not in json.dumps(events)


def test_destroy__query_token_cannot_request(tmp_path: Path, store: Store,
                                             ingest_file: Callable[..., IngestResult],
                                             query_client: hvac.Client) -> None:
    ds = f"del-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"D{i}" for i in range(4)], 20)
    ingest_file(vcf, ds)
    with pytest.raises(VaultForbidden):
        lifecycle.request_destroy(store, ds, query_client)


def test_destroy__also_shreds_a_compacted_batchs_old_genotypes_key(
        tmp_path: Path, store: Store, ingest_file: Callable[..., IngestResult],
        bao_server: DevServer, query_client: hvac.Client, role_client) -> None:
    """A batch compacted without --shred-old-keys gets a new genotypes key; the manifest no
    longer names the old one, which still wraps a backup of the old files (the withdrawn
    samples' genotypes). Destruction used to leave that key in Vault."""
    ds = f"dlc-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"D{i}" for i in range(8)], 100)
    ingest_file(vcf, ds)
    old_key = store.manifest(ds).batches[0].genotype_key
    assert old_key
    lifecycle.withdraw(store, ds, role_client("admin"), ["D3"])
    lifecycle.compact(store, ds, query_client, role_client("ingest"))
    assert old_key not in store.manifest(ds).transit_keys("genotypes")
    root = bao_server.client()
    assert root.secrets.transit.read_key(name=old_key)  # still there after compaction
    alice, bob = _admin(bao_server, f"alice{ds[-4:]}"), _admin(bao_server, f"bob{ds[-4:]}")
    marker = bao_server.client(mint_role_token(root, "shred-request"))
    rid = lifecycle.request_destroy(store, ds, alice, marker=marker)
    approver = bao_server.client(mint_role_token(root, "shred-approve"))
    done = lifecycle.approve_destroy(store, ds, rid, bob, approver)
    assert done.tombstone is not None and old_key in done.tombstone.keys
    # nor is the tombstone listed as a dataset (the API's list, Beacon collections)
    assert ds not in store.list() and ds in store.scan().destroyed
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key(name=old_key)


def test_destroy__a_running_query_service_drops_what_it_held(
        tmp_path: Path, store: Store, ingest_file: Callable[..., IngestResult],
        bao_server: DevServer, query_client: hvac.Client) -> None:
    """A long-running service (the API) kept a destroyed dataset's decrypted partitions,
    counts and cached KEKs in memory (only evicted by other datasets' use): the next request
    raised DatasetNotFound before the caches of the old version were dropped."""
    from vault.query.service import Disclosure, QueryService, Selection

    ds = f"dq-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"Q{i}" for i in range(12)], 80)
    ingest_file(vcf, ds)
    svc = QueryService(store, lambda: query_client)
    svc.statistic(ds, "frequency", Selection(), None, Disclosure(k=1, min_group_size=1))
    assert svc.blocks.bytes > 0 and svc.counts_cache.bytes > 0 and ds in svc._keyrings
    alice, bob = _admin(bao_server, f"alice{ds[-4:]}"), _admin(bao_server, f"bob{ds[-4:]}")
    rid = lifecycle.request_destroy(store, ds, alice)
    shredder = bao_server.client(mint_role_token(bao_server.client(), "shredder"))
    lifecycle.approve_destroy(store, ds, rid, bob, shredder)
    with pytest.raises(DatasetNotFound, match="destroyed"):
        svc.statistic(ds, "frequency", Selection(), None, Disclosure())
    assert svc.blocks.bytes == 0 and svc.counts_cache.bytes == 0
    assert ds not in svc._keyrings and ds not in svc._versions
