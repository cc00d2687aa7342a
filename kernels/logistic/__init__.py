"""Per-variant logistic regression of case/control status on ALT dosage (+ covariates),
the equivalent of plink2 ``--glm omit-ref no-firth`` for a binary phenotype.

Model: logit P(case) = b0 + b_g * dosage + sum_j b_j * covariate_j, dosage = 0/1/2 ALT copies,
fitted by Newton-Raphson; samples with a missing genotype at the variant (or a missing
phenotype / covariate) are left out of that variant's fit. Reported: b_g, its Wald SE from the
inverse information, z, two-sided p = erfc(|z| / sqrt 2), OR = exp(b_g), and the observation
counts. No Firth fallback: a diverging fit says SEPARATION.

Without covariates the likelihood depends only on the 3 x 2 table of genotype by case status,
so the fit runs on genotype counts (``logistic_from_counts``) in O(1) per variant. With few
distinct covariate rows, samples sharing (covariates, dosage, status) are merged into
weighted rows. Otherwise (continuous covariates) every sample is a row
(``_logistic_per_sample``): the design is kept by column, the Newton passes are SIMD loops
with a vectorisable exp (``_exp``), and each fit starts from the covariate-only fit with
b_g from a carriers-only 1-parameter fit (``_carrier_start``).

Layout: ``__init__`` (this file: the public functions and ``LogisticResult``), ``table``
(no covariates), ``merged`` (covariates, weighted rows; dispatches to ``per_sample``),
``per_sample`` (one row per sample), ``dense`` (its column-major Newton passes), ``newton``
(row-major Newton + Cholesky), ``vexp`` (vectorisable exp), ``common`` (statuses, result
arrays, pre-checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.counts import count_genotypes
from kernels.logistic.merged import _logistic_samples as _logistic_samples
from kernels.logistic.newton import MAX_ITER as MAX_ITER
from kernels.logistic.newton import SEPARATION_EPS as SEPARATION_EPS
from kernels.logistic.newton import TOL as TOL
from kernels.logistic.newton import _newton
from kernels.logistic.per_sample import PREFIT_ITER as PREFIT_ITER
from kernels.logistic.per_sample import PREFIT_MAX as PREFIT_MAX
from kernels.logistic.per_sample import PREFIT_MAX_CARRIERS as PREFIT_MAX_CARRIERS
from kernels.logistic.per_sample import PREFIT_TOL as PREFIT_TOL
from kernels.logistic.per_sample import _logistic_per_sample as _logistic_per_sample
from kernels.logistic.table import _logistic_counts
from kernels.logistic.vexp import _exp as _exp
from kernels.status import Status

# Besides the public functions, the tuning constants and the kernels the tests drive directly
# (``_exp``, ``_logistic_per_sample``, ``_logistic_samples``) stay importable from here.


@dataclass(frozen=True)
class LogisticResult:
    """Per-variant genotype effect; every array has shape (n_variants,).

    Values are NaN where ``status`` is neither OK nor P_UNDERFLOW.
    """

    beta: np.ndarray  # float64, log odds ratio per ALT allele
    se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    odds_ratio: np.ndarray
    n_obs: np.ndarray  # int64, samples in the fit
    n_cases: np.ndarray
    n_controls: np.ndarray
    ac: np.ndarray  # ALT allele count among the samples in the fit
    n_iter: np.ndarray  # int32
    status: np.ndarray  # int8 Status


def logistic_from_counts(case_counts: np.ndarray, control_counts: np.ndarray) -> LogisticResult:
    """Logistic regression without covariates from case and control genotype counts (n, 4)."""
    cases = np.ascontiguousarray(case_counts, dtype=np.int64)
    controls = np.ascontiguousarray(control_counts, dtype=np.int64)
    if cases.shape != controls.shape or cases.ndim != 2 or cases.shape[1] != 4:
        raise ValueError("case and control counts must both be (n_variants, 4)")
    beta, se, z, p, odds, st, iters = _logistic_counts(cases, controls)
    n_case = cases[:, :3].sum(axis=1)
    n_ctrl = controls[:, :3].sum(axis=1)
    ac = cases[:, 1] + controls[:, 1] + 2 * (cases[:, 2] + controls[:, 2])
    return LogisticResult(beta, se, z, p, odds, n_case + n_ctrl, n_case, n_ctrl, ac, iters, st)


def _null_fit(y: np.ndarray, covar: np.ndarray) -> np.ndarray:
    """Intercept + covariates fit (start values for every variant)."""
    n, c = covar.shape
    x = np.ones((n, 1 + c))
    x[:, 1:] = covar
    b = np.zeros(1 + c)
    cases = float(y.sum())
    if 0 < cases < n:
        b[0] = math.log(cases / (n - cases))
    status, _, _ = _newton(x, y.astype(np.float64), np.ones(n), n, b, 0)
    if status != Status.OK:
        return np.zeros(1 + c)
    return b


def logistic_regression(
    packed: np.ndarray,
    n_samples: int,
    phenotype: np.ndarray,
    covariates: np.ndarray | None = None,
) -> LogisticResult:
    """Logistic regression of a binary phenotype on ALT dosage per variant.

    ``phenotype``: int (n_samples,), 1 case, 0 control, -1 missing (left out).
    ``covariates``: float64 (n_samples, c) or None; a sample with a NaN covariate is left out.
    """
    y = np.asarray(phenotype)
    if y.shape != (n_samples,) or not np.isin(y, (-1, 0, 1)).all():
        raise ValueError(f"phenotype must be ({n_samples},) with values 1, 0 or -1")
    y = y.astype(np.int8)
    if covariates is None or np.asarray(covariates).size == 0:
        counts = count_genotypes(packed, n_samples, y.astype(np.int32), 2)
        return logistic_from_counts(counts.groups[:, 1], counts.groups[:, 0])
    covar = np.asarray(covariates, dtype=np.float64)
    if covar.ndim == 1:
        covar = covar[:, None]
    if covar.shape[0] != n_samples:
        raise ValueError(f"covariates must have {n_samples} rows")
    y = np.where(np.isfinite(covar).all(axis=1), y, -1).astype(np.int8)
    covar = np.ascontiguousarray(np.where(np.isfinite(covar), covar, 0.0))
    use = y >= 0
    beta_null = _null_fit(y[use], covar[use])
    # distinct covariate rows: samples sharing one are merged when that pays off
    table, pattern = np.unique(covar, axis=0, return_inverse=True)
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    beta, se, z, p, odds, st, iters, n_obs, n_cases, ac = _logistic_samples(
        packed,
        n_samples,
        y,
        np.ascontiguousarray(pattern.reshape(-1), dtype=np.int64),
        np.ascontiguousarray(table, dtype=np.float64),
        beta_null,
    )
    return LogisticResult(beta, se, z, p, odds, n_obs, n_cases, n_obs - n_cases, ac, iters, st)
