"""Logistic regression with covariates: the entry kernel ``_logistic_samples``, which merges
samples sharing (covariate row, dosage, outcome) into weighted rows when there are few
distinct covariate rows, and hands everything else to ``_logistic_per_sample``.
"""

from __future__ import annotations

import numba
import numpy as np

from kernels.codes import MISSING
from kernels.jit import jit
from kernels.logistic.common import _finish, _precheck, _result_arrays
from kernels.logistic.newton import _newton
from kernels.logistic.per_sample import _logistic_per_sample


@jit()
def _tabulate(
    packed: np.ndarray,
    v: int,
    n_samples: int,
    y: np.ndarray,
    pattern: np.ndarray,
    cells: np.ndarray,
    seen_case: np.ndarray,
    seen_ctrl: np.ndarray,
) -> tuple[int, int, int]:
    """Count the called samples in use at variant ``v`` into ``cells`` (n_patterns, dosage,
    outcome) and the per-dosage case / control counts ``seen_case`` / ``seen_ctrl`` (all
    reset first). Returns (samples, cases, ALT allele count)."""
    n_pat = cells.shape[0]
    n = 0
    ncase = 0
    ac = 0
    for d in range(3):
        seen_case[d] = 0
        seen_ctrl[d] = 0
    for t in range(n_pat):
        for d in range(3):
            cells[t, d, 0] = 0
            cells[t, d, 1] = 0
    for s in range(n_samples):
        if y[s] < 0:
            continue
        code = (packed[v, s >> 2] >> (2 * (s & 3))) & 3
        if code == MISSING:
            continue
        n += 1
        ncase += y[s]
        ac += code
        if y[s] == 1:
            seen_case[code] += 1
        else:
            seen_ctrl[code] += 1
        cells[pattern[s], code, y[s]] += 1
    return n, ncase, ac


@jit()
def _merged_rows(
    cells: np.ndarray, covar: np.ndarray, x: np.ndarray, yy: np.ndarray, w: np.ndarray
) -> int:
    """One frequency-weighted row (design ``x``, outcome ``yy``, weight ``w``) per non-empty
    cell (covariate row, dosage, outcome); returns the number of rows written."""
    n_pat, c = covar.shape
    rows = 0
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
    return rows


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
    continuous covariates) ``_logistic_per_sample`` fits every sample as a row."""
    m = packed.shape[0]
    n_pat, c = covar.shape
    k = 2 + c
    if 6 * n_pat > n_samples // 2:
        return _logistic_per_sample(packed, n_samples, y, pattern, covar, beta_null)
    n_rows = 6 * n_pat
    beta, se, z, p, odds, st, iters, n_obs, n_cases, ac_out = _result_arrays(m)
    n_chunks = min(m, 64)
    for ch in numba.prange(n_chunks):
        x = np.zeros((n_rows, k))
        yy = np.zeros(n_rows)
        w = np.ones(n_rows)
        b = np.zeros(k)
        cells = np.zeros((n_pat, 3, 2), np.int64)
        seen_case = np.zeros(3, np.int64)
        seen_ctrl = np.zeros(3, np.int64)
        for v in range(ch * m // n_chunks, (ch + 1) * m // n_chunks):
            n, ncase, ac = _tabulate(packed, v, n_samples, y, pattern, cells, seen_case, seen_ctrl)
            rows = _merged_rows(cells, covar, x, yy, w)
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
