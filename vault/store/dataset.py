"""The store: one folder per dataset, a manifest as the atomic commit point, a write lock.

Layout of ``<store>/<dataset>/``::

    manifest.json                 the commit point (atomically replaced)
    .lock                         held (flock) by the one process writing to the dataset
    .staging/<uuid>/              batches being written; never read; removed on next write
    .pending/<sha256>             an ingest's sample registration (vault.ingest.registration)
    .release/v<version>.parquet   a compaction's removed pseudonyms, encrypted, until released
    batches/b0001/samples.parquet encrypted samples table (pseudonyms + group labels)
    batches/b0001/info.parquet    encrypted batch information (source name, groups, QC)
    batches/b0001/variants/c0000/bin000001.parquet  (+ _KEY_MATERIAL_FOR_*.json beside it)

A batch folder that the manifest does not list is debris of an interrupted ingest: readers
never see it and the next writer deletes it.

The store never follows a symbolic link: a store or dataset folder that contains one is
refused before anything is read, written or deleted (a planted ``.staging`` link would
otherwise turn debris removal into deletion of another folder). Folders are created 0700 and
files 0600; looser modes on an existing store are reported.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vault import faults
from vault.errors import DatasetLocked, DatasetNotFound, StoreError
from vault.ids import DATASET_ID_RE, check_dataset_id
from vault.store import format as fmt
from vault.store.fsutil import fsync_path
from vault.store.manifest import Manifest

log = logging.getLogger("genovault.store")

DIR_MODE = 0o700
FILE_MODE = 0o600


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Listing:
    """What ``Store.scan`` found: committed datasets, and entries it skipped (with why)."""

    datasets: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: committed datasets (also in ``datasets``) that were crypto-shredded: a tombstone only
    destroyed: list[str] = field(default_factory=list)


class Store:
    """A folder of datasets."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        if self.root.is_symlink():
            raise StoreError(f"{self.root}: the store root is a symbolic link; GenoVault "
                             "never follows links in the store. Point GENOVAULT_STORE at the "
                             "real folder")
        self.root = self.root.resolve()

    def dataset_dir(self, dataset: str) -> Path:
        return self.root / check_dataset_id(dataset)

    # -- listing -------------------------------------------------------------------------
    def scan(self) -> Listing:
        """Committed datasets, skipping (and reporting) anything that is not one."""
        out = Listing()
        if not self.root.exists():
            return out
        for p in sorted(self.root.iterdir()):
            if not (p / fmt.MANIFEST).exists() and not p.is_symlink():
                if p.is_dir() and not p.name.startswith("."):
                    out.skipped.append(f"{p.name}: no manifest (an interrupted first ingest?)")
                continue
            if not DATASET_ID_RE.fullmatch(p.name):
                out.skipped.append(f"{p.name!r}: not a valid dataset id")
                continue
            try:
                m = self.manifest(p.name)
            except StoreError as exc:
                out.skipped.append(f"{p.name}: {exc}")
                continue
            out.datasets.append(p.name)
            if m.tombstone is not None:
                out.destroyed.append(p.name)
        return out

    def list(self) -> builtins.list[str]:
        """Datasets that hold data (a destroyed one's tombstone is not listed: the API's
        dataset and Beacon collection lists come from here)."""
        listing = self.scan()
        return [d for d in listing.datasets if d not in listing.destroyed]

    def exists(self, dataset: str) -> bool:
        path = self.dataset_dir(dataset) / fmt.MANIFEST
        return path.exists() or path.is_symlink()

    # -- reading -------------------------------------------------------------------------
    def manifest(self, dataset: str) -> Manifest:
        folder = self.dataset_dir(dataset)
        path = folder / fmt.MANIFEST
        if not (path.exists() or path.is_symlink()):
            raise DatasetNotFound(f"no dataset {dataset!r} in {self.root}")
        self.check_tree(folder)
        manifest = Manifest.load(path)
        if manifest.dataset != dataset:
            raise StoreError(f"{path}: the manifest is that of dataset {manifest.dataset!r}, "
                             f"not {dataset!r}; the store was tampered with")
        return manifest

    def check_tree(self, folder: Path) -> None:
        """Refuse ``folder`` if it, or anything below it, is a symbolic link; warn on modes."""
        if folder.is_symlink():
            raise StoreError(f"{folder}: is a symbolic link; GenoVault never follows links in "
                             "the store — remove it")
        loose: list[tuple[Path, int]] = []
        for base, dirs, files in os.walk(folder, followlinks=False):
            for name in (*dirs, *files):
                p = Path(base) / name
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    raise StoreError(f"{p}: is a symbolic link; GenoVault never follows links "
                                     "in the store — remove it (and check who planted it)")
                if st.st_mode & 0o077:
                    loose.append((p, stat.S_IMODE(st.st_mode)))
        for p in (self.root, folder):
            mode = os.lstat(p).st_mode
            if mode & 0o077:
                log.warning("%s is accessible to other users (mode %o); GenoVault creates it "
                            "0700", p, stat.S_IMODE(mode))
        if loose:
            log.warning("%d file(s) or folder(s) in %s are accessible to other users (first: "
                        "%s, mode %o); GenoVault creates folders 0700 and files 0600",
                        len(loose), folder, loose[0][0], loose[0][1])

    # -- writing -------------------------------------------------------------------------
    def commit(self, dataset: str, manifest: Manifest) -> None:
        """Atomically replace the manifest (write, fsync, rename, fsync the folder)."""
        if manifest.dataset != dataset:
            raise StoreError(f"internal error: manifest of {manifest.dataset!r} committed to "
                             f"{dataset!r}")
        folder = self.dataset_dir(dataset)
        tmp = folder / f".{fmt.MANIFEST}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # removes a planted link itself, never its target
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(manifest.dumps())
            fh.flush()
            os.fsync(fh.fileno())
        faults.point("store.manifest_tmp_written")
        os.replace(tmp, folder / fmt.MANIFEST)
        fsync_path(folder)

    def make_root(self) -> None:
        if not self.root.exists():
            self.root.mkdir(mode=DIR_MODE, parents=True)

    @contextlib.contextmanager
    def lock(self, dataset: str) -> Iterator[Path]:
        """Exclusive write lock on a dataset (creates its folder; removes it again if a first
        ingest leaves nothing committed)."""
        folder = self.dataset_dir(dataset)
        self.make_root()
        created = not (folder.exists() or folder.is_symlink())
        if created:
            folder.mkdir(mode=DIR_MODE)
        self.check_tree(folder)
        fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise DatasetLocked(f"dataset {dataset!r} is being written by another process; "
                                    "wait for it to finish and retry") from exc
            yield folder
        finally:
            os.close(fd)
            if created and not (folder / fmt.MANIFEST).exists():
                shutil.rmtree(folder, ignore_errors=True)

    def remove_debris(self, dataset: str, manifest: Manifest | None) -> builtins.list[str]:
        """Delete staging folders and batch folders the manifest does not list (under lock)."""
        folder = self.dataset_dir(dataset)
        self.check_tree(folder)
        removed = []
        staging = folder / ".staging"
        if staging.exists():
            for p in staging.iterdir():
                shutil.rmtree(p)
                removed.append(p.relative_to(folder).as_posix())
        # the folders the manifest's files are in: a batch's own, its parts'
        # (<batch>.p<n>), and a compacted batch's (<batch>.c<version>), whose old folder
        # <batch> is debris once the compaction is committed (a kill before the compaction
        # deleted it left the withdrawn samples' files behind for good)
        listed = {f.path.split("/")[1] for f in manifest.files()
                  if f.path.startswith("batches/")} if manifest else set()
        batches = folder / "batches"
        if batches.exists():
            for p in batches.iterdir():
                if p.name not in listed:
                    shutil.rmtree(p)
                    removed.append(p.relative_to(folder).as_posix())
        # a kill while the manifest or the record of retired keys (vault/keys/lifecycle)
        # was being replaced leaves its temporary file
        for tmp in (folder / f".{fmt.MANIFEST}.tmp", folder / f".{fmt.RETIRED_KEYS}.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        # the pending-registration marker of a batch that was committed (a kill between the
        # commit and the marker's removal): its registrations belong to the batch for good
        pending = folder / ".pending"
        if pending.is_dir():  # a marker's temporary file (a kill before its rename)
            for p in pending.glob(".*.tmp"):
                p.unlink()
                removed.append(p.relative_to(folder).as_posix())
        if manifest is not None and pending.is_dir():
            for name in committed_pending_names(manifest):
                p = pending / name
                if p.is_file() and p.read_text(encoding="ascii").endswith(" complete"):
                    p.unlink()
                    removed.append(p.relative_to(folder).as_posix())
        return removed


def pending_name(checksums: builtins.list[str]) -> str:
    """The name of the pending-registration marker of an ingest of files with these sha256
    checksums: the checksum itself (one file), else a checksum over the sorted checksums (the
    same files in any order: the same name)."""
    if len(checksums) == 1:
        return checksums[0]
    joined = "\n".join(sorted(checksums))
    return hashlib.sha256(f"genovault-batch\n{joined}".encode("ascii")).hexdigest()


def committed_pending_names(manifest: Manifest) -> set[str]:
    """The marker names of the ingests that wrote the manifest's batches (a batch's first
    file and the files ingested with it; a part added later registers nothing)."""
    names = set()
    for b in manifest.batches:
        together = [b.source.sha256, *(p.sha256 for p in b.parts if p.ingested_at is None)]
        names.add(pending_name(together))
    return names
