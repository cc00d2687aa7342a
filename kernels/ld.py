"""Linkage disequilibrium: r^2 between ALT dosages of variant pairs within a window.

r is the Pearson correlation of the 0/1/2 ALT dosages over the samples called at *both*
variants (genotype correlation, unphased; the quantity plink2 ``--r2-unphased`` and
PLINK 1.9 ``--r2`` report). Sums come from POPCNT over the 2-bit words: with het bit set A,
hom-alt bit set B and the both-called set V, sum x = |A&V| + 2|B&V|, sum x^2 = |A&V| + 4|B&V|,
sum xy = |Ai&Aj&V| + 2|Ai&Bj&V| + 2|Bi&Aj&V| + 4|Bi&Bj&V|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from kernels.codes import packed_bytes
from kernels.jit import jit, popcount64
from kernels.status import Status

_LOW_BITS = np.uint64(0x5555555555555555)
_OK = np.int8(Status.OK)
_MONO = np.int8(Status.MONOMORPHIC)
_FEW = np.int8(Status.TOO_FEW_SAMPLES)


@dataclass(frozen=True)
class LdPairs:
    """Variant pairs (i < j, row indices of the block) with r, r^2 and the samples used."""

    i: np.ndarray  # int64
    j: np.ndarray  # int64
    r: np.ndarray  # float64, NaN unless status OK
    r2: np.ndarray  # float64
    n_obs: np.ndarray  # int64, samples called at both variants
    status: np.ndarray  # int8 Status: OK, MONOMORPHIC (constant dosage), TOO_FEW_SAMPLES
    #: over the samples called at both: sum x, sum y and sum xy of the ALT dosages (with the
    #: marginal genotype counts, r determines sum xy; disclosure control looks at it)
    sx: np.ndarray | None = None  # int64
    sy: np.ndarray | None = None  # int64
    sxy: np.ndarray | None = None  # int64


@jit()
def _load(packed: np.ndarray, v: int, buf: np.ndarray, buf8: np.ndarray) -> None:
    for b in range(packed.shape[1]):
        buf8[b] = packed[v, b]


@jit(parallel=True)
def _ld_window(
    packed: np.ndarray, live: np.ndarray, pos: np.ndarray, window_variants: int, window_bp: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_var = packed.shape[0]
    n_words = live.shape[0]
    w = window_variants
    r = np.full((n_var, w), np.nan)
    n_obs = np.zeros((n_var, w), np.int64)
    sums = np.zeros((n_var, w, 3), np.int64)  # sum x, sum y, sum xy
    status = np.full((n_var, w), np.int8(-1))
    for i in numba.prange(n_var):
        bi = np.zeros(n_words, np.uint64)
        bj = np.zeros(n_words, np.uint64)
        _load(packed, i, bi, bi.view(np.uint8))
        for d in range(1, w + 1):
            j = i + d
            if j >= n_var or pos[j] - pos[i] > window_bp:
                break
            _load(packed, j, bj, bj.view(np.uint8))
            n = 0
            sx = 0
            sy = 0
            sxx = 0
            syy = 0
            sxy = 0
            for t in range(n_words):
                wi = bi[t]
                wj = bj[t]
                loi = wi & _LOW_BITS
                hii = (wi >> np.uint64(1)) & _LOW_BITS
                loj = wj & _LOW_BITS
                hij = (wj >> np.uint64(1)) & _LOW_BITS
                v = live[t] & ~(loi & hii) & ~(loj & hij)
                ai = loi & ~hii & v
                bbi = hii & ~loi & v
                aj = loj & ~hij & v
                bbj = hij & ~loj & v
                n += popcount64(v)
                pai = popcount64(ai)
                pbi = popcount64(bbi)
                paj = popcount64(aj)
                pbj = popcount64(bbj)
                sx += pai + 2 * pbi
                sxx += pai + 4 * pbi
                sy += paj + 2 * pbj
                syy += paj + 4 * pbj
                sxy += (
                    popcount64(ai & aj)
                    + 2 * popcount64(ai & bbj)
                    + 2 * popcount64(bbi & aj)
                    + 4 * popcount64(bbi & bbj)
                )
            n_obs[i, d - 1] = n
            sums[i, d - 1, 0] = sx
            sums[i, d - 1, 1] = sy
            sums[i, d - 1, 2] = sxy
            if n < 2:
                status[i, d - 1] = _FEW
                continue
            vx = n * sxx - sx * sx
            vy = n * syy - sy * sy
            if vx == 0 or vy == 0:
                status[i, d - 1] = _MONO
                continue
            cov = n * sxy - sx * sy
            r[i, d - 1] = cov / np.sqrt(float(vx) * float(vy))
            status[i, d - 1] = _OK
    return r, n_obs, status, sums


def ld_r2(
    packed: np.ndarray,
    n_samples: int,
    pos: np.ndarray | None = None,
    window_variants: int = 10,
    window_bp: int | None = None,
    min_r2: float = 0.0,
) -> LdPairs:
    """r^2 for every pair (i, j), 0 < j - i <= window_variants and pos[j] - pos[i] <= window_bp.

    ``pos``: int64 (n_variants,), sorted, one contig (default: row index). With
    ``min_r2 > 0`` only pairs with status OK and r^2 >= min_r2 are returned; with the default
    0 every pair in the window is returned, undefined ones with their status.
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    n_var, n_bytes = packed.shape
    if n_bytes != packed_bytes(n_samples):
        raise ValueError(f"{n_samples} samples need {packed_bytes(n_samples)} bytes per row")
    if window_variants < 1:
        raise ValueError("window_variants must be >= 1")
    pos_arr = np.arange(n_var, dtype=np.int64) if pos is None else np.asarray(pos, np.int64)
    if pos_arr.shape != (n_var,) or (np.diff(pos_arr) < 0).any():
        raise ValueError("pos must be sorted and have one entry per variant")
    bp = np.iinfo(np.int64).max if window_bp is None else int(window_bp)
    n_words = (n_bytes + 7) // 8
    live = np.zeros(n_words, np.uint64)
    s = np.arange(n_samples)
    np.bitwise_or.at(live, s // 32, np.left_shift(np.uint64(1), (2 * (s % 32)).astype(np.uint64)))
    r, n_obs, status, sums = _ld_window(packed, live, pos_arr, int(window_variants), bp)
    ii, dd = np.nonzero(status >= 0)
    r_sel = r[ii, dd]
    st = status[ii, dd]
    keep = np.ones(len(ii), bool) if min_r2 <= 0 else (st == Status.OK) & (r_sel**2 >= min_r2)
    return LdPairs(
        i=ii[keep].astype(np.int64),
        j=(ii + dd + 1)[keep].astype(np.int64),
        r=r_sel[keep],
        r2=r_sel[keep] ** 2,
        n_obs=n_obs[ii, dd][keep],
        status=st[keep],
        sx=sums[ii, dd, 0][keep],
        sy=sums[ii, dd, 1][keep],
        sxy=sums[ii, dd, 2][keep],
    )
