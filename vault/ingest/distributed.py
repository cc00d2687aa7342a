"""Multi-file ingest on Dask distributed: one file per worker, one commit by the client.

The client (vault.ingest.pipeline) does everything it does on the local path: the survey of
the files (checksums, headers, the same samples in each), the sample sheet, the keys, the
pseudonyms and the sample registration, the batch plan, the samples table, the QC report,
the signature and the one manifest replacement. What moves to the workers is the long part:
each task parses, encodes and encrypts ONE file into its own folder under the batch's
staging folder (``<staging>/parts/fNNNN``; the store is on a filesystem every worker sees,
as with a LocalCluster), with the pipeline's own per-file code
(:func:`vault.ingest.pipeline.write_file_variants`).

A task returns a :class:`FileResult` only: the file entries of what it wrote (path, rows,
bytes, sha256, tail_sha256, contig, bin), its QC counters (missing calls per sample index
included: counts, no id), the contigs it met, its runs per contig (first and last POS, for
the checks across files) and its INFO column types. Never a genotype, never a sample id;
the client refuses anything else. The client then checks what the local path checks while
it reads the files one after another (disjoint regions, a contig split only between files
that follow one another, the same INFO columns), recomputes the size, sha256 and tail
checksum of every staged file, numbers the contigs as the local path does, moves each file
with its key material into ``<staging>/variants/cNNNN/`` and commits once. A file that two
tasks wrote (a batch split inside one ``bin_size`` partition: on the local path both files
flow into one Parquet file, which no task can do alone) is refused with the advice to split
at a partition boundary or to leave out ``--dask``.

Credentials: per ingest, one token per worker through token role
``genovault-ingest-worker`` with the one policy ``genovault-ingest-<dataset>.encrypt``
(transit/encrypt of that dataset's existing keys, token-self: no key creation, no
pseudonyms, no registry, no signing, no decrypt), a child of the minter's token, not
renewable, at most 60 minutes (Vault enforces these), response-wrapped, delivered straight
to the worker over the client's own connection (never through the scheduler or a task), as
the query path does (vault.query.distributed). Tasks carry the credential's random id, the
dataset, the file's path, checksum and sample-list digest, the staging folder, counts and
options. When the ingest ends, every worker revokes its token.

A failed task fails the ingest: nothing was committed, the staging folder is removed (or,
if a task still writes into it, by the next writer under the dataset's lock), and the error
is the worker's own (``InvalidInput`` names the file and line).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.errors import GenoVaultError, IngestError, InvalidInput, StoreError
from vault.ingest.order import BatchRegions
from vault.query import distributed as qd

log = logging.getLogger("genovault.dask")

#: key prefix of ingest tasks (the rest is random: nothing about the files)
TASK_PREFIX = "genovault-ingest-file"
DEFAULT_WRAP_TTL = "60s"
_ENTRY_KEYS = {"path", "rows", "bytes", "sha256", "tail_sha256", "contig", "bin"}
_ENTRY_PATH = re.compile(r"variants/c([0-9]{4})/(bin[0-9]{6}\.parquet)")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_ID = re.compile(r"[0-9a-f]{32}")


class DistributedIngestError(IngestError):
    """An ingest on the Dask cluster failed as a whole (a task failed or workers left)."""


@dataclass
class FileResult:
    """What an ingest task returns for its file: file entries and counts, nothing per sample
    but counts of missing calls by sample index."""

    entries: list[dict[str, Any]]
    qc: dict[str, Any]  # the _Qc counters (skipped: reason -> count; missing: list of int)
    contigs: list[str]  # the contig list the file's entries index (the batch's + its own)
    runs: list[tuple[str, int, int, int]]  # per contig run: name, first POS, last POS, line
    info: list[tuple[str, str]] | None  # INFO columns (name, type) of its rows, None: none
    kind: str = "text"
    header_lines: int = 0

    def check(self, n_samples: int, known: list[str], bound: bool = False) -> FileResult:
        """Raise unless this is exactly a file result of that shape (see the class doc)."""
        ok = (isinstance(self.entries, list) and isinstance(self.qc, dict)
              and isinstance(self.contigs, list)
              and all(isinstance(c, str) for c in self.contigs)
              and self.contigs[:len(known)] == known and isinstance(self.runs, list)
              and isinstance(self.kind, str) and isinstance(self.header_lines, int))
        ok = ok and all(_entry_ok(e, len(self.contigs), bound) for e in self.entries)
        ok = ok and all(isinstance(r, tuple) and len(r) == 4 and isinstance(r[0], str)
                        and all(isinstance(x, int) for x in r[1:]) for r in self.runs)
        missing = self.qc.get("missing_per_sample") if isinstance(self.qc, dict) else None
        ok = ok and (isinstance(missing, list) and len(missing) == n_samples
                     and all(isinstance(x, int) for x in missing)
                     and isinstance(self.qc.get("skipped"), dict))
        if not ok:
            raise DistributedIngestError("a Dask worker returned something other than file "
                                         "entries and QC counts; refusing it")
        return self


def _entry_ok(e: Any, n_contigs: int, bound: bool = False) -> bool:
    """A file entry and nothing else: its keys, types, and a path in its own folder that
    matches its contig and bin (and, for a bound dataset, a file id)."""
    keys = _ENTRY_KEYS | {"file_id"} if bound else _ENTRY_KEYS
    if not (isinstance(e, dict) and set(e) == keys and isinstance(e["path"], str)):
        return False
    if bound and not (isinstance(e["file_id"], str) and _FILE_ID.fullmatch(e["file_id"])):
        return False
    m = _ENTRY_PATH.fullmatch(e["path"])
    return (m is not None
            and all(isinstance(e[k], int) and e[k] >= 0 for k in ("rows", "bytes", "contig",
                                                                   "bin"))
            and e["contig"] < n_contigs and int(m.group(1)) == e["contig"]
            and m.group(2) == f"bin{e['bin']:06d}.parquet"
            and all(isinstance(e[k], str) and _HEX64.fullmatch(e[k]) is not None
                    for k in ("sha256", "tail_sha256")))


def _reject(obj: Any, n_samples: int, known: list[str], bound: bool = False) -> FileResult:
    if isinstance(obj, TaskFailure) and isinstance(obj.message, str):
        raise obj.exception()
    if not isinstance(obj, FileResult):
        raise DistributedIngestError(f"a Dask worker returned a {type(obj).__name__}, not "
                                     "file entries and QC counts; refusing it")
    return obj.check(n_samples, known, bound)


def sample_list_digest(samples: Sequence[str]) -> str:
    """What a task gets instead of the sample ids: a digest of the header's sample list."""
    return hashlib.sha256("\t".join(samples).encode("utf-8")).hexdigest()


