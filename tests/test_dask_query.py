"""The query plan on a real Dask LocalCluster (worker processes): same answers as the local
path, only counts come back, workers hold short-lived tokens of their own."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import hvac
import hvac.exceptions
import numpy as np
import pyarrow as pa
import pytest
from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

import vault.query.distributed as vd
from tests.support.daskcluster import two_worker_client
from tests.support.vcfgen import cohort_vcf
from vault.errors import GenoVaultError
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys import auth as vauth
from vault.keys.acl import query_policy_hcl, with_token_self
from vault.keys.bootstrap import mint_role_token
from vault.query.service import Disclosure, QueryService, Selection
from vault.store.dataset import Store
from vault.store.reader import Region

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[1] / "vault" / "sample_data"
DATASET = "dask1"
STATS = ("frequency", "genotype_counts", "hardy_weinberg", "missingness")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread each, on loopback."""
    yield from two_worker_client()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, bao_server: Any,
          bootstrapped: Any) -> Store:
    """Two batches (the demo cohort; 50 more samples whose sites mostly differ), in
    partitions of 100 kb (about ten of them)."""
    folder = tmp_path_factory.mktemp("dask-store")
    st = Store(folder / "store")
    root = bao_server.client()
    client = bao_server.client(mint_role_token(root, "ingest", ttl="15m"))
    ingest(DEMO / "demo_cohort.vcf.gz", DATASET, client=client, store=st,
           sample_sheet=DEMO / "demo_cohort_samples.tsv",
           options=IngestOptions(progress=False, bin_size=100_000))
    ids = [f"EXTRA{i:03d}" for i in range(50)]
    vcf, _ = cohort_vcf(folder / "b2.vcf", ids, 110, seed=7, chrom="20", start=60_001,
                        step=9000)
    sheet = folder / "b2.tsv"
    sheet.write_text("sample\tpopulation\n" + "".join(
        f"{s}\t{'pop1' if i % 2 else 'popX'}\n" for i, s in enumerate(ids)))
    ingest(vcf, DATASET, client=client, store=st, sample_sheet=sheet,
           options=IngestOptions(progress=False))
    return st


def _query_client(bao_server: Any) -> hvac.Client:
    return bao_server.client(mint_role_token(bao_server.client(), "query", ttl="15m"))


@pytest.fixture(scope="module")
def local(store: Store, bao_server: Any) -> QueryService:
    client = _query_client(bao_server)
    return QueryService(store, lambda: client)


def _executor(cluster: Any, bao_server: Any, **kw: Any) -> vd.DaskExecutor:
    kw.setdefault("min_partitions", 1)
    return vd.DaskExecutor(cluster, lambda: bao_server.client(), **kw)


@pytest.fixture
def on_dask(store: Store, bao_server: Any, cluster: Any) -> QueryService:
    """A service whose counts all come from the cluster (no counts cache)."""
    client = _query_client(bao_server)
    return QueryService(store, lambda: client, cache_bytes=0,
                        executor=_executor(cluster, bao_server))


D = Disclosure(k=1, min_group_size=1)  # nothing suppressed: every cell is compared


def _all_counts(svc: QueryService, group_by: str | None,
                selection: Selection | None = None) -> list[tuple[Any, ...]]:
    selection = selection or Selection()
    v = svc.version(DATASET)
    grouping, _ = svc._grouping(v, group_by, D)
    return [(c.contig, c.pos.tolist(), c.ref, c.alt, c.ids, c.overall.tolist(),
             c.groups.tolist()) for c in svc._counts(v, selection, grouping)]


