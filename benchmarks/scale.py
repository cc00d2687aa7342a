"""Scale-out: whole-dataset frequency queries on Dask (1 and 2 worker processes) vs the local
path, plus the per-core figures the scale model in docs/scale.md rests on.

An msprime cohort (benchmarks/cohort.py; 5,000 samples over 200 Mb by default) is ingested
into a store under a real OpenBao dev server, in partitions of ``--bin-size`` bp (default
10 Mb, the store's own default: 20 partitions). Then, for each query of ``--group-by``
(default ``none,population``: the whole-dataset frequency query, the headline figures, and
the same grouped by population), each ``--runs`` times after one warm-up run (numba,
imports, page cache):

* local: a fresh QueryService (no caches) answers ``statistic_table(frequency, group_by)``
  for the whole dataset — the path `genovault serve` takes without Dask;
* dask-N: the same with a DaskExecutor on a LocalCluster of N worker processes (one thread
  each, loopback), every partition a task (min_partitions=1); per query the executor mints
  and delivers one wrapped Vault token per worker. The scheduler runs in this process,
  beside the service, as a LocalCluster's does: on two cores it competes with the service's
  merge and with the workers.

Per-core figures: decrypt + decode (DatasetReader.blocks) and count (count_genotypes) over
every partition on one thread, as genotypes per second; bytes on disk per genotype.

Multi-file ingest (``--parts N``, default 4): the cohort cut into N files of consecutive
position ranges at multiples of ``--bin-size`` (a Dask ingest refuses files that share a
partition), ingested as one batch locally (the default path) and on a LocalCluster of 1 and 2
worker processes (vault.ingest.distributed: one file per task), each ``--ingest-runs`` times
into a fresh store; medians.

Worker threads: ``--arrow-threads K`` sets Arrow's CPU count to K in every worker, query
and ingest (Dask's nanny sets OMP_NUM_THREADS=1, which Arrow sizes its pool from); 0 leaves
it.

    python benchmarks/scale.py                     # the figures in docs/scale.md
    python benchmarks/scale.py --seq-len 5e7 --bin-size 1e6    # 50 small partitions
    python benchmarks/scale.py --samples 500 --seq-len 5e6 --bin-size 1e6 --runs 2  # quick

The last line of stdout is one JSON object: {"bench": "scale", "speedup_2_workers": ...,
"dask1_vs_local": ... (local time / Dask-1 time), both for the whole-dataset frequency query,
"by_population_speedup_2_workers": ..., "by_population_dask1_vs_local": ... (grouped),
"multi_file_ingest": {"parts": N, "local_s": ..., "dask1_s": ..., "dask2_s": ...,
"local_vs_dask1": ..., "speedup_2_workers": ...}, ...}. Progress goes to stderr. The
machine may be shared: the JSON records ``os.getloadavg()`` before and after the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cohort import cohort_paths, simulate_cohort
from kernels import count_genotypes
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys.bootstrap import bootstrap, mint_role_token
from vault.keys.devserver import dev_server
from vault.keys.kms import Keyring
from vault.query.service import MAX_TABLE_PAGE, Disclosure, QueryService, Selection
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

DATASET = "scale"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def per_core(store: Store, keyring: Keyring) -> dict[str, float]:
    """Decrypt+decode and count throughput on one core (Arrow's and numba's thread pools
    set to one thread), genotypes/s; bytes on disk per genotype."""
    import numba
    import numpy as np
    import pyarrow as pa

    cpus, nthreads = pa.cpu_count(), numba.get_num_threads()
    pa.set_cpu_count(1)
    numba.set_num_threads(1)
    try:
        return _per_core(store, keyring, np)
    finally:
        pa.set_cpu_count(cpus)
        numba.set_num_threads(nthreads)


def _per_core(store: Store, keyring: Keyring, np: Any) -> dict[str, float]:
    reader = DatasetReader(store, DATASET, keyring)
    n = reader.n_samples
    # compile (or load from numba's cache) this signature before anything is timed
    count_genotypes(np.zeros((1, (n + 3) // 4), np.uint8), n, np.full(n, -1, np.int32), 0)
    t_read = t_count = 0.0
    variants = 0
    for ci, bi in reader.partitions(None):
        from vault.store.reader import Region

        size = reader.manifest.partition.bin_size
        region = Region(reader.contigs[ci], max(1, bi * size), (bi + 1) * size - 1)
        t0 = time.perf_counter()
        block = next(iter(reader.blocks(region, site_columns=("pos", "ref", "alt", "id"))))
        t1 = time.perf_counter()
        assert block.packed is not None
        count_genotypes(block.packed, n, np.full(n, -1, np.int32), 0)
        t2 = time.perf_counter()
        t_read += t1 - t0
        t_count += t2 - t1
        variants += block.n_variants
    disk = sum(f.bytes for b in reader.manifest.batches for f in b.variant_files)
    g = variants * n
    return {"genotypes": g, "variants": variants, "variant_file_bytes": disk,
            "bytes_per_genotype": disk / g, "decrypt_decode_genotypes_per_s": g / t_read,
            "count_genotypes_per_s": g / t_count, "decrypt_decode_s": t_read,
            "count_s": t_count}


def split_at_bins(vcf: Path, parts: int, bin_size: int) -> list[Path]:
    """The cohort cut into ``parts`` files of consecutive position ranges whose bounds are
    multiples of ``bin_size`` (cached beside the VCF)."""
    import subprocess

    stem = vcf.name.removesuffix(".vcf.gz")
    out = [vcf.with_name(f"{stem}.bins{bin_size}.part{k + 1}of{parts}.vcf.gz")
           for k in range(parts)]
    if all(p.exists() and p.stat().st_mtime >= vcf.stat().st_mtime for p in out):
        return out
    last = int(subprocess.run(["bash", "-c", f"bcftools query -f '%POS\\n' '{vcf}' | tail -1"],
                              check=True, capture_output=True, text=True).stdout)
    n_bins = last // bin_size + 1
    bounds = [round(n_bins * k / parts) * bin_size for k in range(parts + 1)]
    bounds[-1] = max(bounds[-1], last + 1)
    for k, path in enumerate(out):
        region = f"1:{max(1, bounds[k])}-{bounds[k + 1] - 1}"
        tmp = path.with_name(path.name + ".part")
        subprocess.run(["bcftools", "view", "--no-version", "-t", region, "-Oz", "-o", str(tmp),
                        str(vcf)], check=True)
        tmp.replace(path)
    return out


def multi_file_ingest(bao: Any, root: Any, tmp: Path, parts: list[Path], sheet: Path,
                      bin_size: int, runs: int, arrow_threads: int = 0) -> dict[str, Any]:
    """Seconds (median of ``runs``, each into a fresh store and dataset) of the multi-file
    ingest locally and on Dask with 1 and 2 worker processes."""
    import uuid

    import distributed

    import vault.ingest.distributed as vid

    def once(tag: str, executor: Any = None) -> float:
        store = Store(tmp / f"ingest-{tag}-{uuid.uuid4().hex[:6]}")
        ds = f"mf-{tag}-{uuid.uuid4().hex[:6]}"
        client = bao.client(mint_role_token(root, "ingest", ttl="1h"))
        t0 = time.perf_counter()
        ingest(parts, ds, client=client, store=store, sample_sheet=sheet,
               options=IngestOptions(progress=False, bin_size=bin_size), executor=executor)
        return time.perf_counter() - t0

    out: dict[str, Any] = {"parts": len(parts), "runs": runs}
    local = [once("local") for _ in range(runs)]
    out["local_s"] = statistics.median(local)
    log(f"multi-file ingest, {len(parts)} files, local: {[round(t, 2) for t in local]}")
    for n in (1, 2):
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as lc, \
                distributed.Client(lc) as client:
            ex = vid.DaskIngest(client, lambda: bao.client())
            if arrow_threads:
                client.run(_set_arrow_cpu_count, arrow_threads)
            once(f"warm{n}", ex)  # imports and numba compilation in the workers
            times = [once(f"dask{n}", ex) for _ in range(runs)]
            out[f"dask{n}_s"] = statistics.median(times)
            out[f"dask{n}_credential_s"] = ex.last["credential_s"]
            log(f"multi-file ingest, dask-{n}: {[round(t, 2) for t in times]}")
    out["local_vs_dask1"] = out["local_s"] / out["dask1_s"]
    out["speedup_2_workers"] = out["dask1_s"] / out["dask2_s"]
    return out


def _arrow_cpu_count() -> int:
    """Worker: Arrow's CPU count (its thread pool's size)."""
    import pyarrow as pa

    return int(pa.cpu_count())


def _set_arrow_cpu_count(k: int) -> None:
    """Worker: Arrow's CPU count set to ``k``."""
    import pyarrow as pa

    pa.set_cpu_count(k)