# --- the worker side ---------------------------------------------------------------------


class _Runs(BatchRegions):
    """Records the file's runs per contig (first and last POS, first line) for the client's
    checks across files; within the file the order checks are the pipeline's own."""

    def __init__(self, bin_size: int) -> None:
        super().__init__(bin_size)
        self.runs: list[list[Any]] = []

    def enter(self, path: str, chrom: str, line: int,
              invalid: Callable[[int, str], Exception]) -> Any:
        self.runs.append([chrom, None, None, line])
        return super().enter(path, chrom, line, invalid)

    def check_taken(self, chrom: str, pos: Any, lines: Any, first_line: int,
                    invalid: Callable[[int, str], Exception]) -> None:
        run = self.runs[-1]
        if run[1] is None and pos.size:
            run[1], run[3] = int(pos[0]), first_line + int(lines[0])
        super().check_taken(chrom, pos, lines, first_line, invalid)

    def done(self, path: str, chrom: str, last_pos: int) -> None:
        self.runs[-1][2] = last_pos
        super().done(path, chrom, last_pos)


def ingest_file(cred_id: str, dataset: str, path: str, checksum: str, size: int,
                samples_digest: str, folder: str, n_samples: int, bin_size: int,
                contigs: Sequence[str], genotype_key: str,
                options: dict[str, Any], bound: bool = False) -> FileResult:
    """Worker task: parse, encode and encrypt the file at ``path`` into ``folder`` with the
    worker's own (encrypt-only) token; its file entries and QC counts."""
    try:
        cred = qd._enter(cred_id, dataset)
    except GenoVaultError as exc:
        return TaskFailure.of(exc)  # type: ignore[return-value]
    try:
        return _ingest_file(cred, dataset, Path(path), checksum, size, samples_digest,
                            Path(folder), n_samples, bin_size, list(contigs), genotype_key,
                            options, bound)
    except GenoVaultError as exc:  # project errors carry no secret and no sample id
        return TaskFailure.of(exc)  # type: ignore[return-value]
    finally:
        qd._leave(cred)