def test_dask_query__every_cell_equals_the_local_path(local: QueryService,
                                                      on_dask: QueryService) -> None:
    v = local.version(DATASET)
    assert len(v.manifest.batches) == 2 and len(v.reader.partitions(None)) >= 8
    for group_by in (None, "population", "sex"):
        want = _all_counts(local, group_by)
        got = _all_counts(on_dask, group_by)
        assert on_dask.executor.last["tasks"] == len(v.reader.partitions(None))
        assert got == want
        assert sum(len(w[1]) for w in want) > 10_000
    for stat in STATS:
        for d in (D, Disclosure()):  # answers as released, suppression included
            want = local.statistic(DATASET, stat, Selection(), "population", d, limit=5000)
            got = on_dask.statistic(DATASET, stat, Selection(), "population", d, limit=5000)
            assert got == want, (stat, d.k)
        for group_by in (None, "population"):
            env_w, want_t = local.statistic_table(DATASET, stat, Selection(), group_by, D)
            env_g, got_t = on_dask.statistic_table(DATASET, stat, Selection(), group_by, D)
            assert got_t.equals(want_t) and env_g == env_w and want_t.num_rows > 10_000
    sel = Selection(region=Region("20", 150_000, 420_000))
    assert _all_counts(on_dask, "population", sel) == _all_counts(local, "population", sel)
    assert on_dask.blocks.bytes == 0  # no genotype block was ever held by the service


def test_dask_query__report_equals_the_local_path(local: QueryService,
                                                  on_dask: QueryService,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import vault.report.build as rb

    monkeypatch.setattr(rb, "_now", lambda: "2026-01-01T00:00:00Z")
    tasks = []
    real = vd.DaskExecutor.counts

    def counting(self: Any, *a: Any, **kw: Any) -> Any:
        tasks.append(len(a[3]))
        yield from real(self, *a, **kw)

    monkeypatch.setattr(vd.DaskExecutor, "counts", counting)
    d = Disclosure()
    assert rb.build_report(on_dask, DATASET, d) == rb.build_report(local, DATASET, d)
    assert tasks and sum(tasks) >= 3 * len(local.version(DATASET).reader.partitions(None))


def test_dask_query__local_cluster_from_settings(local: QueryService, store: Store,
                                                 bao_server: Any) -> None:
    from vault.settings import load_settings

    settings = load_settings(vault_addr=bao_server.addr, vault_token=bao_server.root_token,
                             dask_scheduler="local:1", dask_min_partitions=2)
    ex = vd.executor_from_settings(settings, None, lambda: bao_server.client())
    assert ex is not None
    try:
        client = _query_client(bao_server)
        svc = QueryService(store, lambda: client, cache_bytes=0, executor=ex)
        _, got = svc.statistic_table(DATASET, "frequency", Selection(), "population", D)
        _, want = local.statistic_table(DATASET, "frequency", Selection(), "population", D)
        assert got.equals(want) and ex.last["tasks"] >= 8 and ex.last["workers"] == 1
        # a one-partition plan stays on the local path
        sel = Selection(region=Region("20", 150_000, 160_000))
        ex.last = {}
        svc.statistic(DATASET, "frequency", sel, None, D)
        assert ex.last == {}
    finally:
        ex.close()


class ResultRecorder(SchedulerPlugin):
    """Every task result the scheduler learns about: key, type name, size."""

    name = "genovault-test-results"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kw: Any) -> None:
        if finish == "memory":
            ts = self.scheduler.tasks.get(key)
            self.seen.append((str(key), str(ts.type if ts else "?"),
                              int(ts.nbytes if ts else -1)))


