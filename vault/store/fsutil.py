"""File-system primitives of the store: checksums and durable writes (no keys, no Vault)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
