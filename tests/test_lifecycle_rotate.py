"""Part B of the lifecycle: key rotation by Transit rewrap, without rewriting any Parquet file.
Against a real OpenBao; the crash test SIGKILLs a real rotation subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import numpy as np
import pytest

from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf
from vault.errors import IntegrityError, VaultForbidden
from vault.ingest.pipeline import IngestResult
from vault.keys import lifecycle, signing
from vault.keys.kms import Keyring, key_material_path, wrapped_keys
from vault.store.dataset import Store
from vault.store.fsutil import sha256_file
from vault.store.reader import DatasetReader

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration

KILL_DURING_ROTATION = """
import os, signal, sys
from pathlib import Path
import hvac
from vault.keys import lifecycle
from vault.store.dataset import Store
written = [0]
original = lifecycle._write_key_material
def write(km, text):
    original(km, text)
    written[0] += 1
    if written[0] >= int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
lifecycle._write_key_material = write
client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
lifecycle.rotate(Store(Path(sys.argv[1])), sys.argv[2], client, data_class="all")
"""


@pytest.fixture
def dataset(tmp_path: Path, ingest_file: Callable[..., IngestResult]) -> str:
    ds = f"rot-{uuid.uuid4().hex[:8]}"
    for i, seed in enumerate((1, 2)):
        vcf, _ = cohort_vcf(tmp_path / f"{i}.vcf", [f"R{i}_{j}" for j in range(10)], 200,
                            seed=seed, chrom="1", step=40_000)
        ingest_file(vcf, ds, bin_size=1_000_000)
    return ds


def _genotypes(store: Store, ds: str, client: hvac.Client) -> list[tuple[list, np.ndarray]]:
    signing.forget()
    r = DatasetReader(store, ds, Keyring(client, ds))
    return [(b.sites.column("pos").to_pylist(), b.packed.copy()) for b in r.blocks()]


def _parquet_sums(store: Store, ds: str) -> dict[str, str]:
    folder = store.dataset_dir(ds)
    return {f.path: sha256_file(folder / f.path) for f in store.manifest(ds).files()}


def _versions(store: Store, ds: str, admin: hvac.Client) -> set[int]:
    st = lifecycle.status(store, ds, admin)
    return {v for per in st["files"].values() for vs in per.values() for v in vs}


def test_rotate__same_genotypes_same_parquet_bytes_new_key_versions(
        store: Store, dataset: str, role_client, query_client: hvac.Client) -> None:
    admin = role_client("admin")
    before = _genotypes(store, dataset, query_client)
    sums = _parquet_sums(store, dataset)
    st = lifecycle.status(store, dataset, admin)
    assert st["oldest_version_needed"] == {c: 1 for c in ("footer", "genotypes", "sites",
                                                         "samples")}
    folder = store.dataset_dir(dataset)
    wrapped_before = {w for rel in sums
                      for _m, w in wrapped_keys(key_material_path(str(folder / rel)))}
    events: list[dict] = []
    rep = lifecycle.rotate(store, dataset, admin, data_class="all", audit=events.append)
    assert rep.targets and set(rep.targets.values()) == {2}
    assert rep.files == len(sums) and rep.rewrapped_files == len(sums)
    # each distinct wrapped key once (a bound dataset's files share none)
    assert rep.vault_rewraps == len(wrapped_before)
    assert _parquet_sums(store, dataset) == sums  # no Parquet file rewritten
    after = _genotypes(store, dataset, query_client)
    assert len(after) == len(before)
    for (p0, g0), (p1, g1) in zip(before, after, strict=True):
        assert p0 == p1 and np.array_equal(g0, g1)
    st = lifecycle.status(store, dataset, admin)
    assert st["oldest_version_needed"] == {c: 2 for c in ("footer", "genotypes", "sites",
                                                         "samples")}
    assert all(k["latest_version"] == 2 for k in st["keys"].values())
    assert not st["rotation_in_progress"]
    assert events and events[0]["command"] == "keys rotate" and events[0]["outcome"] == "ok"
    assert "ciphertext" not in json.dumps(events) and "vault:v" not in json.dumps(events)
    # one class only
    rep = lifecycle.rotate(store, dataset, admin, data_class="genotypes")
    m = store.manifest(dataset)
    # the dataset's genotypes key and each batch's own
    assert set(rep.targets) == set(m.transit_keys("genotypes"))
    assert len(rep.targets) == 3 and all(b.genotype_key in rep.targets for b in m.batches)
    st = lifecycle.status(store, dataset, admin)
    assert st["oldest_version_needed"]["genotypes"] == 3
    assert st["oldest_version_needed"]["sites"] == 2


def test_retire__old_key_material_no_longer_opens(store: Store, dataset: str, role_client,
                                                  query_client: hvac.Client,
                                                  bao_server: DevServer) -> None:
    admin = role_client("admin")
    folder = store.dataset_dir(dataset)
    backup = {f.path: Path(key_material_path(str(folder / f.path))).read_text()
              for f in store.manifest(dataset).files()}
    rep = lifecycle.rotate(store, dataset, admin, retire=True)
    assert rep.retired
    st = lifecycle.status(store, dataset, admin)
    assert all(k["min_decryption_version"] == 2 for k in st["keys"].values())
    _genotypes(store, dataset, query_client)  # the rotated dataset reads
    # the old backup of the key material: nothing opens, even for root
    for rel, text in backup.items():
        Path(key_material_path(str(folder / rel))).write_text(text)
    for client in (query_client, bao_server.client()):
        signing.forget()
        with pytest.raises(IntegrityError, match=r"unwrap|too old|decrypt"):
            DatasetReader(store, dataset, Keyring(client, dataset)).samples()


def test_rotation_killed_midway__dataset_readable_rerun_completes(
        store: Store, dataset: str, role_client, query_client: hvac.Client,
        bao_server: DevServer) -> None:
    admin = role_client("admin")
    before = _genotypes(store, dataset, query_client)
    n_files = len(store.manifest(dataset).files())
    token = admin.token
    env = {**os.environ, "VAULT_ADDR": bao_server.addr, "VAULT_TOKEN": token,
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_ROTATION, str(store.root),
                           dataset, str(n_files // 2)], env=env, cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert (store.dataset_dir(dataset) / lifecycle.ROTATION_MARKER).exists()
    assert _versions(store, dataset, admin) == {1, 2}  # half old, half new
    mid = _genotypes(store, dataset, query_client)  # every file still reads
    for (p0, g0), (p1, g1) in zip(before, mid, strict=True):
        assert p0 == p1 and np.array_equal(g0, g1)
    rep = lifecycle.rotate(store, dataset, admin)  # the rerun resumes (no second rotation)
    assert rep.resumed and set(rep.targets.values()) == {2}
    assert _versions(store, dataset, admin) == {2}
    assert not (store.dataset_dir(dataset) / lifecycle.ROTATION_MARKER).exists()
    after = _genotypes(store, dataset, query_client)
    for (p0, g0), (p1, g1) in zip(before, after, strict=True):
        assert p0 == p1 and np.array_equal(g0, g1)


@pytest.mark.parametrize("role", ["query", "ingest"])
def test_rotate__query_or_ingest_token_cannot(store: Store, dataset: str, role_client,
                                              role: str) -> None:
    with pytest.raises(VaultForbidden):
        lifecycle.rotate(store, dataset, role_client(role))
    assert not (store.dataset_dir(dataset) / lifecycle.ROTATION_MARKER).exists()


def test_retire__a_pending_compaction_release_is_rewrapped_too(
        tmp_path: Path, store: Store, ingest_file: Callable[..., IngestResult], role_client,
        query_client: hvac.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction stopped after its commit keeps the removed samples' pseudonyms in
    ``.release/`` (samples key) until the next ``compact`` releases their registry entries.
    Rotation used to rewrap only the manifest's files, so ``--retire`` made that file
    unreadable and every later compaction failed (the entries were never released)."""
    from vault.keys import registry

    ds = f"rr-{uuid.uuid4().hex[:8]}"
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"R{i}" for i in range(8)], 60)
    ingest_file(vcf, ds)
    admin = role_client("admin")
    lifecycle.withdraw(store, ds, admin, ["R2"])
    real_release = registry.release

    def stopped(*args: object, **kwargs: object) -> None:
        raise RuntimeError("stopped after the commit")

    monkeypatch.setattr(registry, "release", stopped)
    with pytest.raises(RuntimeError, match="stopped"):
        lifecycle.compact(store, ds, query_client, role_client("ingest"))
    monkeypatch.setattr(registry, "release", real_release)
    release_dir = store.dataset_dir(ds) / lifecycle.RELEASE_DIR
    assert list(release_dir.glob("v*.parquet"))
    lifecycle.rotate(store, ds, admin, data_class="samples", retire=True)
    lifecycle.compact(store, ds, query_client, role_client("ingest"))  # completes the release
    assert not list(release_dir.glob("v*.parquet"))
