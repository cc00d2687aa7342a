"""Vault unreachable or sealed during an ingest: fail loudly and quickly, write no plaintext,
leave nothing visible (a new dataset does not appear, an existing one is unchanged)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import pyarrow as pa
import pytest

from tests.support.baodev import DevServer, dev_server, free_port
from tests.support.vcfgen import cohort_vcf
from vault.errors import VaultDown
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.keys.bootstrap import bootstrap, mint_role_token
from vault.store import writer as store_writer
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

REPO = Path(__file__).resolve().parent.parent
SAMPLES = [f"VDOWN_{i:03d}" for i in range(30)]
PLAINTEXT_NEEDLES = [b"VDOWN_", b"0/1\t", b"0/0\t", b"1/1\t", b"\tGT\t"]


@pytest.fixture
def vcf(tmp_path: Path) -> Path:
    path, _ = cohort_vcf(tmp_path / "in.vcf", SAMPLES, 500, seed=3)
    return path


def dead_client(token: str = "s.not-a-real-token") -> hvac.Client:
    """A client for a loopback port nobody listens on."""
    return hvac.Client(url=f"http://127.0.0.1:{free_port()}", token=token, timeout=5)


def files_of(store: Store) -> dict[str, bytes]:
    if not store.root.exists():
        return {}
    return {p.relative_to(store.root).as_posix(): p.read_bytes()
            for p in sorted(store.root.rglob("*")) if p.is_file()}


def assert_nothing_written(store: Store, ds: str) -> None:
    assert ds not in store.list() and not store.exists(ds)
    left = files_of(store)
    assert set(left) <= {f"{ds}/.lock"}, f"files left behind: {sorted(left)}"
    for name, data in left.items():
        for needle in PLAINTEXT_NEEDLES:
            assert needle not in data, f"{name} holds plaintext"


def test_ingest__vault_unreachable_fails_fast_and_writes_nothing(
        store: Store, vcf: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(VaultDown) as info:
        ingest(vcf, "vdown", client=dead_client(), store=store,
               options=IngestOptions(progress=False))
    assert time.monotonic() - t0 < 10
    assert "cannot be reached" in str(info.value) or "unreachable" in str(info.value)
    assert "s.not-a-real-token" not in str(info.value)
    assert_nothing_written(store, "vdown")


@pytest.mark.integration
def test_ingest__vault_unreachable_when_adding_a_batch_leaves_dataset_unchanged(
        store: Store, tmp_path: Path, ingest_file: Callable[..., IngestResult],
        reader: Callable[[str], DatasetReader]) -> None:
    first, _ = cohort_vcf(tmp_path / "first.vcf", [f"VDFIRST_{i}" for i in range(9)], 200,
                          seed=4)
    ingest_file(first, "vdown-grow")
    before = files_of(store)
    second, _ = cohort_vcf(tmp_path / "second.vcf", SAMPLES, 200, seed=5)
    with pytest.raises(VaultDown):
        ingest(second, "vdown-grow", client=dead_client(), store=store,
               options=IngestOptions(progress=False))
    assert files_of(store) == before
    assert reader("vdown-grow").n_samples == 9


def test_cli_ingest__vault_unreachable_exits_with_one_clear_line(
        store: Store, vcf: Path, tmp_path: Path) -> None:
    secret = "s.secret-token-must-not-leak"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "BAO_", "GENOVAULT_"))}
    env.update(VAULT_ADDR=f"http://127.0.0.1:{free_port()}", VAULT_TOKEN=secret,
               GENOVAULT_STORE=str(store.root), GENOVAULT_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "vault.cli", "ingest", str(vcf), "-d", "vdown"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: ") and "cannot be reached" in done.stderr
    assert "Traceback" not in done.stderr
    assert secret not in done.stderr + done.stdout
    assert_nothing_written(store, "vdown")


@pytest.fixture
def private_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A throw-away OpenBao that this test may seal (the session server stays untouched)."""
    with dev_server(tmp_path_factory.mktemp("bao-sealable")) as server:
        bootstrap(server.client())
        yield server


@pytest.mark.integration
def test_ingest__vault_sealed_midway_fails_and_leaves_no_debris(
        private_bao: DevServer, store: Store, vcf: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seal Vault after the samples file is encrypted, before the first variant file wraps its
    data keys: the writer thread's Vault call fails, the ingest fails, staging is removed."""
    root = private_bao.client()
    client = private_bao.client(mint_role_token(root, "ingest", ttl="15m"))
    original = store_writer.BatchWriter.write_samples
    sealed: list[Path] = []

    def write_samples_then_seal(self: store_writer.BatchWriter, table: pa.Table) -> object:
        entry = original(self, table)
        assert (self.dir / "samples.parquet").is_file()
        # the samples are registered in the background: let that finish, so that what the
        # seal breaks is the writer's next Vault call (not a registry request)
        for t in threading.enumerate():
            if t.name == "genovault-registration":
                t.join(30)
        sealed.append(self.dir)
        root.sys.seal()
        return entry

    monkeypatch.setattr(store_writer.BatchWriter, "write_samples", write_samples_then_seal)
    with pytest.raises(VaultDown) as info:
        ingest(vcf, "vsealed", client=client, store=store, options=IngestOptions(progress=False))
    assert sealed, "the ingest never reached the samples file"
    # the failure is the variant file's data-key wrap, in the writer thread (mid-way)
    assert "sealed" in str(info.value) and "Transit encrypt" in str(info.value)
    assert root.sys.read_seal_status()["sealed"]
    assert client.token not in str(info.value)
    assert not sealed[0].exists(), "the staging folder was left behind"
    assert_nothing_written(store, "vsealed")
