"""Case/control association from genotype counts: allelic chi-square and Fisher exact,
Cochran-Armitage trend test, odds ratio with a Woolf confidence interval.

Inputs are the case and control genotype counts of one pass (e.g. two slots of
``GenotypeCounts.groups``), shaped (..., 4). The allele table per variant is::

                 ALT alleles   REF alleles
    cases             a             b
    controls          c             d

(a = case het + 2 case hom-alt, b = case AN - a, ...). The odds ratio is the ALT allele's odds
in cases over controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy.special import ndtri

from kernels.exact import fisher_tails
from kernels.jit import jit
from kernels.status import Status

_OK = np.int8(Status.OK)
_NO_CC = np.int8(Status.NO_CASES_OR_CONTROLS)
_MONO = np.int8(Status.MONOMORPHIC)
_ZERO = np.int8(Status.ZERO_CELL)
_SING = np.int8(Status.SINGULAR)
_UNDER = np.int8(Status.P_UNDERFLOW)


@dataclass(frozen=True)
class AssociationResult:
    """Per-variant case/control tests; arrays shaped like the counts' leading axes.

    ``table``: int64 (..., 4) allele cells (a, b, c, d) as in the module docstring.
    ``allelic_status`` covers chi2/chi2_p/fisher_p; ``trend_status`` the trend test;
    ``or_status`` the odds ratio and its interval. Values are NaN where the status is not OK
    or P_UNDERFLOW (then p is 0 and ``ln_*`` keeps the natural log of the true p).
    """

    table: np.ndarray
    chi2: np.ndarray
    chi2_p: np.ndarray
    fisher_p: np.ndarray
    ln_fisher_p: np.ndarray
    allelic_status: np.ndarray
    trend_chi2: np.ndarray
    trend_p: np.ndarray
    trend_status: np.ndarray
    odds_ratio: np.ndarray
    or_ci_low: np.ndarray
    or_ci_high: np.ndarray
    or_status: np.ndarray


@jit()
def chi2_1df_sf(x: float) -> float:
    """Upper tail of the chi-square distribution with 1 df: erfc(sqrt(x/2)), accurate far into
    the tail (to ~1e-308)."""
    if x <= 0.0:
        return 1.0
    return math.erfc(math.sqrt(0.5 * x))


@jit()
def _trend(r0: int, r1: int, r2: int, s0: int, s1: int, s2: int) -> tuple[int, float, float]:
    """Cochran-Armitage trend test, weights 0/1/2 (plink --model TREND), from the case
    (r) and control (s) genotype counts: (status, chi2, p); NaN unless OK / P_UNDERFLOW."""
    big_r = float(r0 + r1 + r2)
    big_s = float(s0 + s1 + s2)
    big_n = big_r + big_s
    n1 = float(r1 + s1)
    n2 = float(r2 + s2)
    sum_tn = n1 + 2.0 * n2
    sum_t2n = n1 + 4.0 * n2
    sum_tr = float(r1) + 2.0 * r2
    var = big_n * sum_t2n - sum_tn * sum_tn
    if var <= 0.0:
        return int(_SING), np.nan, np.nan
    num = big_n * sum_tr - big_r * sum_tn
    tx2 = big_n * num * num / (big_r * big_s * var)
    t_p = chi2_1df_sf(tx2)
    return int(_UNDER) if t_p == 0.0 else int(_OK), tx2, t_p


@jit()
def _odds_ratio(a: int, b: int, c: int, d: int, z: float) -> tuple[int, float, float, float]:
    """Allelic odds ratio with the Woolf (log) interval at normal quantile ``z``:
    (status, OR, low, high); NaN with ZERO_CELL when a cell is 0."""
    if a == 0 or b == 0 or c == 0 or d == 0:
        return int(_ZERO), np.nan, np.nan, np.nan
    ln_or = math.log(a) + math.log(d) - math.log(b) - math.log(c)
    se = math.sqrt(1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d)
    return int(_OK), math.exp(ln_or), math.exp(ln_or - z * se), math.exp(ln_or + z * se)


@jit(parallel=True)
def _association(cases: np.ndarray, controls: np.ndarray, z: float) -> tuple:
    m = cases.shape[0]
    table = np.zeros((m, 4), np.int64)
    chi2 = np.full(m, np.nan)
    chi2_p = np.full(m, np.nan)
    fisher_p = np.full(m, np.nan)
    ln_fisher = np.full(m, np.nan)
    a_status = np.zeros(m, np.int8)
    t_chi2 = np.full(m, np.nan)
    t_p = np.full(m, np.nan)
    t_status = np.zeros(m, np.int8)
    odds = np.full(m, np.nan)
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    o_status = np.zeros(m, np.int8)
    for i in numba.prange(m):
        r0, r1, r2 = cases[i, 0], cases[i, 1], cases[i, 2]
        s0, s1, s2 = controls[i, 0], controls[i, 1], controls[i, 2]
        a = r1 + 2 * r2
        b = 2 * (r0 + r1 + r2) - a
        c = s1 + 2 * s2
        d = 2 * (s0 + s1 + s2) - c
        table[i, 0] = a
        table[i, 1] = b
        table[i, 2] = c
        table[i, 3] = d
        if a + b == 0 or c + d == 0:
            a_status[i] = _NO_CC
            t_status[i] = _NO_CC
            o_status[i] = _NO_CC
            continue
        if a + c == 0 or b + d == 0:
            a_status[i] = _MONO
            t_status[i] = _MONO
            o_status[i] = _MONO
            continue
        # allelic 2x2 Pearson chi-square, no continuity correction
        n = float(a + b + c + d)
        diff = float(a) * d - float(b) * c
        x2 = n * diff * diff / ((a + b) * float(c + d) * (a + c) * float(b + d))
        chi2[i] = x2
        chi2_p[i] = chi2_1df_sf(x2)
        ln_two, _, _ = fisher_tails(a, b, c, d)
        ln_fisher[i] = ln_two
        fisher_p[i] = math.exp(ln_two)
        a_status[i] = _UNDER if (chi2_p[i] == 0.0 or fisher_p[i] == 0.0) else _OK
        t_status[i], t_chi2[i], t_p[i] = _trend(r0, r1, r2, s0, s1, s2)
        o_status[i], odds[i], lo[i], hi[i] = _odds_ratio(a, b, c, d, z)
    return (
        table,
        chi2,
        chi2_p,
        fisher_p,
        ln_fisher,
        a_status,
        t_chi2,
        t_p,
        t_status,
        odds,
        lo,
        hi,
        o_status,
    )


def case_control_tests(
    case_counts: np.ndarray, control_counts: np.ndarray, ci_level: float = 0.95
) -> AssociationResult:
    """Allelic chi-square, Fisher exact, trend test and odds ratio for every variant.

    ``case_counts`` / ``control_counts``: genotype counts (..., 4) of the same shape.
    """
    cases = np.asarray(case_counts, dtype=np.int64)
    controls = np.asarray(control_counts, dtype=np.int64)
    if cases.shape != controls.shape or cases.shape[-1:] != (4,):
        raise ValueError("case and control counts must have the same shape (..., 4)")
    if not 0.0 < ci_level < 1.0:
        raise ValueError("ci_level must be in (0, 1)")
    shape = cases.shape[:-1]
    z = float(ndtri(0.5 + ci_level / 2.0))
    out = _association(
        np.ascontiguousarray(cases.reshape(-1, 4)),
        np.ascontiguousarray(controls.reshape(-1, 4)),
        z,
    )
    table = out[0].reshape(*shape, 4)
    rest = [arr.reshape(shape) for arr in out[1:]]
    return AssociationResult(table, *rest)
