"""Scale-out: a whole-dataset frequency query on Dask (1 and 2 worker processes) vs the local
path, plus the per-core figures the scale model in docs/scale.md rests on.

An msprime cohort (benchmarks/cohort.py; 5,000 samples by default) is ingested into a store
under a real OpenBao dev server, in partitions of ``--bin-size`` bp. Then, each ``--runs``
times after one warm-up run (numba, imports, page cache):

* local: a fresh QueryService (no caches) answers ``statistic_table(frequency, group_by)``
  for the whole dataset — the path `genovault serve` takes without Dask;
* dask-N: the same with a DaskExecutor on a LocalCluster of N worker processes (one thread
  each, loopback), every partition a task (min_partitions=1); per query the executor mints
  and delivers one wrapped Vault token per worker.

Per-core figures: decrypt + decode (DatasetReader.blocks) and count (count_genotypes) over
every partition on one thread, as genotypes per second; bytes on disk per genotype.

Multi-file ingest on Dask is not measured: it is not implemented (docs/scale.md).

    python benchmarks/scale.py --samples 5000          # the figures in docs/scale.md
    python benchmarks/scale.py --samples 500 --seq-len 5e6 --runs 2   # a quick check

The last line of stdout is one JSON object: {"bench": "scale", "speedup_2_workers": ...,
"dask1_vs_local": ... (local time / Dask-1 time), ...}. Progress goes to stderr. The
machine may be shared: the JSON records ``os.getloadavg()`` before the runs.
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


def timed_query(svc: QueryService, group_by: str | None) -> tuple[float, int]:
    t0 = time.perf_counter()
    _, table = svc.statistic_table(DATASET, "frequency", Selection(), group_by, Disclosure(),
                                   limit=MAX_TABLE_PAGE)
    return time.perf_counter() - t0, table.num_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seq-len", type=float, default=50e6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin-size", type=int, default=1_000_000,
                    help="partition width in bp (default 1 Mb: 50 partitions of 50 Mb)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--group-by", default="population")
    ap.add_argument("--threads-per-worker", type=int, default=1)
    args = ap.parse_args(argv)

    import distributed

    import vault.query.distributed as vd

    t0 = time.perf_counter()
    vcf = simulate_cohort(args.samples, None, args.seed, float(int(args.seq_len)))
    _, sheet, _ = cohort_paths(args.samples, vcf.parent, args.seed, float(int(args.seq_len)))
    log(f"cohort {vcf.name} ready in {time.perf_counter() - t0:.1f} s")
    out: dict[str, Any] = {"bench": "scale", "samples": args.samples,
                           "bin_size": args.bin_size, "group_by": args.group_by,
                           "threads_per_worker": args.threads_per_worker,
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
            qclient = bao.client(mint_role_token(root, "query", ttl="1h"))
            out["per_core"] = per_core(store, Keyring(qclient, DATASET))
            log(f"per core: {json.dumps(out['per_core'])}")

            def local_svc() -> QueryService:
                return QueryService(store, lambda: qclient, cache_bytes=0)

            timed_query(local_svc(), args.group_by)  # warm-up
            local = [timed_query(local_svc(), args.group_by) for _ in range(args.runs)]
            out["local_s"] = statistics.median(t for t, _ in local)
            out["rows"] = local[0][1]
            out["partitions"] = len(local_svc().version(DATASET).reader.partitions(None))
            log(f"local: median {out['local_s']:.3f} s ({[round(t, 3) for t, _ in local]})")
            for n in (1, 2):
                with distributed.LocalCluster(
                        n_workers=n, threads_per_worker=args.threads_per_worker,
                        processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0") as lc, \
                        distributed.Client(lc) as client:
                    ex = vd.DaskExecutor(client, lambda: bao.client(), min_partitions=1)

                    def dask_svc(ex: vd.DaskExecutor = ex) -> QueryService:
                        return QueryService(store, lambda: qclient, cache_bytes=0, executor=ex)

                    timed_query(dask_svc(), args.group_by)  # warm-up: imports, numba, files
                    runs = []
                    with distributed.get_task_stream(client) as ts:
                        for _ in range(args.runs):
                            t, rows = timed_query(dask_svc(), args.group_by)
                            assert rows == out["rows"], "Dask and local answers differ"
                            runs.append((t, dict(ex.last)))
                    compute = sum(ss["stop"] - ss["start"] for task in ts.data
                                  for ss in task["startstops"] if ss["action"] == "compute")
                    med = statistics.median(t for t, _ in runs)
                    tasks = sum(r["tasks"] for _, r in runs)
                    slots = n * args.threads_per_worker
                    out[f"dask{n}_s"] = med
                    out[f"dask{n}_credential_s"] = statistics.median(
                        r["credential_s"] for _, r in runs)
                    out[f"dask{n}_task_compute_s"] = compute / tasks
                    # wall time the workers' threads were not computing, per task
                    out[f"dask{n}_overhead_per_task_s"] = max(
                        0.0, (sum(t for t, _ in runs) * slots - compute) / tasks)
                    log(f"dask-{n}: median {med:.3f} s ({[round(t, 3) for t, _ in runs]}); "
                        f"task compute {compute / tasks * 1e3:.1f} ms, overhead "
                        f"{out[f'dask{n}_overhead_per_task_s'] * 1e3:.1f} ms per task")
                    ex.close()
    out["dask1_vs_local"] = out["local_s"] / out["dask1_s"]
    out["speedup_2_workers"] = out["dask1_s"] / out["dask2_s"]
    out["speedup_per_worker_2"] = out["speedup_2_workers"] / 2
    out["multi_file_ingest"] = None  # not implemented on Dask (docs/scale.md)
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
