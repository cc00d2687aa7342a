"""Naive reference statistics, written for clarity (exact integer arithmetic where it matters).

Nothing here is fast: each function handles one variant (or one pair) with plain Python, so a
reviewer can check it against the textbook definition in a minute.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

HOM_REF, HET, HOM_ALT, MISSING = 0, 1, 2, 3


# --------------------------------------------------------------------------- counting


def genotype_counts(codes: np.ndarray, group: np.ndarray | None = None, n_groups: int = 0):
    """(overall (n_var, 4), groups (n_var, n_groups, 4)) by looking at every code."""
    codes = np.asarray(codes)
    n_var, n_samples = codes.shape
    overall = np.zeros((n_var, 4), dtype=np.int64)
    groups = np.zeros((n_var, n_groups, 4), dtype=np.int64)
    for v in range(n_var):
        for s in range(n_samples):
            code = int(codes[v, s])
            overall[v, code] += 1
            if group is not None and group[s] >= 0:
                groups[v, int(group[s]), code] += 1
    return overall, groups


def allele_stats(hom_ref: int, het: int, hom_alt: int, missing: int) -> dict:
    """AC, AN, AF (None when AN == 0), call rate (None for an empty group)."""
    called = hom_ref + het + hom_alt
    n = called + missing
    ac = het + 2 * hom_alt
    an = 2 * called
    return {
        "ac": ac,
        "an": an,
        "af": ac / an if an else None,
        "call_rate": called / n if n else None,
        "f_missing": missing / n if n else None,
    }


# --------------------------------------------------------------------------- HWE


def _hwe_weights(n: int, n_rare: int) -> dict[int, int]:
    """Integer weights proportional to P(hets = h | n genotypes, n_rare rare alleles):
    n! / (h! homr! homc!) * 2^h (Levene 1949; Wigginton et al. 2005)."""
    factorial = [1]
    for i in range(1, n + 1):
        factorial.append(factorial[-1] * i)
    weights = {}
    for h in range(n_rare % 2, n_rare + 1, 2):
        homr = (n_rare - h) // 2
        homc = n - h - homr
        if homc < 0:
            continue
        weights[h] = factorial[n] // (factorial[h] * factorial[homr] * factorial[homc]) * 2**h
    return weights


def hwe_exact(hom_ref: int, het: int, hom_alt: int) -> tuple[float, float, float]:
    """(two-sided p, mid-p, P(het >= observed)) by enumerating every possible het count."""
    n = hom_ref + het + hom_alt
    n_rare = min(2 * hom_ref + het, 2 * hom_alt + het)
    if n == 0:
        return math.nan, math.nan, math.nan
    w = _hwe_weights(n, n_rare)
    total = sum(w.values())
    w_obs = w[het]
    tail = sum(x for x in w.values() if x <= w_obs)
    ties = sum(x for x in w.values() if x == w_obs)
    upper = sum(x for h, x in w.items() if h >= het)
    return (
        float(Fraction(tail, total)),
        float(Fraction(2 * tail - ties, 2 * total)),
        float(Fraction(upper, total)),
    )


def inbreeding_f(hom_ref: int, het: int, hom_alt: int) -> float | None:
    """1 - observed/expected heterozygotes; None when undefined."""
    n = hom_ref + het + hom_alt
    if n == 0:
        return None
    q = (het + 2 * hom_alt) / (2 * n)
    expected = 2 * q * (1 - q) * n
    if expected == 0:
        return None
    return 1 - het / expected


# --------------------------------------------------------------------------- association


def fisher_exact(a: int, b: int, c: int, d: int, rel_tol: float = 1e-7) -> float:
    """Two-sided Fisher exact p for [[a, b], [c, d]]: sum of hypergeometric probabilities
    <= P(observed) * (1 + rel_tol) (scipy / R convention)."""
    r0, n = a + b, a + b + c + d
    c0 = a + c
    weights = {
        x: math.comb(r0, x) * math.comb(n - r0, c0 - x)
        for x in range(max(0, r0 + c0 - n), min(r0, c0) + 1)
    }
    limit = Fraction(weights[a]) * (1 + Fraction(rel_tol))
    tail = sum(w for w in weights.values() if w <= limit)
    return float(Fraction(tail, sum(weights.values())))


def allelic_chi2(a: int, b: int, c: int, d: int) -> float | None:
    """Pearson chi-square (no continuity correction) of the 2x2 table, by expected counts."""
    table = [[a, b], [c, d]]
    n = a + b + c + d
    rows = [a + b, c + d]
    cols = [a + c, b + d]
    if 0 in rows or 0 in cols:
        return None
    chi2 = 0.0
    for i in range(2):
        for j in range(2):
            expected = rows[i] * cols[j] / n
            chi2 += (table[i][j] - expected) ** 2 / expected
    return chi2


def trend_chi2(dosage: np.ndarray, is_case: np.ndarray) -> float | None:
    """Cochran-Armitage trend statistic as N * r^2 between dosage and case status
    (the score-test identity), over called individuals."""
    x = np.asarray(dosage, dtype=float)
    y = np.asarray(is_case, dtype=float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    r = np.corrcoef(x, y)[0, 1]
    return len(x) * r * r


def odds_ratio_ci(a: int, b: int, c: int, d: int, z: float = 1.959963984540054):
    """Woolf: OR = ad/bc, CI = exp(ln OR +- z * sqrt(1/a + 1/b + 1/c + 1/d)); None on a 0 cell."""
    if 0 in (a, b, c, d):
        return None
    odds = (a * d) / (b * c)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return odds, math.exp(math.log(odds) - z * se), math.exp(math.log(odds) + z * se)


# --------------------------------------------------------------------------- LD, SFS


def r2_pair(x_codes: np.ndarray, y_codes: np.ndarray) -> tuple[float | None, int]:
    """Squared Pearson correlation of ALT dosages over samples called at both variants."""
    keep = (x_codes != MISSING) & (y_codes != MISSING)
    x = x_codes[keep].astype(float)
    y = y_codes[keep].astype(float)
    n = int(keep.sum())
    if n < 2 or x.std() == 0 or y.std() == 0:
        return None, n
    r = np.corrcoef(x, y)[0, 1]
    return float(r * r), n


def sfs(ac: np.ndarray, an: np.ndarray, n_chromosomes: int, folded: bool) -> np.ndarray:
    """Histogram of ALT (or minor) allele counts over variants with AN == n_chromosomes."""
    size = n_chromosomes // 2 + 1 if folded else n_chromosomes + 1
    out = np.zeros(size, dtype=np.int64)
    for a, n in zip(ac, an, strict=True):
        if n != n_chromosomes:
            continue
        out[min(a, n - a) if folded else a] += 1
    return out


# --------------------------------------------------------------------------- logistic


def logistic_fit(x: np.ndarray, y: np.ndarray, iterations: int = 100):
    """Newton-Raphson (IRLS) maximum likelihood for logit P(y=1) = x @ beta, in float64
    with numpy's dense solver. Returns (beta, standard errors) or None if it does not
    converge."""
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        information = x.T @ (x * (p * (1 - p))[:, None])
        step = np.linalg.solve(information, x.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-12:
            p = 1.0 / (1.0 + np.exp(-(x @ beta)))
            information = x.T @ (x * (p * (1 - p))[:, None])
            return beta, np.sqrt(np.diag(np.linalg.inv(information)))
    return None
