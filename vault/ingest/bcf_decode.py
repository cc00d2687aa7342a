"""numba kernels of the BCF2 decoder: record framing, the shared part as VCF text, GT.

A BCF2 record (VCF specification §6.3) is ``l_shared`` (uint32), ``l_indiv`` (uint32), the
shared part (CHROM id, POS, rlen, QUAL, n_info | n_allele << 16, n_sample | n_fmt << 24,
then the typed values ID, the alleles, FILTER and the INFO key/value pairs) and the
individual part (per FORMAT field: a typed key, a typed descriptor, n_sample vectors).

The shared part is rendered as the first eight columns of a VCF line (CHROM..INFO), so the
text path's fixed-field checks (vcf_fields.parse_fixed) and anything that reads INFO text
apply unchanged; genotypes are packed straight from the GT vectors (no text). Everything
here only reads inside the record's declared lengths: a value that would run past them is
reported as malformed (``F_*`` codes), never read.
"""

# mypy: disable-error-code="assignment,return-value,arg-type"
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
    E_FORMAT_TWICE,
    E_GT,
    E_MANY_SAMPLES,
    E_NO_GT,
    E_PLOIDY,
)
from vault.ingest.vcf_gt import _load_u64, call_code, place_split_call

_jit = jit()
_pjit = jit(parallel=True)

# Typed value types (§6.3.3)
T_NULL = 0
T_INT8 = 1
T_INT16 = 2
T_INT32 = 3
T_FLOAT = 5
T_CHAR = 7

# Problems that make a record undecodable (its framing or dictionary references are broken)
F_OK = 0
F_SHARED = 1  # the shared part is shorter than its fixed fields or a value runs past it
F_TYPE = 2  # a typed value of an unknown type, or a key/count that is not an integer
F_CONTIG = 3  # CHROM is not an index of the header's contig dictionary
F_KEY = 4  # a FILTER or INFO value is not an index of the header's dictionary
F_INDIV = 5  # a FORMAT field runs past the individual part
F_GT_TYPE = 6  # GT is not an integer vector
F_TEXT = 7  # a string would break its VCF text (the columns are found by their tabs)
F_FMT_KEY = 8  # a FORMAT key is not an index of the header's dictionary

FATAL = {
    F_SHARED: "its shared part is shorter than its fields or a value runs past its declared "
              "length",
    F_TYPE: "a typed value has an unknown type",
    F_CONTIG: "CHROM is not an index of the header's contig dictionary",
    F_KEY: "a FILTER or INFO key is not an index of the header's dictionary (an "
           "end-of-vector value is not a FILTER key either)",
    F_INDIV: "a FORMAT field runs past the individual part's declared length",
    F_GT_TYPE: "GT is not an integer vector",
    F_TEXT: "an ID, allele or INFO string holds a tab, newline or carriage return, or an "
            "INFO string a ';', which VCF text cannot hold",
    F_FMT_KEY: "a FORMAT key is not an index of the header's dictionary",
}

FLOAT_MISSING = np.uint32(0x7F800001)
FLOAT_EOV = np.uint32(0x7F800002)

_POW10 = np.array([10.0 ** k for k in range(23)])


@_jit
def _u32(buf: np.ndarray, p: int) -> np.uint32:
    return (np.uint32(buf[p]) | (np.uint32(buf[p + 1]) << np.uint32(8))
            | (np.uint32(buf[p + 2]) << np.uint32(16)) | (np.uint32(buf[p + 3]) << np.uint32(24)))


@_jit
def _i32(buf: np.ndarray, p: int) -> int:
    return np.int64(np.int32(_u32(buf, p)))


@_jit
def _size(t: int) -> int:
    """Bytes per value of typed-value type t, or -1 if t is not a BCF2 type."""
    if t == T_NULL:
        return 0
    if t == T_INT8:
        return 1
    if t == T_INT16:
        return 2
    if t == T_INT32:
        return 4
    if t == T_FLOAT:
        return 4
    if t == T_CHAR:
        return 1
    return -1


