"""The cohort of a dataset as the query service sees it: group labels as integer codes.

Labels come from the encrypted samples table (decrypted in memory only). The service never
returns them per sample: only group names with their sizes, subject to the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vault.store.reader import DatasetReader


@dataclass(frozen=True)
class Grouping:
    """One grouping column: names of its groups and a code per sample (-1: no label)."""

    column: str
    names: tuple[str, ...]
    codes: np.ndarray  # int32 (n_samples,)
    sizes: np.ndarray  # int64 (n_groups,)

    def restrict(self, keep: np.ndarray) -> Grouping:
        """The grouping with only the groups where ``keep`` is True (others become -1)."""
        new_index = np.full(len(self.names), -1, np.int32)
        kept = np.flatnonzero(keep)
        new_index[kept] = np.arange(kept.size, dtype=np.int32)
        codes = np.where(self.codes >= 0, new_index[np.maximum(self.codes, 0)], -1)
        return Grouping(self.column, tuple(self.names[i] for i in kept),
                        codes.astype(np.int32), self.sizes[kept])


@dataclass
class Cohort:
    """Samples of one dataset version: their count and groupings (built lazily per column)."""

    n_samples: int
    columns: tuple[str, ...]
    _reader: DatasetReader
    _groupings: dict[str, Grouping] = field(default_factory=dict)

    @classmethod
    def load(cls, reader: DatasetReader) -> Cohort:
        return cls(reader.n_samples, tuple(reader.group_columns()), reader)

    def grouping(self, column: str) -> Grouping:
        if column not in self._groupings:
            labels = self._reader.samples([column]).column(column).to_pylist()
            names = tuple(sorted({v for v in labels if v is not None}))
            index = {n: i for i, n in enumerate(names)}
            codes = np.array([index[v] if v is not None else -1 for v in labels], np.int32)
            sizes = np.bincount(codes[codes >= 0], minlength=len(names)).astype(np.int64)
            self._groupings[column] = Grouping(column, names, codes, sizes)
        return self._groupings[column]
