"""Validation kernels for the fixed columns (CHROM..FORMAT) of VCF data lines.

What is checked (VCF 4.3): CHROM is a contig name (§1.4.7) or one in angle brackets, and
has no ':' (reserved by GenoVault's regions); POS is an integer; REF is bases; ALT is '.',
or alleles each of bases, '*', a symbolic ``<ID>`` (§1.4.5) or a breakend (§5.4); QUAL is
'.' or a non-negative float (§1.3); GT, if in FORMAT, comes first; no column is empty and
no line is longer than ``limits.max_line_bytes``.
"""

# mypy: disable-error-code="assignment"
# (numba kernels: mypy cannot follow numpy scalar arithmetic; numba checks the types)
from __future__ import annotations

import numba as nb
import numpy as np

from kernels.jit import jit
from vault.ingest.vcf_errors import (
    E_ALT,
    E_ALT_IS_REF,
    E_CHROM,
    E_CHROM_COLON,
    E_EMPTY,
    E_FIELDS,
    E_FORMAT_TWICE,
    E_LONG_LINE,
    E_MANY_ALTS,
    E_MANY_SAMPLES,
    E_NO_GT,
    E_POS,
    E_QUAL,
    E_REF,
    E_TRAILING_TAB,
    MAX_ALTS,
)
from vault.ingest.vcf_scan import CR, TAB

_jit = jit()
_pjit = jit(parallel=True)


def _name_table() -> np.ndarray:
    """Per byte: 2 if it may start a contig name, 1 if it may only follow, 0 if forbidden.

    VCF 4.3 §1.4.7: ``[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*``.
    """
    table = np.zeros(256, np.uint8)
    for c in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&+./:;?@^_|~-":
        table[c] = 2
    table[ord("*")] = 1
    table[ord("=")] = 1
    return table


NAME_CHARS = _name_table()


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
    if e - i == 8:  # infinity
        word = (105, 110, 102, 105, 110, 105, 116, 121)  # "infinity"
        same = True
        for k in range(8):
            same &= (buf[i + k] | 32) == word[k]
        if same:
            return True, sign * np.inf
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
def _is_bases(buf: np.ndarray, s: int, e: int) -> bool:
    """buf[s:e] is one or more of A, C, G, T, N (either case)."""
    if e <= s:
        return False
    for i in range(s, e):  # noqa: SIM110  (numba: no generators in all())
        if not _is_base(buf[i]):
            return False
    return True


@_jit
def _check_name(buf: np.ndarray, s: int, e: int) -> int:
    """buf[s:e] as a contig name: 0 if valid, E_CHROM_COLON if valid but has ':', E_CHROM."""
    if e <= s or NAME_CHARS[buf[s]] != 2:
        return E_CHROM
    colon = False
    for i in range(s, e):
        c = buf[i]
        if NAME_CHARS[c] == 0:
            return E_CHROM
        colon |= c == 58
    return E_CHROM_COLON if colon else 0


@_jit
def _check_chrom(buf: np.ndarray, s: int, e: int) -> int:
    """CHROM: a contig name or an angle-bracketed one (``<ID>``, a contig of an assembly)."""
    if buf[s] == 60:  # '<'
        if e - s < 3 or buf[e - 1] != 62:
            return E_CHROM
        return _check_name(buf, s + 1, e - 1)
    return _check_name(buf, s, e)


@_jit
def _check_mate(buf: np.ndarray, s: int, e: int) -> bool:
    """The mate position p = chrom:pos of a breakend (chrom may itself contain ':')."""
    k = e - 1
    while k > s and buf[k] != 58:
        k -= 1
    if k <= s or k == e - 1:
        return False
    for i in range(k + 1, e):
        if buf[i] < 48 or buf[i] > 57:
            return False
    if buf[s] == 60:  # <contig> of an assembly
        return k - s >= 3 and buf[k - 1] == 62 and _check_name(buf, s + 1, k - 1) != E_CHROM
    return _check_name(buf, s, k) != E_CHROM


@_jit
def _check_breakend(buf: np.ndarray, a: int, b: int) -> bool:
    """One of t[p[, t]p], ]p]t, [p[t (t = bases, p = chrom:pos), VCF 4.3 §5.4."""
    first = buf[a]
    last = buf[b - 1]
    if first == 91 or first == 93:  # [p[t or ]p]t
        j = a + 1
        while j < b and buf[j] != 91 and buf[j] != 93:
            j += 1
        return (j < b and buf[j] == first and _check_mate(buf, a + 1, j)
                and _is_bases(buf, j + 1, b))
    if last == 91 or last == 93:  # t[p[ or t]p]
        j = a
        while j < b - 1 and buf[j] != 91 and buf[j] != 93:
            j += 1
        return (j < b - 1 and buf[j] == last and _is_bases(buf, a, j)
                and _check_mate(buf, j + 1, b - 1))
    return False


