"""Exact tests over unimodal discrete distributions: HWE (Wigginton 2005) and Fisher 2x2.

Both null distributions are log-concave in one integer (het count for HWE, one cell for
Fisher), with a closed-form ratio between neighbouring probabilities. Following plink2's
``HweP``, probabilities are walked outward from the *observed* value (so the observed term is 1
and every tail term is <= 1), summing until a term no longer changes the sum. Unlike plink2,
the central terms, which can exceed the double range when the observation is far in the tail,
are carried as mantissa x 1e200^exponent, so p-values stay exact down to ~1e-308 and are
returned as their logarithm below that.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.jit import jit

HWE = 0
FISHER = 1
# plink2 treats probabilities within 2^-44 (relative) of the observed one as ties.
HWE_TIE_TOL = 2.0**-44
# scipy.stats.fisher_exact and R's fisher.test use a relative tolerance of 1e-7.
FISHER_TIE_TOL = 1e-7

_SCALE = 1e200
_INV_SCALE = 1e-200
_LN_SCALE = 200.0 * math.log(10.0)


@jit()
def _ratio_up(kind: int, k: int, a: int, b: int, c: int) -> float:
    """P(k + step) / P(k)."""
    if kind == HWE:  # k = hets, a = rare allele copies, b = genotypes; step 2
        homr = (a - k) // 2
        homc = b - k - homr
        return 4.0 * homr * homc / ((k + 2.0) * (k + 1.0))
    # Fisher: k = cell [0, 0], a = row-0 total, b = column-0 total, c = grand total; step 1
    return (a - k) * (b - k) / ((k + 1.0) * (c - a - b + k + 1.0))


@jit()
def _ratio_down(kind: int, k: int, a: int, b: int, c: int) -> float:
    """P(k - step) / P(k)."""
    if kind == HWE:
        homr = (a - k) // 2
        homc = b - k - homr
        return k * (k - 1.0) / (4.0 * (homr + 1.0) * (homc + 1.0))
    return k * (c - a - b + k) / ((a - k + 1.0) * (b - k + 1.0))


@jit()
def _ratio(kind: int, k: int, up: bool, a: int, b: int, c: int) -> float:
    if up:
        return _ratio_up(kind, k, a, b, c)
    return _ratio_down(kind, k, a, b, c)


@jit()
def _ln_div(num: float, tm: float, te: int) -> float:
    """ln(num / (tm * SCALE**te))."""
    return math.log(num) - math.log(tm) - te * _LN_SCALE


@jit()
def exact_tails(
    kind: int, obs: int, kmin: int, kmax: int, step: int, a: int, b: int, c: int, tol: float
) -> tuple[float, float, float, float]:
    """ln of (two-sided p, mid-p, P(K >= obs), P(K <= obs)) for one observation.

    Two-sided p sums every probability <= P(obs) * (1 + tol); the mid-p subtracts half of
    the probability mass tied with the observation (plink2 ``midp``, Graffelman & Moreno 2013).
    """
    # Which side climbs toward the mode? (log-concave: at most one of them; if the up side
    # does not climb, it is walked as the "away" side and the down side as "toward")
    r_up = _ratio_up(kind, obs, a, b, c) if obs + step <= kmax else 0.0
    toward_up = r_up > 1.0

    le = 1.0  # sum of terms <= obs (including obs), in units of P(obs)
    ties = 1.0  # number of terms tied with obs, obs included

    # 1. Away side: monotone non-increasing from obs, all terms are in the tail.
    away_up = not toward_up  # if neither side climbs, walk up first as "away"
    away_sum = 0.0
    term = 1.0
    k = obs
    first = True
    while (k + step <= kmax) if away_up else (k - step >= kmin):
        term *= _ratio(kind, k, away_up, a, b, c)
        k = k + step if away_up else k - step
        if first and term >= 1.0 - tol:
            ties += 1.0
        first = False
        prev = le
        le += term
        away_sum += term
        if le == prev:
            break

    # 2. Toward side: climbs to the mode (center, > obs), then falls back into the tail.
    #    term = m * SCALE**e; the center sum is cm * SCALE**ce.
    toward_is_up = not away_up
    m = 1.0
    e = 0
    cm = 0.0
    ce = 0
    toward_tail = 0.0
    in_tail = False
    k = obs
    while (k + step <= kmax) if toward_is_up else (k - step >= kmin):
        m *= _ratio(kind, k, toward_is_up, a, b, c)
        k = k + step if toward_is_up else k - step
        if m > _SCALE:
            m *= _INV_SCALE
            e += 1
        elif e > 0 and m < 1.0:
            m *= _SCALE
            e -= 1
        if not in_tail and e == 0 and m <= 1.0 + tol:
            in_tail = True
            if m >= 1.0 - tol:
                ties += 1.0
        if in_tail:
            prev = le
            le += m
            toward_tail += m
            if le == prev:
                break
        else:  # add to the center sum, aligning exponents
            if e == ce:
                cm += m
            elif e > ce:
                cm = cm * _INV_SCALE ** (e - ce) + m
                ce = e
            else:
                cm += m * _INV_SCALE ** (ce - e)

    # Total mass in units of P(obs): 1 + away + toward tail + center.
    unscaled = 1.0 + away_sum + toward_tail
    tm = cm + unscaled if ce == 0 else cm + unscaled * _INV_SCALE**ce
    te = ce

    ln_two = min(0.0, _ln_div(le, tm, te))
    mid_num = le - 0.5 * ties
    ln_mid = min(0.0, _ln_div(mid_num, tm, te)) if mid_num > 0.0 else -np.inf
    # One-sided tails: the away side's sum is exact; the toward side via the complement.
    if away_up:
        ln_upper = min(0.0, _ln_div(1.0 + away_sum, tm, te))
        low = 1.0 - math.exp(_ln_div(away_sum, tm, te)) if away_sum > 0.0 else 1.0
        ln_lower = math.log(low) if low > 0.0 else -np.inf
    else:
        ln_lower = min(0.0, _ln_div(1.0 + away_sum, tm, te))
        up = 1.0 - math.exp(_ln_div(away_sum, tm, te)) if away_sum > 0.0 else 1.0
        ln_upper = math.log(up) if up > 0.0 else -np.inf
    return ln_two, ln_mid, ln_upper, ln_lower


@jit()
def hwe_tails(n_hom_ref: int, n_het: int, n_hom_alt: int) -> tuple[float, float, float]:
    """ln of (HWE exact p, HWE mid-p, excess-het p = P(hets >= observed)) for one variant."""
    n = n_hom_ref + n_het + n_hom_alt
    n_rare = min(2 * n_hom_ref + n_het, 2 * n_hom_alt + n_het)
    if n == 0 or n_rare == 0:
        return 0.0, math.log(0.5), 0.0
    ln_two, ln_mid, ln_upper, _ = exact_tails(
        HWE, n_het, n_rare % 2, n_rare, 2, n_rare, n, 0, HWE_TIE_TOL
    )
    return ln_two, ln_mid, ln_upper


@jit()
def fisher_tails(a: int, b: int, c: int, d: int) -> tuple[float, float, float]:
    """ln of (two-sided, P(X >= a), P(X <= a)) for the 2x2 table [[a, b], [c, d]]."""
    r0 = a + b
    c0 = a + c
    n = a + b + c + d
    kmin = max(0, r0 + c0 - n)
    kmax = min(r0, c0)
    if kmin == kmax:
        return 0.0, 0.0, 0.0
    ln_two, _, ln_upper, ln_lower = exact_tails(FISHER, a, kmin, kmax, 1, r0, c0, n, FISHER_TIE_TOL)
    return ln_two, ln_upper, ln_lower
