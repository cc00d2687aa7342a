"""The query plan on Dask distributed: one task per partition, per-variant counts back.

The query service plans as always (which partitions, which grouping) and keeps everything
that decides or protects: policy, disclosure control, noise, audit. What moves to workers
is the part that needs the genotypes: decrypt a partition (contig x bin, all batches, as
:class:`vault.store.reader.DatasetReader` reads it), decode it and count genotypes per
variant and group with the numba kernels. A task returns a :class:`PartitionCounts` — sites
and counts, ``int64`` (V, 4) and (V, G, 4) — never a genotype block; the executor refuses any
other result.

Workers authenticate to Vault themselves. For each query the executor mints one token per
worker through the ``genovault-query-worker`` token role (children of the minter's token,
not renewable, at most 30 minutes: Vault enforces it), scoped to the dataset's query policy
(``genovault-query-<dataset>``: transit/decrypt of that dataset's keys, the manifest checks,
token-self), with a short TTL, **response-wrapped**: the executor holds only a single-use
wrapping token (TTL ``wrap_ttl``), sends it straight to one worker over the client's own
connection to it (not through the scheduler, not in any task), and the worker unwraps it.
Tasks carry the credential's random id, the dataset, the store path, the dataset version and
the partition numbers only. When the query ends (answer, error or early stop) the executor
tells every worker to revoke its token and drop what it opened (readers, cached key-
encryption keys, sample labels). A worker whose token expired refuses the task
(:class:`WorkerCredentialExpired`), and Vault refuses it anyway; the query then fails as a
whole (no partial answer).

Statistics whose inputs are not per-variant counts stay on the local path: LD (genotype
vectors of pairs), per-sample statistics (vault.query.samplestats) and the genotype-block
cache. Association (case/control counts), SFS and presence use the same counts and so run
here too. See docs/scale.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vault.errors import (
    ClusterQueryFailed,
    ConfigError,
    GenoVaultError,
    IntegrityError,
    VaultUnauthenticated,
)
from vault.keys.workers import mint_wrapped_query_token as mint_wrapped_worker_token
from vault.keys.workers import revoke_accessors

log = logging.getLogger("genovault.dask")

#: default lifetime of a worker's Vault token: the longest a query on Dask may run
DEFAULT_CREDENTIAL_TTL = "10m"
#: how long a wrapped token can wait to be unwrapped by its worker
DEFAULT_WRAP_TTL = "60s"
#: below this many partitions a query stays on the local path (task overhead dominates)
DEFAULT_MIN_PARTITIONS = 4
#: key prefix of partition tasks (the rest is random: nothing about the query)
TASK_PREFIX = "genovault-partition"


class DistributedQueryError(ClusterQueryFailed):
    """A query on the Dask cluster failed as a whole (a task failed or workers left)."""


class WorkerCredentialExpired(VaultUnauthenticated, ClusterQueryFailed):
    """A worker's short-lived Vault token expired before its task ran; run the query again."""


class WorkerCredentialMissing(VaultUnauthenticated, ClusterQueryFailed):
    """A worker holds no credential for this query (it joined or restarted after it began)."""


@dataclass
class PartitionCounts:
    """What a partition task returns: its sites and genotype counts, nothing per sample."""

    contig: str
    pos: np.ndarray  # int64 (V,)
    ref: pa.Array  # string (V,)
    alt: pa.Array
    ids: pa.Array
    overall: np.ndarray  # int64 (V, 4)
    groups: np.ndarray  # int64 (V, G, 4)

    def check(self, n_groups: int) -> PartitionCounts:
        """Raise unless this is exactly counts: the shapes and dtypes above (a genotype
        block, a uint8 array or anything per sample is refused)."""
        v = self.pos.shape[0] if isinstance(self.pos, np.ndarray) else -1
        ok = (isinstance(self.contig, str) and isinstance(self.pos, np.ndarray)
              and self.pos.dtype == np.int64 and self.pos.ndim == 1
              and isinstance(self.overall, np.ndarray) and self.overall.dtype == np.int64
              and self.overall.shape == (v, 4)
              and isinstance(self.groups, np.ndarray) and self.groups.dtype == np.int64
              and self.groups.shape == (v, n_groups, 4)
              and all(isinstance(a, pa.Array) and a.type == pa.string() and len(a) == v
                      for a in (self.ref, self.alt, self.ids)))
        if not ok:
            raise DistributedQueryError("a worker returned something other than per-variant "
                                        "counts; refusing it")
        return self