def test_dask_query__no_task_result_holds_genotypes(local: QueryService,
                                                    on_dask: QueryService, cluster: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[Any] = []
    real = vd.DaskExecutor._result

    def recording(self: Any, fut: Any, *a: Any) -> Any:
        out = real(self, fut, *a)
        received.append(out)
        return out

    monkeypatch.setattr(vd.DaskExecutor, "_result", recording)
    cluster.register_plugin(ResultRecorder())
    try:
        on_dask.statistic_table(DATASET, "genotype_counts", Selection(), "population", D)
        seen = cluster.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.plugins[ResultRecorder.name].seen)
    finally:
        cluster.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.remove_plugin(ResultRecorder.name))
    v = local.version(DATASET)
    n_samples = v.cohort.n_samples
    n_groups = len(v.cohort.grouping("population").names)
    assert len(received) == len(v.reader.partitions(None)) == len(seen)
    assert {t for _, t, _ in seen} <= {"vault.query.distributed.PartitionCounts",
                                       "PartitionCounts"}
    for res in received:
        assert type(res) is vd.PartitionCounts
        n = res.pos.size
        for name, value in vars(res).items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.int64, name
                assert value.shape in {(n,), (n, 4), (n, n_groups, 4)}, name
                assert n_samples not in value.shape and (n_samples + 3) // 4 not in value.shape
            elif isinstance(value, pa.Array):
                assert value.type == pa.string() and len(value) == n
            else:
                assert isinstance(value, str), name
    # nothing stays on the cluster: no result and nothing scattered
    assert not any(cluster.has_what().values())
    assert all(not s for s in cluster.run(vd.worker_state).values())


def _worker_tokens() -> list[str]:
    return [c.client.token for c in vd._CREDENTIALS.values()]


