"""Where the chain head (last seq and hash) is kept outside the log.

The real anchor is :class:`vault.keys.anchor.VaultKvAnchor` (a KV v2 entry in Vault whose
version number is the seq, written with check-and-set; the only package allowed to talk to
Vault is ``vault.keys``). :class:`MemoryAnchor` exists for
unit tests of the chain logic only: it lives and dies with the process, so it proves nothing
about truncation and must never back a real log.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class Anchor(Protocol):
    """The chain head kept outside the log."""

    def read(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the last record written, or None if nothing was anchored yet."""
        ...

    def write(self, seq: int, hash: str) -> None:
        """Record ``(seq, hash)`` as the new head (called under the log's lock)."""
        ...


class MemoryAnchor:
    """An in-process anchor for unit tests (not durable, not shared between processes)."""

    def __init__(self) -> None:
        self._head: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self.writes = 0

    def read(self) -> tuple[int, str] | None:
        with self._lock:
            return self._head

    def write(self, seq: int, hash: str) -> None:
        with self._lock:
            self._head = (seq, hash)
            self.writes += 1
