"""The API with its counts from a real Dask LocalCluster (worker processes), through HTTP:
the same answers as the local path, and a query that fails on the cluster is a clean,
audited 503 that the caller can retry, never a 500, a partial answer or a stack trace."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import distributed
import httpx
import pytest

import vault.query.distributed as vd
from tests.api.conftest import Api
from vault.audit.paths import audit_log_path

pytestmark = pytest.mark.integration

Client = Callable[[str | None], httpx.Client]
PARAMS = {"region": "20:1-200000"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as lc, \
            distributed.Client(lc) as client:
        yield client


@pytest.fixture
def on_dask(api: Api, cluster: Any) -> Iterator[Callable[..., vd.DaskExecutor]]:
    """Puts a DaskExecutor (minting as the embedded vault's root does) behind the API; the
    service's caches are emptied before and after, so every count comes from where it says."""
    query = api.services.query

    def use(**kw: Any) -> vd.DaskExecutor:
        ex = vd.DaskExecutor(cluster, lambda: api.bao.client(), min_partitions=1, **kw)
        query.executor = ex
        query.counts_cache.clear()
        query.blocks.clear()
        return ex

    yield use
    query.executor = None
    query.counts_cache.clear()
    query.blocks.clear()


def _records(api: Api, qid: str) -> list[dict[str, Any]]:
    path = audit_log_path(api.services.settings)
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["query_id"] == qid]


def _answer(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert r.status_code == 200, body
    return {k: v for k, v in body.items() if k != "query_id"}


def _executing(dask_worker: Any) -> bool:
    return any(str(ts.key).startswith("sleep") for ts in dask_worker.state.executing)


def test_dask_http__answers_equal_the_local_path(api: Api, as_user: Client,
                                                 on_dask: Callable[..., vd.DaskExecutor]
                                                 ) -> None:
    client = as_user("researcher-a")
    api.services.query.counts_cache.clear()
    local = _answer(client.get("/v1/datasets/demo/frequency", params=PARAMS))
    ex = on_dask()
    remote = client.get("/v1/datasets/demo/frequency", params=PARAMS)
    assert _answer(remote) == local
    assert ex.last.get("tasks", 0) >= 1  # the counts did come from the cluster
    (rec,) = _records(api, remote.json()["query_id"])
    assert rec["result"]["status"] == 200


def test_dask_http__a_query_failing_on_the_cluster_is_an_audited_503(
        api: Api, as_user: Client, on_dask: Callable[..., vd.DaskExecutor],
        cluster: Any) -> None:
    # the worker is busy for longer than the query's 2-second worker credential lives: its
    # task starts too late, the credential is refused, the query fails as a whole
    ex = on_dask(credential_ttl="2s")
    busy = cluster.submit(time.sleep, 4.0, pure=False)
    until = time.time() + 3
    while time.time() < until and not all(cluster.run(_executing).values()):
        time.sleep(0.05)
    assert all(cluster.run(_executing).values())
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency", params=PARAMS)
    distributed.wait(busy)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    detail = r.json()["detail"]
    assert "cluster_failed" in detail and ("expired" in detail or "outlasted" in detail)
    assert "Traceback" not in r.text and "hvs." not in r.text
    qid = r.headers["x-query-id"]
    (rec,) = _records(api, qid)
    assert rec["result"]["status"] == 503
    assert rec["result"]["reasons"] == ["cluster_failed"]
    assert ex.last.get("tasks", 0) >= 1
    # nothing left behind on the cluster, and the next query (credential renewed) answers
    assert all(not s for s in cluster.run(vd.worker_state).values())
    on_dask()
    ok = as_user("researcher-a").get("/v1/datasets/demo/frequency", params=PARAMS)
    assert ok.status_code == 200
