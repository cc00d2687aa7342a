"""Crash safety, tested for real: ingest subprocesses are SIGKILLed against a real OpenBao.

(a) an ingest killed at a random moment while it writes encrypted files into ``.staging``;
(b) an ingest killed at the worst moment: its batch folder is renamed into place, the
    manifest not yet written (``Store.commit`` is patched to SIGKILL the process);
(c) the same kill while a second batch is added to an existing dataset.

After each kill the store must look exactly as before (nothing visible, nothing plaintext),
and rerunning the ingest must complete and read back the generator's genotypes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hvac
import numpy as np
import pytest

from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf, unpack
from vault.errors import DatasetNotFound
from vault.ingest.pipeline import IngestResult
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader
from vault.store.verify import verify_dataset

pytestmark = pytest.mark.integration  # SIGKILLed ingests against the session OpenBao

REPO = Path(__file__).resolve().parent.parent
SYN_PREFIX = "CRASHSYN"
GT_TEXT_NEEDLES = [b"0/0\t0/", b"0/1\t", b"1/1\t", b"./.\t", b"\tGT\t"]

# Runs an ingest through the Python API (the CLI has no --bin-size), with the token as given.
INGEST_SCRIPT = """
import sys
from pathlib import Path
from vault.ingest.pipeline import IngestOptions, ingest
from vault.store.dataset import Store
from vault.keys.client import connect
from vault.settings import load_settings
ingest(Path(sys.argv[1]), sys.argv[2], client=connect(load_settings(), "ingest"),
       store=Store(Path(sys.argv[3])),
       options=IngestOptions(progress=False, bin_size=int(sys.argv[4])))
"""

# `genovault ingest ...` whose Store.commit SIGKILLs the process before it writes anything:
# the batch folder has been renamed into batches/ but no manifest lists it.
KILL_AT_COMMIT_CLI = """
import os, signal, sys
import vault.store.dataset

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