@dataclass
class TaskFailure:
    """A task's project error, sent back as data (InvalidInput does not survive pickling)
    and raised again by the client with its own type."""

    error: str
    message: str
    path: str | None = None
    line: int | None = None
    reason: str | None = None

    @classmethod
    def of(cls, exc: GenoVaultError) -> TaskFailure:
        if isinstance(exc, InvalidInput):
            return cls("InvalidInput", str(exc), exc.path, exc.line, exc.reason)
        return cls(type(exc).__name__, str(exc))

    def exception(self) -> GenoVaultError:
        import vault.errors as errors

        if self.error == "InvalidInput" and self.path is not None and self.reason is not None:
            return InvalidInput(self.path, self.line, self.reason)
        cls = getattr(errors, self.error, None) or getattr(qd, self.error, None)
        if isinstance(cls, type) and issubclass(cls, GenoVaultError):
            with contextlib.suppress(Exception):
                return cls(self.message)
        return DistributedIngestError(self.message)


def _ingest_file(cred: Any, dataset: str, path: Path, checksum: str, size: int,
                 samples_digest: str, folder: Path, n_samples: int, bin_size: int,
                 contigs: list[str], genotype_key: str, options: dict[str, Any],
                 bound: bool) -> FileResult:
    import dataclasses

    from vault.ingest.fileset import SourceFile, _peek
    from vault.ingest.memory import collector_on_new_objects, reuse_freed_memory
    from vault.ingest.pipeline import IngestOptions, write_file_variants
    from vault.keys.kms import DatasetKeys, Keyring

    if not folder.parent.is_dir():
        raise DistributedIngestError(
            f"{path}: the batch's staging folder is not visible on this Dask worker (the "
            "store must be on a filesystem every worker shares)")
    kind, header, _first = _peek(path, want_first=False)
    if sample_list_digest(header.samples) != samples_digest:
        raise IngestError(f"{path}: the file changed while it was being ingested (its "
                          "samples differ from those the client checked)")
    folder.mkdir(mode=0o700)
    keys = dataclasses.replace(DatasetKeys.for_dataset(dataset), genotypes=genotype_key)
    keyring = Keyring(cred.client, dataset, keys, bound=bound)
    opts = IngestOptions(progress=False, **options)
    runs = _Runs(bin_size)
    f = SourceFile(path, kind, header, checksum, size, None)
    # as `genovault ingest` does (vault.ingest.memory): freed chunks are reused instead of
    # being mapped afresh (the nanny's MALLOC_TRIM_THRESHOLD_ would return them at once), and
    # the collector leaves the worker's long-lived objects alone. The worker process keeps its
    # peak heap until it exits.
    reuse_freed_memory()
    try:
        with collector_on_new_objects():
            qc, entries, info = write_file_variants(f, folder, keyring, n_samples, bin_size,
                                                    contigs, opts, runs)
    finally:
        keyring.clear_caches()
    out = {k: v for k, v in vars(qc).items() if k not in ("skipped", "missing_per_sample")}
    out["skipped"] = dict(qc.skipped)
    out["missing_per_sample"] = [int(x) for x in qc.missing_per_sample]
    keep = _ENTRY_KEYS | {"file_id"} if bound else _ENTRY_KEYS
    return FileResult(entries=[{k: e[k] for k in keep} for e in entries], qc=out,
                      contigs=contigs,
                      runs=[tuple(r) for r in runs.runs if r[1] is not None],
                      info=info, kind=kind, header_lines=header.n_lines)


# --- the client side ---------------------------------------------------------------------


