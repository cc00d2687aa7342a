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


@_jit
def _first_nl(buf: np.ndarray, lo: int, hi: int) -> int:
    """Offset of the first '\\n' in buf[lo:hi] (8 bytes at a time), or -1."""
    ones = np.uint64(0x0101010101010101)
    highs = np.uint64(0x8080808080808080)
    nls = np.uint64(0x0A0A0A0A0A0A0A0A)
    i = lo
    while i < hi and (i & 7) != 0:
        if buf[i] == NL:
            return i
        i += 1
    words = buf[i:i + ((hi - i) // 8) * 8].view(np.uint64)
    for w in range(words.shape[0]):
        x = words[w] ^ nls
        if ((x - ones) & ~x & highs) != 0:
            base = i + 8 * w
            for k in range(8):
                if buf[base + k] == NL:
                    return base + k
    i += words.shape[0] * 8
    while i < hi:
        if buf[i] == NL:
            return i
        i += 1
    return -1


@_jit
def _segment_lines(buf: np.ndarray, lo: int, hi: int, n_samples: int, ends: np.ndarray,
                   guessed: np.ndarray, j: int) -> int:
    """Count (and, if ``ends`` is non-empty, store from j) the line ends of buf[lo:hi], which
    starts at a line start.

    A line whose FORMAT is exactly ``GT`` is taken to end where n_samples columns of ``a/b``
    would end when a '\\n' is there: nothing between is read here, and the line is marked
    ``guessed`` (the genotype parser makes sure no '\\n' comes earlier). Every other line is
    scanned for its '\\n'.
    """
    store = ends.shape[0] > 0
    m = 0
    s = lo
    span = 4 * n_samples - 1
    while s < hi:
        p = s
        tabs = 0
        f8 = s
        while p < hi and tabs < 9:
            c = buf[p]
            if c == NL:
                break
            if c == TAB:
                tabs += 1
                if tabs == 8:
                    f8 = p + 1
            p += 1
        guess = False
        if tabs == 9:
            e = p + span
            if (n_samples > 0 and p - f8 == 3 and buf[f8] == 71 and buf[f8 + 1] == 84
                    and e < hi and buf[e] == NL):
                guess = True
            else:
                e = _first_nl(buf, p, hi)
        elif p < hi:  # stopped at the '\\n'
            e = p
        else:
            e = -1
        if e < 0:  # no '\\n' up to hi: no more whole lines
            break
        if store:
            ends[j + m] = e
            guessed[j + m] = guess
        m += 1
        s = e + 1
    return m


@_pjit
def find_lines(buf: np.ndarray, n_samples: int):
    """Offsets of the line ends of ``buf`` (as ``find_line_ends``) and which of them were
    taken from the line's length (see ``_segment_lines``); two threads take a half each."""
    n = buf.shape[0]
    nseg = 2 if n > (1 << 20) else 1
    bounds = np.empty(nseg + 1, np.int64)
    bounds[0] = 0
    bounds[nseg] = n
    for k in range(1, nseg):
        nl = _first_nl(buf, (n * k) // nseg, n)
        bounds[k] = n if nl < 0 else nl + 1
    counts = np.zeros(nseg, np.int64)
    no_e = np.empty(0, np.int64)
    no_g = np.empty(0, np.bool_)
    for k in nb.prange(nseg):
        counts[k] = _segment_lines(buf, bounds[k], bounds[k + 1], n_samples, no_e, no_g, 0)
    starts = np.zeros(nseg, np.int64)
    for k in range(1, nseg):
        starts[k] = starts[k - 1] + counts[k - 1]
    total = starts[nseg - 1] + counts[nseg - 1]
    ends = np.empty(total, np.int64)
    guessed = np.empty(total, np.bool_)
    for k in nb.prange(nseg):
        _segment_lines(buf, bounds[k], bounds[k + 1], n_samples, ends, guessed, starts[k])
    return ends, guessed


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
