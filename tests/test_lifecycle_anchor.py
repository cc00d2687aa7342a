"""The manifest version anchor (KV v2, version = manifest version, check-and-set): an ingest
or admin token cannot rewind it to replay an older signed manifest, and datasets anchored the
old way (KV v1) keep reading and move over on their next commit. Against a real OpenBao."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest

from tests.support.baodev import DevServer
from tests.support.vaultasserts import forbidden
from tests.support.vcfgen import cohort_vcf
from vault.errors import IntegrityError
from vault.ingest.pipeline import IngestResult
from vault.keys import signing
from vault.keys.anchor import ANCHOR_MOUNT, AnchorConflict
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import Keyring
from vault.keys.names import LIFECYCLE_MOUNT
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration


@pytest.fixture
def dataset(tmp_path: Path, ingest_file: Callable[..., IngestResult]) -> str:
    ds = f"anc-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"S{i}" for i in range(8)], 60, chrom="1",
                        step=50_000)
    ingest_file(vcf, ds, bin_size=50_000_000)
    signing.forget()
    return ds


@pytest.fixture
def root_client(bao_server: DevServer, bootstrapped: object) -> hvac.Client:
    return bao_server.client()


def _read(store: Store, ds: str, client: hvac.Client) -> DatasetReader:
    signing.forget()  # a fresh reader process: it asks Vault's anchor
    return DatasetReader(store, ds, Keyring(client, ds))


def _recommit(store: Store, ds: str, client: hvac.Client) -> None:
    m = store.manifest(ds)
    signing.commit_signed(store, ds, m, client, m)


def test_manifest_anchor__cannot_be_rewound_to_replay_an_old_manifest(
        store: Store, dataset: str, bao_server: DevServer, root_client: hvac.Client) -> None:
    ingest = bao_server.client(mint_role_token(root_client, "ingest", dataset=dataset))
    admin = bao_server.client(mint_role_token(root_client, "admin"))
    path = store.dataset_dir(dataset) / fmt.MANIFEST
    v1 = path.read_bytes()
    v1_anchor = signing.read_anchor(root_client, dataset)
    _recommit(store, dataset, ingest)
    assert signing.read_anchor(root_client, dataset)[0] == 2
    path.write_bytes(v1)  # replay the genuine, signed version 1
    for client in (ingest, admin):
        entry = signing.anchor_entry(client, dataset)
        with pytest.raises(AnchorConflict):
            entry.write(1, {"version": 1, "sha256": v1_anchor[1], "uid": "x"})
        key = entry.key
        forbidden(client.adapter.delete, f"/v1/{ANCHOR_MOUNT}/data/{key}")
        forbidden(client.adapter.delete, f"/v1/{ANCHOR_MOUNT}/metadata/{key}")
        forbidden(client.adapter.post, f"/v1/{ANCHOR_MOUNT}/destroy/{key}",
                  json={"versions": [2]})
        forbidden(client.adapter.post, f"/v1/{ANCHOR_MOUNT}/metadata/{key}",
                  json={"max_versions": 1})
        forbidden(client.adapter.post, f"/v1/{LIFECYCLE_MOUNT}/manifest/{dataset}",
                  json={"version": 1, "sha256": v1_anchor[1]})  # the legacy entry too
    with pytest.raises(IntegrityError, match="version 2 was committed"):
        _read(store, dataset, root_client)
    # a raw write on top claiming version 1 lands as KV version 3: refused as rewritten
    ingest.adapter.post(f"/v1/{ANCHOR_MOUNT}/data/manifest/{dataset}",
                        json={"options": {"cas": 2},
                              "data": {"version": 1, "sha256": v1_anchor[1]}})
    with pytest.raises(IntegrityError, match="KV version 3 but claims version 1"):
        _read(store, dataset, root_client)


def test_manifest_anchor__legacy_dataset_reads_and_moves_over_on_commit(
        store: Store, dataset: str, bao_server: DevServer, root_client: hvac.Client) -> None:
    anchored = signing.read_anchor(root_client, dataset)
    assert anchored is not None and anchored[0] == 1
    # as committed before anchors moved to KV v2: only the KV v1 entry exists
    signing.anchor_entry(root_client, dataset).reset()
    root_client.secrets.kv.v1.create_or_update_secret(
        path=f"manifest/{dataset}", mount_point=LIFECYCLE_MOUNT, method="PUT",
        secret={"version": 1, "sha256": anchored[1], "uid": store.manifest(dataset).uid})
    try:
        assert signing.read_anchor(root_client, dataset) == anchored
        assert _read(store, dataset, root_client).n_samples == 8
        ingest = bao_server.client(mint_role_token(root_client, "ingest", dataset=dataset))
        _recommit(store, dataset, ingest)
        entry = signing.anchor_entry(root_client, dataset)
        cur = entry.read()
        assert cur is not None and cur[0] == 2
        assert [v for v, _d in entry.history(2)] == [1]
        assert entry.history(2)[0][1]["sha256"] == anchored[1]  # the legacy digest, kept
        assert _read(store, dataset, root_client).n_samples == 8
    finally:
        root_client.secrets.kv.v1.delete_secret(path=f"manifest/{dataset}",
                                                mount_point=LIFECYCLE_MOUNT)
