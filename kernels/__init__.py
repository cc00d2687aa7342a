"""GenoVault statistics kernels: pure numpy + numba over the store's 2-bit genotype block.

No I/O, no logging, no keys. Input is ``packed`` uint8 (n_variants, ceil(n_samples / 4)) with
codes 0 hom-ref, 1 het, 2 hom-alt, 3 missing (four samples per byte, low bits first) and an
optional int32 ``group`` per sample (0..n_groups-1, or -1 for none). Counting runs once per
block; every statistic derives from the counts (or, for LD and logistic regression with
covariates, from the block) and comes with an explicit ``Status`` per variant.
See docs/kernels.md for conventions and which tool each statistic matches.
"""

from kernels.association import AssociationResult, case_control_tests, chi2_1df_sf
from kernels.codes import HET, HOM_ALT, HOM_REF, MISSING
from kernels.counts import GenotypeCounts, count_genotypes
from kernels.ld import LdPairs, ld_r2
from kernels.logistic import LogisticResult, logistic_from_counts, logistic_regression
from kernels.sfs import Sfs, site_frequency_spectrum
from kernels.status import Status
from kernels.variant_stats import (
    VariantStats,
    allele_counts,
    allele_frequency,
    hardy_weinberg,
    inbreeding_f,
    missingness,
    variant_stats,
)

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
