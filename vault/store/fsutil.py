"""File-system primitives of the store: checksums and durable writes (no keys, no Vault)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from vault import faults


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def parquet_tail(path: Path) -> bytes:
    """The tail of a Parquet file: its footer length and magic and what they frame.

    For a file with an encrypted footer (magic ``PARE``) the framed bytes are the
    FileCryptoMetaData (algorithm and the file's random AAD) and the AES-GCM encrypted
    footer; for a plaintext file (``PAR1``), the footer. ValueError if the file is too
    short or its last bytes are no Parquet magic.
    """
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size < 12:
            raise ValueError(f"{path}: {size} bytes is too short for a Parquet file")
        fh.seek(size - 8)
        end = fh.read(8)
        length = int.from_bytes(end[:4], "little")
        if end[4:] not in (b"PARE", b"PAR1") or length + 8 > size - 4:
            raise ValueError(f"{path}: no Parquet footer at its end")
        fh.seek(size - 8 - length)
        return fh.read(length) + end


def parquet_tail_sha256(path: Path) -> str:
    """SHA-256 of :func:`parquet_tail`, hex."""
    return hashlib.sha256(parquet_tail(path)).hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, encoding: str = "utf-8",
                      fault: str | None = None) -> None:
    """Durably and atomically replace ``path`` with ``text`` (mode 0600): written to
    ``.<name>.tmp`` beside it, fsynced, renamed over it, the folder fsynced. A kill at any
    moment leaves the old file (or none) or the new one, never an empty or partial one; a
    failed write removes its temporary file. ``fault``: a vault.faults point reached with the
    temporary file durable and not yet renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if fault is not None:
            faults.point(fault)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(path.parent)