def timed_query(svc: QueryService, group_by: str | None) -> tuple[float, int]:
    t0 = time.perf_counter()
    _, table = svc.statistic_table(DATASET, "frequency", Selection(), group_by, Disclosure(),
                                   limit=MAX_TABLE_PAGE)
    return time.perf_counter() - t0, table.num_rows


def _tag(group_by: str | None) -> str:
    """JSON key prefix of a query: none for the first (headline) one, ``grouped_`` else."""
    return "" if group_by is None else f"by_{group_by}_"


def _dask_runs(out: dict[str, Any], n: int, group_by: str | None, dask_svc: Any, client: Any,
               ex: Any, args: Any) -> None:
    """``args.runs`` timed Dask queries (after one warm-up) into ``out``."""
    import distributed

    tag = _tag(group_by)
    timed_query(dask_svc(), group_by)  # warm-up: imports, numba, files
    runs = []
    with distributed.get_task_stream(client) as ts:
        for _ in range(args.runs):
            t, rows = timed_query(dask_svc(), group_by)
            assert rows == out[f"{tag}rows"], "Dask and local answers differ"
            runs.append((t, dict(ex.last)))
    compute = sum(ss["stop"] - ss["start"] for task in ts.data
                  for ss in task["startstops"] if ss["action"] == "compute")
    med = statistics.median(t for t, _ in runs)
    tasks = sum(r["tasks"] for _, r in runs)
    slots = n * args.threads_per_worker
    out[f"{tag}dask{n}_s"] = med
    out[f"{tag}dask{n}_credential_s"] = statistics.median(r["credential_s"] for _, r in runs)
    out[f"{tag}dask{n}_task_compute_s"] = compute / tasks
    # wall time the workers' threads were not computing, per task
    out[f"{tag}dask{n}_overhead_per_task_s"] = max(
        0.0, (sum(t for t, _ in runs) * slots - compute) / tasks)
    log(f"{group_by or 'overall'}: dask-{n}: median {med:.3f} s "
        f"({[round(t, 3) for t, _ in runs]}); task compute {compute / tasks * 1e3:.1f} ms, "
        f"overhead {out[f'{tag}dask{n}_overhead_per_task_s'] * 1e3:.1f} ms per task")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seq-len", type=float, default=200e6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin-size", type=float, default=10_000_000,
                    help="partition width in bp (default 10 Mb, the store's default: 20 "
                         "partitions of 200 Mb)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--group-by", default="none,population",
                    help="comma-separated queries: none (the whole-dataset frequency, the "
                         "headline figures) and/or sample-sheet columns to group by")
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--arrow-threads", type=int, default=0,
                    help="Arrow's CPU count in every query worker (0: as Dask leaves it)")
    ap.add_argument("--parts", type=int, default=4,
                    help="files of the multi-file ingest measurement (0: skip it)")
    ap.add_argument("--ingest-runs", type=int, default=1)
    ap.add_argument("--skip-query", action="store_true",
                    help="only the ingest figures (no query measurement)")
    args = ap.parse_args(argv)
    args.bin_size = int(args.bin_size)

    import distributed

    import vault.query.distributed as vd

    t0 = time.perf_counter()
    vcf = simulate_cohort(args.samples, None, args.seed, float(int(args.seq_len)))
    _, sheet, _ = cohort_paths(args.samples, vcf.parent, args.seed, float(int(args.seq_len)))
    log(f"cohort {vcf.name} ready in {time.perf_counter() - t0:.1f} s")
    out: dict[str, Any] = {"bench": "scale", "samples": args.samples,
                           "bin_size": args.bin_size, "group_by": args.group_by,
                           "threads_per_worker": args.threads_per_worker,
                           "arrow_threads": args.arrow_threads,
                           "cpu_count": os.cpu_count(), "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="gv-bench-scale-") as tmp_s:
        tmp = Path(tmp_s)
        with dev_server(tmp) as bao:
            root = bao.client()
            bootstrap(root)
            store = Store(tmp / "store")
            t0 = time.perf_counter()
            res = ingest(vcf, DATASET, client=bao.client(mint_role_token(root, "ingest",
                                                                          ttl="1h")),
                         store=store, sample_sheet=sheet,
                         options=IngestOptions(progress=False, bin_size=args.bin_size))
            out["ingest_s"] = time.perf_counter() - t0
            out["variant_rows"] = res.manifest.variant_rows
            log(f"ingest: {res.manifest.variant_rows} rows in {out['ingest_s']:.1f} s")
            if args.parts:
                files = split_at_bins(vcf, args.parts, args.bin_size)
                out["multi_file_ingest"] = multi_file_ingest(
                    bao, root, tmp, files, sheet, args.bin_size, args.ingest_runs,
                    args.arrow_threads)
                log(f"multi-file ingest: {json.dumps(out['multi_file_ingest'])}")
            if args.skip_query:
                out["loadavg_after"] = os.getloadavg()
                print(json.dumps(out))
                return 0
            qclient = bao.client(mint_role_token(root, "query", ttl="1h"))
            out["per_core"] = per_core(store, Keyring(qclient, DATASET))
            log(f"per core: {json.dumps(out['per_core'])}")

            queries = [None if g in ("", "none") else g for g in args.group_by.split(",")]

            def local_svc() -> QueryService:
                return QueryService(store, lambda: qclient, cache_bytes=0)

            for g in queries:
                tag = _tag(g)
                timed_query(local_svc(), g)  # warm-up
                local = [timed_query(local_svc(), g) for _ in range(args.runs)]
                out[f"{tag}local_s"] = statistics.median(t for t, _ in local)
                out[f"{tag}rows"] = local[0][1]
                log(f"{g or 'overall'}: local median {out[f'{tag}local_s']:.3f} s "
                    f"({[round(t, 3) for t, _ in local]})")
            out["partitions"] = len(local_svc().version(DATASET).reader.partitions(None))
            for n in (1, 2):
                with distributed.LocalCluster(
                        n_workers=n, threads_per_worker=args.threads_per_worker,
                        processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0") as lc, \
                        distributed.Client(lc) as client:
                    ex = vd.DaskExecutor(client, lambda: bao.client(), min_partitions=1)
                    # what Dask left (the nanny's OMP_NUM_THREADS=1), then what we set
                    out[f"dask{n}_worker_arrow_cpu_count_default"] = sorted(
                        set(client.run(_arrow_cpu_count).values()))
                    if args.arrow_threads:
                        client.run(_set_arrow_cpu_count, args.arrow_threads)

                    def dask_svc(ex: vd.DaskExecutor = ex) -> QueryService:
                        return QueryService(store, lambda: qclient, cache_bytes=0, executor=ex)

                    for g in queries:
                        _dask_runs(out, n, g, dask_svc, client, ex, args)
                    ex.close()
    for g in queries:
        tag = _tag(g)
        out[f"{tag}dask1_vs_local"] = out[f"{tag}local_s"] / out[f"{tag}dask1_s"]
        out[f"{tag}speedup_2_workers"] = out[f"{tag}dask1_s"] / out[f"{tag}dask2_s"]
        out[f"{tag}speedup_per_worker_2"] = out[f"{tag}speedup_2_workers"] / 2
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
