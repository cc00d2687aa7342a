"""The per-variant statistics the API offers, as fields of the kernels' ``VariantStats``.

Each statistic says which genotype-bearing counts it releases (its disclosure ``kind``, see
vault.privacy.disclosure.FIELDS) and which fields a cell of its answer holds. Values are
computed for a whole partition at once (vectorised kernels); a suppressed cell keeps only
``n`` (the group size) and every other field is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels import Status
from kernels.variant_stats import (
    allele_counts,
    allele_frequency,
    hardy_weinberg,
    inbreeding_f,
    missingness,
)


@dataclass(frozen=True)
class Statistic:
    name: str
    kind: str  # "alleles" | "genotypes" | "calls"
    fields: tuple[str, ...]  # answer fields of a cell, besides "n" (and "status")
    has_status: bool = False

    def arrays(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every field of every cell of ``counts`` (..., 4) as numpy arrays (floats may be
        NaN; ``status`` as the kernels' codes), computed with only the kernels this
        statistic needs."""
        c = np.asarray(counts, np.int64)
        out: dict[str, np.ndarray] = {"n": c.sum(axis=-1)}
        called = c[..., 0] + c[..., 1] + c[..., 2]
        if self.name == "frequency":
            ac, an = allele_counts(c)
            af, status = allele_frequency(c)
            out.update(n_called=called, an=an, ac=ac, af=af, status=status)
        elif self.name == "genotype_counts":
            out.update(n_called=called, missing=c[..., 3], hom_ref=c[..., 0], het=c[..., 1],
                       hom_alt=c[..., 2])
        elif self.name == "hardy_weinberg":
            p, midp, exc, status = hardy_weinberg(c)
            f, _ = inbreeding_f(c)
            out.update(n_called=called, hom_ref=c[..., 0], het=c[..., 1], hom_alt=c[..., 2],
                       hwe_p=p, hwe_midp=midp, exc_het=exc, inbreeding_f=f, status=status)
        elif self.name == "missingness":
            rate, fmiss, status = missingness(c)
            out.update(n_called=called, missing=c[..., 3], call_rate=rate, f_missing=fmiss,
                       status=status)
        else:  # pragma: no cover - STATISTICS below is the whole list
            raise ValueError(self.name)
        return out

    def values(self, counts: np.ndarray) -> dict[str, list[Any]]:
        """:meth:`arrays` as nested Python lists (NaN is None, status by name)."""
        lists: dict[str, list[Any]] = {}
        for name, arr in self.arrays(counts).items():
            if name == "status":
                lists[name] = STATUS_NAMES[arr.astype(np.int64)].tolist()
            elif arr.dtype.kind == "f":
                obj = arr.astype(object)
                obj[np.isnan(arr)] = None
                lists[name] = obj.tolist()
            else:
                lists[name] = arr.tolist()
        return lists


#: the kernels' status codes by name (index = code)
STATUS_NAMES = np.asarray([s.name.lower() for s in sorted(Status, key=int)], dtype=object)


STATISTICS: dict[str, Statistic] = {s.name: s for s in (
    Statistic("frequency", "alleles", ("n_called", "an", "ac", "af"), True),
    Statistic("genotype_counts", "genotypes",
              ("n_called", "missing", "hom_ref", "het", "hom_alt")),
    Statistic("hardy_weinberg", "genotypes",
              ("n_called", "hom_ref", "het", "hom_alt", "hwe_p", "hwe_midp", "exc_het",
               "inbreeding_f"), True),
    Statistic("missingness", "calls", ("n_called", "missing", "call_rate", "f_missing"), True),
)}
