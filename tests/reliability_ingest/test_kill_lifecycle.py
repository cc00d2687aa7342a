"""``genovault keys rotate --retire``, ``samples withdraw`` and ``datasets compact`` killed with
SIGKILL at named stages (vault.faults) and at random times, against a real OpenBao.

After each kill every reader sees exactly the dataset before the command or after it (the
same genotypes; withdrawn samples left out either way), nothing on disk holds plaintext, and
a rerun completes: every key material file re-wrapped to the new versions, the withdrawal
recorded once, the compacted batches in place and the old ones gone, no debris.

CI runs GENOVAULT_FAULT_KILLS_LIFECYCLE kills per command (default 5: the first stages of each
list below); set it to 20 for every stage and further random times.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hvac
import numpy as np
import pytest

from tests.reliability_ingest.support import (
    PREFIX,
    assert_no_plaintext,
    child_env,
    env_int,
    kill_plan,
    packed_needles,
    run_cli,
    staging_clean,
)
from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf, unpack
from vault.ingest.pipeline import IngestResult
from vault.keys import lifecycle, signing
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader
from vault.store.verify import verify_dataset

pytestmark = pytest.mark.integration

N_KILLS = env_int("GENOVAULT_FAULT_KILLS_LIFECYCLE", 5)
N1, N2, N_VARIANTS = 14, 11, 150
WITHDRAWN = [f"{PREFIX}A{3:03d}", f"{PREFIX}B{5:03d}"]  # one in each batch

STAGES = {
    "rotate": ["rotate.rewrap_file", "rotate.marker_written", "manifest.written",
               "rotate.key_rotated", "rotate.retired", "manifest.signed",
               "store.manifest_tmp_written", "manifest.anchored"],
    "withdraw": ["withdraw.checked", "manifest.written", "manifest.signed",
                 "store.manifest_tmp_written", "manifest.anchored"],
    "compact": ["store.file_written", "compact.batch_renamed", "manifest.written",
                "compact.old_removed", "compact.released", "manifest.signed",
                "store.manifest_tmp_written", "manifest.anchored"],
}
# how often each stage is reached (2 batches of 3 files; 6 Transit keys for --class all)
HITS = {"rotate.rewrap_file": 6, "rotate.key_rotated": 6, "rotate.retired": 6,
        "store.file_written": 6, "compact.batch_renamed": 2, "compact.old_removed": 2}
CASES = [pytest.param(op, fault, frac, id=f"{op}-{ident}")
         for op, stages in STAGES.items()
         for ident, fault, frac in kill_plan(stages, N_KILLS, seed=7 + len(op), counts=HITS)]


@dataclass
class Setup:
    ds: str
    samples: list[str]
    codes: np.ndarray  # every sample's codes, batch after batch
    before: np.ndarray  # the columns a reader shows before the command (withdrawn left out)
    after: np.ndarray  # and after it


def _codes(reader: DatasetReader) -> np.ndarray:
    return unpack(np.concatenate([b.packed for b in reader.blocks()]), reader.n_samples)


def _setup(ds: str, op: str, tmp: Path, ingest_file: Callable[..., IngestResult],
           store: Store, admin: hvac.Client) -> Setup:
    s1 = [f"{PREFIX}A{i:03d}" for i in range(N1)]
    s2 = [f"{PREFIX}B{i:03d}" for i in range(N2)]
    p1, c1 = cohort_vcf(tmp / f"{ds}-1.vcf", s1, N_VARIANTS, seed=1)
    p2, c2 = cohort_vcf(tmp / f"{ds}-2.vcf", s2, N_VARIANTS, seed=2)
    ingest_file(p1, ds)
    ingest_file(p2, ds)
    samples = s1 + s2
    codes = np.concatenate([c1, c2], axis=1)
    live = np.ones(len(samples), bool)
    live[[samples.index(s) for s in WITHDRAWN]] = False
    if op == "compact":
        lifecycle.withdraw(store, ds, admin, WITHDRAWN)
    return Setup(ds, samples, codes, live if op == "compact" else np.ones(len(samples), bool),
                 live if op in ("compact", "withdraw") else np.ones(len(samples), bool))


def _command(op: str, ds: str) -> list[str]:
    return {"rotate": ["keys", "rotate", ds, "--retire"],
            "withdraw": ["samples", "withdraw", ds, *WITHDRAWN],
            "compact": ["datasets", "compact", ds]}[op]


def _rerun(op: str, ds: str, store: Store, admin: hvac.Client, query: hvac.Client,
           ingest: hvac.Client) -> None:
    if op == "rotate":
        lifecycle.rotate(store, ds, admin, retire=True)
    elif op == "withdraw":
        lifecycle.withdraw(store, ds, admin, WITHDRAWN)
    else:
        lifecycle.compact(store, ds, query, ingest)


_durations: dict[str, float] = {}


def _run(op: str, ds: str, env: dict[str, str], root: hvac.Client,
         kill_after: float | None) -> tuple[int, str]:
    # the audit chain head in Vault is shared by every test of the session's server
    root.secrets.kv.v1.delete_secret(path="chain/head", mount_point="genovault-audit")
    run = run_cli(_command(op, ds), env, kill_after=kill_after)
    return run.returncode, run.stderr


@pytest.mark.parametrize(("op", "fault", "frac"), CASES)
def test_lifecycle__sigkill_keeps_dataset_readable_and_rerun_completes(
        op: str, fault: str | None, frac: float, bao_server: DevServer,
        role_client: Callable[[str], hvac.Client], query_client: hvac.Client,
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    admin = role_client("admin")
    root = bao_server.client()
    ds = f"kill-{op}-{request.node.callspec.id.split('-', 1)[1]}".lower()
    ds = "".join(c if c.isalnum() or c == "-" else "-" for c in ds)[:60]
    st = _setup(ds, op, tmp_path, ingest_file, store, admin)
    folder = store.dataset_dir(ds)
    before_version = store.manifest(ds).version
    env = child_env(bao_server.addr, bao_server.root_token, store.root, tmp_path / "home", fault)
    kill_after = None
    if fault is None:
        if op not in _durations:  # an unkilled run of the same command, timed once
            other = _setup(ds + "-t", op, tmp_path, ingest_file, store, admin)
            t0 = time.monotonic()
            rc, err = _run(op, other.ds, env, root, None)
            assert rc == 0, err[-2000:]
            _durations[op] = time.monotonic() - t0
        kill_after = frac * _durations[op]
    rc, err = _run(op, ds, env, root, kill_after)
    if fault:
        assert rc == -signal.SIGKILL, (rc, err[-2000:])
    else:
        assert rc in (0, -signal.SIGKILL), err[-2000:]

    # 1. readers see the dataset as before or as after: the same genotypes either way
    signing.forget()
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    m = store.manifest(ds)
    assert m.version in (before_version, before_version + 1), (m.version, before_version)
    if op == "withdraw":  # atomic: both withdrawn, or neither
        assert len(m.withdrawn) in (0, 2)
    live = st.after if m.version > before_version else st.before
    assert np.array_equal(_codes(reader), st.codes[:, live]), f"{op} {fault}: data changed"
    assert verify_dataset(reader).ok
    # 2. no plaintext anywhere
    needles = packed_needles(st.codes)
    assert_no_plaintext(store.root, st.samples, needles)

    # 3. the rerun completes
    _rerun(op, ds, store, admin, query_client, role_client("ingest"))
    signing.forget()
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    assert np.array_equal(_codes(reader), st.codes[:, st.after])
    assert verify_dataset(reader).ok
    m = store.manifest(ds)
    assert m.version > before_version
    if op == "rotate":
        status = lifecycle.status(store, ds, admin)
        assert not status["rotation_in_progress"]
        assert not (folder / lifecycle.ROTATION_MARKER).exists()
        for name, k in status["keys"].items():  # every file on the retired-to version
            assert k["min_decryption_version"] == k["latest_version"] >= 2, (name, k)
            # (the dataset-wide genotypes key wraps no file: each batch has its own)
            assert k["oldest_version_in_use"] in (None, k["latest_version"]), (name, k)
    elif op == "withdraw":
        assert len(m.withdrawn) == 2 and reader.n_samples == N1 + N2 - 2
    else:
        assert m.sample_count == N1 + N2 - 2
        assert sorted(p.name for p in (folder / "batches").iterdir()) == \
            sorted(b.samples_file.path.split("/")[1] for b in m.batches)
        assert all(".c" in b.samples_file.path for b in m.batches)
        # the removed samples' registry entries are released (renewed consent may re-ingest)
        for pseudonym in Keyring(admin, ds).pseudonymise(WITHDRAWN):
            assert not lifecycle._registered(admin, ds, m.uid, pseudonym), \
                f"{fault}: a removed sample's registry entry was never released"
        assert not (folder / lifecycle.RELEASE_DIR).exists() or \
            not any((folder / lifecycle.RELEASE_DIR).iterdir())
    assert staging_clean(folder)
    kinds = assert_no_plaintext(store.root, st.samples, needles)
    leftovers = {k for k in kinds if k.endswith(".tmp") or k == lifecycle.ROTATION_MARKER}
    assert not leftovers, leftovers
    assert json.loads((folder / fmt.MANIFEST).read_text())["version"] == m.version
    print(f"\nKILL {op} {fault or f'time {frac:.2f}'}: rc={rc}")
