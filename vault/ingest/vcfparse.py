"""Bulk VCF record parser: decompressed VCF text -> site fields + packed 2-bit genotypes.

This is the fast path of ingest. A chunk of complete VCF data lines (a ``uint8`` array
ending in ``\\n``) is parsed by numba kernels that run in parallel over lines and release
the GIL. The rules (see docs/format.md) are applied here:

* GT must be the first FORMAT key; alleles are separated by ``/`` or ``|``.
* Multiallelic records are split per ALT allele like ``bcftools norm -m-``: in the row for
  ALT k, allele k counts as ALT and every other allele as REF.
* Codes: 0 hom-ref, 1 het, 2 hom-alt, 3 missing; sample s sits in byte s // 4 at bits
  2*(s % 4); padding bits are 0.
* Haploid calls count as homozygous diploid (plink2's convention) and are counted per row;
  half-calls (``./1``) become missing (plink2 ``--vcf-half-call missing``) and are counted;
  ploidy > 2 is an error.

Every problem found is reported per line as an error code (see ``ERRORS``); the caller turns
the first one into a message with file and line, or skips the line with ``--skip-invalid``.
"""

# mypy: disable-error-code="assignment"
# (numba kernels: mypy cannot follow numpy scalar arithmetic; numba checks the types)
from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from kernels.jit import jit

# Error codes per line (0 = fine). Messages are filled in with the offending column.
E_OK = 0
E_FIELDS = 1
E_POS = 2
E_REF = 3
E_ALT = 4
E_QUAL = 5
E_NO_GT = 6
E_GT = 7
E_PLOIDY = 8
E_ALLELE = 9
E_FEW_SAMPLES = 10
E_MANY_SAMPLES = 11
E_EMPTY = 12

ERRORS: dict[int, tuple[str, str]] = {
    # code: (reason key used in QC counts, message)
    E_FIELDS: ("too_few_columns", "fewer than 8 tab-separated columns (or FORMAT missing while "
                                  "the header declares samples)"),
    E_POS: ("bad_pos", "POS is not a non-negative integer"),
    E_REF: ("bad_ref", "REF must be one or more of A, C, G, T, N"),
    E_ALT: ("bad_alt", "ALT is not '.', a comma-separated list of bases/'*', a symbolic "
                       "<ALLELE> or a breakend"),
    E_QUAL: ("bad_qual", "QUAL is neither '.' nor a number"),
    E_NO_GT: ("gt_not_first", "GT is in FORMAT but not its first key (VCF requires GT "
                              "first)"),
    E_GT: ("bad_gt", "malformed GT value"),
    E_PLOIDY: ("ploidy_gt_2", "ploidy > 2 is not supported (GT has more than two alleles)"),
    E_ALLELE: ("allele_out_of_range", "GT refers to an allele index larger than the number "
                                      "of ALT alleles"),
    E_FEW_SAMPLES: ("too_few_samples", "fewer sample columns than the header declares"),
    E_MANY_SAMPLES: ("too_many_samples", "more sample columns than the header declares"),
    E_EMPTY: ("empty_field", "an empty column (two adjacent tabs)"),
}

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
def _is_base(c: int) -> bool:
    # A C G T N, either case
    return (c == 65 or c == 67 or c == 71 or c == 84 or c == 78 or
            c == 97 or c == 99 or c == 103 or c == 116 or c == 110)