@dataclass
class DaskIngest:
    """Writes the variant files of a new batch on a Dask cluster (see the module doc).

    ``minter()`` returns the hvac client that mints the workers' tokens (its Vault URL is
    the one workers use): the embedded vault's root, or the caller's own Vault identity,
    which then needs ``auth/token/create/genovault-ingest-worker``."""

    client: Any
    minter: Callable[[], Any]
    credential_ttl: str = "60m"
    wrap_ttl: str = DEFAULT_WRAP_TTL
    cluster: Any = None
    #: the last ingest's figures: tasks, workers, seconds minting/delivering, in tasks
    last: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<DaskIngest scheduler={self.client.scheduler.address!r}>"

    @classmethod
    def connect(cls, spec: str, minter: Callable[[], Any], **kw: Any) -> DaskIngest:
        """On the scheduler at ``spec``, or a new LocalCluster (``local:N``: N worker
        processes of one thread each: a task is one file, its parser uses the process's own
        threads)."""
        client, cluster = qd.dask_client(spec, lambda n: 1)
        return cls(client, minter, cluster=cluster, **kw)

    def close(self) -> None:
        qd.close_client(self.client, self.cluster)

    def workers(self) -> list[str]:
        return list(self.client.scheduler_info(n_workers=-1)["workers"])

    def _deliver(self, dataset: str, cred_id: str) -> tuple[list[str], list[str]]:
        from vault.keys.workers import mint_wrapped_ingest_token

        minter = self.minter()
        holders: list[str] = []
        accessors: list[str] = []
        errors: list[str] = []
        for addr in self.workers():
            wrapped, accessor = mint_wrapped_ingest_token(minter, dataset, self.credential_ttl,
                                                          self.wrap_ttl)
            try:
                res = self.client.sync(qd._direct_run, self.client, addr,
                                       qd.receive_credential,
                                       (cred_id, dataset, minter.url, qd._Sealed(wrapped)))
            except Exception as exc:
                res = {"ok": False, "error": type(exc).__name__}
            if res.get("ok"):
                holders.append(addr)
                accessors.append(accessor)
            else:
                errors.append(f"{addr}: {res.get('error')}")
                from vault.keys.workers import revoke_accessors

                revoke_accessors(minter, [accessor])
        if errors:
            log.warning("%d Dask worker(s) took no ingest credential: %s", len(errors),
                        "; ".join(errors[:5]))
        if not holders:
            raise DistributedIngestError("no Dask worker could take a Vault credential for the "
                                         "ingest: " + "; ".join(errors[:5] or ["no workers"]))
        return holders, accessors

    def _drop(self, holders: list[str], accessors: list[str], cred_id: str) -> None:
        from vault.keys.workers import revoke_accessors

        alive = set(self.workers())
        missed = []
        for addr, acc in zip(holders, accessors, strict=True):
            try:
                if addr not in alive:
                    raise ConnectionError
                self.client.sync(qd._direct_run, self.client, addr, qd.drop_credential,
                                 (cred_id,))
            except Exception:
                missed.append(acc)
        if missed:
            with contextlib.suppress(Exception):
                revoke_accessors(self.minter(), missed)

    def write_files(self, staging: Path, files: Sequence[Any], n_samples: int, bin_size: int,
                    contigs: list[str], genotype_key: str, dataset: str, opts: Any,
                    check: Callable[[], None], bound: bool = False
                    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """The QC of each file (pipeline ``_Qc``) and the batch's variant file entries, in
        ``staging/variants`` as the local path writes them; ``contigs`` extended in place.
        ``bound``: the dataset binds files to their place (each entry has its file id)."""
        from vault.ingest.pipeline import _Qc

        t0 = time.perf_counter()
        staging = staging.resolve()  # workers may run elsewhere (another working directory)
        cred_id = secrets.token_hex(16)
        parts = staging / "parts"
        parts.mkdir(mode=0o700)
        holders, accessors = self._deliver(dataset, cred_id)
        t_cred = time.perf_counter() - t0
        options = {"skip_invalid": opts.skip_invalid, "info": tuple(opts.info),
                   "absent_sites_hom_ref": opts.absent_sites_hom_ref}
        digest = sample_list_digest(files[0].header.samples)
        run = uuid.uuid4().hex[:12]
        known = list(contigs)
        futures = [self.client.submit(
            ingest_file, cred_id, dataset, str(Path(f.path).resolve()), f.checksum, f.size,
            digest, str(parts / f"f{i + 1:04d}"), n_samples, bin_size, known, genotype_key,
            options, bound, key=f"{TASK_PREFIX}-{run}-{i}", pure=False, workers=holders,
            allow_other_workers=False) for i, f in enumerate(files)]
        results: list[FileResult] = []
        try:
            for i, fut in enumerate(futures):
                results.append(_reject(self._result(fut, files[i], holders, check),
                                       n_samples, known, bound))
                fut.release()
        finally:
            live = [f for f in futures if f.status not in ("finished", "lost")]
            if live:
                with contextlib.suppress(Exception):
                    self.client.cancel(live)
            self._drop(holders, accessors, cred_id)
            self.last = {"tasks": len(files), "workers": len(holders), "credential_s": t_cred,
                         "seconds": time.perf_counter() - t0}
        check()
        ids = [e["file_id"] for r in results for e in r.entries if "file_id" in e]
        if len(set(ids)) != len(ids):
            raise DistributedIngestError("Dask workers returned the same file id twice; "
                                         "refusing their files")
        _check_across(files, results, bin_size)
        entries = _place(staging, parts, files, results, contigs, bin_size)
        qcs = []
        for r in results:
            qc = _Qc(n_samples)
            for name, value in r.qc.items():
                if name == "skipped":
                    qc.skipped.update({str(k): int(v) for k, v in value.items()})
                elif name == "missing_per_sample":
                    import numpy as np

                    qc.missing_per_sample = np.asarray(value, np.int64)
                elif hasattr(qc, name) and isinstance(value, int):
                    setattr(qc, name, value)
                else:
                    raise DistributedIngestError("a Dask worker returned an unknown QC field; "
                                                 "refusing it")
            qcs.append(qc)
        return qcs, entries

    #: consecutive 2-second checks that must find no credential holder among the scheduler's
    #: workers before the ingest gives up (one check can miss a worker that is still there,
    #: e.g. while its process is busy compiling numba kernels)
    GONE_CHECKS = 3

    def _result(self, fut: Any, f: Any, holders: list[str], check: Callable[[], None]) -> Any:
        gone = 0
        while True:
            try:
                return fut.result(timeout=2.0)
            except TimeoutError:
                pass
            except GenoVaultError:
                raise  # the worker's own clear error (InvalidInput names file and line ...)
            except OSError as exc:
                raise StoreError(f"{f.path}: writing its files on a Dask worker failed "
                                 f"({type(exc).__name__}: {exc}); nothing was committed") from None
            except Exception as exc:
                raise DistributedIngestError(
                    f"{f.path}: its task failed on the Dask cluster ({type(exc).__name__}); "
                    "nothing was committed: run the ingest again") from exc
            check()  # the sample registration (it raises when it failed)
            gone = 0 if set(holders) & set(self.workers()) else gone + 1
            if gone >= self.GONE_CHECKS:
                raise DistributedIngestError(
                    "every Dask worker holding the ingest's Vault credential left the cluster; "
                    "nothing was committed: run the ingest again")


def _invalid(f: Any, r: FileResult) -> Callable[[int, str], Exception]:
    def make(line: int, reason: str) -> Exception:
        if r.kind == "bcf":
            return InvalidInput(str(f.path), None, f"record {line - r.header_lines}: {reason}")
        return InvalidInput(str(f.path), line, reason)

    return make


def _check_across(files: Sequence[Any], results: list[FileResult], bin_size: int) -> None:
    """The checks the local path makes while it reads the files one after another: disjoint
    regions, a contig split only between files that follow one another, the same INFO
    columns in every file."""
    regions = BatchRegions(bin_size)
    for f, r in zip(files, results, strict=True):
        invalid = _invalid(f, r)
        for chrom, first, last, line in r.runs:
            held = regions.enter(str(f.path), chrom, line, invalid)
            if held is not None:
                regions.first_pos(held, chrom, first, line, invalid)
            regions.done(str(f.path), chrom, last)
    infos = [(f, r.info) for f, r in zip(files, results, strict=True) if r.info is not None]
    for f, info in infos[1:]:
        if info != infos[0][1]:
            def show(cols: list[tuple[str, str]]) -> str:
                return ", ".join(f"{n.removeprefix('info_')}:{t}" for n, t in cols) or "none"

            raise IngestError(f"the INFO fields of one batch must be the same in every input "
                              f"(name and header type): first {show(infos[0][1] or [])} "
                              f"({infos[0][0].path.name}), then {show(info)} ({f.path.name})")


def _place(staging: Path, parts: Path, files: Sequence[Any], results: list[FileResult],
           contigs: list[str], bin_size: int) -> list[dict[str, Any]]:
    """Verify every staged file against its entry, number the contigs as the local path
    does, move the files (with their key material) to ``staging/variants``."""
    from vault.keys.kms import key_material_path
    from vault.store.fsutil import fsync_path, parquet_tail_sha256, sha256_file

    owner: dict[tuple[int, int], Path] = {}
    planned = []
    for i, (f, r) in enumerate(zip(files, results, strict=True)):
        folder = parts / f"f{i + 1:04d}"
        listed = set()
        for c in r.contigs:
            if c not in contigs:
                contigs.append(c)
        for e in r.entries:
            src = folder / e["path"]
            listed |= {src, Path(key_material_path(str(src)))}
            problem = None
            if not src.is_file() or src.is_symlink():
                problem = "is missing"
            elif src.stat().st_size != e["bytes"]:
                problem = "has another size"
            elif sha256_file(src) != e["sha256"] or parquet_tail_sha256(src) != e["tail_sha256"]:
                problem = "has another checksum"
            if problem is not None:
                raise IntegrityIngestError(f"{f.path}: a file its Dask task wrote {problem} "
                                           "than the task reported; nothing was committed")
            g = contigs.index(r.contigs[e["contig"]])
            if (g, e["bin"]) in owner:
                lo = e["bin"] * bin_size
                raise IngestError(
                    f"{owner[(g, e['bin'])]} and {f.path} both hold records on contig "
                    f"{contigs[g][:60]!r} in the partition from POS {max(lo, 1):,} (bin "
                    f"{e['bin']}): on Dask each file is written on its own, so the files of a "
                    "batch must be split at multiples of the dataset's bin size; split them "
                    "there, or ingest them without --dask")
            owner[(g, e["bin"])] = f.path
            planned.append((src, g, e))
        extra = [p for p in folder.rglob("*") if p.is_file() and p not in listed]
        if extra:
            raise IntegrityIngestError(f"{f.path}: its Dask task left files it did not report; "
                                       "nothing was committed")
    out = []
    for src, g, e in planned:
        dst_dir = staging / "variants" / f"c{g:04d}"
        dst_dir.mkdir(mode=0o700, exist_ok=True)
        dst = dst_dir / src.name
        for a, b in ((Path(key_material_path(str(src))), Path(key_material_path(str(dst)))),
                     (src, dst)):
            if a.exists():
                os.rename(a, b)
        out.append({**e, "path": f"variants/c{g:04d}/{src.name}", "contig": g})
    for d in {staging / "variants" / f"c{g:04d}" for _s, g, _e in planned}:
        fsync_path(d)
    import shutil

    shutil.rmtree(parts)
    out.sort(key=lambda e: (e["contig"], e["bin"]))
    return out


class IntegrityIngestError(DistributedIngestError):
    """A file a Dask task wrote differs from what the task reported."""


def ingest_from_settings(settings: Any, spec: str | None, ttl: str) -> DaskIngest | None:
    """The Dask ingest ``spec`` (or ``GENOVAULT_DASK_SCHEDULER``) asks for, or None (the
    local path). Workers' tokens are minted by the embedded vault's root, or by the caller's
    own ``VAULT_TOKEN`` (which then needs ``auth/token/create/genovault-ingest-worker``)."""
    spec = spec or settings.dask_scheduler
    if not spec:
        return None
    qd.parse_spec(spec)
    from vault.keys.workers import check_worker_ttl

    check_worker_ttl("ingest", ttl)  # before a cluster starts
    from vault.keys import client as vclient

    return DaskIngest.connect(spec, lambda: vclient.connect(settings), credential_ttl=ttl)


__all__ = ["DaskIngest", "DistributedIngestError", "FileResult", "ingest_file",
           "ingest_from_settings", "sample_list_digest"]
