"""The store: one folder per dataset, a manifest as the atomic commit point, a write lock.

Layout of ``<store>/<dataset>/``::

    manifest.json                 the commit point (atomically replaced)
    .lock                         held (flock) by the one process writing to the dataset
    .staging/<uuid>/              batches being written; never read; removed on next write
    batches/b0001/samples.parquet
    batches/b0001/pseudonyms.json keyed-HMAC pseudonyms of this batch (duplicate checks)
    batches/b0001/variants/c0000/bin000001.parquet  (+ _KEY_MATERIAL_FOR_*.json beside it)

A batch folder that the manifest does not list is debris of an interrupted ingest: readers
never see it and the next writer deletes it.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.config import check_dataset_id, store_root
from vault.errors import DatasetLocked, DatasetNotFound, StoreError
from vault.store import format as fmt
from vault.store.writer import fsync_path


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """A folder of datasets."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or store_root()).resolve()

    def dataset_dir(self, dataset: str) -> Path:
        return self.root / check_dataset_id(dataset)

    def list(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if (p / fmt.MANIFEST).is_file())

    def exists(self, dataset: str) -> bool:
        return (self.dataset_dir(dataset) / fmt.MANIFEST).is_file()

    def manifest(self, dataset: str) -> dict[str, Any]:
        path = self.dataset_dir(dataset) / fmt.MANIFEST
        if not path.is_file():
            known = ", ".join(self.list()) or "none"
            raise DatasetNotFound(f"no dataset {dataset!r} in {self.root} (datasets: {known})")
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable manifest ({exc}); restore it from backup") \
                from exc
        if manifest.get("format") != fmt.FORMAT_NAME:
            raise StoreError(f"{path}: not a GenoVault manifest")
        if manifest.get("schema_version") != fmt.SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {manifest.get('schema_version')} is not "
                             f"supported by this GenoVault (supports {fmt.SCHEMA_VERSION})")
        return manifest

    def commit(self, dataset: str, manifest: dict[str, Any]) -> None:
        """Atomically replace the manifest (write, fsync, rename, fsync the folder)."""
        folder = self.dataset_dir(dataset)
        tmp = folder / f".{fmt.MANIFEST}.tmp"
        with open(tmp, "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / fmt.MANIFEST)
        fsync_path(folder)

    @contextlib.contextmanager
    def lock(self, dataset: str) -> Iterator[Path]:
        """Exclusive write lock on a dataset (creates its folder)."""
        folder = self.dataset_dir(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise DatasetLocked(f"dataset {dataset!r} is being written by another process; "
                                    "wait for it to finish and retry") from exc
            yield folder
        finally:
            os.close(fd)

    def remove_debris(self, dataset: str, manifest: dict[str, Any] | None) -> builtins.list[str]:
        """Delete staging folders and batch folders the manifest does not list (under lock)."""
        folder = self.dataset_dir(dataset)
        removed = []
        staging = folder / ".staging"
        if staging.exists():
            for p in staging.iterdir():
                shutil.rmtree(p, ignore_errors=False)
                removed.append(p.relative_to(folder).as_posix())
        listed = {b["batch"] for b in (manifest or {}).get("batches", [])}
        batches = folder / "batches"
        if batches.exists():
            for p in batches.iterdir():
                if p.name not in listed:
                    shutil.rmtree(p)
                    removed.append(p.relative_to(folder).as_posix())
        tmp = folder / f".{fmt.MANIFEST}.tmp"
        if tmp.exists():
            tmp.unlink()
        return removed
