"""Byte scanning kernels: line ends, contig runs, ALT allele bounds, Arrow strings."""

# mypy: disable-error-code="assignment"
# (numba kernels: mypy cannot follow numpy scalar arithmetic; numba checks the types)
from __future__ import annotations

import numba as nb
import numpy as np

from kernels.jit import jit

TAB = 9
NL = 10
CR = 13

_jit = jit()
_pjit = jit(parallel=True)


@_jit
def _count_nl(buf: np.ndarray, lo: int, hi: int, out: np.ndarray, j: int) -> int:
    """Count (and, if out is non-empty, store from j) the offsets of '\\n' in buf[lo:hi].

    Scans 8 bytes at a time with the SWAR zero-byte test, so lines of thousands of bytes
    cost about one load per 8 bytes.
    """
    ones = np.uint64(0x0101010101010101)
    highs = np.uint64(0x8080808080808080)
    nls = np.uint64(0x0A0A0A0A0A0A0A0A)
    store = out.shape[0] > 0
    i = lo
    c = 0
    while i < hi and (i & 7) != 0:
        if buf[i] == NL:
            if store:
                out[j + c] = i
            c += 1
        i += 1
    words = buf[i:i + ((hi - i) // 8) * 8].view(np.uint64)
    for w in range(words.shape[0]):
        x = words[w] ^ nls
        if ((x - ones) & ~x & highs) != 0:
            base = i + 8 * w
            for k in range(8):
                if buf[base + k] == NL:
                    if store:
                        out[j + c] = base + k
                    c += 1
    i += words.shape[0] * 8
    while i < hi:
        if buf[i] == NL:
            if store:
                out[j + c] = i
            c += 1
        i += 1
    return c


@_pjit
def find_line_ends(buf: np.ndarray) -> np.ndarray:
    """Offsets of every ``\\n`` in ``buf`` (two threads scan halves)."""
    n = buf.shape[0]
    nseg = 2 if n > (1 << 20) else 1
    bounds = np.empty(nseg + 1, np.int64)
    for k in range(nseg + 1):
        bounds[k] = (n * k) // nseg
    counts = np.zeros(nseg, np.int64)
    empty = np.empty(0, np.int64)
    for k in nb.prange(nseg):
        counts[k] = _count_nl(buf, bounds[k], bounds[k + 1], empty, 0)
    starts = np.zeros(nseg, np.int64)
    for k in range(1, nseg):
        starts[k] = starts[k - 1] + counts[k - 1]
    out = np.empty(starts[nseg - 1] + counts[nseg - 1], np.int64)
    for k in nb.prange(nseg):
        _count_nl(buf, bounds[k], bounds[k + 1], out, starts[k])
    return out


@_pjit
def alt_bounds(buf: np.ndarray, fs: np.ndarray, n_alt: np.ndarray, row_start: np.ndarray,
               n_rows: int):
    """Start/end offset of the ALT allele of every split row (the whole '.' for ALT '.')."""
    starts = np.zeros(n_rows, np.int64)
    ends = np.zeros(n_rows, np.int64)
    for li in nb.prange(fs.shape[0]):
        r = row_start[li]
        a = fs[li, 4]
        e = fs[li, 5] - 1
        if n_alt[li] <= 1:
            starts[r] = a
            ends[r] = e
            continue
        k = 0
        b = a
        while b <= e:
            if b == e or buf[b] == 44:
                starts[r + k] = a
                ends[r + k] = b
                k += 1
                a = b + 1
            b += 1
    return starts, ends


@_jit
def gather_strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Arrow string layout (int32 offsets, data) of buf[starts[i]:ends[i]] for every i."""
    n = starts.shape[0]
    offsets = np.zeros(n + 1, np.int32)
    for i in range(n):
        offsets[i + 1] = offsets[i] + (ends[i] - starts[i])
    data = np.empty(offsets[n], np.uint8)
    for i in range(n):
        o = offsets[i]
        for j in range(ends[i] - starts[i]):
            data[o + j] = buf[starts[i] + j]
    return offsets, data


@_jit
def chrom_changes(buf: np.ndarray, fs: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Indices of lines whose CHROM differs from the previous valid line (first valid line too)."""
    out = np.empty(fs.shape[0], np.int64)
    m = 0
    prev = -1
    for li in range(fs.shape[0]):
        if err[li] != 0:
            continue
        if prev < 0:
            out[m] = li
            m += 1
        else:
            s0 = fs[prev, 0]
            l0 = fs[prev, 1] - 1 - s0
            s1 = fs[li, 0]
            l1 = fs[li, 1] - 1 - s1
            same = l0 == l1
            if same:
                for j in range(l0):
                    if buf[s0 + j] != buf[s1 + j]:
                        same = False
                        break
            if not same:
                out[m] = li
                m += 1
        prev = li
    return out[:m]