@_jit
def _parse_float(buf: np.ndarray, s: int, e: int) -> tuple[bool, float]:
    """Parse a decimal float in buf[s:e]; returns (ok, value)."""
    i = s
    sign = 1.0
    if i < e and (buf[i] == 45 or buf[i] == 43):
        if buf[i] == 45:
            sign = -1.0
        i += 1
    if e - i == 3:
        c0 = buf[i] | 32
        c1 = buf[i + 1] | 32
        c2 = buf[i + 2] | 32
        if c0 == 105 and c1 == 110 and c2 == 102:  # inf
            return True, sign * np.inf
        if c0 == 110 and c1 == 97 and c2 == 110:  # nan
            return True, np.nan
    mant = 0.0
    nd = 0
    while i < e and 48 <= buf[i] <= 57:
        mant = mant * 10.0 + (buf[i] - 48)
        i += 1
        nd += 1
    scale = 0
    if i < e and buf[i] == 46:
        i += 1
        while i < e and 48 <= buf[i] <= 57:
            mant = mant * 10.0 + (buf[i] - 48)
            scale -= 1
            i += 1
            nd += 1
    if nd == 0:
        return False, 0.0
    if i < e and (buf[i] == 101 or buf[i] == 69):
        i += 1
        esign = 1
        if i < e and (buf[i] == 45 or buf[i] == 43):
            if buf[i] == 45:
                esign = -1
            i += 1
        ev = 0
        ne = 0
        while i < e and 48 <= buf[i] <= 57:
            ev = ev * 10 + (buf[i] - 48)
            i += 1
            ne += 1
        if ne == 0:
            return False, 0.0
        scale += esign * ev
    if i != e:
        return False, 0.0
    return True, sign * mant * (10.0 ** scale)


@_jit
def _check_alt(buf: np.ndarray, s: int, e: int) -> int:
    """Validate ALT in buf[s:e]; return the number of ALT alleles (0 for '.'), or -1."""
    if e - s == 1 and buf[s] == 46:
        return 0
    n = 0
    a = s
    while a <= e:
        b = a
        while b < e and buf[b] != 44:
            b += 1
        if b == a:
            return -1
        first = buf[a]
        last = buf[b - 1]
        if first == 60:  # <symbolic>
            if last != 62 or b - a < 3:
                return -1
        elif b - a == 1 and first == 42:  # '*'
            pass
        else:
            breakend = False
            for i in range(a, b):
                if buf[i] == 91 or buf[i] == 93:
                    breakend = True
                    break
            if not breakend:
                for i in range(a, b):
                    c = buf[i]
                    if _is_base(c):
                        continue
                    # single breakends: '.A' or 'A.'
                    if c == 46 and (i == a or i == b - 1) and b - a > 1:
                        continue
                    return -1
        n += 1
        a = b + 1
    return n


@_pjit
def parse_fixed(buf: np.ndarray, line_starts: np.ndarray, line_ends: np.ndarray,
                has_samples: bool):
    """Per line: field offsets of CHROM..FORMAT, POS, QUAL, number of ALT alleles, error."""
    n = line_starts.shape[0]
    fs = np.zeros((n, 10), np.int64)  # start of field k (k=9: first sample)
    pos = np.zeros(n, np.int64)
    qual = np.zeros(n, np.float32)
    qual_null = np.zeros(n, np.bool_)
    n_alt = np.zeros(n, np.int32)
    err = np.zeros(n, np.int8)
    no_gt = np.zeros(n, np.bool_)
    for li in nb.prange(n):
        s = line_starts[li]
        e = line_ends[li]
        if e > s and buf[e - 1] == CR:
            e -= 1
        need = 10 if has_samples else 8
        fs[li, 0] = s
        k = 1
        p = s
        while k < need and p < e:
            if buf[p] == TAB:
                fs[li, k] = p + 1
                k += 1
            p += 1
        if k < need:
            err[li] = E_FIELDS
            continue
        if not has_samples:
            q = fs[li, 7]
            while q < e and buf[q] != TAB:
                q += 1
            fs[li, 8] = q + 1
            fs[li, 9] = q + 1
        bad = False
        for f in range(9 if has_samples else 8):
            if fs[li, f + 1] - 1 <= fs[li, f]:
                bad = True
        if bad:
            err[li] = E_EMPTY
            continue
        # POS
        v = 0
        ok = True
        for i in range(fs[li, 1], fs[li, 2] - 1):
            c = buf[i]
            if c < 48 or c > 57:
                ok = False
                break
            v = v * 10 + (c - 48)
        if not ok:
            err[li] = E_POS
            continue
        pos[li] = v
        # REF
        for i in range(fs[li, 3], fs[li, 4] - 1):
            if not _is_base(buf[i]):
                ok = False
                break
        if not ok:
            err[li] = E_REF
            continue
        na = _check_alt(buf, fs[li, 4], fs[li, 5] - 1)
        if na < 0:
            err[li] = E_ALT
            continue
        n_alt[li] = na
        qs = fs[li, 5]
        qe = fs[li, 6] - 1
        if qe - qs == 1 and buf[qs] == 46:
            qual_null[li] = True
        else:
            okq, qv = _parse_float(buf, qs, qe)
            if not okq:
                err[li] = E_QUAL
                continue
            qual[li] = qv
        if has_samples:
            f8 = fs[li, 8]
            if not (buf[f8] == 71 and buf[f8 + 1] == 84
                    and (buf[f8 + 2] == 58 or buf[f8 + 2] == TAB)):
                # No GT first: GT elsewhere is an error; no GT at all means every call is
                # missing (the record still says the site was looked at).
                k = f8
                fe = fs[li, 9] - 1
                while k < fe:
                    if (buf[k] == 71 and buf[k + 1] == 84 and buf[k - 1] == 58
                            and (k + 2 == fe or buf[k + 2] == 58)):
                        err[li] = E_NO_GT
                        break
                    k += 1
                if err[li] == 0:
                    no_gt[li] = True
    return fs, pos, qual, qual_null, n_alt, err, no_gt


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