@_jit
def _check_symbolic(buf: np.ndarray, a: int, b: int) -> bool:
    """``<ID>``: one or more characters, none of them whitespace, control, ',', '<' or '>'."""
    if b - a < 3 or buf[b - 1] != 62:
        return False
    for i in range(a + 1, b - 1):
        c = buf[i]
        if c <= 32 or c == 127 or c == 44 or c == 60 or c == 62:
            return False
    return True


@_jit
def _check_allele(buf: np.ndarray, a: int, b: int) -> bool:
    """One ALT allele buf[a:b] (not the whole-column '.')."""
    if b <= a:
        return False
    first = buf[a]
    last = buf[b - 1]
    if first == 60:  # '<'
        return _check_symbolic(buf, a, b)
    if b - a == 1 and first == 42:  # '*'
        return True
    if first == 91 or first == 93 or last == 91 or last == 93:
        return _check_breakend(buf, a, b)
    if first == 46:  # single breakend .t
        return _is_bases(buf, a + 1, b)
    if last == 46:  # single breakend t.
        return _is_bases(buf, a, b - 1)
    return _is_bases(buf, a, b)


@_jit
def _check_alt(buf: np.ndarray, s: int, e: int, rs: int, re: int) -> int:
    """Validate ALT in buf[s:e]; return the number of ALT alleles (0 for '.'), -1 if it is
    malformed, -2 if an allele is REF (buf[rs:re], bases: compared without case)."""
    if e - s == 1 and buf[s] == 46:
        return 0
    n = 0
    a = s
    while a <= e:
        b = a
        while b < e and buf[b] != 44:
            b += 1
        if not _check_allele(buf, a, b):
            return -1
        if b - a == re - rs:
            same = True
            for k in range(b - a):
                if buf[a + k] | 32 != buf[rs + k] | 32:
                    same = False
                    break
            if same:
                return -2
        n += 1
        a = b + 1
    return n


@_pjit
def parse_fixed(buf: np.ndarray, line_starts: np.ndarray, line_ends: np.ndarray,
                has_samples: bool, max_line: int):
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
        if e - s > max_line:
            err[li] = E_LONG_LINE
            continue
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
            if q < e:  # a column after INFO, which the header does not declare
                err[li] = E_TRAILING_TAB if q == e - 1 else E_MANY_SAMPLES
                continue
            fs[li, 8] = q + 1
            fs[li, 9] = q + 1
        bad = False
        for f in range(9 if has_samples else 8):
            if fs[li, f + 1] - 1 <= fs[li, f]:
                bad = True
        if bad:
            err[li] = E_EMPTY
            continue
        ec = _check_chrom(buf, s, fs[li, 1] - 1)
        if ec != 0:
            err[li] = ec
            continue
        # POS
        v = 0
        ok = True
        for i in range(fs[li, 1], fs[li, 2] - 1):
            c = buf[i]
            # a digit, and no wrap-around past int64 (2^64 + 100 would read as 100)
            if c < 48 or c > 57 or v > (9223372036854775807 - (c - 48)) // 10:
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
        na = _check_alt(buf, fs[li, 4], fs[li, 5] - 1, fs[li, 3], fs[li, 4] - 1)
        if na < 0:
            err[li] = E_ALT if na == -1 else E_ALT_IS_REF
            continue
        if na > MAX_ALTS:  # would wrap around in the int16 allele_index / n_alleles columns
            err[li] = E_MANY_ALTS
            continue
        n_alt[li] = na
        qs = fs[li, 5]
        qe = fs[li, 6] - 1
        if qe - qs == 1 and buf[qs] == 46:
            qual_null[li] = True
        else:
            okq, qv = _parse_float(buf, qs, qe)
            if not okq or qv < 0:
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
            # a FORMAT of more than one key ('GT' alone, the common case, costs one load)
            if (err[li] == 0 and buf[f8 + 2] != TAB
                    and _key_twice(buf, f8, fs[li, 9] - 1)):
                err[li] = E_FORMAT_TWICE
    return fs, pos, qual, qual_null, n_alt, err, no_gt


@_jit
def _key_twice(buf: np.ndarray, a: int, e: int) -> bool:
    """Whether the ':'-separated keys of buf[a:e] hold one key twice (no allocation)."""
    s1 = a
    while s1 < e:
        e1 = s1
        while e1 < e and buf[e1] != 58:
            e1 += 1
        s2 = e1 + 1
        while s2 < e:
            e2 = s2
            while e2 < e and buf[e2] != 58:
                e2 += 1
            if e2 - s2 == e1 - s1:
                same = True
                for k in range(e1 - s1):
                    if buf[s1 + k] != buf[s2 + k]:
                        same = False
                        break
                if same:
                    return True
            s2 = e2 + 1
        s1 = e1 + 1
    return False
