"""Newton-Raphson for logistic regression on a (weighted) row-major design, and the small
dense linear algebra it needs (Cholesky solve, one diagonal element of the inverse).

Used for the 3 x 2 genotype-by-status table, the merged weighted rows and the covariate-only
(null) fit; the per-sample fit has its own column-major passes (``dense.py``) but shares the
convergence rule and the linear algebra.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.jit import jit
from kernels.logistic.common import _NOCONV, _OK, _SEP, _SING

MAX_ITER = 40
# Converged when every Newton step is below TOL * (1 + |coefficient|).
TOL = 1e-10
# Fitted probabilities this close to 0 or 1 after MAX_ITER mean (quasi-)separation.
SEPARATION_EPS = 1e-9


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