@_jit
def _is_int(t: int) -> bool:
    return T_INT8 <= t <= T_INT32


@_jit
def _int_at(buf: np.ndarray, p: int, t: int) -> int:
    """The signed integer of type t at p."""
    if t == T_INT8:
        return np.int64(np.int8(buf[p]))
    if t == T_INT16:
        return np.int64(np.int16(np.uint16(buf[p]) | (np.uint16(buf[p + 1]) << np.uint16(8))))
    return _i32(buf, p)


@_jit
def _int_min(t: int) -> int:
    """The missing value of integer type t (the end-of-vector value is one more)."""
    if t == T_INT8:
        return -128
    if t == T_INT16:
        return -32768
    return -2147483648


@_jit
def _descriptor(buf: np.ndarray, p: int, end: int) -> tuple[int, int, int]:
    """(type, count, offset of the first value) of the typed value at p; type -1 if it runs
    past ``end``, -2 if its type is not a BCF2 type (counts of 15 or more follow as a typed
    integer)."""
    if p >= end:
        return -1, 0, p
    d = buf[p]
    t = np.int64(d & 15)
    c = np.int64(d >> 4)
    p += 1
    if _size(t) < 0:
        return -2, 0, p
    if c == 15:
        if p >= end:
            return -1, 0, p
        ct = np.int64(buf[p] & 15)
        if (buf[p] >> 4) != 1 or not _is_int(ct):
            return -2, 0, p
        p += 1
        if p + _size(ct) > end:
            return -1, 0, p
        c = _int_at(buf, p, ct)
        p += _size(ct)
        if c < 0:
            return -1, 0, p
    if p + c * _size(t) > end:
        return -1, 0, p
    return t, c, p


@_jit
def _breaks_text(buf: np.ndarray, p: int, e: int, info: bool) -> bool:
    """Whether buf[p:e] holds a byte that would end its column of the rendered line (a tab,
    newline or CR; in an INFO value also ';', which would start another INFO key)."""
    for q in range(p, e):
        b = buf[q]
        if b == 9 or b == 10 or b == 13 or (info and b == 59):
            return True
    return False


@_jit
def _typed_int(buf: np.ndarray, p: int, end: int) -> tuple[int, int, int]:
    """A typed single integer (a dictionary key): (value, next offset, F_* problem)."""
    t, c, q = _descriptor(buf, p, end)
    if t == -1:
        return 0, q, F_SHARED
    if c != 1 or not _is_int(t):
        return 0, q, F_TYPE
    return _int_at(buf, q, t), q + _size(t), F_OK


# -- text output (``store`` False: only count the bytes) ---------------------------------


@_jit
def _put(out: np.ndarray, o: int, c: int, store: bool) -> int:
    if store:
        out[o] = c
    return o + 1


@_jit
def _put_bytes(out: np.ndarray, o: int, src: np.ndarray, a: int, b: int, store: bool) -> int:
    if store:
        for i in range(b - a):
            out[o + i] = src[a + i]
    return o + (b - a)


@_jit
def _put_int(out: np.ndarray, o: int, v: int, store: bool) -> int:
    if v < 0:
        o = _put(out, o, 45, store)
        v = -v
    n = 1
    x = v
    while x >= 10:
        x //= 10
        n += 1
    if store:
        for i in range(n - 1, -1, -1):
            out[o + i] = 48 + v % 10
            v //= 10
    return o + n


@_jit
def _put_digits(out: np.ndarray, o: int, m: int, n: int, store: bool) -> int:
    """The n decimal digits of m (with leading zeros)."""
    if store:
        for i in range(n - 1, -1, -1):
            out[o + i] = 48 + m % 10
            m //= 10
    return o + n


@_jit
def _scale(a: float, k: int) -> float:
    """a / 10**k, correctly rounded when |k| <= 22."""
    if k >= 0:
        return a / _POW10[k] if k <= 22 else a / (10.0 ** k)
    return a * _POW10[-k] if -k <= 22 else a * (10.0 ** -k)


