"""Pieces every logistic path shares: status codes as int8, the per-variant result arrays,
the checks that make a fit pointless, and turning a fit into beta / SE / z / p / OR.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.jit import jit
from kernels.status import Status

_OK = np.int8(Status.OK)
_NO_CC = np.int8(Status.NO_CASES_OR_CONTROLS)
_MONO = np.int8(Status.MONOMORPHIC)
_NOCONV = np.int8(Status.NOT_CONVERGED)
_SEP = np.int8(Status.SEPARATION)
_SING = np.int8(Status.SINGULAR)
_FEW = np.int8(Status.TOO_FEW_SAMPLES)
_UNDER = np.int8(Status.P_UNDERFLOW)


@jit()
def _result_arrays(m: int) -> tuple:
    """beta, se, z, p, odds (NaN), status, iterations, n_obs, n_cases, ac for m variants."""
    nan = np.full(m, np.nan)
    return (nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan,
            np.zeros(m, np.int8), np.zeros(m, np.int32), np.zeros(m, np.int64),
            np.zeros(m, np.int64), np.zeros(m, np.int64))


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
