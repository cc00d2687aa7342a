"""Per-variant statistics derived from genotype counts: AC/AN/AF, missingness, HWE, ExcHet, F.

Every function takes counts shaped (..., 4) (last axis hom-ref, het, hom-alt, missing; e.g.
``GenotypeCounts.overall`` or ``.groups``) and returns arrays shaped (...).

Conventions (see docs/kernels.md): every called genotype counts as two alleles (plink2's
OBS_CT; haploid calls are stored as homozygous diploid), half-calls are missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from kernels.exact import hwe_tails
from kernels.jit import jit
from kernels.status import Status

_OK = np.int8(Status.OK)
_NO_CALLS = np.int8(Status.NO_CALLS)
_MONO = np.int8(Status.MONOMORPHIC)
_UNDER = np.int8(Status.P_UNDERFLOW)


@dataclass(frozen=True)
class VariantStats:
    """Statistics and the counts they come from; every array has the counts' leading shape.

    Status arrays are int8 ``Status`` codes. Values: ``af`` NaN when AN == 0; ``call_rate``
    and ``f_missing`` NaN for an empty group; ``hwe_p``/``hwe_midp``/``exc_het`` are 1 / 0.5 /
    1 at a monomorphic site (as plink2 and bcftools report) with status MONOMORPHIC and NaN
    when there is no call; ``inbreeding_f`` NaN unless status OK.
    """

    n_samples: np.ndarray  # int64, samples in the group (called + missing)
    n_called: np.ndarray  # int64
    n_hom_ref: np.ndarray
    n_het: np.ndarray
    n_hom_alt: np.ndarray
    n_missing: np.ndarray
    ac: np.ndarray  # int64, ALT allele count = het + 2 * hom-alt
    an: np.ndarray  # int64, 2 * called
    af: np.ndarray  # float64
    af_status: np.ndarray
    call_rate: np.ndarray  # float64
    f_missing: np.ndarray  # float64 = 1 - call_rate
    missing_status: np.ndarray
    hwe_p: np.ndarray  # float64
    hwe_midp: np.ndarray
    exc_het: np.ndarray
    hwe_status: np.ndarray
    inbreeding_f: np.ndarray  # 1 - observed het / expected het
    f_status: np.ndarray


def _flat(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.shape[-1:] != (4,):
        raise ValueError("counts need a last axis of length 4 (hom-ref, het, hom-alt, missing)")
    return np.ascontiguousarray(counts.reshape(-1, 4), dtype=np.int64)


@jit(parallel=True)
def _hardy(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    m = counts.shape[0]
    p = np.empty(m, np.float64)
    pmid = np.empty(m, np.float64)
    exc = np.empty(m, np.float64)
    status = np.empty(m, np.int8)
    for i in numba.prange(m):
        hom_ref = counts[i, 0]
        het = counts[i, 1]
        hom_alt = counts[i, 2]
        n = hom_ref + het + hom_alt
        ac = het + 2 * hom_alt
        if n == 0:
            p[i] = np.nan
            pmid[i] = np.nan
            exc[i] = np.nan
            status[i] = _NO_CALLS
            continue
        ln_p, ln_mid, ln_exc = hwe_tails(hom_ref, het, hom_alt)
        p[i] = math.exp(ln_p)
        pmid[i] = math.exp(ln_mid)
        exc[i] = math.exp(ln_exc)
        if ac == 0 or ac == 2 * n:
            status[i] = _MONO
        elif p[i] == 0.0 or pmid[i] == 0.0 or exc[i] == 0.0:
            status[i] = _UNDER
        else:
            status[i] = _OK
    return p, pmid, exc, status


@jit(parallel=True)
def _inbreeding(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = counts.shape[0]
    f = np.empty(m, np.float64)
    status = np.empty(m, np.int8)
    for i in numba.prange(m):
        het = counts[i, 1]
        n = counts[i, 0] + het + counts[i, 2]
        ac = het + 2 * counts[i, 2]
        if n == 0:
            f[i] = np.nan
            status[i] = _NO_CALLS
        elif ac == 0 or ac == 2 * n:
            f[i] = np.nan
            status[i] = _MONO
        else:
            q = ac / (2.0 * n)
            expected = 2.0 * q * (1.0 - q) * n
            f[i] = 1.0 - het / expected
            status[i] = _OK
    return f, status


def allele_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AC, AN): ALT allele count het + 2*hom-alt and allele number 2*called, int64."""
    c = np.asarray(counts, dtype=np.int64)
    ac = c[..., 1] + 2 * c[..., 2]
    an = 2 * (c[..., 0] + c[..., 1] + c[..., 2])
    return ac, an


def allele_frequency(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AF, status): ALT allele frequency AC/AN; NaN with NO_CALLS when AN == 0."""
    ac, an = allele_counts(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        af = np.where(an > 0, ac / np.maximum(an, 1), np.nan)
    status = np.where(an > 0, _OK, _NO_CALLS).astype(np.int8)
    return af, status


def missingness(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(call_rate, f_missing, status) per variant; NaN with NO_CALLS for an empty group.

    A group whose every call is missing has call_rate 0, f_missing 1 and status OK.
    """
    c = np.asarray(counts, dtype=np.int64)
    n = c.sum(axis=-1)
    missing = c[..., 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        f_missing = np.where(n > 0, missing / np.maximum(n, 1), np.nan)
    call_rate = 1.0 - f_missing
    status = np.where(n > 0, _OK, _NO_CALLS).astype(np.int8)
    return call_rate, f_missing, status


def hardy_weinberg(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hwe_p, hwe_midp, exc_het, status).

    hwe_p / hwe_midp: Wigginton et al. 2005 exact test, plain and mid-p, as plink2 ``--hardy``
    and ``--hardy midp``. exc_het: P(het >= observed), as bcftools +fill-tags ExcHet.
    """
    flat = _flat(counts)
    shape = np.asarray(counts).shape[:-1]
    p, pmid, exc, status = _hardy(flat)
    return p.reshape(shape), pmid.reshape(shape), exc.reshape(shape), status.reshape(shape)


def inbreeding_f(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, status): 1 - observed/expected heterozygotes, expected = 2 p q N_called (plink2
    ``--hardy`` 1 - O(HET_A1)/E(HET_A1)); NaN with MONOMORPHIC or NO_CALLS."""
    flat = _flat(counts)
    shape = np.asarray(counts).shape[:-1]
    f, status = _inbreeding(flat)
    return f.reshape(shape), status.reshape(shape)


def variant_stats(counts: np.ndarray) -> VariantStats:
    """All per-variant statistics for counts shaped (..., 4), with the counts they come from."""
    c = np.asarray(counts, dtype=np.int64)
    _flat(c)
    ac, an = allele_counts(c)
    af, af_status = allele_frequency(c)
    call_rate, f_missing, missing_status = missingness(c)
    hwe_p, hwe_midp, exc_het, hwe_status = hardy_weinberg(c)
    f, f_status = inbreeding_f(c)
    return VariantStats(
        n_samples=c.sum(axis=-1),
        n_called=c[..., :3].sum(axis=-1),
        n_hom_ref=c[..., 0].copy(),
        n_het=c[..., 1].copy(),
        n_hom_alt=c[..., 2].copy(),
        n_missing=c[..., 3].copy(),
        ac=ac,
        an=an,
        af=af,
        af_status=af_status,
        call_rate=call_rate,
        f_missing=f_missing,
        missing_status=missing_status,
        hwe_p=hwe_p,
        hwe_midp=hwe_midp,
        exc_het=exc_het,
        hwe_status=hwe_status,
        inbreeding_f=f,
        f_status=f_status,
    )
