"""GenoVault statistics kernels: pure numpy + numba over the store's 2-bit genotype block.

No I/O, no logging, no keys. Input is ``packed`` uint8 (n_variants, ceil(n_samples / 4)) with
codes 0 hom-ref, 1 het, 2 hom-alt, 3 missing (four samples per byte, low bits first) and an
optional int32 ``group`` per sample (0..n_groups-1, or -1 for none). Counting runs once per
block; every statistic derives from the counts (or, for LD and logistic regression with
covariates, from the block) and comes with an explicit ``Status`` per variant.
See docs/kernels.md for conventions and which tool each statistic matches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kernels.codes import HET, HOM_ALT, HOM_REF, MISSING
from kernels.counts import GenotypeCounts, count_genotypes
from kernels.status import Status

# ``variant_stats`` is a module and a function of it: imported here, so that importing the
# submodule elsewhere can never leave the package attribute pointing at the module.
from kernels.variant_stats import (  # isort: skip
    VariantStats,
    allele_counts,
    allele_frequency,
    hardy_weinberg,
    inbreeding_f,
    missingness,
    variant_stats,
)

# The other names are imported on first use (PEP 562): ``import kernels.codes`` (the store's
# format does it) need not load the association, regression and LD kernels — the CLI's
# start-up paid for them.
_WHERE = {
    "AssociationResult": "association", "case_control_tests": "association",
    "chi2_1df_sf": "association",
    "LdPairs": "ld", "ld_r2": "ld",
    "LogisticResult": "logistic", "logistic_from_counts": "logistic",
    "logistic_regression": "logistic",
    "Sfs": "sfs", "site_frequency_spectrum": "sfs",
}

if TYPE_CHECKING:
    from kernels.association import AssociationResult, case_control_tests, chi2_1df_sf
    from kernels.ld import LdPairs, ld_r2
    from kernels.logistic import LogisticResult, logistic_from_counts, logistic_regression
    from kernels.sfs import Sfs, site_frequency_spectrum


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kernels.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "HET",
    "HOM_ALT",
    "HOM_REF",
    "MISSING",
    "AssociationResult",
    "GenotypeCounts",
    "LdPairs",
    "LogisticResult",
    "Sfs",
    "Status",
    "VariantStats",
    "allele_counts",
    "allele_frequency",
    "case_control_tests",
    "chi2_1df_sf",
    "count_genotypes",
    "hardy_weinberg",
    "inbreeding_f",
    "ld_r2",
    "logistic_from_counts",
    "logistic_regression",
    "missingness",
    "site_frequency_spectrum",
    "variant_stats",
]