def _reject(obj: Any, n_groups: int) -> PartitionCounts | None:
    if obj is None:
        return None
    if not isinstance(obj, PartitionCounts):
        raise DistributedQueryError(f"a worker returned a {type(obj).__name__}, not "
                                    "per-variant counts; refusing it")
    return obj.check(n_groups)


# --- the worker side ---------------------------------------------------------------------


class _Sealed:
    """A secret in transit to a worker: its repr never shows it (worker logs print args)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


@dataclass
class _WorkerCredential:
    dataset: str
    client: Any  # hvac.Client holding the unwrapped token
    deadline: float  # time.time() when the token expires
    ttl: float
    opened: dict[tuple[str, str], Any]  # (store root, version key) -> (reader, cohort)
    lock: threading.Lock
    #: tasks running with it; a dropped credential is revoked when the last one ends (a
    #: token revoked under a running Parquet read would make Arrow abort the process)
    active: int = 0
    dropped: bool = False

    @property
    def margin(self) -> float:
        """No task starts with less than this lifetime left (it could not finish)."""
        return min(30.0, self.ttl / 4)

    def forget(self) -> None:
        with self.lock:
            for reader, _cohort in self.opened.values():
                with contextlib.suppress(Exception):
                    reader.keyring.clear_caches()
            self.opened.clear()

    def finish(self) -> None:
        from vault.keys.workers import revoke_self

        self.forget()
        revoke_self(self.client)


_CREDENTIALS: dict[str, _WorkerCredential] = {}
_CREDENTIALS_LOCK = threading.Lock()


def receive_credential(cred_id: str, dataset: str, vault_addr: str,
                       wrapped: _Sealed) -> dict[str, Any]:
    """Worker: unwrap a response-wrapped query token and keep it under ``cred_id``.

    Never raises (the worker would log its arguments): returns ``{"ok": bool, "error": str}``.
    A wrapping token that was already unwrapped (intercepted) or expired is refused by Vault.
    """
    from vault.keys.workers import unwrap_token

    try:
        client, ttl = unwrap_token(vault_addr, wrapped.value)
    except GenoVaultError as exc:  # messages of vault.keys.workers hold no secret
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # never let the worker log the (sealed) arguments
        return {"ok": False, "error": f"unwrapping failed ({type(exc).__name__})"}
    with _CREDENTIALS_LOCK:
        _CREDENTIALS[cred_id] = _WorkerCredential(dataset, client, time.time() + ttl, ttl, {},
                                                  threading.Lock())
    return {"ok": True, "error": ""}


def drop_credential(cred_id: str) -> bool:
    """Worker: forget the credential; revoke its token (revoke-self) and drop what it opened
    now, or when its last running task ends. No task starts with it any more."""
    with _CREDENTIALS_LOCK:
        cred = _CREDENTIALS.pop(cred_id, None)
        if cred is None:
            return False
        cred.dropped = True
        now = cred.active == 0
    if now:
        cred.finish()
    return True


def worker_state() -> dict[str, Any]:
    """Worker: what it holds (for tests and operators): credential ids and open readers."""
    with _CREDENTIALS_LOCK:
        return {cid: {"dataset": c.dataset, "opened": len(c.opened),
                      "expires_in_s": round(c.deadline - time.time(), 1)}
                for cid, c in _CREDENTIALS.items()}


def _enter(cred_id: str, dataset: str) -> _WorkerCredential:
    with _CREDENTIALS_LOCK:
        cred = _CREDENTIALS.get(cred_id)
        if cred is None or cred.dataset != dataset:
            raise WorkerCredentialMissing(
                "this Dask worker holds no Vault credential for the query (it joined or was "
                "restarted after the query began, or the query ended); the query fails as a "
                "whole: run it again")
        expired = time.time() >= cred.deadline - cred.margin
        if not expired:
            cred.active += 1
    if expired:
        cred.forget()
        raise WorkerCredentialExpired(
            f"the Dask worker's Vault credential for dataset {dataset!r} expired before its "
            "task ran (the query outlasted GENOVAULT_DASK_CREDENTIAL_TTL): the query failed "
            "as a whole; run it again, or raise the TTL for long queries")
    return cred


def _leave(cred: _WorkerCredential) -> None:
    with _CREDENTIALS_LOCK:
        cred.active -= 1
        last = cred.dropped and cred.active == 0
    if last:
        cred.finish()


def count_partition(cred_id: str, store_root: str, dataset: str, version_key: str,
                    contig_index: int, bin_index: int, group_column: str | None,
                    group_names: Sequence[str]) -> PartitionCounts | None:
    """Worker task: decrypt, decode and count one partition with the worker's own token.

    Reads the dataset version ``version_key`` only (a newer manifest fails the task rather
    than mixing versions); groups are looked up by name in the worker's own decryption of
    the samples table, so no per-sample label travels."""
    cred = _enter(cred_id, dataset)
    try:
        return _count(cred, store_root, dataset, version_key, contig_index, bin_index,
                      group_column, group_names)
    finally:
        _leave(cred)


def _count(cred: _WorkerCredential, store_root: str, dataset: str, version_key: str,
           contig_index: int, bin_index: int, group_column: str | None,
           group_names: Sequence[str]) -> PartitionCounts | None:
    from kernels import count_genotypes
    from vault.keys.kms import Keyring
    from vault.query.cohort import Cohort
    from vault.query.service import SITE_COLUMNS, version_key_of
    from vault.store.dataset import Store
    from vault.store.reader import DatasetReader, Region

    with cred.lock:
        opened = cred.opened.get((store_root, version_key))
        if opened is None:
            store = Store(Path(store_root))
            if version_key_of(store.manifest(dataset)) != version_key:
                raise IntegrityError(f"dataset {dataset!r} changed while the query ran (a new "
                                     "manifest was committed); run the query again")
            reader = DatasetReader(store, dataset, Keyring(cred.client, dataset))
            opened = cred.opened[(store_root, version_key)] = (reader, Cohort.load(reader))
    reader, cohort = opened
    if version_key_of(reader.manifest) != version_key:
        raise IntegrityError(f"dataset {dataset!r} changed while the query ran")
    try:
        if group_column is not None:
            g = cohort.grouping(group_column)
            keep = np.array([n in set(group_names) for n in g.names], np.bool_)
            g = g.restrict(keep.reshape(len(g.names)))
            if g.names != tuple(group_names):
                raise IntegrityError("the worker's groups differ from the service's; the "
                                     "dataset changed while the query ran")
            codes, n_groups = g.codes, len(g.names)
        else:
            codes, n_groups = np.full(cohort.n_samples, -1, np.int32), 0
        size = reader.manifest.partition.bin_size
        region = Region(reader.manifest.contigs[contig_index], max(1, bin_index * size),
                        (bin_index + 1) * size - 1)
        block = next(iter(reader.blocks(region, site_columns=SITE_COLUMNS)), None)
    except VaultUnauthenticated:
        cred.forget()
        raise
    except GenoVaultError:
        if time.time() >= cred.deadline:
            cred.forget()
            raise WorkerCredentialExpired(
                f"the Dask worker's Vault credential for dataset {dataset!r} expired during "
                "its task; the query failed as a whole: run it again") from None
        raise
    if block is None or block.packed is None:
        return None
    counts = count_genotypes(block.packed, block.n_samples, codes, n_groups)
    sites = block.sites
    strings = [sites.column(k).combine_chunks().cast(pa.string()) for k in ("ref", "alt", "id")]
    del block  # the plaintext genotypes go now, not with the next collection
    return PartitionCounts(region.chrom, sites.column("pos").to_numpy().astype(np.int64),
                           strings[0], strings[1], strings[2],
                           np.ascontiguousarray(counts.overall, np.int64),
                           np.ascontiguousarray(counts.groups, np.int64))


# --- the client side ---------------------------------------------------------------------


async def _direct_run(client: Any, addr: str, fn: Callable[..., Any], args: tuple[Any, ...],
                      timeout_s: float = 10.0) -> Any:
    """Run ``fn(*args)`` on the worker at ``addr`` over the client's own connection to it:
    the message does not pass through the scheduler."""
    import asyncio

    from distributed.protocol.pickle import dumps

    resp = await asyncio.wait_for(client.rpc(addr).run(
        function=dumps(fn), args=dumps(args), kwargs=dumps({}), wait=True), timeout_s)
    if resp.get("status") != "OK":
        raise DistributedQueryError(f"the Dask worker at {addr} could not run "
                                    f"{getattr(fn, '__name__', 'a function')}")
    return resp.get("result")


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``local:N`` -> ("local", N); ``tcp://host:port`` / ``tls://...`` -> (address, None)."""
    spec = spec.strip()
    if spec.startswith("local:"):
        n = spec.removeprefix("local:")
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise ConfigError(f"invalid Dask cluster {spec!r}: use local:N with N workers "
                              "(1..256), or the scheduler's tcp://HOST:PORT / tls://HOST:PORT")
        return "local", int(n)
    if spec.startswith(("tcp://", "tls://")) and len(spec) > 6:
        return spec, None
    raise ConfigError(f"invalid Dask cluster {spec!r}: use tcp://HOST:PORT or tls://HOST:PORT "
                      "(a running scheduler) or local:N (a local cluster of N processes)")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError("Dask execution needs the optional dependencies: "
                          "pip install 'genovault[dask]'") from None
    return distributed


