"""Logistic regression with covariates, one row per sample (continuous covariates).

Per variant only the samples with a non-zero code are read from the packed row; each fit
starts from the covariate-only fit with b_g from a carriers-only 1-parameter fit
(``_carrier_start``) and runs ``_dense_newton`` over the column-major design.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from kernels.codes import HET, HOM_REF, MISSING
from kernels.jit import jit
from kernels.logistic.common import _finish, _precheck, _result_arrays
from kernels.logistic.dense import _dense_newton

# Start value search for the genotype coefficient (see _carrier_start).
PREFIT_ITER = 8
PREFIT_TOL = 1e-4
PREFIT_MAX = 15.0
# Only when carriers are at most this fraction of the samples: above it the search over the
# carriers costs about as much as the full pass it saves (measured: 0.02 and 0.1 alike).
PREFIT_MAX_CARRIERS = 0.1


@jit()
def _carrier_start(
    offset: np.ndarray, yv: np.ndarray, idx: np.ndarray, codes: np.ndarray, n_list: int
) -> float:
    """Start value for the genotype coefficient: the 1-parameter fit of b_g with the
    covariate-only model's linear predictor ``offset`` held fixed. Samples with dosage 0
    enter neither its score nor its information, so it runs over the carriers in
    ``idx[:n_list]`` (``codes`` 1, 2; 3 = missing, skipped): cheap for the rare variants
    that make up most of a cohort. A few loose Newton steps; 0 if they do not settle (the
    full fit then starts from 0). Only the start moves, not the optimum the fit converges
    to."""
    bg = 0.0
    for _ in range(PREFIT_ITER):
        score = 0.0
        info = 0.0
        for t in range(n_list):
            d = codes[t]
            if d == MISSING:
                continue
            s = idx[t]
            p = 1.0 / (1.0 + math.exp(-(offset[s] + bg * d)))
            score += d * (yv[s] - p)
            info += d * d * (p * (1.0 - p))
        if not info > 0.0:
            return 0.0
        step = score / info
        bg += step
        if abs(bg) > PREFIT_MAX:
            return 0.0
        if abs(step) < PREFIT_TOL * (1.0 + abs(bg)):
            return bg
    return 0.0


@jit()
def _samples_in_use(
    n_samples: int, y: np.ndarray, pattern: np.ndarray, covar: np.ndarray, beta_null: np.ndarray
) -> tuple:
    """Per sample: in use (phenotype not -1), outcome as int64 and float64, and the
    covariate-only linear predictor; plus the number of samples and cases in use."""
    c = covar.shape[1]
    use = np.zeros(n_samples, np.int64)
    yint = np.zeros(n_samples, np.int64)
    yv = np.zeros(n_samples)
    offset = np.full(n_samples, beta_null[0])
    n_use = 0
    n_case_use = 0
    for s in range(n_samples):
        if y[s] >= 0:
            use[s] = 1
            yint[s] = y[s]
            yv[s] = y[s]
            n_use += 1
            n_case_use += y[s]
        for j in range(c):
            offset[s] += beta_null[1 + j] * covar[pattern[s], j]
    return use, yint, yv, offset, n_use, n_case_use


@jit()
def _column_design(
    k: int, n_samples: int, pattern: np.ndarray, covar: np.ndarray, use: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The design by column (k, n_samples): intercept row of ones, dosage row 0 (filled per
    variant), covariate rows; and the 0/1 weight row (1 = sample in use)."""
    c = covar.shape[1]
    xt = np.ones((k, n_samples))
    xt[1, :] = 0.0
    for j in range(c):
        for s in range(n_samples):
            xt[2 + j, s] = covar[pattern[s], j]
    mask = np.zeros(n_samples)
    for s in range(n_samples):
        mask[s] = use[s]
    return xt, mask


