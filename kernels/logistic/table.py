"""Logistic regression without covariates: the likelihood depends only on the 3 x 2 table of
genotype by case status, so each variant is a fit on 6 weighted rows (O(1) per variant).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from kernels.jit import jit
from kernels.logistic.common import _FEW, _MONO, _NO_CC, _SEP, _SING, _finish, _separated
from kernels.logistic.newton import _newton


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
