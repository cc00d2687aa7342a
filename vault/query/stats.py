"""The per-variant statistics the API offers, as fields of the kernels' ``VariantStats``.

Each statistic says which genotype-bearing counts it releases (its disclosure ``kind``, see
vault.privacy.disclosure.FIELDS) and which fields a cell of its answer holds. Values are
computed for a whole partition at once (vectorised kernels); a suppressed cell keeps only
``n`` (the group size) and every other field is null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels import Status, VariantStats, variant_stats


@dataclass(frozen=True)
class Statistic:
    name: str
    kind: str  # "alleles" | "genotypes" | "calls"
    fields: tuple[tuple[str, str], ...]  # (answer field, VariantStats attribute)
    status_field: str | None = None  # VariantStats status attribute shown as "status"

    def compute(self, counts: np.ndarray) -> VariantStats:
        return variant_stats(counts)

    def cell(self, stats: VariantStats, index: tuple[int, ...], released: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"n": int(stats.n_samples[index])}
        for name, attr in self.fields:
            if name == "n":
                continue
            out[name] = _value(getattr(stats, attr)[index]) if released else None
        if self.status_field is not None:
            out["status"] = Status(int(getattr(stats, self.status_field)[index])).name.lower() \
                if released else "suppressed"
        return out


def _value(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        f = float(x)
        return None if math.isnan(f) else f
    return x


STATISTICS: dict[str, Statistic] = {s.name: s for s in (
    Statistic("frequency", "alleles",
              (("n_called", "n_called"), ("an", "an"), ("ac", "ac"), ("af", "af")), "af_status"),
    Statistic("genotype_counts", "genotypes",
              (("n_called", "n_called"), ("missing", "n_missing"), ("hom_ref", "n_hom_ref"),
               ("het", "n_het"), ("hom_alt", "n_hom_alt"))),
    Statistic("hardy_weinberg", "genotypes",
              (("n_called", "n_called"), ("hom_ref", "n_hom_ref"), ("het", "n_het"),
               ("hom_alt", "n_hom_alt"), ("hwe_p", "hwe_p"), ("hwe_midp", "hwe_midp"),
               ("exc_het", "exc_het"), ("inbreeding_f", "inbreeding_f")), "hwe_status"),
    Statistic("missingness", "calls",
              (("n_called", "n_called"), ("missing", "n_missing"), ("call_rate", "call_rate"),
               ("f_missing", "f_missing")), "missing_status"),
)}