@jit()
def _list_row(
    packed: np.ndarray,
    v: int,
    n_samples: int,
    use: np.ndarray,
    yint: np.ndarray,
    xt: np.ndarray,
    mask: np.ndarray,
    idx: np.ndarray,
    codes: np.ndarray,
) -> tuple[int, int, int, int, int, int, int]:
    """List the samples in use with a non-zero code at variant ``v`` into ``idx`` / ``codes``
    (zero bytes skipped), write their dosage into ``xt[1]`` and weight 0 into ``mask`` for a
    missing call. Returns (listed, het, hom-alt, missing, and those three among cases)."""
    n_list = 0
    het = 0
    hom = 0
    miss = 0
    het_case = 0
    hom_case = 0
    miss_case = 0
    for bi in range(packed.shape[1]):
        byte = np.int64(packed[v, bi])
        if byte == 0:
            continue
        for q in range(4):
            code = (byte >> (2 * q)) & 3
            s = 4 * bi + q
            if code == HOM_REF or s >= n_samples or use[s] == 0:
                continue
            idx[n_list] = s
            codes[n_list] = code
            n_list += 1
            if code == MISSING:
                mask[s] = 0.0
                miss += 1
                miss_case += yint[s]
            else:
                xt[1, s] = code
                if code == HET:
                    het += 1
                    het_case += yint[s]
                else:
                    hom += 1
                    hom_case += yint[s]
    return n_list, het, hom, miss, het_case, hom_case, miss_case


@jit(parallel=True)
def _logistic_per_sample(
    packed: np.ndarray,
    n_samples: int,
    y: np.ndarray,
    pattern: np.ndarray,
    covar: np.ndarray,
    beta_null: np.ndarray,
) -> tuple:
    """``_logistic_samples`` with one row per sample (continuous covariates).

    Each chunk of variants keeps the design by column in a (k, n_samples) buffer: the
    intercept and covariate rows are filled once; per variant only the samples with a
    non-zero code (het, hom-alt, missing: few at the rare variants that dominate a cohort)
    are listed from the packed row, skipping zero bytes, and written into the dosage row
    and the 0/1 weight row (0 = missing genotype or left-out sample); they are reset before
    the next variant. The counts for the up-front checks come from the same list. Every
    Newton pass then runs over contiguous float64 arrays (``_dense_newton``)."""
    m = packed.shape[0]
    c = covar.shape[1]
    k = 2 + c
    beta, se, z, p, odds, st, iters, n_obs, n_cases, ac_out = _result_arrays(m)
    use, yint, yv, offset, n_use, n_case_use = _samples_in_use(
        n_samples, y, pattern, covar, beta_null
    )
    n_chunks = min(m, 64)
    for ch in numba.prange(n_chunks):
        xt, mask = _column_design(k, n_samples, pattern, covar, use)
        idx = np.zeros(n_samples, np.int64)
        codes = np.zeros(n_samples, np.int64)
        n_list = 0
        scratch = np.zeros((3, n_samples))
        small = np.zeros((2 * k + 3, k))
        b = np.zeros(k)
        seen_case = np.zeros(3, np.int64)
        seen_ctrl = np.zeros(3, np.int64)
        for v in range(ch * m // n_chunks, (ch + 1) * m // n_chunks):
            for t in range(n_list):  # undo the previous variant
                xt[1, idx[t]] = 0.0
                mask[idx[t]] = 1.0
            n_list, het, hom, miss, het_case, hom_case, miss_case = _list_row(
                packed, v, n_samples, use, yint, xt, mask, idx, codes
            )
            n = n_use - miss
            ncase = n_case_use - miss_case
            ac = het + 2 * hom
            seen_case[0] = ncase - het_case - hom_case
            seen_case[1] = het_case
            seen_case[2] = hom_case
            seen_ctrl[0] = (n - ncase) - (het - het_case) - (hom - hom_case)
            seen_ctrl[1] = het - het_case
            seen_ctrl[2] = hom - hom_case
            n_obs[v] = n
            n_cases[v] = ncase
            ac_out[v] = ac
            pre = _precheck(n, ncase, ac, seen_case, seen_ctrl, k)
            if pre >= 0:
                st[v] = pre
                continue
            b[0] = beta_null[0]
            b[1] = 0.0
            for j in range(c):
                b[2 + j] = beta_null[1 + j]
            if het + hom <= PREFIT_MAX_CARRIERS * n:
                b[1] = _carrier_start(offset, yv, idx, codes, n_list)
            status, n_iter, var = _dense_newton(xt, yv, mask, b, 1, scratch, small)
            _finish(v, status, n_iter, var, b[1], beta, se, z, p, odds, st, iters)
    return beta, se, z, p, odds, st, iters, n_obs, n_cases, ac_out