@nb.njit(cache=True, nogil=True, inline="always")
def _fast_biallelic_row(buf: np.ndarray, p: int, n_samples: int, out: np.ndarray) -> int:
    """Pack a line whose sample columns are all 'a/b' or 'a|b' with a, b in {0, 1}.

    Returns 0 when every column matched that pattern (``out`` is then complete), else
    non-zero (the caller clears ``out`` and takes the general path).
    """
    bad = 0
    q = p
    n_body = (n_samples - 1) >> 2  # groups of 4 whose columns all end with a tab
    for b in range(n_body):
        v = 0
        for j in range(4):
            c0 = np.int32(buf[q]) - 48
            c2 = np.int32(buf[q + 2]) - 48
            sep = np.int32(buf[q + 1])
            bad |= (c0 | c2) & ~1
            bad |= np.int32(sep != 124) & np.int32(sep != 47)
            bad |= np.int32(buf[q + 3] != TAB)
            v |= (c0 + c2) << (2 * j)
            q += 4
        out[b] = v
    v = 0
    for s in range(4 * n_body, n_samples):
        c0 = np.int32(buf[q]) - 48
        c2 = np.int32(buf[q + 2]) - 48
        sep = np.int32(buf[q + 1])
        bad |= (c0 | c2) & ~1
        bad |= np.int32(sep != 124) & np.int32(sep != 47)
        bad |= np.int32(buf[q + 3] != (NL if s == n_samples - 1 else TAB))
        v |= (c0 + c2) << (2 * (s & 3))
        q += 4
    out[n_body] = v
    return bad


