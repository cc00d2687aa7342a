"""A bounded in-memory cache of decrypted, decoded partitions (plaintext only in memory).

Keyed by dataset, dataset version and partition; least recently used entries are dropped
beyond ``max_bytes``. When a dataset's version changes (a new batch, a withdrawal, a
compaction) or the dataset is destroyed, :meth:`PartitionCache.retire` drops the other
versions' entries and refuses later ones: a request still running on the old version would
otherwise put blocks of a withdrawn participant back, kept until evicted. Nothing is ever
written to disk. ``GENOVAULT_CACHE_MB=0`` (or
``PartitionCache(0)``) turns it off: every query decrypts from Parquet.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class PartitionCache(Generic[V]):
    """Thread-safe LRU by byte size."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        #: per dataset (a key's first element), the only version (its second) kept; a
        #: dataset mapped to None keeps none (destroyed)
        self._current: dict[Hashable, Hashable | None] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> V | None:
        """The cached value of ``key``, or None (counted as a hit or a miss)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item[0]
            self.misses += 1
        value = load()  # outside the lock: decryption may take a while
        size = self._size_of(value)
        if self.max_bytes <= 0 or size > self.max_bytes:
            return value
        with self._lock:
            if key not in self._items and not self._retired(key):
                self._items[key] = (value, size)
                self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old
        return value

    def _retired(self, key: Hashable) -> bool:
        if not (isinstance(key, tuple) and len(key) > 1 and key[0] in self._current):
            return False
        return self._current[key[0]] != key[1] or self._current[key[0]] is None

    def retire(self, prefix: Hashable, current: Hashable | None) -> None:
        """Keep only version ``current`` of dataset ``prefix`` (keys ``(prefix, version,
        ...)``), now and from now on; ``current`` None keeps none (a destroyed dataset)."""
        with self._lock:
            self._current[prefix] = current
            for key in [k for k in self._items if self._retired(k)]:
                _, size = self._items.pop(key)
                self._bytes -= size

    def clear(self, prefix: Hashable | None = None) -> None:
        """Forget everything (or every key whose first element is ``prefix``)."""
        with self._lock:
            for key in list(self._items):
                if prefix is None or (isinstance(key, tuple) and key and key[0] == prefix):
                    _, size = self._items.pop(key)
                    self._bytes -= size
