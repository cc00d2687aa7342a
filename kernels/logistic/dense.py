"""Newton-Raphson with one row per sample, the design stored by column (k, n_samples): each
pass is a SIMD loop for the linear predictor, exp and weights, and SIMD sums for the gradient
and information (the only fastmath code in the kernels).
"""

from __future__ import annotations

import math

import numpy as np

from kernels.jit import jit
from kernels.logistic.common import _NOCONV, _OK, _SEP, _SING
from kernels.logistic.newton import MAX_ITER, SEPARATION_EPS, TOL, _cholesky_solve, _inverse_diag
from kernels.logistic.vexp import _exp, _fdiv


@jit(fastmath=True)
def _gram_row(w: np.ndarray, r: np.ndarray, x: np.ndarray, n: int) -> tuple[float, float, float]:
    """(sum w x, sum w x^2, sum r x)."""
    a = 0.0
    b = 0.0
    c = 0.0
    for s in range(n):
        wx = w[s] * x[s]
        a += wx
        b += wx * x[s]
        c += r[s] * x[s]
    return a, b, c


@jit(fastmath=True)
def _gram_sums(w: np.ndarray, r: np.ndarray, n: int) -> tuple[float, float]:
    a = 0.0
    b = 0.0
    for s in range(n):
        a += w[s]
        b += r[s]
    return a, b


@jit(fastmath=True)
def _dot3(a: np.ndarray, b: np.ndarray, c: np.ndarray, n: int) -> float:
    total = 0.0
    for s in range(n):
        total += a[s] * b[s] * c[s]
    return total


@jit(fastmath=True)
def _gram3(xt: np.ndarray, w: np.ndarray, r: np.ndarray, h: np.ndarray, g: np.ndarray) -> None:
    """``_dense_pass``'s sums for k = 3 (one covariate) in a single sweep."""
    n = xt.shape[1]
    h00 = 0.0
    h10 = 0.0
    h11 = 0.0
    h20 = 0.0
    h21 = 0.0
    h22 = 0.0
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    for s in range(n):
        ws = w[s]
        rs = r[s]
        x1 = xt[1, s]
        x2 = xt[2, s]
        wx1 = ws * x1
        wx2 = ws * x2
        h00 += ws
        h10 += wx1
        h11 += wx1 * x1
        h20 += wx2
        h21 += wx2 * x1
        h22 += wx2 * x2
        g0 += rs
        g1 += rs * x1
        g2 += rs * x2
    h[0, 0] = h00
    h[1, 0] = h10
    h[1, 1] = h11
    h[2, 0] = h20
    h[2, 1] = h21
    h[2, 2] = h22
    g[0] = g0
    g[1] = g1
    g[2] = g2


# The four reductions above are the only fastmath code in the kernels: it lets LLVM split a
# float64 sum over SIMD lanes (a different summation order: ~1e-16 relative per sum, on
# finite products of finite numbers; no exp, division or NaN test inside). Everything else
# in the fit keeps IEEE semantics.


@jit()
def _dense_pass(
    xt: np.ndarray,
    yv: np.ndarray,
    mask: np.ndarray,
    beta: np.ndarray,
    eta: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    h: np.ndarray,
    g: np.ndarray,
) -> None:
    """Gradient ``g`` and information ``h`` (full, symmetric) of the log-likelihood at
    ``beta`` for the design ``xt`` (k, n) stored by column (row 0 all ones), outcomes ``yv``
    and 0/1 sample weights ``mask``. ``eta``, ``w``, ``r`` are (n,) scratch."""
    k, n = xt.shape
    b0 = beta[0]
    if k == 3:  # one covariate: the linear predictor inside the same loop
        b1 = beta[1]
        b2 = beta[2]
        for s in range(n):
            p = _fdiv(1.0, 1.0 + _exp(-(b0 + b1 * xt[1, s] + b2 * xt[2, s])))
            w[s] = mask[s] * (p * (1.0 - p))
            r[s] = mask[s] * (yv[s] - p)
    else:
        for s in range(n):
            eta[s] = b0
        for i in range(1, k):
            bi = beta[i]
            for s in range(n):
                eta[s] += bi * xt[i, s]
        for s in range(n):
            p = _fdiv(1.0, 1.0 + _exp(-eta[s]))
            w[s] = mask[s] * (p * (1.0 - p))
            r[s] = mask[s] * (yv[s] - p)
    if k == 3:  # one covariate: one fused sweep
        _gram3(xt, w, r, h, g)
    else:
        h[0, 0], g[0] = _gram_sums(w, r, n)
        for i in range(1, k):
            h[i, 0], h[i, i], g[i] = _gram_row(w, r, xt[i], n)
            for j in range(1, i):
                h[i, j] = _dot3(w, xt[i], xt[j], n)
    for i in range(k):
        for j in range(i):
            h[j, i] = h[i, j]


@jit()
def _dense_newton(
    xt: np.ndarray,
    yv: np.ndarray,
    mask: np.ndarray,
    beta: np.ndarray,
    coef: int,
    scratch: np.ndarray,
    small: np.ndarray,
) -> tuple[int, int, float]:
    """``_newton`` for one row per sample, design by column (see ``_dense_pass``).

    Iteration t computes the gradient and information at the current coefficients and
    steps; once every step is below TOL * (1 + |coefficient|) the fit has converged and the
    variance comes from that same information matrix (the coefficients it was computed at
    are within the step, i.e. ~1e-10 relative, of the optimum), so no extra pass is spent
    re-evaluating it. ``scratch`` (3, n) and ``small`` (3 k + 2, k) are reusable work space."""
    k = xt.shape[0]
    n = xt.shape[1]
    eta = scratch[0]
    w = scratch[1]
    r = scratch[2]
    h = small[0:k]
    lower = small[k : 2 * k]
    g = small[2 * k]
    step = small[2 * k + 1]
    work = small[2 * k + 2]
    for it in range(1, MAX_ITER + 1):
        _dense_pass(xt, yv, mask, beta, eta, w, r, h, g)
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
            return int(_OK), it, _inverse_diag(lower, coef, work)
    # not converged: separation if some fitted probability is pinned at 0 or 1
    for s in range(n):
        if mask[s] == 0.0:
            continue
        eta_s = 0.0
        for j in range(k):
            eta_s += xt[j, s] * beta[j]
        p = 1.0 / (1.0 + math.exp(-eta_s))
        if p < SEPARATION_EPS or p > 1.0 - SEPARATION_EPS:
            return int(_SEP), MAX_ITER, np.nan
    return int(_NOCONV), MAX_ITER, np.nan
