"""Explicit per-variant status codes: a statistic that cannot be computed says why."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Why a per-variant (per-group) statistic has, or has not, a usable value.

    Values are stored as ``int8`` arrays beside each statistic. Where the status is not
    ``OK`` the value is NaN, except where the reference tools define a value (e.g. HWE p = 1
    at a monomorphic site, as plink2 reports) — then the value is kept and the status still
    says what happened.
    """

    OK = 0
    NO_CALLS = 1
    """No called genotype in this group (empty group or every call missing)."""
    MONOMORPHIC = 2
    """All called alleles are the same (AC == 0 or AC == AN): the test has no information."""
    ZERO_CELL = 3
    """A 2x2 allele-count cell is 0: odds ratio and its confidence interval are undefined."""
    NO_CASES_OR_CONTROLS = 4
    """Cases or controls have no called genotype at this variant."""
    NOT_CONVERGED = 5
    """Logistic regression did not converge within the iteration limit."""
    SEPARATION = 6
    """Logistic regression diverges (complete or quasi-complete separation)."""
    SINGULAR = 7
    """The regression design is singular (collinear predictors, constant genotype)."""
    TOO_FEW_SAMPLES = 8
    """Fewer observations than parameters (or fewer than 2 samples for a correlation)."""
    P_UNDERFLOW = 9
    """The p-value is below the smallest double (~1e-308) and is reported as 0."""
