"""Concurrent cold reads: worker threads and request threads decrypting one dataset at once.

pyarrow calls back into Python (the KMS client's unwrap_key, which needs the GIL) while
holding its key-cache mutex, and some of its metadata accessors take that mutex while holding
the GIL: two threads decrypting files of one keyring with cold key caches can deadlock the
whole process (every thread stops; a timeout in the same process never fires). The reader
therefore uses a keyring one thread at a time (Keyring.io_lock). These tests run the
concurrent reads in a child process with a hard timeout, several times with fresh keyrings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import hvac
import numpy as np
import pytest

from tests.support.baodev import DevServer
from vault.ingest.pipeline import IngestResult
from vault.query.service import Disclosure, QueryService, Selection
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
VCF = REPO / "tests" / "data" / "vcf" / "SeqArray__CEU_Exon.vcf.gz"
BIN = 2_000_000  # many partitions (files) for this exome subset

CHILD = textwrap.dedent("""
    import json, sys, threading
    import hvac
    from vault.keys.kms import Keyring
    from vault.query.service import Disclosure, QueryService, Selection
    from vault.store.dataset import Store
    from vault.store.reader import DatasetReader

    addr, token, store_dir, dataset, rounds = sys.argv[1:6]
    store = Store(store_dir)
    out = []
    for r in range(int(rounds)):
        # a fresh service (cold keyring, empty cache): prefetch workers read ahead
        svc = QueryService(store, lambda: hvac.Client(url=addr, token=token), 0)
        env, t = svc.statistic_table(dataset, "frequency", Selection(), None, Disclosure())
        out.append(t.num_rows)
        # and four request-like threads sharing one cold keyring
        kr = Keyring(hvac.Client(url=addr, token=token), dataset)
        rows = []
        def read():
            n = 0
            for b in DatasetReader(store, dataset, kr).blocks(None):
                n += b.n_variants
            rows.append(n)
        ts = [threading.Thread(target=read) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        out.append(sorted(set(rows)))
    print(json.dumps(out))
""")


def test_concurrent_cold_reads_never_deadlock(
        store: Store, ingest_file: Callable[..., IngestResult], query_client: hvac.Client,
        bao_server: DevServer) -> None:
    res = ingest_file(VCF, "conc", bin_size=BIN)
    n_files = len(res.manifest.batches[0].variant_files)
    assert n_files >= 4, "the test needs several partitions to read concurrently"
    rounds = 6
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, bao_server.addr, query_client.token, str(store.root),
         "conc", str(rounds)], capture_output=True, text=True, timeout=180, env=env,
        cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    variants = res.manifest.variant_rows
    # every round: the whole table once, and four concurrent readers that all saw everything
    assert out == [x for _ in range(rounds) for x in (out[0], [variants])]
    assert 0 < out[0] <= variants


def test_prefetched_answer_equals_sequential(
        store: Store, ingest_file: Callable[..., IngestResult],
        query_client: hvac.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading ahead on worker threads changes nothing in the answer (order, values)."""
    import vault.query.service as qs

    ingest_file(VCF, "conc2", bin_size=BIN)

    def answer() -> tuple[dict, list]:
        svc = QueryService(store, lambda: query_client, 0)
        env, t = svc.statistic_table("conc2", "frequency", Selection(), None,
                                     Disclosure(k=5, min_group_size=5))
        return env, t.to_pylist()

    env_p, rows_p = answer()
    monkeypatch.setattr(qs, "PREFETCH", 0)
    env_s, rows_s = answer()
    assert env_p == env_s and rows_p == rows_s and rows_p
    for chrom in {r["chrom"] for r in rows_p}:  # genome order within each contig
        pos = np.array([r["pos"] for r in rows_p if r["chrom"] == chrom])
        assert (np.diff(pos) >= 0).all()
    # a page that stops early (truncated) leaves no worker running and pages on correctly
    monkeypatch.setattr(qs, "PREFETCH", 2)
    svc = QueryService(store, lambda: query_client, 0)
    e1, t1 = svc.statistic_table("conc2", "frequency", Selection(), None,
                                 Disclosure(k=5, min_group_size=5), 0, 10)
    assert e1["truncated"] and t1.num_rows == 10
    e2, t2 = svc.statistic_table("conc2", "frequency", Selection(), None,
                                 Disclosure(k=5, min_group_size=5), 10)
    assert not e2["truncated"] and t1.to_pylist() + t2.to_pylist() == rows_p


def test_a_request_on_the_old_version_puts_no_block_back_in_the_cache(
        store: Store, ingest_file: Callable[..., IngestResult], query_client: hvac.Client,
        role_client: Callable[[str], hvac.Client]) -> None:
    """A withdrawal makes a new dataset version and the service drops the old version's
    decrypted partitions; a request that was still running on the old version put the blocks
    it read afterwards back (they hold the withdrawn participants' genotypes), kept until
    evicted. Entries of any version but the current one are now refused."""
    from vault.keys import lifecycle

    ds = "cachewd"
    ingest_file(VCF, ds, bin_size=BIN)
    svc = QueryService(store, lambda: query_client, 256 << 20)
    old = svc.version(ds)
    svc.statistic(ds, "frequency", Selection(), None, Disclosure(), limit=10)
    assert any(k[1] == old.key for k in svc.blocks._items)
    import pysam

    with pysam.VariantFile(str(VCF)) as vf:
        first = next(iter(vf.header.samples))
    lifecycle.withdraw(store, ds, role_client("admin"), [first])
    new = svc.version(ds)
    assert new.key != old.key
    assert not any(k[1] == old.key for c in (svc.blocks, svc.counts_cache)
                   for k in c._items)
    # the request still running on the old version reads on
    svc._block(old, 0, 0)
    svc._partition_counts(old, 0, 0, None)
    assert not any(k[1] == old.key for c in (svc.blocks, svc.counts_cache)
                   for k in c._items)
    # the current version is cached as before
    svc._block(new, 0, 0)
    assert any(k[1] == new.key for k in svc.blocks._items)
