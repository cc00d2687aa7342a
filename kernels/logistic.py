"""Per-variant logistic regression of case/control status on ALT dosage (+ covariates),
the equivalent of plink2 ``--glm omit-ref no-firth`` for a binary phenotype.

Model: logit P(case) = b0 + b_g * dosage + sum_j b_j * covariate_j, dosage = 0/1/2 ALT copies,
fitted by Newton-Raphson; samples with a missing genotype at the variant (or a missing
phenotype / covariate) are left out of that variant's fit. Reported: b_g, its Wald SE from the
inverse information, z, two-sided p = erfc(|z| / sqrt 2), OR = exp(b_g), and the observation
counts. No Firth fallback: a diverging fit says SEPARATION.

Without covariates the likelihood depends only on the 3 x 2 table of genotype by case status,
so the fit runs on genotype counts (``logistic_from_counts``) in O(1) per variant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from kernels._jit import jit
from kernels.counts import count_genotypes
from kernels.status import Status

_OK = np.int8(Status.OK)
_NO_CC = np.int8(Status.NO_CASES_OR_CONTROLS)
_MONO = np.int8(Status.MONOMORPHIC)
_NOCONV = np.int8(Status.NOT_CONVERGED)
_SEP = np.int8(Status.SEPARATION)
_SING = np.int8(Status.SINGULAR)
_FEW = np.int8(Status.TOO_FEW_SAMPLES)
_UNDER = np.int8(Status.P_UNDERFLOW)

MAX_ITER = 40
# Converged when every Newton step is below TOL * (1 + |coefficient|).
TOL = 1e-10
# Fitted probabilities this close to 0 or 1 after MAX_ITER mean (quasi-)separation.
SEPARATION_EPS = 1e-9


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


@jit()
def _cholesky_solve(h: np.ndarray, g: np.ndarray, lower: np.ndarray, out: np.ndarray) -> bool:
    """Solve h @ out = g for symmetric positive definite h; False if h is not SPD."""
    k = h.shape[0]
    for i in range(k):
        for j in range(i + 1):
            s = h[i, j]
            for t in range(j):
                s -= lower[i, t] * lower[j, t]
            if i == j:
                if s <= 1e-12 * max(1.0, abs(h[i, i])):
                    return False
                lower[i, i] = math.sqrt(s)
            else:
                lower[i, j] = s / lower[j, j]
    for i in range(k):  # forward: L y = g
        s = g[i]
        for t in range(i):
            s -= lower[i, t] * out[t]
        out[i] = s / lower[i, i]
    for i in range(k - 1, -1, -1):  # backward: L^T x = y
        s = out[i]
        for t in range(i + 1, k):
            s -= lower[t, i] * out[t]
        out[i] = s / lower[i, i]
    return True


@jit()
def _inverse_diag(lower: np.ndarray, idx: int, work: np.ndarray) -> float:
    """(H^-1)[idx, idx] from the Cholesky factor of H: |L^-1 e_idx|^2."""
    k = lower.shape[0]
    for i in range(k):
        s = 1.0 if i == idx else 0.0
        for t in range(i):
            s -= lower[i, t] * work[t]
        work[i] = s / lower[i, i]
    total = 0.0
    for i in range(k):
        total += work[i] * work[i]
    return total


@jit()
def _newton(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    n: int,
    beta: np.ndarray,
    coef: int,
) -> tuple[int, int, float]:
    """Fit logistic regression on rows 0..n-1 of design ``x`` (n_rows, k), outcomes ``y``
    (0/1) with frequency weights ``weight``. ``beta`` holds the start and receives the fit.
    Returns (status, iterations, variance of beta[coef])."""
    k = x.shape[1]
    h = np.zeros((k, k))
    g = np.zeros(k)
    lower = np.zeros((k, k))
    step = np.zeros(k)
    work = np.zeros(k)
    for it in range(1, MAX_ITER + 1):
        h[:, :] = 0.0
        g[:] = 0.0
        for r in range(n):
            eta = 0.0
            for j in range(k):
                eta += x[r, j] * beta[j]
            p = 1.0 / (1.0 + math.exp(-eta))
            w = weight[r] * p * (1.0 - p)
            resid = weight[r] * (y[r] - p)
            for i in range(k):
                g[i] += x[r, i] * resid
                xi = x[r, i] * w
                for j in range(i + 1):
                    h[i, j] += xi * x[r, j]
        for i in range(k):
            for j in range(i):
                h[j, i] = h[i, j]
        if not _cholesky_solve(h, g, lower, step):
            return int(_SEP) if it > 1 else int(_SING), it, np.nan
        done = True
        for j in range(k):
            beta[j] += step[j]
            if abs(step[j]) > TOL * (1.0 + abs(beta[j])):
                done = False
            if not math.isfinite(beta[j]):
                return int(_SEP), it, np.nan
        if done:
            # information at the converged coefficients
            h[:, :] = 0.0
            for r in range(n):
                eta = 0.0
                for j in range(k):
                    eta += x[r, j] * beta[j]
                p = 1.0 / (1.0 + math.exp(-eta))
                w = weight[r] * p * (1.0 - p)
                for i in range(k):
                    xi = x[r, i] * w
                    for j in range(i + 1):
                        h[i, j] += xi * x[r, j]
            for i in range(k):
                for j in range(i):
                    h[j, i] = h[i, j]
            if not _cholesky_solve(h, g, lower, step):
                return int(_SEP), it, np.nan
            return int(_OK), it, _inverse_diag(lower, coef, work)
    # not converged: separation if some fitted probability is pinned at 0 or 1
    for r in range(n):
        eta = 0.0
        for j in range(k):
            eta += x[r, j] * beta[j]
        p = 1.0 / (1.0 + math.exp(-eta))
        if p < SEPARATION_EPS or p > 1.0 - SEPARATION_EPS:
            return int(_SEP), MAX_ITER, np.nan
    return int(_NOCONV), MAX_ITER, np.nan


@jit()
def _separated(seen_case: np.ndarray, seen_ctrl: np.ndarray) -> bool:
    """True if dosage alone (quasi-)separates cases from controls: every case dosage >= every
    control dosage, or every case dosage <= every control dosage. Then the likelihood grows
    without bound along b_g whatever the covariates do, so no maximum exists."""
    min_case, max_case, min_ctrl, max_ctrl = 3, -1, 3, -1
    for d in range(3):
        if seen_case[d] > 0:
            min_case = min(min_case, d)
            max_case = max(max_case, d)
        if seen_ctrl[d] > 0:
            min_ctrl = min(min_ctrl, d)
            max_ctrl = max(max_ctrl, d)
    return max_ctrl <= min_case or max_case <= min_ctrl


@jit()
def _finish(
    i: int,
    status: int,
    n_iter: int,
    var: float,
    b: float,
    beta: np.ndarray,
    se: np.ndarray,
    z: np.ndarray,
    p: np.ndarray,
    odds: np.ndarray,
    st: np.ndarray,
    iters: np.ndarray,
) -> None:
    iters[i] = n_iter
    if status != _OK:
        st[i] = status
        return
    beta[i] = b
    se[i] = math.sqrt(var)
    z[i] = b / se[i]
    p[i] = math.erfc(abs(z[i]) / math.sqrt(2.0))
    odds[i] = math.exp(b)
    st[i] = _UNDER if p[i] == 0.0 else _OK


@jit(parallel=True)
def _logistic_counts(cases: np.ndarray, controls: np.ndarray) -> tuple:
    m = cases.shape[0]
    beta = np.full(m, np.nan)
    se = np.full(m, np.nan)
    z = np.full(m, np.nan)
    p = np.full(m, np.nan)
    odds = np.full(m, np.nan)
    st = np.zeros(m, np.int8)
    iters = np.zeros(m, np.int32)
    for i in numba.prange(m):
        n_case = cases[i, 0] + cases[i, 1] + cases[i, 2]
        n_ctrl = controls[i, 0] + controls[i, 1] + controls[i, 2]
        ac = cases[i, 1] + controls[i, 1] + 2 * (cases[i, 2] + controls[i, 2])
        if n_case == 0 or n_ctrl == 0:
            st[i] = _NO_CC
            continue
        if ac == 0 or ac == 2 * (n_case + n_ctrl):
            st[i] = _MONO
            continue
        if n_case + n_ctrl <= 2:
            st[i] = _FEW
            continue
        # 6 weighted rows: dosage d in 0..2 x outcome y in {0, 1}
        x = np.zeros((6, 2))
        y = np.zeros(6)
        w = np.zeros(6)
        n_dosages = 0
        for d in range(3):
            if cases[i, d] + controls[i, d] > 0:
                n_dosages += 1
            x[2 * d, 0] = 1.0
            x[2 * d, 1] = d
            y[2 * d] = 1.0
            w[2 * d] = cases[i, d]
            x[2 * d + 1, 0] = 1.0
            x[2 * d + 1, 1] = d
            w[2 * d + 1] = controls[i, d]
        if n_dosages < 2:  # constant dosage (e.g. everyone het)
            st[i] = _SING
            continue
        if _separated(cases[i, :3], controls[i, :3]):
            st[i] = _SEP
            continue
        b = np.zeros(2)
        b[0] = math.log(n_case / n_ctrl)
        status, n_iter, var = _newton(x, y, w, 6, b, 1)
        _finish(i, status, n_iter, var, b[1], beta, se, z, p, odds, st, iters)
    return beta, se, z, p, odds, st, iters


@jit()
def _precheck(
    n: int, n_case: int, ac: int, seen_case: np.ndarray, seen_ctrl: np.ndarray, k: int
) -> int:
    """Status that makes a fit pointless, or -1 to fit."""
    if n_case == 0 or n_case == n:
        return int(_NO_CC)
    if ac == 0 or ac == 2 * n:
        return int(_MONO)
    if n <= k:
        return int(_FEW)
    n_dosages = 0
    for d in range(3):
        n_dosages += seen_case[d] + seen_ctrl[d] > 0
    if n_dosages < 2:
        return int(_SING)
    if _separated(seen_case, seen_ctrl):
        return int(_SEP)
    return -1


@jit(parallel=True)
def _logistic_samples(
    packed: np.ndarray,
    n_samples: int,
    y: np.ndarray,
    pattern: np.ndarray,
    covar: np.ndarray,
    beta_null: np.ndarray,
) -> tuple:
    """Fit with covariates. ``y`` int8 (0/1, -1 = leave out). ``pattern`` int64 (n_samples,)
    indexes the rows of ``covar`` (n_patterns, c) holding each sample's covariates.

    When there are few distinct covariate rows (sex, population, batch ...), samples sharing
    (covariate row, dosage, outcome) are merged into one frequency-weighted row: the
    likelihood is the same, the fit runs on at most 6 x n_patterns rows. Otherwise (e.g.
    continuous covariates) every sample is a row."""
    m = packed.shape[0]
    n_pat, c = covar.shape
    k = 2 + c
    merge = 6 * n_pat <= n_samples // 2
    n_rows = 6 * n_pat if merge else n_samples
    beta = np.full(m, np.nan)
    se = np.full(m, np.nan)
    z = np.full(m, np.nan)
    p = np.full(m, np.nan)
    odds = np.full(m, np.nan)
    st = np.zeros(m, np.int8)
    iters = np.zeros(m, np.int32)
    n_obs = np.zeros(m, np.int64)
    n_cases = np.zeros(m, np.int64)
    ac_out = np.zeros(m, np.int64)
    n_chunks = min(m, 64)
    for ch in numba.prange(n_chunks):
        x = np.zeros((n_rows, k))
        yy = np.zeros(n_rows)
        w = np.ones(n_rows)
        b = np.zeros(k)
        cells = np.zeros((n_pat if merge else 1, 3, 2), np.int64)
        seen_case = np.zeros(3, np.int64)
        seen_ctrl = np.zeros(3, np.int64)
        for v in range(ch * m // n_chunks, (ch + 1) * m // n_chunks):
            n = 0
            ncase = 0
            ac = 0
            rows = 0
            for d in range(3):
                seen_case[d] = 0
                seen_ctrl[d] = 0
            if merge:
                for t in range(n_pat):
                    for d in range(3):
                        cells[t, d, 0] = 0
                        cells[t, d, 1] = 0
            for s in range(n_samples):
                if y[s] < 0:
                    continue
                code = (packed[v, s >> 2] >> (2 * (s & 3))) & 3
                if code == 3:
                    continue
                n += 1
                ncase += y[s]
                ac += code
                if y[s] == 1:
                    seen_case[code] += 1
                else:
                    seen_ctrl[code] += 1
                if merge:
                    cells[pattern[s], code, y[s]] += 1
                else:
                    x[rows, 0] = 1.0
                    x[rows, 1] = code
                    for j in range(c):
                        x[rows, 2 + j] = covar[pattern[s], j]
                    yy[rows] = y[s]
                    rows += 1
            if merge:
                for t in range(n_pat):
                    for d in range(3):
                        for o in range(2):
                            if cells[t, d, o] == 0:
                                continue
                            x[rows, 0] = 1.0
                            x[rows, 1] = d
                            for j in range(c):
                                x[rows, 2 + j] = covar[t, j]
                            yy[rows] = o
                            w[rows] = cells[t, d, o]
                            rows += 1
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
            status, n_iter, var = _newton(x, yy, w, rows, b, 1)
            _finish(v, status, n_iter, var, b[1], beta, se, z, p, odds, st, iters)
    return beta, se, z, p, odds, st, iters, n_obs, n_cases, ac_out


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