class DaskExecutor:
    """Runs partition tasks of the query service on a Dask cluster (see the module doc).

    ``minter()`` returns the hvac client that mints worker tokens (its Vault URL is the one
    workers use). ``window``: tasks submitted ahead of the one being merged (default: four per
    worker thread, plus four), so a query that stops early leaves little running and results wait in
    worker memory only briefly."""

    def __init__(self, client: Any, minter: Callable[[], Any], *,
                 credential_ttl: str = DEFAULT_CREDENTIAL_TTL, wrap_ttl: str = DEFAULT_WRAP_TTL,
                 min_partitions: int = DEFAULT_MIN_PARTITIONS, window: int | None = None,
                 cluster: Any = None) -> None:
        self.client = client
        self.minter = minter
        self.credential_ttl = credential_ttl
        self.wrap_ttl = wrap_ttl
        self.min_partitions = min_partitions
        self.window = window
        self._cluster = cluster
        #: per query: tasks, seconds spent minting/delivering, merging (the last query's)
        self.last: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<DaskExecutor scheduler={self.client.scheduler.address!r}>"

    @classmethod
    def connect(cls, spec: str, minter: Callable[[], Any], **kw: Any) -> DaskExecutor:
        """An executor on the scheduler at ``spec`` or a new LocalCluster (``local:N``:
        N worker processes on loopback sharing the machine's cores as threads)."""
        import os

        # a LocalCluster's workers share the machine's cores as threads (the nanny limits
        # Arrow and BLAS to one thread per task: OMP_NUM_THREADS=1)
        client, cluster = dask_client(
            spec, lambda n: max(1, (os.cpu_count() or 1) // n))
        return cls(client, minter, cluster=cluster, **kw)

    def close(self) -> None:
        close_client(self.client, self._cluster)

    def wants(self, n_partitions: int) -> bool:
        """True if a plan of ``n_partitions`` should run on the cluster."""
        return n_partitions >= max(1, self.min_partitions)

    def workers(self) -> dict[str, int]:
        """Address -> threads of every worker the scheduler knows."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {addr: int(w.get("nthreads") or 1) for addr, w in info.items()}

    # -- credentials ------------------------------------------------------------------------
    def _deliver(self, dataset: str, cred_id: str) -> tuple[list[str], list[str], float]:
        """Mint and deliver one wrapped token per worker: (holders, their token accessors,
        deadline). Tokens that found no worker are revoked at once."""
        minter = self.minter()
        holders: list[str] = []
        accessors: list[str] = []
        unused: list[str] = []
        errors: list[str] = []
        deadline = time.time() + _seconds(self.credential_ttl)
        for addr in self.workers():
            wrapped, accessor = mint_wrapped_worker_token(minter, dataset,
                                                          self.credential_ttl, self.wrap_ttl)
            unused.append(accessor)
            try:
                res = self.client.sync(_direct_run, self.client, addr, receive_credential,
                                       (cred_id, dataset, minter.url, _Sealed(wrapped)))
            except Exception as exc:
                errors.append(f"{addr}: {type(exc).__name__}")
                continue
            if res.get("ok"):
                holders.append(addr)
                accessors.append(unused.pop())
            else:
                errors.append(f"{addr}: {res.get('error')}")
        self.last = {"credential_errors": errors}
        if errors:
            log.warning("%d Dask worker(s) took no credential for this query: %s",
                        len(errors), "; ".join(errors[:5]))
        self._revoke(unused)
        if not holders:
            raise DistributedQueryError("no Dask worker could take a Vault credential for the "
                                        "query: " + "; ".join(errors[:5] or ["no workers"]))
        return holders, accessors, deadline

    def _revoke(self, accessors: list[str]) -> None:
        """Best effort: the tokens expire by their TTL anyway (workers revoke their own)."""

        try:
            minter = self.minter()
        except Exception:
            return
        revoke_accessors(minter, accessors)

    def _drop(self, holders: list[str], cred_id: str) -> list[int]:
        """Tell each holder to drop the credential; the indexes of those that did not answer
        (gone: their tokens are revoked by accessor instead)."""
        missed = []
        alive = set(self.workers())
        for i, addr in enumerate(holders):
            if addr not in alive:
                missed.append(i)
                continue
            try:
                self.client.sync(_direct_run, self.client, addr, drop_credential, (cred_id,))
            except Exception:
                missed.append(i)
        return missed

    # -- the plan ---------------------------------------------------------------------------
    def counts(self, store_root: str, dataset: str, version_key: str,
               work: Sequence[tuple[int, int]], group_column: str | None,
               group_names: Sequence[str]) -> Iterator[PartitionCounts | None]:
        """The counts of each partition of ``work``, in order (one task each)."""
        from distributed import Future

        t0 = time.perf_counter()
        cred_id = secrets.token_hex(16)
        holders, accessors, deadline = self._deliver(dataset, cred_id)
        t_cred = time.perf_counter() - t0
        threads = sum(n for a, n in self.workers().items() if a in holders) or 1
        window = self.window or 4 + 4 * threads
        query = uuid.uuid4().hex[:12]
        names = tuple(group_names)
        futures: list[Future] = []
        stats = {"tasks": len(work), "workers": len(holders), "credential_s": t_cred,
                 **self.last}

        fetches: list[concurrent.futures.Future[Any] | None] = []

        def submit(i: int) -> None:
            ci, bi = work[i]
            fut = self.client.submit(
                count_partition, cred_id, store_root, dataset, version_key, ci, bi,
                group_column, names, key=f"{TASK_PREFIX}-{query}-{i}", pure=False,
                workers=holders, allow_other_workers=False)
            futures.append(fut)
            fetches.append(self._fetch(fut))

        try:
            for i in range(min(window, len(work))):
                submit(i)
            for i in range(len(work)):
                if len(futures) < len(work):
                    submit(len(futures))
                fut, fetch = futures[i], fetches[i]
                assert fetch is not None
                res = self._result(fetch, work[i], holders, deadline, dataset)
                futures[i] = fetches[i] = None  # type: ignore[call-overload]
                fut.release()  # the result leaves the worker's memory now
                del fut, fetch
                yield _reject(res, len(names))
        finally:
            live = [f for f in futures if f is not None]
            if live:
                with contextlib.suppress(Exception):
                    self.client.cancel(live)
            for pending in fetches:
                if pending is not None:
                    pending.cancel()
            # workers revoke their own tokens once their running tasks end (revoking under a
            # running read would abort it); tokens of workers that did not answer, here
            missed = self._drop(holders, cred_id)
            self._revoke([accessors[i] for i in missed])
            stats["seconds"] = time.perf_counter() - t0
            self.last = stats

    def _fetch(self, fut: Any) -> concurrent.futures.Future[Any]:
        """Start fetching ``fut``'s result on the client's event loop as soon as its task
        finishes, while earlier results are still being merged: the results of a window
        arrive in parallel, not one round trip (client, scheduler, worker) after another."""

        async def fetch() -> Any:
            # the public gather, asked for its coroutine (this runs on the client's loop)
            (result,) = await self.client.gather([fut], asynchronous=True)
            return result

        return asyncio.run_coroutine_threadsafe(fetch(), self.client.loop.asyncio_loop)

    def _result(self, fut: concurrent.futures.Future[Any], part: tuple[int, int],
                holders: list[str], deadline: float, dataset: str) -> Any:
        while True:
            try:
                return fut.result(timeout=2.0)
            except TimeoutError:
                pass
            except GenoVaultError:
                raise  # the worker's own clear error (credential expired, integrity ...)
            except Exception as exc:
                raise DistributedQueryError(
                    f"partition {part[0]}:{part[1]} of dataset {dataset!r} failed on the Dask "
                    f"cluster ({type(exc).__name__}); the query failed as a whole, nothing "
                    "was answered: run it again") from exc
            if time.time() > deadline:
                raise WorkerCredentialExpired(
                    f"the query on dataset {dataset!r} outlasted its workers' Vault "
                    "credentials (GENOVAULT_DASK_CREDENTIAL_TTL); nothing was answered")
            if not set(holders) & set(self.workers()):
                raise DistributedQueryError(
                    "every Dask worker holding the query's Vault credential left the cluster; "
                    "the query failed as a whole, nothing was answered: run it again")


def dask_client(spec: str, threads_per_worker: Callable[[int], int]) -> tuple[Any, Any]:
    """A distributed Client on the scheduler at ``spec``, or on a new LocalCluster of N
    worker processes on loopback (``local:N``) with ``threads_per_worker(N)`` threads each;
    returns ``(client, cluster)`` (cluster None for a scheduler address)."""
    distributed = _import_distributed()
    address, n = parse_spec(spec)
    if n is None:
        return distributed.Client(address), None
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=threads_per_worker(n),
                                       processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
    return distributed.Client(cluster), cluster


def close_client(client: Any, cluster: Any) -> None:
    """Close ``client`` and the LocalCluster it was made with (if any), quietly."""
    with contextlib.suppress(Exception):
        client.close()
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close()


def _seconds(ttl: str) -> float:
    """Seconds of a Vault duration such as ``90s``, ``10m``, ``1h`` or ``30``."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = ttl.strip()
    try:
        return float(t[:-1]) * units[t[-1]] if t[-1] in units else float(t)
    except (ValueError, IndexError):
        raise ConfigError(f"invalid duration {ttl!r}: use e.g. 90s, 10m or 1h") from None


def worker_token_minter(settings: Any, service_client: Callable[[], Any]) -> Callable[[], Any]:
    """Who mints workers' tokens: with an external Vault, the service's own identity (it needs
    ``auth/token/create/genovault-query-worker``; docs/scale.md); with the embedded development
    vault, its root token (which the service already uses there to fetch its AppRole
    login)."""
    if settings.external_vault:
        return service_client
    from vault.keys import client as vclient

    return lambda: vclient.connect(settings)


def executor_from_settings(settings: Any, spec: str | None,
                           service_client: Callable[[], Any]) -> DaskExecutor | None:
    """The executor ``spec`` (or ``GENOVAULT_DASK_SCHEDULER``) asks for, or None (the local
    path)."""
    spec = spec or settings.dask_scheduler
    if not spec:
        return None
    parse_spec(spec)  # a bad spec fails before anything starts
    from vault.keys.workers import check_worker_ttl

    check_worker_ttl("query", settings.dask_credential_ttl)  # so does a TTL Vault would cap
    return DaskExecutor.connect(spec, worker_token_minter(settings, service_client),
                                credential_ttl=settings.dask_credential_ttl,
                                min_partitions=settings.dask_min_partitions)


__all__ = ["DaskExecutor", "DistributedQueryError", "PartitionCounts",
           "WorkerCredentialExpired", "WorkerCredentialMissing", "count_partition",
           "executor_from_settings"]
