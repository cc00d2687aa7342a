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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from kernels.jit import jit
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
# Start value search for the genotype coefficient (see _carrier_start).
PREFIT_ITER = 8
PREFIT_TOL = 1e-4
PREFIT_MAX = 15.0
# Only when carriers are at most this fraction of the samples: above it the search over the
# carriers costs about as much as the full pass it saves (measured: 0.02 and 0.1 alike).
PREFIT_MAX_CARRIERS = 0.1


@intrinsic
def _bits_to_float_intrinsic(typingctx: Any, x: Any) -> Any:
    """Reinterpret the bits of an int64 as a float64 (one register move; vectorises)."""
    if x != types.int64:
        return None
    sig = types.float64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _fdiv_intrinsic(typingctx: Any, a: Any, b: Any) -> Any:
    """a / b as one IEEE division. numba's ``/`` adds a ZeroDivisionError branch, which keeps
    LLVM from vectorising the loop around it; here the divisor is always >= 1."""
    if a != types.float64 or b != types.float64:
        return None
    sig = types.float64(types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fdiv(args[0], args[1])

    return sig, codegen


@intrinsic
def _fma_intrinsic(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a * b + c rounded once (llvm.fma: one instruction with FMA3/AVX-512; vectorises)."""
    if a != types.float64 or b != types.float64 or c != types.float64:
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return sig, codegen


# Typed aliases for callers (numba resolves the intrinsic objects themselves).
_bits_to_float = cast(Callable[[Any], float], _bits_to_float_intrinsic)
_fdiv = cast(Callable[[float, float], float], _fdiv_intrinsic)
_fma = cast(Callable[[float, float, float], float], _fma_intrinsic)


# exp(x) = 2^k * exp(r), k = round(x / ln 2), |r| <= ln(2) / 2, ln 2 split in two parts
# (fdlibm's) so that k * ln2_hi is exact; exp(r) by its Taylor polynomial to degree 13
# (truncation < 5e-18 relative). Within 1 ulp of libm's exp over |x| <= 708 (tested), and,
# unlike a call to libm, LLVM turns the loop around it into SIMD code.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2^52: x + _ROUND - _ROUND rounds x to an integer
_EXP_LIMIT = 708.0
_C2 = 1.0 / 2.0
_C3 = 1.0 / 6.0
_C4 = 1.0 / 24.0
_C5 = 1.0 / 120.0
_C6 = 1.0 / 720.0
_C7 = 1.0 / 5040.0
_C8 = 1.0 / 40320.0
_C9 = 1.0 / 362880.0
_C10 = 1.0 / 3628800.0
_C11 = 1.0 / 39916800.0
_C12 = 1.0 / 479001600.0
_C13 = 1.0 / 6227020800.0


@jit()
def _exp(x: float) -> float:
    """exp(x) for x clamped to [-708, 708] (see above); vectorisable."""
    x = min(max(x, -_EXP_LIMIT), _EXP_LIMIT)
    k = (x * _LOG2E + _ROUND) - _ROUND
    r = _fma(-k, _LN2_LO, _fma(-k, _LN2_HI, x))
    q = _C13
    q = _fma(q, r, _C12)
    q = _fma(q, r, _C11)
    q = _fma(q, r, _C10)
    q = _fma(q, r, _C9)
    q = _fma(q, r, _C8)
    q = _fma(q, r, _C7)
    q = _fma(q, r, _C6)
    q = _fma(q, r, _C5)
    q = _fma(q, r, _C4)
    q = _fma(q, r, _C3)
    q = _fma(q, r, _C2)
    q = _fma(q, r, 1.0)
    q = _fma(q, r, 1.0)
    return q * _bits_to_float((np.int64(k) + 1023) << 52)


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
            if d == 3:
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
def _result_arrays(m: int) -> tuple:
    """beta, se, z, p, odds (NaN), status, iterations, n_obs, n_cases, ac for m variants."""
    nan = np.full(m, np.nan)
    return (nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan,
            np.zeros(m, np.int8), np.zeros(m, np.int32), np.zeros(m, np.int64),
            np.zeros(m, np.int64), np.zeros(m, np.int64))


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
    n_bytes = packed.shape[1]
    beta, se, z, p, odds, st, iters, n_obs, n_cases, ac_out = _result_arrays(m)
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
    n_chunks = min(m, 64)
    for ch in numba.prange(n_chunks):
        xt = np.ones((k, n_samples))
        xt[1, :] = 0.0
        for j in range(c):
            for s in range(n_samples):
                xt[2 + j, s] = covar[pattern[s], j]
        mask = np.zeros(n_samples)
        for s in range(n_samples):
            mask[s] = use[s]
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
            n_list = 0
            het = 0
            hom = 0
            miss = 0
            het_case = 0
            hom_case = 0
            miss_case = 0
            for bi in range(n_bytes):
                byte = np.int64(packed[v, bi])
                if byte == 0:
                    continue
                for q in range(4):
                    code = (byte >> (2 * q)) & 3
                    s = 4 * bi + q
                    if code == 0 or s >= n_samples or use[s] == 0:
                        continue
                    idx[n_list] = s
                    codes[n_list] = code
                    n_list += 1
                    if code == 3:
                        mask[s] = 0.0
                        miss += 1
                        miss_case += yint[s]
                    else:
                        xt[1, s] = code
                        if code == 1:
                            het += 1
                            het_case += yint[s]
                        else:
                            hom += 1
                            hom_case += yint[s]
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
            n = 0
            ncase = 0
            ac = 0
            rows = 0
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
                if code == 3:
                    continue
                n += 1
                ncase += y[s]
                ac += code
                if y[s] == 1:
                    seen_case[code] += 1
                else:
                    seen_ctrl[code] += 1
                cells[pattern[s], code, y[s]] += 1
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