@intrinsic
def _f32_intrinsic(typingctx: Any, bits: Any) -> Any:
    """The float32 whose bits are the low 32 bits of the integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        wide = getattr(bits, "bitwidth") > 32  # noqa: B009 (numba's type attribute)
        low = builder.trunc(args[0], ir.IntType(32)) if wide else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


_f32 = cast(Callable[[Any], np.float32], _f32_intrinsic)


@_jit
def _put_float(out: np.ndarray, o: int, bits: np.uint32, store: bool) -> int:
    """A float32 as the shortest decimal text that reads back as the same float32."""
    f = _f32(bits)
    v = np.float64(f)
    if v != v:
        for c in (110, 97, 110):  # nan
            o = _put(out, o, c, store)
        return o
    if bits >> np.uint32(31):
        o = _put(out, o, 45, store)
        v = -v
    if v == np.inf:
        for c in (105, 110, 102):  # inf
            o = _put(out, o, c, store)
        return o
    if v == 0.0:
        return _put(out, o, 48, store)
    fa = np.float32(v)
    e = np.int64(np.floor(np.log10(v)))  # v = d.ddd * 10**e
    if _scale(v, e) < 1.0:
        e -= 1
    elif _scale(v, e + 1) >= 1.0:
        e += 1
    m = 0
    k = 0
    p = 1
    while p <= 9:
        k = e - p + 1
        m = np.int64(np.floor(_scale(v, k) + 0.5))
        if m >= 10 ** p:  # rounded up to one more digit: 9.99 -> 10.0
            m //= 10
            k += 1
        if np.float32(_scale(np.float64(m), -k)) == fa:
            break
        p += 1
    if p > 9:
        p = 9
        k = e - 8
        m = np.int64(np.floor(_scale(v, k) + 0.5))
        if m >= 10 ** 9:
            m //= 10
            k += 1
    # strip trailing zeros of m (e.g. 100 = 1e2)
    while p > 1 and m % 10 == 0:
        m //= 10
        p -= 1
        k += 1
    exp10 = k + p - 1  # value = d.ddd * 10**exp10
    if k >= 0 and exp10 < 15:  # an integer
        o = _put_digits(out, o, m, p, store)
        for _ in range(k):
            o = _put(out, o, 48, store)
    elif k < 0 and exp10 >= 0:  # digits . digits
        o = _put_digits(out, o, m // 10 ** (-k), p + k, store)
        o = _put(out, o, 46, store)
        o = _put_digits(out, o, m % 10 ** (-k), -k, store)
    elif k < 0 and exp10 >= -5:  # 0.000ddd
        o = _put(out, o, 48, store)
        o = _put(out, o, 46, store)
        for _ in range(-exp10 - 1):
            o = _put(out, o, 48, store)
        o = _put_digits(out, o, m, p, store)
    else:  # d.ddde-07
        o = _put_digits(out, o, m // 10 ** (p - 1), 1, store)
        if p > 1:
            o = _put(out, o, 46, store)
            o = _put_digits(out, o, m % 10 ** (p - 1), p - 1, store)
        o = _put(out, o, 101, store)
        if exp10 < 0:
            o = _put(out, o, 45, store)
            exp10 = -exp10
        if exp10 < 10:
            o = _put(out, o, 48, store)
        o = _put_int(out, o, exp10, store)
    return o


@_jit
def _put_string(out: np.ndarray, o: int, buf: np.ndarray, p: int, c: int,
                store: bool) -> int:
    """A char vector without its NUL padding; '.' if it is empty."""
    e = p + c
    while e > p and buf[e - 1] == 0:
        e -= 1
    if e == p:
        return _put(out, o, 46, store)
    return _put_bytes(out, o, buf, p, e, store)


@_jit
def _put_values(out: np.ndarray, o: int, buf: np.ndarray, p: int, t: int, c: int,
                store: bool) -> int:
    """A typed vector as VCF text: comma-separated, '.' for missing values, stopping at the
    end-of-vector value; a char vector as its string."""
    if t == T_CHAR:
        return _put_string(out, o, buf, p, c, store)
    n = 0
    size = _size(t)
    for i in range(c):
        q = p + i * size
        if t == T_FLOAT:
            bits = _u32(buf, q)
            if bits == FLOAT_EOV:
                break
            if n:
                o = _put(out, o, 44, store)
            o = _put(out, o, 46, store) if bits == FLOAT_MISSING else _put_float(out, o, bits,
                                                                                  store)
        else:
            v = _int_at(buf, q, t)
            lo = _int_min(t)
            if v == lo + 1:
                break
            if n:
                o = _put(out, o, 44, store)
            o = _put(out, o, 46, store) if v == lo else _put_int(out, o, v, store)
        n += 1
    if n == 0:
        o = _put(out, o, 46, store)
    return o


@_jit
def _put_name(out: np.ndarray, o: int, data: np.ndarray, off: np.ndarray, i: int,
              store: bool) -> int:
    return _put_bytes(out, o, data, off[i], off[i + 1], store)


@_jit
def _render(buf: np.ndarray, sh: int, se: int, contigs: np.ndarray, contig_off: np.ndarray,
            names: np.ndarray, name_off: np.ndarray, out: np.ndarray, o: int,
            store: bool) -> tuple[int, int]:
    """Write CHROM..INFO of the shared part buf[sh:se] as a VCF line (with its '\\n') at o.

    Returns (offset after the line, F_* problem)."""
    if se - sh < 24:
        return o, F_SHARED
    chrom = _i32(buf, sh)
    if chrom < 0 or chrom >= contig_off.shape[0] - 1 or contig_off[chrom + 1] == contig_off[chrom]:
        return o, F_CONTIG
    o = _put_name(out, o, contigs, contig_off, chrom, store)
    o = _put(out, o, 9, store)
    o = _put_int(out, o, _i32(buf, sh + 4) + 1, store)
    o = _put(out, o, 9, store)
    n_info = np.int64(buf[sh + 16]) | (np.int64(buf[sh + 17]) << 8)
    n_allele = np.int64(buf[sh + 18]) | (np.int64(buf[sh + 19]) << 8)
    p = sh + 24
    # ID
    t, c, p = _descriptor(buf, p, se)
    if t < 0:
        return o, F_SHARED if t == -1 else F_TYPE
    if t != T_CHAR and c > 0:
        return o, F_TYPE
    if _breaks_text(buf, p, p + c, False):
        return o, F_TEXT
    o = _put_string(out, o, buf, p, c, store)
    p += c
    o = _put(out, o, 9, store)
    # REF, ALT
    for a in range(n_allele):
        t, c, p = _descriptor(buf, p, se)
        if t < 0:
            return o, F_SHARED if t == -1 else F_TYPE
        if t != T_CHAR and c > 0:
            return o, F_TYPE
        if _breaks_text(buf, p, p + c, False):
            return o, F_TEXT
        if a == 1:
            o = _put(out, o, 9, store)
        elif a > 1:
            o = _put(out, o, 44, store)
        e = p + c
        while e > p and buf[e - 1] == 0:
            e -= 1
        o = _put_bytes(out, o, buf, p, e, store)  # an empty REF stays empty (an error later)
        p += c
    if n_allele < 2:  # ALT '.' (after an empty REF if there is none)
        o = _put(out, o, 9, store)
        o = _put(out, o, 46, store)
    o = _put(out, o, 9, store)
    # QUAL
    bits = _u32(buf, sh + 12)
    o = _put(out, o, 46, store) if bits == FLOAT_MISSING else _put_float(out, o, bits, store)
    o = _put(out, o, 9, store)
    # FILTER
    t, c, p = _descriptor(buf, p, se)
    if t < 0:
        return o, F_SHARED if t == -1 else F_TYPE
    if c > 0 and not _is_int(t):
        return o, F_TYPE
    n = 0
    for i in range(c):
        v = _int_at(buf, p + i * _size(t), t)
        # htslib (bcf_record_check) refuses any value that is not a dictionary index,
        # end-of-vector included: FILTER is a plain vector, never padded
        if v < 0 or v >= name_off.shape[0] - 1 or name_off[v + 1] == name_off[v]:
            return o, F_KEY
        if n:
            o = _put(out, o, 59, store)
        o = _put_name(out, o, names, name_off, v, store)
        n += 1
    if n == 0:
        o = _put(out, o, 46, store)
    p += c * _size(t)
    o = _put(out, o, 9, store)
    # INFO
    for i in range(n_info):
        key, p, problem = _typed_int(buf, p, se)
        if problem:
            return o, problem
        if key < 0 or key >= name_off.shape[0] - 1 or name_off[key + 1] == name_off[key]:
            return o, F_KEY
        t, c, p = _descriptor(buf, p, se)
        if t < 0:
            return o, F_SHARED if t == -1 else F_TYPE
        if t == T_CHAR and _breaks_text(buf, p, p + c, True):
            return o, F_TEXT
        if i:
            o = _put(out, o, 59, store)
        o = _put_name(out, o, names, name_off, key, store)
        if c > 0 and t != T_NULL:
            o = _put(out, o, 61, store)
            o = _put_values(out, o, buf, p, t, c, store)
        p += c * _size(t)
    if n_info == 0:
        o = _put(out, o, 46, store)
    o = _put(out, o, 10, store)
    return o, F_OK


@_jit
def frame(buf: np.ndarray, start: int, limit: int, max_records: int) -> tuple[np.ndarray, int,
                                                                              int]:
    """Offsets of the whole records in buf from ``start`` (at most ``max_records``).

    Returns (offsets, end of the last whole record, total length of the record at ``end``
    if it is longer than ``limit`` bytes else 0); a record is whole when its 8 length bytes
    and both parts are in buf."""
    n = buf.shape[0]
    cap = 64
    offs = np.empty(cap, np.int64)
    m = 0
    p = start
    while p + 8 <= n and m < max_records:
        total = 8 + np.int64(_u32(buf, p)) + np.int64(_u32(buf, p + 4))
        if total - 8 > limit:
            return offs[:m], p, total
        if p + total > n:
            break
        if m == cap:
            cap *= 2
            grown = np.empty(cap, np.int64)
            grown[:m] = offs[:m]
            offs = grown
        offs[m] = p
        m += 1
        p += total
    return offs[:m], p, 0


@_pjit
def render_records(buf: np.ndarray, offs: np.ndarray, contigs: np.ndarray,
                   contig_off: np.ndarray, names: np.ndarray, name_off: np.ndarray):
    """Every record's CHROM..INFO as VCF text lines, plus what the genotype step needs.

    Returns (text, line starts, line ends, QUAL bits, individual part start and end, n_fmt,
    n_sample of each record, F_* problem of each record)."""
    n = offs.shape[0]
    length = np.zeros(n, np.int64)
    fatal = np.zeros(n, np.int8)
    qual_bits = np.zeros(n, np.uint32)
    ip = np.zeros(n, np.int64)
    ie = np.zeros(n, np.int64)
    n_fmt = np.zeros(n, np.int64)
    n_sample = np.zeros(n, np.int64)
    none = np.empty(0, np.uint8)
    for r in nb.prange(n):
        p = offs[r]
        l_shared = np.int64(_u32(buf, p))
        sh = p + 8
        se = sh + l_shared
        ip[r] = se
        ie[r] = se + np.int64(_u32(buf, p + 4))
        o, f = _render(buf, sh, se, contigs, contig_off, names, name_off, none, 0, False)
        fatal[r] = f
        length[r] = o
        if l_shared >= 24:
            qual_bits[r] = _u32(buf, sh + 12)
            n_sample[r] = np.int64(_u32(buf, sh + 20) & np.uint32(0xFFFFFF))
            n_fmt[r] = np.int64(buf[sh + 23])
    starts = np.zeros(n + 1, np.int64)
    for r in range(n):
        starts[r + 1] = starts[r] + (length[r] if fatal[r] == 0 else 1)
    text = np.empty(starts[n], np.uint8)
    for r in nb.prange(n):
        if fatal[r] == 0:
            p = offs[r]
            _render(buf, p + 8, p + 8 + np.int64(_u32(buf, p)), contigs, contig_off, names,
                    name_off, text, starts[r], True)
        else:
            text[starts[r]] = 10
    ends = starts[1:] - 1
    return text, starts[:n].copy(), ends.copy(), qual_bits, ip, ie, n_fmt, n_sample, fatal


_TWOS = np.uint64(0x0202020202020202)
_HIGH = np.uint64(0xFCFCFCFCFCFCFCFC)
_ONES = np.uint64(0x0101010101010101)
_CODES = np.uint64(0x0003000300030003)
# gathers the 2-bit codes at bits 0, 16, 32, 48 into bits 56, 58, 60, 62 (no carries: every
# other product lands in its own 2-bit field below bit 56, or above bit 63)
_GATHER = np.uint64((1 << 56) | (1 << 42) | (1 << 28) | (1 << 14))


@_jit
def _fast_gt_row(buf: np.ndarray, p: int, n_samples: int, out: np.ndarray) -> int:
    """Pack int8 diploid GT vectors whose alleles are all 0 or 1 (raw values 2..5), 4 samples
    per 8-byte load. Returns 0 if every value matched (``out`` complete), else non-zero."""
    bad = np.uint64(0)
    full = n_samples >> 2
    for b in range(full):
        # each byte - 2 is 0..3 when every raw value is 2..5 (a borrow only from a byte < 2)
        y = _load_u64(buf, p + 8 * b) - _TWOS
        bad |= y & _HIGH
        a = (y >> np.uint64(1)) & _ONES  # the allele of each byte
        z = (a + (a >> np.uint64(8))) & _CODES  # the two alleles of a sample added
        out[b] = np.uint8((z * _GATHER) >> np.uint64(56))
    v = 0
    ibad = 0
    for s in range(4 * full, n_samples):
        r0 = np.int64(buf[p + 2 * s]) - 2
        r1 = np.int64(buf[p + 2 * s + 1]) - 2
        ibad |= (r0 | r1) & ~3
        v |= ((r0 >> 1) + (r1 >> 1)) << (2 * (s & 3))
    if n_samples & 3:
        out[full] = v
    return ibad | np.int64(bad != 0)


@_jit
def _key_before(buf: np.ndarray, p: int, f: int, key: int, n_samples: int) -> bool:
    """Whether one of the first ``f`` FORMAT fields from ``p`` (already walked and found
    inside the record) has the key ``key``: walked again rather than kept, so that no record
    allocates."""
    for _ in range(f):
        k, p, _problem = _typed_int(buf, p, buf.shape[0])
        if k == key:
            return True
        t, c, p = _descriptor(buf, p, buf.shape[0])
        p += c * _size(t) * n_samples
    return False


@_pjit
def decode_genotypes(buf: np.ndarray, ip: np.ndarray, ie: np.ndarray, n_fmt: np.ndarray,
                     n_sample: np.ndarray, gt_key: int, name_off: np.ndarray,
                     n_alt: np.ndarray, err: np.ndarray, row_start: np.ndarray,
                     n_samples: int, n_rows: int):
    """Packed 2-bit codes of every row from the records' GT vectors (rules of
    vcf_gt.parse_genotypes: haploid as homozygous, half-calls missing, ploidy > 2 an error).

    Every FORMAT key must be an ID of the header's dictionary (``name_off``, as in
    render_records; htslib's bcf_record_check refuses an unknown key too) and appear once
    (E_FORMAT_TWICE, as in VCF text: a key given twice has no single value).

    Returns (packed, n_hap, n_half, err_col, no_gt, F_* problem per record); sets ``err``
    (E_* codes) for records that break a rule."""
    n = ip.shape[0]
    nbytes = (n_samples + 3) // 4
    packed = np.zeros((n_rows, nbytes), np.uint8)
    n_hap = np.zeros(n, np.int32)
    n_half = np.zeros(n, np.int32)
    err_col = np.full(n, -1, np.int32)
    no_gt = np.zeros(n, np.bool_)
    fatal = np.zeros(n, np.int8)
    for r in nb.prange(n):
        if err[r] != 0:
            continue
        if n_sample[r] != n_samples:  # also a record with samples in a file without any
            err[r] = E_FEW_SAMPLES if n_sample[r] < n_samples else E_MANY_SAMPLES
            continue
        if n_samples == 0:
            continue
        r0 = row_start[r]
        na = n_alt[r]
        # find GT among the FORMAT fields
        p = ip[r]
        end = ie[r]
        gp = -1
        gt_t = 0
        gt_c = 0
        for f in range(n_fmt[r]):
            key, p, problem = _typed_int(buf, p, end)
            if problem:
                fatal[r] = F_INDIV if problem == F_SHARED else F_TYPE
                break
            if key < 0 or key >= name_off.shape[0] - 1 or name_off[key + 1] == name_off[key]:
                fatal[r] = F_FMT_KEY
                break
            if f > 0 and _key_before(buf, ip[r], f, key, n_samples):
                err[r] = E_FORMAT_TWICE  # as in VCF text (vcf_fields)
                break
            t, c, p = _descriptor(buf, p, end)
            if t < 0:
                fatal[r] = F_INDIV if t == -1 else F_TYPE
                break
            size = c * _size(t)
            if p + size * n_samples > end:
                fatal[r] = F_INDIV
                break
            if key == gt_key:
                if f != 0:
                    err[r] = E_NO_GT
                    break
                gp = p
                gt_t = t
                gt_c = c
            p += size * n_samples
        if fatal[r] != 0 or err[r] != 0:
            continue
        if gp < 0 or gt_c == 0:
            no_gt[r] = gp < 0
            for rr in range(r0, r0 + max(na, 1)):
                for s in range(n_samples):
                    packed[rr, s >> 2] |= np.uint8(3 << (2 * (s & 3)))
            continue
        if not _is_int(gt_t):
            fatal[r] = F_GT_TYPE
            continue
        if na == 1 and gt_t == T_INT8 and gt_c == 2:
            if _fast_gt_row(buf, gp, n_samples, packed[r0]) == 0:
                continue
            for b in range(nbytes):
                packed[r0, b] = 0
        size = _size(gt_t)
        eov = _int_min(gt_t) + 1
        hap = 0
        half = 0
        for s in range(n_samples):
            q = gp + s * gt_c * size
            v0 = _int_at(buf, q, gt_t)
            a1 = -1
            a2 = -1
            haploid = False
            if v0 == eov:  # no allele at all: missing
                pass
            else:
                if v0 < 0:
                    err[r] = E_GT
                    err_col[r] = s
                    break
                a1 = (v0 >> 1) - 1
                a2 = a1
                haploid = True
                if gt_c >= 2:
                    v1 = _int_at(buf, q + size, gt_t)
                    if v1 != eov:
                        if v1 < 0:
                            err[r] = E_GT
                            err_col[r] = s
                            break
                        a2 = (v1 >> 1) - 1
                        haploid = False
                        for j in range(2, gt_c):
                            if _int_at(buf, q + j * size, gt_t) != eov:
                                err[r] = E_PLOIDY
                                err_col[r] = s
                                break
                        if err[r] != 0:
                            break
            if a1 > na or a2 > na:
                err[r] = E_ALLELE
                err_col[r] = s
                break
            code, h, hp = call_code(a1, a2, haploid)
            half += h
            hap += hp
            if na <= 1:
                packed[r0, s >> 2] |= np.uint8(code << (2 * (s & 3)))
            else:
                place_split_call(packed, r0, s, na, a1, a2)
        if err[r] != 0:
            for rr in range(r0, r0 + max(na, 1)):
                for b in range(nbytes):
                    packed[rr, b] = 0
        n_hap[r] = hap
        n_half[r] = half
    return packed, n_hap, n_half, err_col, no_gt, fatal