def test_dask_query__tokens_travel_outside_the_graph_and_are_revoked(
        local: QueryService, on_dask: QueryService, cluster: Any, bao_server: Any,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    wrapping: list[str] = []
    real_mint = vd.mint_wrapped_worker_token

    def mint(*a: Any, **kw: Any) -> tuple[str, str]:
        out = real_mint(*a, **kw)
        wrapping.append(out[0])
        return out

    monkeypatch.setattr(vd, "mint_wrapped_worker_token", mint)
    v = on_dask.version(DATASET)
    parts = v.reader.partitions(None)
    it = on_dask.executor.counts(str(on_dask.store.root), DATASET, v.key, parts, None, ())
    first = next(it)
    assert first is not None
    tokens = [t for ts in cluster.run(_worker_tokens).values() for t in ts]
    assert len(tokens) == 2 and len(wrapping) == 2
    graph = cluster.run_on_scheduler(lambda dask_scheduler: [
        f"{k!r} {ts.run_spec!r}" for k, ts in dask_scheduler.tasks.items()])
    assert graph and any(vd.TASK_PREFIX in g for g in graph)
    rest = list(it)
    assert len(rest) == len(parts) - 1
    logs = [str(x) for x in cluster.get_scheduler_logs(n=10_000)]
    logs += [str(x) for lines in cluster.get_worker_logs(n=10_000).values() for x in lines]
    events = repr(cluster.get_events())
    for secret in tokens + wrapping:
        assert all(secret not in g for g in graph)
        assert all(secret not in line for line in logs)
        assert secret not in events and secret not in caplog.text
    # the workers revoked their tokens; the wrapping tokens were used up
    for secret in tokens + wrapping:
        with pytest.raises(hvac.exceptions.Forbidden):
            bao_server.client(secret).auth.token.lookup_self()
    assert all(not s for s in cluster.run(vd.worker_state).values())


def _executing(dask_worker: Any) -> bool:
    return any(str(ts.key).startswith("sleep") for ts in dask_worker.state.executing)


def test_dask_query__expired_worker_credential_fails_the_query_cleanly(
        on_dask: QueryService, cluster: Any, bao_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    accessors: list[str] = []
    real_mint = vd.mint_wrapped_worker_token

    def mint(*a: Any, **kw: Any) -> tuple[str, str]:
        out = real_mint(*a, **kw)
        accessors.append(out[1])
        return out

    monkeypatch.setattr(vd, "mint_wrapped_worker_token", mint)
    on_dask.executor = _executor(cluster, bao_server, credential_ttl="2s")
    # both workers are busy for longer than the credential lives: the query's tasks start late
    addrs = list(cluster.scheduler_info(n_workers=-1)["workers"])
    busy = [cluster.submit(time.sleep, 4.0, workers=[a], pure=False) for a in addrs]
    until = time.time() + 3
    while time.time() < until and not all(cluster.run(_executing).values()):
        time.sleep(0.05)
    assert all(cluster.run(_executing).values())  # both busy now, for about 4 s
    with pytest.raises(vd.WorkerCredentialExpired, match=r"expired|outlasted"):
        on_dask.statistic(DATASET, "frequency", Selection(), None, D, limit=5000)
    distributed.wait(busy)
    assert len(accessors) == 2
    root = bao_server.client()
    for a in accessors:  # gone from Vault (expired or revoked), not merely refused locally
        with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
            root.auth.token.lookup_accessor(a)
    assert all(not s for s in cluster.run(vd.worker_state).values())
    assert on_dask.blocks.bytes == 0 and on_dask.counts_cache.bytes == 0
    left = [k for keys in cluster.has_what().values() for k in keys]
    assert not [k for k in left if str(k).startswith(vd.TASK_PREFIX)]
    cluster.cancel(busy)


def test_dask_query__service_revokes_the_tokens_workers_did_not_revoke(
        on_dask: QueryService, cluster: Any, bao_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The minter is the service's own AppRole identity (as with an external Vault). When a
    worker does not answer the end of the query (gone, hung), the service revokes its token
    by accessor: Vault must then know the token no more."""
    root = bao_server.client()
    root.sys.create_or_update_acl_policy(f"genovault-query-{DATASET}",
                                         with_token_self(query_policy_hcl([DATASET])))
    rid, sid = vauth.approle_credentials(root, "service")
    service = bao_server.client(vauth.approle_login(bao_server.addr, rid, sid))
    on_dask.executor = vd.DaskExecutor(cluster, lambda: service, min_partitions=1)
    accessors: list[str] = []
    real_mint = vd.mint_wrapped_worker_token

    def mint(*a: Any, **kw: Any) -> tuple[str, str]:
        out = real_mint(*a, **kw)
        accessors.append(out[1])
        return out

    monkeypatch.setattr(vd, "mint_wrapped_worker_token", mint)
    # no worker answers the end of the query: each keeps its credential
    monkeypatch.setattr(vd.DaskExecutor, "_drop",
                        lambda self, holders, cred_id: list(range(len(holders))))
    try:
        on_dask.statistic(DATASET, "frequency", Selection(), None, D, limit=5000)
        assert len(accessors) == 2
        for a in accessors:
            with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
                root.auth.token.lookup_accessor(a)
    finally:
        for cred_ids in cluster.run(vd.worker_state).values():
            for cid in cred_ids:
                cluster.run(vd.drop_credential, cid)
        service.auth.token.revoke_self()


class KillOnce(WorkerPlugin):
    """Kills its worker process when it starts the third partition task (once per run)."""

    name = "genovault-test-kill"

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def transition(self, key: Any, start: str, finish: str, **kw: Any) -> None:
        k = str(key)
        if finish == "executing" and k.startswith(vd.TASK_PREFIX) and k.endswith("-2"):
            try:
                fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)


def test_dask_query__worker_killed_mid_query_never_gives_a_wrong_answer(
        local: QueryService, on_dask: QueryService, cluster: Any,
        tmp_path: Path) -> None:
    flag = tmp_path / "killed"
    want = local.statistic(DATASET, "genotype_counts", Selection(), "population", D,
                           limit=5000)
    pids_before = set(cluster.run(os.getpid).values())
    cluster.register_plugin(KillOnce(str(flag)))
    try:
        try:
            got = on_dask.statistic(DATASET, "genotype_counts", Selection(), "population", D,
                                    limit=5000)
        except GenoVaultError as exc:  # failing as a whole is allowed, a wrong answer is not
            assert "query failed as a whole" in str(exc) or "credential" in str(exc)
        else:
            assert got == want
    finally:
        cluster.unregister_worker_plugin(KillOnce.name)
    assert flag.exists() and int(flag.read_text()) in pids_before  # a worker really died
    deadline = time.time() + 30
    while len(cluster.scheduler_info(n_workers=-1)["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    # the next query runs on the surviving and the restarted worker, correctly
    assert on_dask.statistic(DATASET, "genotype_counts", Selection(), "population", D,
                             limit=5000) == want

