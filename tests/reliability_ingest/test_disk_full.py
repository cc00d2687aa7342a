"""A full disk or a failing write during ``genovault ingest``, in a child process against a
real OpenBao:

* RLIMIT_FSIZE (SIGXFSZ ignored, so a write past the limit fails with EFBIG the way a full
  disk fails with ENOSPC) set just below the size of each kind of file an ingest writes: the
  write of that file fails, whichever layer writes it (pyarrow's C++ writer, key material,
  the manifest, the registration marker);
* ``os.fsync`` failing with ENOSPC at its n-th call (every durable-write step of an ingest).

Each must end with a clear error (exit code 1, one ``error:`` line, no traceback), leave the
dataset as it was, and the next ingest of the same file must succeed and leave no debris.
GENOVAULT_DISKFULL_ALL=1 runs six size limits and every fsync call (CI: four limits and five
fsync calls: the first, the last and three between).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import hvac
import numpy as np
import pytest

from tests.reliability_ingest.support import (
    PREFIX,
    REPO,
    assert_no_plaintext,
    child_env,
    committed_tree,
    packed_needles,
    staging_clean,
)
from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf, unpack
from vault.errors import DatasetNotFound, DuplicateIngest
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration

# argv: mode (fsize | fsync | count), n, then the CLI's arguments
CHILD = r"""
import errno, os, resource, signal, sys
mode, n = sys.argv[1], int(sys.argv[2])
calls = [0]
real_fsync = os.fsync
if mode == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
elif mode in ("fsync", "count"):
    def fsync(fd):
        calls[0] += 1
        if mode == "fsync" and calls[0] == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)
    os.fsync = fsync
if mode == "count":
    import atexit
    atexit.register(lambda: sys.stderr.write(f"\nFSYNC_CALLS={calls[0]}\n"))
sys.argv = ["genovault", *sys.argv[3:]]
from vault.cli import main
main(prog_name="genovault")
"""

N_SAMPLES, N_VARIANTS = 20, 600


def _child(mode: str, n: int, args: list[str],
           env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, mode, str(n), *args], cwd=REPO,
                          env=env, text=True, capture_output=True, timeout=180, check=False)


_profile: dict[str, object] = {}


def _good_run(bao: DevServer, token: str, path: Path, tmp: Path) -> dict[str, object]:
    """Sizes of the files a good ingest writes and its number of fsync calls (once)."""
    if not _profile:
        root = tmp / "profile-store"
        r = _child("count", 0, ["ingest", str(path), "-d", "profile"],
                   child_env(bao.addr, token, root, tmp / "profile-home"))
        assert r.returncode == 0, r.stderr[-2000:]
        calls = int(r.stderr.rsplit("FSYNC_CALLS=", 1)[1].split()[0])
        sizes = sorted({p.stat().st_size for p in (root / "profile").rglob("*")
                        if p.is_file() and p.stat().st_size > 0})
        _profile.update(calls=calls, sizes=sizes)
    return _profile


def _cases() -> list[object]:
    full = bool(os.environ.get("GENOVAULT_DISKFULL_ALL"))
    out: list[object] = []
    # a limit just below the sorted distinct file sizes of a good run (resolved in the test):
    # the smallest (a marker), middle ones, the largest (the variants file); and limit 0
    sizes = ["zero", "smallest", "p25", "median", "p75", "largest"] if full else \
        ["zero", "smallest", "median", "largest"]
    out += [pytest.param("fsize", which, id=f"fsize-{which}") for which in sizes]
    # the fsync call that fails, as a fraction of a good run's calls (the first, ..., the
    # last); the full run takes 40 fractions, so every call of an ingest of up to 40 calls
    fractions = [k / 40 for k in range(1, 41)] if full else [0.0, 0.3, 0.6, 0.85, 1.0]
    out += [pytest.param("fsync", f, id=f"fsync-{f:.3f}") for f in fractions]
    return out


@pytest.mark.parametrize(("mode", "which"), _cases())
def test_ingest__failing_write_is_a_clean_error_and_leaves_nothing(
        mode: str, which: object, bao_server: DevServer, ingest_client: hvac.Client,
        query_client: hvac.Client, ingest_file: Callable[..., IngestResult], store: Store,
        tmp_path: Path) -> None:
    s1 = [f"{PREFIX}D{i:03d}" for i in range(N_SAMPLES)]
    s2 = [f"{PREFIX}E{i:03d}" for i in range(N_SAMPLES)]
    p1, c1 = cohort_vcf(tmp_path / "one.vcf", s1, N_VARIANTS, seed=3)
    p2, c2 = cohort_vcf(tmp_path / "two.vcf", s2, N_VARIANTS, seed=4)
    profile = _good_run(bao_server, ingest_client.token, p1, tmp_path)
    if mode == "fsize":
        sizes: list[int] = profile["sizes"]  # type: ignore[assignment]
        pick = {"zero": 1, "smallest": sizes[0], "p25": sizes[len(sizes) // 4],
                "median": sizes[len(sizes) // 2], "p75": sizes[3 * len(sizes) // 4],
                "largest": sizes[-1]}
        n = pick[str(which)] - 1
    else:
        calls = int(profile["calls"])  # type: ignore[call-overload]
        n = max(1, round(float(which) * calls))  # type: ignore[arg-type]
    ds = f"diskfull-{mode}-{which if mode == 'fsize' else n}"
    second = (n % 2 == 1) if mode == "fsync" else which in ("smallest", "p75", "largest")
    folder = store.dataset_dir(ds)
    if second:
        ingest_file(p1, ds)
        path, samples, expect = p2, s1 + s2, np.concatenate([c1, c2], axis=1)
    else:
        path, samples, expect = p1, s1, c1
    before = committed_tree(folder) if folder.exists() else {}
    env = child_env(bao_server.addr, ingest_client.token, store.root, tmp_path / "home")
    r = _child(mode, n, ["ingest", str(path), "-d", ds], env)
    after = committed_tree(folder) if folder.exists() else {}
    n_batches = 2 if second else 1
    committed = bool(after) and len(json.loads(after[fmt.MANIFEST])["batches"]) == n_batches
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    if r.returncode == 0:  # the failing write was one the ingest did not need (none here)
        pytest.fail(f"{mode} {n}: the ingest succeeded although a write failed")
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    if not committed:  # the failure can come after the commit (the folder's last fsync)
        assert after == before, "the committed dataset changed"
        if not second:
            with pytest.raises(DatasetNotFound):
                DatasetReader(store, ds, Keyring(query_client, ds))
    needles = packed_needles(expect)
    assert_no_plaintext(store.root, samples, needles)

    # the next write succeeds (or finds the file committed) and leaves no debris
    if committed:
        with pytest.raises(DuplicateIngest):
            ingest(path, ds, client=ingest_client, store=store,
                   options=IngestOptions(progress=False))
    else:
        res = ingest(path, ds, client=ingest_client, store=store,
                     options=IngestOptions(progress=False))
        assert res.batch == f"b{n_batches:04d}"
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    got = unpack(np.concatenate([b.packed for b in reader.blocks()]), reader.n_samples)
    assert np.array_equal(got, expect)
    assert staging_clean(folder)
    kinds = assert_no_plaintext(store.root, samples, needles)
    assert "pending" not in kinds and "parquet_incomplete" not in kinds, kinds
    print(f"\nDISKFULL {mode} n={n}: committed={committed} {lines[0][:150]}")