@_pjit
def parse_genotypes(buf: np.ndarray, line_ends: np.ndarray, fs: np.ndarray, n_alt: np.ndarray,
                    no_gt: np.ndarray, row_start: np.ndarray, err: np.ndarray, n_samples: int,
                    n_rows: int):
    """Fill packed 2-bit codes for every row; count haploid and half calls per line.

    Sets ``err[li]`` for a malformed sample column and ``err_col[li]`` to its sample index.
    """
    nbytes = (n_samples + 3) // 4
    packed = np.zeros((n_rows, nbytes), np.uint8)
    n_hap = np.zeros(line_ends.shape[0], np.int32)
    n_half = np.zeros(line_ends.shape[0], np.int32)
    err_col = np.full(line_ends.shape[0], -1, np.int32)
    for li in nb.prange(line_ends.shape[0]):
        if err[li] != 0 or n_samples == 0:
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
        if no_gt[li]:
            tabs = 0
            for q in range(p, e):
                tabs += buf[q] == TAB
            if tabs != last:
                err[li] = E_FEW_SAMPLES if tabs < last else E_MANY_SAMPLES
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
                while p < e and buf[p] != TAB:
                    p += 1
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
                err[li] = E_MANY_SAMPLES
                err_col[li] = s + 1
                break
            p += 1
            if a1 > na or a2 > na:
                err[li] = E_ALLELE
                err_col[li] = s
                break
            miss = a1 < 0 or a2 < 0
            if miss:
                if a1 >= 0 or a2 >= 0:
                    half += 1
                code = 3
            else:
                if haploid:
                    hap += 1
                code = a1 + a2
            shift = 2 * (s & 3)
            if na <= 1:
                acc |= code << shift
                if (s & 3) == 3 or s == n_samples - 1:
                    packed[r0, s >> 2] = acc
                    acc = 0
            else:
                for k in range(1, na + 1):
                    ck = 3 if miss else (1 if a1 == k else 0) + (1 if a2 == k else 0)
                    packed[r0 + k - 1, s >> 2] |= np.uint8(ck << shift)
        n_hap[li] = hap
        n_half[li] = half
    return packed, n_hap, n_half, err_col


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


@_pjit
def missing_per_sample(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Number of missing (code 3) calls per sample over all rows (rows split across threads)."""
    nparts = 2
    parts = np.zeros((nparts, 4 * packed.shape[1]), np.int64)
    n = packed.shape[0]
    for t in nb.prange(nparts):
        acc = parts[t]
        for r in range(n * t // nparts, n * (t + 1) // nparts):
            row = packed[r]
            for b in range(row.shape[0]):
                v = row[b]
                if v == 0:
                    continue
                acc[4 * b] += (v & 3) == 3
                acc[4 * b + 1] += ((v >> 2) & 3) == 3
                acc[4 * b + 2] += ((v >> 4) & 3) == 3
                acc[4 * b + 3] += (v >> 6) == 3
    out = np.zeros(n_samples, np.int64)
    for s in range(n_samples):
        out[s] = parts[0, s] + parts[1, s]
    return out


@dataclass
class ParsedChunk:
    """Result of parsing one chunk of complete VCF lines."""

    buf: np.ndarray
    line_starts: np.ndarray
    fs: np.ndarray
    pos: np.ndarray
    qual: np.ndarray
    qual_null: np.ndarray
    n_alt: np.ndarray
    err: np.ndarray
    err_col: np.ndarray
    row_start: np.ndarray
    packed: np.ndarray
    n_hap: np.ndarray
    n_half: np.ndarray
    no_gt: np.ndarray

    @property
    def n_lines(self) -> int:
        return int(self.line_starts.shape[0])

    def field(self, li: int, k: int) -> str:
        """Text of field k (0 = CHROM) of line li (only for messages and contig names)."""
        s = int(self.fs[li, k])
        e = int(self.fs[li, k + 1]) - 1
        return bytes(self.buf[s:e]).decode("utf-8", "replace")


def parse_chunk(buf: np.ndarray, n_samples: int) -> ParsedChunk:
    """Parse a chunk of complete data lines (``buf`` ends with ``\\n``)."""
    ends = find_line_ends(buf)
    starts = np.empty_like(ends)
    if ends.shape[0]:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    fs, pos, qual, qual_null, n_alt, err, no_gt = parse_fixed(buf, starts, ends, n_samples > 0)
    nrows_line = np.where(err == 0, np.maximum(n_alt, 1), 0).astype(np.int64)
    row_start = np.zeros(ends.shape[0] + 1, np.int64)
    np.cumsum(nrows_line, out=row_start[1:])
    n_rows = int(row_start[-1])
    packed, n_hap, n_half, err_col = parse_genotypes(buf, ends, fs, n_alt, no_gt, row_start,
                                                     err, n_samples, n_rows)
    return ParsedChunk(buf, starts, fs, pos, qual, qual_null, n_alt, err, err_col,
                       row_start, packed, n_hap, n_half, no_gt)
