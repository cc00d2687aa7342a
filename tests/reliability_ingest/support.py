"""Shared pieces of the reliability tests: killed subprocesses, store snapshots, plaintext scan."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.reference.vcf_decode import pack_codes
from vault.store import format as fmt

REPO = Path(__file__).resolve().parents[2]
PREFIX = "RELSYN"
GT_TEXT_NEEDLES = [b"0/0\t0/", b"0/1\t", b"1/1\t", b"./.\t", b"\tGT\t"]


def env_int(name: str, ci_default: int) -> int:
    """A count from the environment (the long run), else the CI default."""
    value = os.environ.get(name)
    return int(value) if value else ci_default


def child_env(addr: str, token: str, store_root: Path, home: Path,
              fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "BAO_", "GENOVAULT_"))}
    env.update(VAULT_ADDR=addr, VAULT_TOKEN=token, GENOVAULT_STORE=str(store_root),
               GENOVAULT_HOME=str(home), GENOVAULT_NO_PROGRESS="1")
    if fault:
        env["GENOVAULT_FAULT_POINT"] = fault
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    killed_after: float | None  # seconds after start the test sent SIGKILL (None: not sent)


def run_cli(args: list[str], env: dict[str, str], kill_after: float | None = None,
            timeout: float = 120) -> Run:
    """``genovault ARGS`` in a subprocess; with ``kill_after``, SIGKILL it after that many
    seconds (unless it ended before)."""
    proc = subprocess.Popen([sys.executable, "-m", "vault.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sent = None
    try:
        if kill_after is not None:
            t0 = time.monotonic()
            try:
                proc.wait(kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                sent = time.monotonic() - t0
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Run(proc.returncode, out, err, sent)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (but the lock) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def committed_tree(folder: Path) -> dict[str, bytes]:
    """The manifest and the files it lists (with their key material): what readers see."""
    import json

    out = tree(folder)
    if fmt.MANIFEST not in out:
        return {}
    listed = {fmt.MANIFEST}
    for b in json.loads(out[fmt.MANIFEST])["batches"]:
        entries = [b["samples_file"], b["info_file"], *b["variant_files"],
                   *(p["info_file"] for p in b.get("parts", []) if p.get("info_file"))]
        for e in entries:
            listed.add(e["path"])
            head, _, name = e["path"].rpartition("/")
            listed.add(f"{head}/_KEY_MATERIAL_FOR_{name}.json")
    return {k: v for k, v in out.items() if k in listed}


def packed_needles(codes: np.ndarray, n: int = 40, width: int = 8) -> list[bytes]:
    """Byte strings of the packed genotypes as the store would hold them in plaintext."""
    rows = np.linspace(0, codes.shape[0] - 1, min(n, codes.shape[0])).astype(int)
    packed = pack_codes(codes[rows])
    return [r.tobytes()[:width] for r in packed if len(set(r.tobytes()[:width])) >= 4]


_OK_NAMES = re.compile(r"(manifest\.json|\.manifest\.json\.tmp|\.rotation\.json|"
                       r"\.\.rotation\.json\.tmp|\._KEY_MATERIAL_FOR_.*\.json\.tmp)")


def assert_no_plaintext(folder: Path, sample_ids: list[str],
                        needles: list[bytes]) -> dict[str, int]:
    """Every file under ``folder`` is encrypted Parquet (whole, or the start of one), key
    material, a pending-registration marker, the lock, a manifest (plaintext by design: names,
    counts, checksums), the rotation marker or a temporary file of one of them; none holds a
    sample id, GT text or packed genotype bytes. Returns counts per kind."""
    kinds: dict[str, int] = {}
    ids = [PREFIX.encode(), *(s.encode() for s in sample_ids)]
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        data = p.read_bytes()
        if p.suffix == ".parquet":
            kind = "parquet" if len(data) >= 8 and data[:4] == data[-4:] == b"PARE" \
                else "parquet_incomplete"
            assert data[:4] == b"PARE"[:len(data)], f"{p} is not encrypted Parquet"
        elif p.name.startswith("_KEY_MATERIAL_FOR_") and p.suffix == ".json":
            kind = "key_material"
        elif p.parent.name == ".pending" and p.name.startswith(".") and p.suffix == ".tmp":
            kind = "pending_tmp"  # a marker's temporary file: empty, or a whole marker
            assert re.fullmatch(rb"([0-9a-f]{32}( complete)?)?", data), (p, data)
        elif p.parent.name == ".pending":
            kind = "pending"  # renamed into place whole: never empty or partial
            assert re.fullmatch(rb"[0-9a-f]{32}( complete)?", data), (p, data)
        elif p.name == ".lock":
            kind = "lock"
            assert data == b""
        elif p.parent.name == ".trust" and p.name == "manifest-signing.json":
            kind = "trust"
        elif p.name in (".retired-keys.json", "..retired-keys.json.tmp"):
            # names of compacted batches' old keys, nothing else
            kind = "retired_keys" if p.name.endswith(".json") else p.name
            assert re.fullmatch(rb'(\{"retired_genotypes_keys": \[("genovault\.[A-Za-z0-9_.-]+"'
                                rb'(, )?)+\]\})?', data), (p, data)
        elif _OK_NAMES.fullmatch(p.name):
            kind = p.name
        else:
            raise AssertionError(f"unexpected file left in the store: {p}")
        kinds[kind] = kinds.get(kind, 0) + 1
        for needle in [*ids, *GT_TEXT_NEEDLES, *needles]:
            assert needle not in data, f"{p} contains plaintext {needle[:20]!r}"
    return kinds


def staging_clean(folder: Path) -> bool:
    staging = folder / ".staging"
    return not staging.exists() or not any(staging.iterdir())


def kill_plan(points: list[str], n_kills: int, seed: int,
              counts: dict[str, int] | None = None) -> list[tuple[str, str | None, float]]:
    """``n_kills`` kills: first every point of ``points`` once (a random hit ``n`` where the
    point is reached several times, ``counts``), then random times. Returns (id, fault, t)
    with t the fraction of an unkilled run's duration for a timed kill."""
    rng = random.Random(seed)
    out: list[tuple[str, str | None, float]] = []
    for i in range(n_kills):
        if i < len(points):
            name = points[i]
            hits = (counts or {}).get(name, 1)
            n = rng.randint(1, hits)
            out.append((f"{name}:{n}", f"{name}:{n}", 0.0))
        else:
            t = rng.uniform(0.05, 1.0)
            out.append((f"time{i}-{t:.2f}", None, t))
    return out
