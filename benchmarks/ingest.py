"""Ingest throughput: `genovault ingest` vs `plink2 --vcf … --make-pgen` on the same VCF.gz.

Simulates (or reuses from the cache) an msprime cohort (benchmarks/cohort.py), starts a real
OpenBao dev server, and runs both tools as separate processes, alternating, several times.
Each run of ours is a complete ingest into a fresh store: decompression, parsing and
validation, pseudonymisation via Transit, Parquet encoding and encryption with keys wrapped
by Transit, checksums and the manifest commit. Wall time and peak RSS of each process are
measured with wait4(); medians are reported.

    python benchmarks/ingest.py                    # 5,000 samples (the issue's size)
    python benchmarks/ingest.py --samples 1000 --runs 3

Ends with one JSON line: {"bench": "ingest", "genotypes_per_s": …,
"plink2_genotypes_per_s": …, "ratio": plink2 time / our time, "peak_rss_mb": …, …}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cohort import simulate_cohort  # noqa: E402
from vault.keys.bootstrap import bootstrap, mint_role_token  # noqa: E402
from vault.keys.devserver import dev_server  # noqa: E402


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run cmd; return (wall seconds, peak RSS MB of that process, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


def count_records(vcf: Path) -> tuple[int, int]:
    n_samples = n_records = 0
    with gzip.open(vcf, "rt") as fh:
        for line in fh:
            if line.startswith("#CHROM"):
                n_samples = len(line.rstrip("\n").split("\t")) - 9
            elif not line.startswith("#"):
                n_records += 1
    return n_samples, n_records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--sequence-length", type=float, default=50e6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="threads for plink2 (ours uses all cores)")
    args = ap.parse_args(argv)

    vcf = simulate_cohort(args.samples, sequence_length=args.sequence_length)
    n_samples, n_records = count_records(vcf)
    genotypes = n_samples * n_records
    print(f"cohort {vcf.name}: {n_samples} samples x {n_records} records = {genotypes:.3e} "
          f"genotypes, {vcf.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    ours: list[float] = []
    ours_inner: list[float] = []
    ours_rss: list[float] = []
    plink: list[float] = []
    plink_rss: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gv-bench-") as tmp, dev_server(Path(tmp)) as bao:
        bootstrap(bao.client())
        token = mint_role_token(bao.client(), "ingest", ttl="2h")
        env = dict(os.environ, VAULT_ADDR=bao.addr, VAULT_TOKEN=token,
                   GENOVAULT_NO_PROGRESS="1")
        genovault = [sys.executable, "-m", "vault.cli"]
        # warm-up: numba's on-disk cache is filled by the first run (not timed)
        env["GENOVAULT_STORE"] = str(Path(tmp) / "warm")
        run_process([*genovault, "ingest", str(ROOT / "vault/sample_data/demo_cohort.vcf.gz"),
                     "-d", "warm"], env)
        for i in range(args.runs):
            store = Path(tmp) / f"store{i}"
            env["GENOVAULT_STORE"] = str(store)
            wall, rss, out = run_process(
                [*genovault, "ingest", str(vcf), "-d", "bench", "--json"], env)
            inner = json.loads(out)["seconds"]
            ours.append(wall)
            ours_inner.append(inner)
            ours_rss.append(rss)
            shutil.rmtree(store)
            prefix = Path(tmp) / f"plink{i}"
            wall_p, rss_p, _ = run_process(
                ["plink2", "--vcf", str(vcf), "--make-pgen", "--out", str(prefix),
                 "--threads", str(args.threads)])
            plink.append(wall_p)
            plink_rss.append(rss_p)
            for f in Path(tmp).glob(f"plink{i}.*"):
                f.unlink()
            print(f"run {i + 1}: genovault {wall:.2f} s (ingest itself {inner:.2f} s, "
                  f"peak RSS {rss:.0f} MB) | plink2 {wall_p:.2f} s (peak RSS {rss_p:.0f} MB)",
                  file=sys.stderr)
    t_ours = statistics.median(ours)
    t_plink = statistics.median(plink)
    result = {
        "bench": "ingest",
        "samples": n_samples,
        "records": n_records,
        "genotypes": genotypes,
        "runs": args.runs,
        "seconds": round(t_ours, 3),
        "seconds_in_process": round(statistics.median(ours_inner), 3),
        "plink2_seconds": round(t_plink, 3),
        "genotypes_per_s": round(genotypes / t_ours),
        "plink2_genotypes_per_s": round(genotypes / t_plink),
        "ratio": round(t_plink / t_ours, 3),
        "peak_rss_mb": round(max(ours_rss), 1),
        "plink2_peak_rss_mb": round(max(plink_rss), 1),
        "all_seconds": [round(x, 3) for x in ours],
        "all_plink2_seconds": [round(x, 3) for x in plink],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