vault.store.dataset.Store.commit = die
from vault.cli import main
main(prog_name="genovault")
"""


def synth_vcf(path: Path, n_samples: int, contigs: list[str], per_contig: int,
              seed: int, step: int = 97) -> tuple[list[str], np.ndarray]:
    """A bgzipped multi-contig VCF of biallelic SNVs; returns (sample ids, codes)."""
    rng = np.random.default_rng(seed)
    samples = [f"{SYN_PREFIX}{i:05d}" for i in range(n_samples)]
    head = ["##fileformat=VCFv4.2",
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            *(f"##contig=<ID={c}>" for c in contigs),
            "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                       *samples])]
    gt = np.frombuffer(b"0/0\t0/1\t1/1\t./.\t", np.uint8).reshape(4, 4)
    parts = [("\n".join(head) + "\n").encode()]
    all_codes = []
    for c in contigs:
        af = rng.uniform(0.02, 0.5, per_contig)
        codes = rng.binomial(2, af[:, None], size=(per_contig, n_samples)).astype(np.int8)
        codes[rng.random(codes.shape) < 0.02] = 3
        all_codes.append(codes)
        text = gt[codes]
        text[:, -1, 3] = ord("\n")
        body = text.reshape(per_contig, -1)
        for i in range(per_contig):
            parts.append(f"{c}\t{1000 + i * step}\tv{i}\t{'ACGT'[i % 4]}\t{'CGTA'[i % 4]}"
                         "\t50\tPASS\t.\tGT\t".encode())
            parts.append(body[i].tobytes())
    data = b"".join(parts)
    bgzip = shutil.which("bgzip")
    if bgzip:
        with open(path, "wb") as out:
            subprocess.run([bgzip, "-c", "-l", "1", "-@", "2"], input=data, stdout=out,
                           check=True)
    else:  # pragma: no cover - pysam's BGZF writer is slower but equivalent
        import pysam

        with pysam.BGZFile(str(path), "wb") as out:  # type: ignore[call-arg]
            out.write(data)
    return samples, np.concatenate(all_codes)


def child_env(bao: DevServer, token: str, store: Store, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "BAO_", "GENOVAULT_"))}
    env.update(VAULT_ADDR=bao.addr, VAULT_TOKEN=token, GENOVAULT_STORE=str(store.root),
               GENOVAULT_HOME=str(home), GENOVAULT_NO_PROGRESS="1")
    return env


def all_codes(reader: DatasetReader) -> np.ndarray:
    blocks = list(reader.blocks())
    return unpack(np.concatenate([b.packed for b in blocks]), reader.n_samples)


def packed_needles(codes: np.ndarray, n: int = 40, width: int = 16) -> list[bytes]:
    from tests.reference.vcf_decode import pack_codes

    rows = np.linspace(0, codes.shape[0] - 1, n).astype(int)
    packed = pack_codes(codes[rows])
    return [r.tobytes()[:width] for r in packed if len(set(r.tobytes()[:width])) >= 6]


def assert_no_plaintext(folder: Path, sample_ids: list[str], needles: list[bytes],
                        committed: bool = False) -> dict[str, int]:
    """Every file under ``folder`` is encrypted Parquet, key material, a pending registration
    marker (named by the source checksum, holding the dataset uid) or the lock; no sample id,
    GT text or packed genotype bytes anywhere. Returns counts per kind."""
    kinds = {"parquet": 0, "parquet_incomplete": 0, "key_material": 0, "pending": 0,
             "lock": 0}
    id_needles = [SYN_PREFIX.encode(), *(s.encode() for s in sample_ids)]
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        data = p.read_bytes()
        if p.suffix == ".parquet":
            if len(data) >= 8 and data[:4] == data[-4:] == b"PARE":
                kinds["parquet"] += 1
            else:  # the one file being written when the process died: empty or ciphertext
                assert data[:4] == b"PARE"[:len(data)], f"{p} does not start with PARE"
                kinds["parquet_incomplete"] += 1
        elif p.name.startswith("_KEY_MATERIAL_FOR_") and p.suffix == ".json":
            kinds["key_material"] += 1
        elif p.parent.name == ".pending":
            kinds["pending"] += 1
            assert re.fullmatch(rb"[0-9a-f]{32}( complete)?", data), p
            assert re.fullmatch(r"[0-9a-f]{64}", p.name), p
        elif committed and p.name == fmt.MANIFEST:
            pass  # plaintext by design (names, counts, checksums); scanned like the rest
        elif p.name == ".lock":
            kinds["lock"] += 1
            assert data == b""
        else:
            raise AssertionError(f"unexpected file left in the store: {p}")
        for needle in [*id_needles, *GT_TEXT_NEEDLES, *needles]:
            assert needle not in data, f"{p} contains plaintext {needle[:20]!r}"
    return kinds


def assert_invisible(store: Store, ds: str, query_client: hvac.Client) -> None:
    assert ds not in store.list()
    assert not store.exists(ds)
    assert not (store.dataset_dir(ds) / fmt.MANIFEST).exists()
    with pytest.raises(DatasetNotFound):
        DatasetReader(store, ds, Keyring(query_client, ds))


# --- (a) a real kill in the middle of writing ------------------------------------------------


@pytest.fixture(scope="module")
def big_vcf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], np.ndarray]:
    """400 samples x 60,000 variants on 3 contigs (~100 MB of VCF text, bgzipped)."""
    path = tmp_path_factory.mktemp("crash") / "big.vcf.gz"
    samples, codes = synth_vcf(path, 400, ["1", "2", "3"], 20_000, seed=11)
    return path, samples, codes


BIG_BIN = 100_000  # ~20 bins per contig: about 60 variant files


def test_ingest__sigkill_while_writing_staging_leaves_nothing_and_rerun_completes(
        bao_server: DevServer, ingest_client: hvac.Client, query_client: hvac.Client,
        store: Store, tmp_path: Path,
        big_vcf: tuple[Path, list[str], np.ndarray]) -> None:
    path, samples, codes = big_vcf
    ds = "crash-a"
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, str(path), ds, str(store.root), str(BIG_BIN)],
        cwd=REPO, env=child_env(bao_server, ingest_client.token, store, tmp_path / "home"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = store.dataset_dir(ds) / ".staging"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                _out, err = proc.communicate()
                pytest.fail(f"ingest ended (rc {proc.returncode}) before 4 variant files "
                            f"appeared in staging; make the VCF bigger\n{err.decode()[-2000:]}")
            # kill once a few variant files exist: finished ones and the one being written
            if staging.is_dir() and len(list(staging.glob("*/variants/*/*.parquet"))) >= 4:
                proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "no variant file appeared in staging in 120 s"
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it was killed"

    # the kill happened mid-way: staging holds files, but no batch and no manifest
    left = [p for p in staging.rglob("*.parquet")]
    assert left, "the kill should have left debris in staging"
    assert not (store.dataset_dir(ds) / "batches").exists() or \
        not any((store.dataset_dir(ds) / "batches").iterdir())
    assert_invisible(store, ds, query_client)
    needles = packed_needles(codes)
    kinds = assert_no_plaintext(store.dataset_dir(ds), samples, needles)
    assert kinds["parquet"] >= 3 and kinds["parquet_incomplete"] <= 1, kinds
    assert kinds["key_material"] >= kinds["parquet"] and kinds["pending"] == 1, kinds

    # rerun: completes, removes the debris, and reads back the generator's genotypes
    from vault.ingest.pipeline import IngestOptions, ingest

    res = ingest(path, ds, client=ingest_client, store=store,
                 options=IngestOptions(progress=False, bin_size=BIG_BIN))
    assert res.batch == "b0001"
    assert store.list() == [ds]
    assert not staging.exists() or not any(staging.iterdir())
    assert sorted(p.name for p in (store.dataset_dir(ds) / "batches").iterdir()) == ["b0001"]
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    assert len(reader.batches[0].variant_files) >= 30
    report = verify_dataset(reader)
    assert report.ok, report.problems
    assert np.array_equal(all_codes(reader), codes)
    assert_no_plaintext(store.dataset_dir(ds), samples, needles, committed=True)


# --- (b) and (c) the worst moment: batch renamed into place, manifest not written -----------


def run_cli(args: list[str], env: dict[str, str], kill_at_commit: bool,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    code = ["-c", KILL_AT_COMMIT_CLI] if kill_at_commit else ["-m", "vault.cli"]
    return subprocess.run([sys.executable, *code, *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_ingest__sigkill_after_rename_before_manifest_is_invisible_and_rerun_completes(
        bao_server: DevServer, ingest_client: hvac.Client, query_client: hvac.Client,
        store: Store, tmp_path: Path) -> None:
    samples = [f"{SYN_PREFIX}B{i:03d}" for i in range(37)]
    path, codes = cohort_vcf(tmp_path / "b.vcf", samples, 400, seed=5)
    ds = "crash-b"
    env = child_env(bao_server, ingest_client.token, store, tmp_path / "home")
    killed = run_cli(["ingest", str(path), "-d", ds], env, kill_at_commit=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # killed at the worst moment: the batch folder is in place, the manifest is not
    batch_dir = store.dataset_dir(ds) / "batches" / "b0001"
    assert (batch_dir / "samples.parquet").is_file()
    assert any(batch_dir.glob("variants/*/*.parquet"))
    assert_invisible(store, ds, query_client)
    assert_no_plaintext(store.dataset_dir(ds), samples, packed_needles(codes))
    listed = run_cli(["datasets", "list"], env, kill_at_commit=False)
    assert listed.returncode == 0 and ds not in listed.stdout, listed.stderr

    done = run_cli(["ingest", str(path), "-d", ds], env, kill_at_commit=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert store.list() == [ds]
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    assert [b.batch for b in reader.batches] == ["b0001"]
    assert verify_dataset(reader).ok
    assert np.array_equal(all_codes(reader), codes)


def test_ingest__sigkill_while_adding_second_batch_keeps_old_dataset_and_rerun_adds_it(
        bao_server: DevServer, ingest_client: hvac.Client, query_client: hvac.Client,
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path) -> None:
    ds = "crash-c"
    s1 = [f"{SYN_PREFIX}C1_{i:03d}" for i in range(21)]
    s2 = [f"{SYN_PREFIX}C2_{i:03d}" for i in range(14)]
    p1, c1 = cohort_vcf(tmp_path / "one.vcf", s1, 300, seed=7)
    p2, c2 = cohort_vcf(tmp_path / "two.vcf", s2, 300, seed=8)
    ingest_file(p1, ds)

    def snapshot() -> tuple[np.ndarray, list[object], int]:
        r = DatasetReader(store, ds, Keyring(query_client, ds))
        return all_codes(r), r.samples().to_pylist(), r.n_samples

    before_tree = tree(store.dataset_dir(ds))
    before = snapshot()
    assert np.array_equal(before[0], c1)

    env = child_env(bao_server, ingest_client.token, store, tmp_path / "home")
    killed = run_cli(["ingest", str(p2), "-d", ds], env, kill_at_commit=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (store.dataset_dir(ds) / "batches" / "b0002" / "samples.parquet").is_file()
    after_tree = tree(store.dataset_dir(ds))
    # the uncommitted batch and its pending registration marker are all that was added
    assert {k: v for k, v in after_tree.items()
            if not k.startswith(("batches/b0002/", ".pending/"))} == \
        before_tree, "the committed part of the dataset changed"
    after = snapshot()
    assert np.array_equal(after[0], before[0]) and after[1:] == before[1:]
    assert [b.batch for b in store.manifest(ds).batches] == ["b0001"]
    assert_no_plaintext(store.dataset_dir(ds), s1 + s2, packed_needles(c2), committed=True)

    done = run_cli(["ingest", str(p2), "-d", ds], env, kill_at_commit=False)
    assert done.returncode == 0, done.stderr[-2000:]
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    assert [b.batch for b in reader.batches] == ["b0001", "b0002"]
    assert reader.n_samples == len(s1) + len(s2)
    assert verify_dataset(reader).ok
    codes = all_codes(reader)
    assert np.array_equal(codes[:, :len(s1)], c1) and np.array_equal(codes[:, len(s1):], c2)
