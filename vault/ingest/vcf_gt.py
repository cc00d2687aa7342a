"""Genotype kernels: GT decoding into packed 2-bit codes, and missingness per sample."""

# mypy: disable-error-code="assignment"
# (numba kernels: mypy cannot follow numpy scalar arithmetic; numba checks the types)
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from kernels.jit import jit
from vault.ingest.vcf_errors import (
    E_ALLELE,
    E_FEW_SAMPLES,
    E_FORMAT_VALUES,
    E_GT,
    E_MANY_SAMPLES,
    E_PLOIDY,
    E_TRAILING_TAB,
)
from vault.ingest.vcf_scan import CR, NL, TAB, _first_nl

_jit = jit()
_pjit = jit(parallel=True)


@_jit
def _parse_allele(buf: np.ndarray, p: int) -> tuple[int, int]:
    """Parse one allele at p: returns (allele or -1 for '.', or -2 if malformed; new p)."""
    c = buf[p]
    if c == 46:
        return -1, p + 1
    if c < 48 or c > 57:
        return -2, p
    a = 0
    while 48 <= buf[p] <= 57:
        a = a * 10 + (buf[p] - 48)
        p += 1
        if a > 100000:
            return -2, p
    return a, p


@intrinsic
def _load_u64_intrinsic(typingctx: Any, arr: Any, idx: Any) -> Any:
    """The 8 bytes arr[idx:idx + 8] as a little-endian uint64 (one unaligned load; the caller
    guarantees the bytes exist)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8
            and isinstance(idx, types.Integer)):
        return None
    sig = types.uint64(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(ary.data, [index])
        wide = builder.bitcast(ptr, ir.IntType(64).as_pointer())
        return builder.load(wide, align=1)

    return sig, codegen


# Typed alias for callers (numba resolves the intrinsic object itself).
_load_u64 = cast(Callable[[np.ndarray, int], np.uint64], _load_u64_intrinsic)

# Two sample columns 'a?b\t' in one little-endian uint64: a and b must be '0' or '1' (0x30 or
# 0x31), the fourth byte a tab; the separator bytes (1 and 5) are checked on their own.
_PAIR_MASK = np.uint64(0xFFFE00FEFFFE00FE)
_PAIR_WANT = np.uint64(0x0930003009300030)
_SEP_MASK = np.uint64(0x0000FF000000FF00)
_SEP_UU = np.uint64(0x00002F0000002F00)  # '/' '/'
_SEP_PP = np.uint64(0x00007C0000007C00)  # '|' '|'
_SEP_UP = np.uint64(0x00007C0000002F00)  # '/' '|'
_SEP_PU = np.uint64(0x00002F0000007C00)  # '|' '/'
_ALLELE_BITS = np.uint64(0x0001000100010001)


@jit(inline="always")
def _pair_codes(x: np.uint64) -> tuple[np.uint64, np.uint64]:
    """(2-bit codes of the two columns in x at bits 0-1 and 2-3, non-zero if malformed)."""
    bad = (x & _PAIR_MASK) ^ _PAIR_WANT
    sep = x & _SEP_MASK
    bad |= np.uint64((sep != _SEP_UU) & (sep != _SEP_PP) & (sep != _SEP_UP)
                     & (sep != _SEP_PU))
    y = x & _ALLELE_BITS
    z = y + (y >> np.uint64(16))
    return (z & np.uint64(3)) | ((z >> np.uint64(30)) & np.uint64(12)), bad


@jit(inline="always")
def _fast_biallelic_row(buf: np.ndarray, p: int, n_samples: int, out: np.ndarray) -> int:
    """Pack a line whose sample columns are all 'a/b' or 'a|b' with a, b in {0, 1}.

    Reads 8 bytes (two columns) at a time. Returns 0 when every column matched that pattern
    (``out`` is then complete), else non-zero (the caller clears ``out`` and takes the
    general path). The line's 4 * n_samples - 1 bytes from p are all checked.
    """
    bad = np.uint64(0)
    q = p
    n_body = (n_samples - 1) >> 2  # groups of 4 whose columns all end with a tab
    for b in range(n_body):
        lo, bad_lo = _pair_codes(_load_u64(buf, q))
        hi, bad_hi = _pair_codes(_load_u64(buf, q + 8))
        bad |= bad_lo | bad_hi
        out[b] = np.uint8(lo | (hi << np.uint64(4)))
        q += 16
    v = 0
    ibad = 0
    for s in range(4 * n_body, n_samples):
        c0 = np.int32(buf[q]) - 48
        c2 = np.int32(buf[q + 2]) - 48
        sep = np.int32(buf[q + 1])
        ibad |= (c0 | c2) & ~1
        ibad |= np.int32(sep != 124) & np.int32(sep != 47)
        ibad |= np.int32(buf[q + 3] != (NL if s == n_samples - 1 else TAB))
        v |= (c0 + c2) << (2 * (s & 3))
        q += 4
    out[n_body] = v
    return int(ibad | np.int32(bad != 0))


@jit(inline="always")
def call_code(a1: int, a2: int, haploid: bool) -> tuple[int, int, int]:
    """The stored code of one call with allele indexes ``a1``, ``a2`` (-1: missing) and its
    QC counts: (code, 1 if a half-call, 1 if a haploid call). The call rules of docs/format.md,
    shared by the VCF and BCF decoders: a half-call (one allele missing) is missing; a
    haploid call is stored as homozygous (``a2 == a1``); else the ALT allele count."""
    if a1 < 0 or a2 < 0:
        return 3, 1 if (a1 >= 0 or a2 >= 0) else 0, 0
    return a1 + a2, 0, 1 if haploid else 0


@jit(inline="always")
def place_split_call(packed: np.ndarray, r0: int, s: int, na: int, a1: int, a2: int) -> None:
    """Sample ``s`` of a record with ``na`` > 1 ALT alleles, split into rows r0 … r0+na-1
    (one per ALT, as ``bcftools norm -m-``): the count of that ALT, or missing."""
    miss = a1 < 0 or a2 < 0
    shift = 2 * (s & 3)
    for k in range(1, na + 1):
        ck = 3 if miss else (1 if a1 == k else 0) + (1 if a2 == k else 0)
        packed[r0 + k - 1, s >> 2] |= np.uint8(ck << shift)


@_jit
def _last_byte(buf: np.ndarray, e: int) -> int:
    """Offset of the last byte before the newline at ``e`` (and before a CR there)."""
    q = e - 1
    if q >= 0 and buf[q] == CR:
        q -= 1
    return q


@_pjit
def parse_genotypes(buf: np.ndarray, line_ends: np.ndarray, fs: np.ndarray, n_alt: np.ndarray,
                    no_gt: np.ndarray, row_start: np.ndarray, err: np.ndarray, n_samples: int,
                    n_rows: int, guessed: np.ndarray):
    """Fill packed 2-bit codes for every row; count haploid and half calls per line.

    Sets ``err[li]`` for a malformed sample column and ``err_col[li]`` to its sample index.
    A line whose end was ``guessed`` from its length (vcf_scan.find_lines) and that is not
    all 'a/b' columns is first checked for a '\\n' before that end: if there is one, the
    last value returned (``wrong_guess``) is True and the chunk must be parsed again with
    exact line ends (vcf_scan.find_line_ends).
    """
    nbytes = (n_samples + 3) // 4
    packed = np.zeros((n_rows, nbytes), np.uint8)
    n_hap = np.zeros(line_ends.shape[0], np.int32)
    n_half = np.zeros(line_ends.shape[0], np.int32)
    err_col = np.full(line_ends.shape[0], -1, np.int32)
    wrong = np.zeros(line_ends.shape[0], np.bool_)
    for li in nb.prange(line_ends.shape[0]):
        if err[li] != 0 or n_samples == 0:
            if guessed[li] and _first_nl(buf, line_ends[li - 1] + 1 if li else 0,
                                         line_ends[li]) >= 0:
                wrong[li] = True
            continue
        r0 = row_start[li]
        na = n_alt[li]
        p = fs[li, 9]
        e = line_ends[li]
        acc = 0
        hap = 0
        half = 0
        code = 0
        last = n_samples - 1
        # a sample column may have fewer ':'-separated values than FORMAT has keys, never more
        fmt_colons = 0
        for q in range(fs[li, 8], fs[li, 9] - 1):
            fmt_colons += buf[q] == 58
        if no_gt[li]:
            tabs = 0
            colons = 0
            for q in range(p, e):
                if buf[q] == TAB:
                    tabs += 1
                    colons = 0
                elif buf[q] == 58:
                    colons += 1
                    if colons > fmt_colons and err_col[li] < 0:
                        err_col[li] = tabs
            if tabs != last:
                err[li] = E_FEW_SAMPLES if tabs < last else E_MANY_SAMPLES
                q = _last_byte(buf, e)
                if tabs == last + 1 and q >= p and buf[q] == TAB:
                    err[li] = E_TRAILING_TAB
                err_col[li] = -1
                continue
            if err_col[li] >= 0:
                err[li] = E_FORMAT_VALUES
                continue
            for r in range(r0, r0 + max(na, 1)):
                for s in range(n_samples):
                    packed[r, s >> 2] |= np.uint8(3 << (2 * (s & 3)))
            continue
        if na == 1 and e - p == 4 * n_samples - 1:
            # Every sample column is exactly 'a?b' + tab: the branch-free path checks the whole
            # line at once and falls back to the general loop below if anything is unusual.
            bad = _fast_biallelic_row(buf, p, n_samples, packed[r0])
            if bad == 0:
                continue
            for b in range(nbytes):
                packed[r0, b] = 0
        if guessed[li] and _first_nl(buf, p, e) >= 0:
            wrong[li] = True
            continue
        for s in range(n_samples):
            # Fast path: a biallelic diploid call 'a/b' or 'a|b' with a, b in {0, 1} and
            # nothing else in the column (by far the most common sample column).
            if na == 1 and p + 3 <= e:
                c0 = buf[p]
                c2 = buf[p + 2]
                t = buf[p + 3]
                sep = buf[p + 1]
                if ((c0 == 48 or c0 == 49) and (c2 == 48 or c2 == 49)
                        and (sep == 124 or sep == 47)
                        and ((t == TAB and s < last) or (t == NL and s == last))):
                    acc |= (c0 + c2 - 96) << (2 * (s & 3))
                    if (s & 3) == 3 or s == last:
                        packed[r0, s >> 2] = acc
                        acc = 0
                    p += 4
                    continue
            if p >= e:
                err[li] = E_FEW_SAMPLES
                err_col[li] = s
                break
            a1, p = _parse_allele(buf, p)
            if a1 == -2:
                err[li] = E_GT
                err_col[li] = s
                break
            c = buf[p]
            haploid = True
            a2 = a1
            if c == 47 or c == 124:
                haploid = False
                a2, p = _parse_allele(buf, p + 1)
                if a2 == -2:
                    err[li] = E_GT
                    err_col[li] = s
                    break
                c = buf[p]
                if c == 47 or c == 124:
                    err[li] = E_PLOIDY
                    err_col[li] = s
                    break
            if c == 58:  # ':' -> skip the other FORMAT values
                colons = 0
                while p < e and buf[p] != TAB:
                    colons += buf[p] == 58
                    p += 1
                if colons > fmt_colons:
                    err[li] = E_FORMAT_VALUES
                    err_col[li] = s
                    break
                c = buf[p]
            if c == CR and p == e - 1:
                p += 1
                c = buf[p]
            if c != TAB and c != NL:
                err[li] = E_GT
                err_col[li] = s
                break
            if c == NL and s != n_samples - 1:
                err[li] = E_FEW_SAMPLES
                err_col[li] = s + 1
                break
            if c == TAB and s == n_samples - 1:
                if _last_byte(buf, e) == p:  # this tab ends the line: an empty column
                    err[li] = E_TRAILING_TAB
                    err_col[li] = -1
                else:
                    err[li] = E_MANY_SAMPLES
                    err_col[li] = s + 1
                break
            p += 1
            if a1 > na or a2 > na:
                err[li] = E_ALLELE
                err_col[li] = s
                break
            code, h, hp = call_code(a1, a2, haploid)
            half += h
            hap += hp
            if na <= 1:
                acc |= code << (2 * (s & 3))
                if (s & 3) == 3 or s == n_samples - 1:
                    packed[r0, s >> 2] = acc
                    acc = 0
            else:
                place_split_call(packed, r0, s, na, a1, a2)
        n_hap[li] = hap
        n_half[li] = half
    return packed, n_hap, n_half, err_col, wrong.any()


_LOW_BITS = np.uint64(0x5555555555555555)  # bit 0 of every 2-bit code
_LANE = np.uint64(0x0101010101010101)


@_jit
def _flush(acc: np.ndarray, counts: np.ndarray) -> None:
    """Add the 8-bit lane counters ``acc[k, w]`` (sample 4 * (8w + j) + k in lane j) to
    ``counts`` and clear them."""
    for k in range(4):
        for w in range(acc.shape[1]):
            x = acc[k, w]
            if x == 0:
                continue
            for j in range(8):
                counts[4 * (8 * w + j) + k] += np.int64((x >> np.uint64(8 * j)) & np.uint64(255))
            acc[k, w] = 0


@_pjit
def missing_per_sample(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Number of missing (code 3) calls per sample over all rows (rows split across threads).

    Eight bytes (32 samples) at a time: a row without a missing call costs one pass of
    loads; the others add each sample's missing bit into an 8-bit lane counter (flushed
    every 255 rows)."""
    nparts = 2
    width = packed.shape[1]
    nwords = width // 8
    parts = np.zeros((nparts, 4 * width), np.int64)
    n = packed.shape[0]
    for t in nb.prange(nparts):
        counts = parts[t]
        acc = np.zeros((4, nwords), np.uint64)
        pending = 0
        for r in range(n * t // nparts, n * (t + 1) // nparts):
            row = packed[r]
            any_missing = np.uint64(0)
            for w in range(nwords):
                x = _load_u64(row, 8 * w)
                any_missing |= x & (x >> np.uint64(1)) & _LOW_BITS
            if any_missing != 0:
                for w in range(nwords):
                    x = _load_u64(row, 8 * w)
                    m = x & (x >> np.uint64(1)) & _LOW_BITS
                    acc[0, w] += m & _LANE
                    acc[1, w] += (m >> np.uint64(2)) & _LANE
                    acc[2, w] += (m >> np.uint64(4)) & _LANE
                    acc[3, w] += (m >> np.uint64(6)) & _LANE
                pending += 1
                if pending == 255:
                    _flush(acc, counts)
                    pending = 0
            for b in range(8 * nwords, width):
                v = row[b]
                if v == 0:
                    continue
                counts[4 * b] += (v & 3) == 3
                counts[4 * b + 1] += ((v >> 2) & 3) == 3
                counts[4 * b + 2] += ((v >> 4) & 3) == 3
                counts[4 * b + 3] += (v >> 6) == 3
        _flush(acc, counts)
    out = np.zeros(n_samples, np.int64)
    for s in range(n_samples):
        out[s] = parts[0, s] + parts[1, s]
    return out
