"""Ingest throughput: `genovault ingest` vs `plink2 --make-pgen` on the same input, same run.

Simulates (or reuses from the cache) an msprime cohort (benchmarks/cohort.py), starts a real
OpenBao dev server, and runs both tools as separate processes, alternating, several times.
Each run of ours is a complete ingest into a fresh store: decompression, parsing and
validation, pseudonymisation via Transit, the sample registry, Parquet encoding and
encryption with keys wrapped by Transit, checksums and the manifest commit. Wall time and
peak RSS (``ru_maxrss`` of the child, from wait4) of each process are measured; medians are
reported, and every ratio is plink2's median time over ours, measured in the same run.

Modes (``--format`` takes a comma-separated list):

* ``vcf``: the bgzipped VCF (``genovault ingest`` vs ``plink2 --vcf``) -> ``ratio``;
* ``bcf``: the same cohort as BCF (``bcftools view -Ob``; vs ``plink2 --bcf``) -> ``bcf_ratio``;
* ``--split N``: the VCF cut into N per-region files (``bcftools view -t``) ingested as one
  batch (``genovault ingest part1 … partN``; plink2 runs on each part, times summed)
  -> ``split_ratio``;
* ``--rss-50k``: one more ingest of a 50,000-sample cohort of ``--seq-len-50k`` bp, for the
  peak RSS at that width -> ``peak_rss_mb_50k`` (also filled when ``--samples`` >= 50,000).

    python benchmarks/ingest.py                              # VCF, 5,000 samples
    python benchmarks/ingest.py --format vcf,bcf --runs 5
    python benchmarks/ingest.py --format vcf --split 4
    python benchmarks/ingest.py --samples 50000 --seq-len 1e6 --runs 1

Ends with one JSON line: {"bench": "ingest", "ratio", "bcf_ratio", "split_ratio",
"peak_rss_mb", "peak_rss_mb_50k", ...}; a mode that was not run has null and a ``*_reason``.
CPU seconds (``cpu_seconds`` ours, ``vault_cpu_seconds`` OpenBao's during our run,
``plink2_cpu_seconds``) are reported beside wall times: on a shared machine they show the
work done, whatever else runs. ``cpu_ratio`` (``bcf_cpu_ratio``, ...) is plink2's CPU seconds
over ours plus OpenBao's; ``load_average`` is the 1-minute load when a mode finished (a wall
ratio measured at a load above the core count says little).
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cohort import cohort_bcf, simulate_cohort, split_regions  # noqa: E402
from vault.keys.bootstrap import bootstrap, mint_role_token  # noqa: E402
from vault.keys.devserver import dev_server  # noqa: E402


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run cmd; return (wall seconds, peak RSS MB of that process, stdout); its CPU seconds
    (user + system) are left in ``LAST_CPU[0]``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


LAST_CPU = [0.0]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_records(vcf: Path) -> tuple[int, int]:
    n_samples = n_records = 0
    with gzip.open(vcf, "rt") as fh:
        for line in fh:
            if line.startswith("#CHROM"):
                n_samples = len(line.rstrip("\n").split("\t")) - 9
            elif not line.startswith("#"):
                n_records += 1
    return n_samples, n_records


def multi_file_ingest_available() -> bool:
    """Whether vault.ingest.pipeline.ingest takes a list of paths (one batch from many
    files)."""
    from vault.ingest.pipeline import ingest

    first = next(iter(inspect.signature(ingest).parameters.values()))
    text = str(first.annotation).lower()
    return any(word in text for word in ("list", "sequence", "iterable"))


class Bench:
    """One OpenBao dev server and a temporary folder for every mode of a run."""

    def __init__(self, tmp: Path, addr: str, token: str, threads: int, bao_pid: int) -> None:
        self.tmp = tmp
        self.bao_pid = bao_pid
        #: CPU seconds of the last run of ours, and of OpenBao during it
        self.cpu = (0.0, 0.0)
        self.env = dict(os.environ, VAULT_ADDR=addr, VAULT_TOKEN=token,
                        GENOVAULT_NO_PROGRESS="1", PYTHONPATH=str(ROOT))
        self.threads = threads
        self.n = 0

    def _store(self) -> dict[str, str]:
        self.n += 1
        return dict(self.env, GENOVAULT_STORE=str(self.tmp / f"store{self.n}"))

    def _run_ours(self, cmd: list[str]) -> tuple[float, float, str]:
        env = self._store()
        bao0 = process_cpu(self.bao_pid)
        wall, rss, out = run_process(cmd, env)
        self.cpu = (LAST_CPU[0], process_cpu(self.bao_pid) - bao0)
        shutil.rmtree(env["GENOVAULT_STORE"], ignore_errors=True)
        return wall, rss, out

    def ours(self, path: Path) -> tuple[float, float, float]:
        """(wall, in-process seconds, peak RSS MB) of `genovault ingest path`."""
        wall, rss, out = self._run_ours([sys.executable, "-m", "vault.cli", "ingest", str(path),
                                         "-d", "bench", "--json"])
        return wall, json.loads(out)["seconds"], rss

    def ours_split(self, paths: list[Path]) -> tuple[float, float, float]:
        """`genovault ingest part1 part2 … -d bench`: the parts as one batch."""
        wall, rss, out = self._run_ours([sys.executable, "-m", "vault.cli", "ingest",
                                         *map(str, paths), "-d", "bench", "--json"])
        return wall, json.loads(out)["seconds"], rss

    def plink(self, flag: str, path: Path) -> tuple[float, float]:
        prefix = self.tmp / "plink"
        wall, rss, _ = run_process(["plink2", flag, str(path), "--make-pgen", "--out",
                                    str(prefix), "--threads", str(self.threads)])
        for f in self.tmp.glob("plink.*"):
            f.unlink()
        return wall, rss


def compare(name: str, runs: int, bench: Bench, ours: Callable[[], tuple[float, float, float]],
            plink: Callable[[], tuple[float, float]]) -> dict[str, Any]:
    """Alternate ours and plink2 ``runs`` times; medians and the ratio (plus CPU seconds, which
    other load on the machine does not inflate the way it inflates wall time)."""
    t_ours, t_inner, rss_ours, t_plink, rss_plink = [], [], [], [], []
    cpu_ours, cpu_vault, cpu_plink = [], [], []
    for i in range(runs):
        wall, inner, rss = ours()
        cpu_ours.append(bench.cpu[0])
        cpu_vault.append(bench.cpu[1])
        wall_p, rss_p = plink()
        cpu_plink.append(LAST_CPU[0])
        t_ours.append(wall)
        t_inner.append(inner)
        rss_ours.append(rss)
        t_plink.append(wall_p)
        rss_plink.append(rss_p)
        print(f"{name} run {i + 1}: genovault {wall:.2f} s (in process {inner:.2f} s, CPU "
              f"{cpu_ours[-1]:.1f} s + Vault {cpu_vault[-1]:.1f} s, peak RSS {rss:.0f} MB) | "
              f"plink2 {wall_p:.2f} s (CPU {cpu_plink[-1]:.1f} s, peak RSS {rss_p:.0f} MB)",
              file=sys.stderr)
    med, med_p = statistics.median(t_ours), statistics.median(t_plink)
    cpu_total = statistics.median(o + v for o, v in zip(cpu_ours, cpu_vault, strict=True))
    return {"seconds": round(med, 3), "seconds_in_process": round(statistics.median(t_inner), 3),
            "cpu_seconds": round(statistics.median(cpu_ours), 3),
            "vault_cpu_seconds": round(statistics.median(cpu_vault), 3),
            "plink2_cpu_seconds": round(statistics.median(cpu_plink), 3),
            # plink2's CPU over ours + OpenBao's: the work done, which other load on a shared
            # machine hardly changes (wall-time ratios move with it)
            "cpu_ratio": round(statistics.median(cpu_plink) / cpu_total, 3),
            "load_average": round(os.getloadavg()[0], 2),
            "plink2_seconds": round(med_p, 3), "ratio": round(med_p / med, 3),
            "peak_rss_mb": round(max(rss_ours), 1), "plink2_peak_rss_mb": round(max(rss_plink), 1),
            "all_seconds": [round(x, 3) for x in t_ours],
            "all_plink2_seconds": [round(x, 3) for x in t_plink]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seq-len", "--sequence-length", dest="seq_len", type=float, default=50e6,
                    help="simulated sequence length in bp (default 50e6)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--format", default="vcf",
                    help="comma-separated modes: vcf, bcf (default vcf)")
    ap.add_argument("--split", type=int, default=1, metavar="N",
                    help="also ingest the VCF cut into N per-region files as one batch")
    ap.add_argument("--rss-50k", action="store_true",
                    help="also ingest a 50,000-sample cohort once for its peak RSS")
    ap.add_argument("--seq-len-50k", type=float, default=1e6)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="threads for plink2 (ours uses all cores)")
    args = ap.parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if unknown := set(formats) - {"vcf", "bcf"}:
        ap.error(f"unknown --format {', '.join(sorted(unknown))}: use vcf and/or bcf")
    if args.split > 1 and not multi_file_ingest_available():
        raise SystemExit("--split needs vault.ingest.pipeline.ingest to take a list of paths "
                         "(one batch from several files, `genovault ingest FILE...`); this "
                         "checkout's ingest takes one path, so the split mode cannot run here")

    vcf = simulate_cohort(args.samples, sequence_length=args.seq_len)
    n_samples, n_records = count_records(vcf)
    genotypes = n_samples * n_records
    print(f"cohort {vcf.name}: {n_samples} samples x {n_records} records = {genotypes:.3e} "
          f"genotypes, {vcf.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    result: dict[str, Any] = {"bench": "ingest", "samples": n_samples, "records": n_records,
                              "genotypes": genotypes, "runs": args.runs, "formats": formats,
                              "ratio": None, "bcf_ratio": None, "split_ratio": None,
                              "peak_rss_mb": None, "peak_rss_mb_50k": None}
    with tempfile.TemporaryDirectory(prefix="gv-bench-") as tmp_name, \
            dev_server(Path(tmp_name)) as bao:
        tmp = Path(tmp_name)
        bootstrap(bao.client())
        token = mint_role_token(bao.client(), "ingest", ttl="4h")
        bench = Bench(tmp, bao.addr, token, args.threads, bao.pid)
        # warm-up: numba's on-disk cache is filled by the first runs (not timed)
        demo = ROOT / "vault/sample_data/demo_cohort.vcf.gz"
        bench.ours(demo)
        if "bcf" in formats:
            bench.ours(cohort_bcf_of(demo, tmp))
        rss: list[float] = []
        if "vcf" in formats:
            r = compare("vcf", args.runs, bench, lambda: bench.ours(vcf),
                        lambda: bench.plink("--vcf", vcf))
            result.update(r, genotypes_per_s=round(genotypes / r["seconds"]),
                          plink2_genotypes_per_s=round(genotypes / r["plink2_seconds"]))
            rss.append(r["peak_rss_mb"])
        else:
            result["ratio_reason"] = "not run (--format without vcf)"
        if "bcf" in formats:
            bcf = cohort_bcf(vcf)
            r = compare("bcf", args.runs, bench, lambda: bench.ours(bcf),
                        lambda: bench.plink("--bcf", bcf))
            result.update({f"bcf_{k}": v for k, v in r.items() if k != "ratio"},
                          bcf_ratio=r["ratio"], bcf_bytes=bcf.stat().st_size)
            rss.append(r["peak_rss_mb"])
        else:
            result["bcf_ratio_reason"] = "not run (--format without bcf)"
        if args.split > 1:
            parts = split_regions(vcf, args.split)

            def plink_parts() -> tuple[float, float]:
                times, cpu = [], 0.0
                for p in parts:
                    times.append(bench.plink("--vcf", p))
                    cpu += LAST_CPU[0]
                LAST_CPU[0] = cpu  # every part's CPU, not only the last one's
                return sum(t for t, _ in times), max(m for _, m in times)

            r = compare(f"split{args.split}", args.runs, bench, lambda: bench.ours_split(parts),
                        plink_parts)
            result.update({f"split_{k}": v for k, v in r.items() if k != "ratio"},
                          split=args.split, split_ratio=r["ratio"])
            rss.append(r["peak_rss_mb"])
        else:
            result["split_ratio_reason"] = "not run (--split 1)"
        if rss:
            result["peak_rss_mb"] = max(rss)
        if args.samples >= 50000:
            result["peak_rss_mb_50k"] = result["peak_rss_mb"]
        elif args.rss_50k:
            wide = simulate_cohort(50000, sequence_length=args.seq_len_50k)
            r = compare("vcf-50k", 1, bench, lambda: bench.ours(wide),
                        lambda: bench.plink("--vcf", wide))
            result.update(peak_rss_mb_50k=r["peak_rss_mb"], ratio_50k=r["ratio"],
                          cpu_ratio_50k=r["cpu_ratio"],
                          seconds_50k=r["seconds"], plink2_seconds_50k=r["plink2_seconds"],
                          vault_cpu_seconds_50k=r["vault_cpu_seconds"],
                          records_50k=count_records(wide)[1])
        else:
            result["peak_rss_mb_50k_reason"] = ("not run (--rss-50k, or --samples 50000 "
                                                "--seq-len 1e6)")
    print(json.dumps(result))
    return 0


def cohort_bcf_of(vcf: Path, folder: Path) -> Path:
    """A BCF copy of a small VCF in ``folder`` (for the warm-up)."""
    out = folder / (vcf.name.removesuffix(".vcf.gz") + ".bcf")
    subprocess.run(["bcftools", "view", "--no-version", "-Ob", "-o", str(out), str(vcf)],
                   check=True)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
