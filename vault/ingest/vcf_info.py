"""Selected INFO fields of VCF records -> typed site columns, split per ALT allele.

``genovault ingest --info AC,VQSLOD,CSQ`` keeps those INFO fields in the sites table. They are
read from the text of the 8th column (the BCF path renders INFO as VCF text into the same
column), typed by the header's ``##INFO`` declaration, checked, and split per ALT allele the
way ``bcftools norm -m-`` splits them:

========  ==============================================  =================================
Number    value of the row for ALT k (1-based)             stored as
========  ==============================================  =================================
A         the k-th value                                   one value
R         [REF value, k-th ALT value]                      list of 2
G         [0/0, 0/k, k/k] (diploid genotype order)         list of 3
1         the value, copied to every row of the record     one value
n, .      every value, copied to every row                 list
Flag      present or not (``Number`` is not looked at)     bool, never null
========  ==============================================  =================================

Integer -> int64, Float -> float64, String and Character -> string (Character is not
checked for length, like htslib). A missing value (``.``, the whole field or one element of a
list) and an absent field are null, never 0. A record without ALT (``.``) has no allele for a
Number=A value: it is null there; R and G then hold the one REF value.

``KEY=`` (an empty value) is null like ``.``, and so is an empty element of a numeric list
(``1,,3``), as htslib reads them; an empty String element stays an empty string.

A kept field whose value does not match its declaration (wrong type, wrong number of values for
the record's ALT count, no value, given twice, a Flag with a value) is an error at its line, or
the record is skipped and counted as ``bad_info`` with ``--skip-invalid``. INFO fields that are
not kept are never looked at. Percent-encoded characters (``%3B``) are kept as written, like
bcftools does.
"""

# mypy: disable-error-code="assignment"
# (numba kernels: mypy cannot follow numpy scalar arithmetic; numba checks the types)
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.jit import jit
from vault.errors import ConfigError
from vault.ingest.header import VcfHeader, info_declaration
from vault.ingest.vcf_scan import gather_strings
from vault.store import format as fmt

SEMI = 59
EQ = 61
DOT = 46

# state of a kept key in one record
ABSENT = 0
VALUE = 1  # KEY=value
BARE = 2  # KEY without '='
TWICE = 3  # the key appears more than once

#: the QC reason of a record skipped for a bad INFO value (``--skip-invalid``)
SKIP_REASON = "bad_info"

_INT_RE = r"^[+-]?[0-9]+$"
_FLOAT_RE = r"(?i)^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?$|^[+-]?(inf|infinity|nan)$"


@jit(parallel=True)
def info_spans(buf: np.ndarray, fs: np.ndarray, lines: np.ndarray, keys: np.ndarray,
               key_off: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the value of each wanted key is in the INFO column of each line.

    ``keys`` holds the wanted keys' bytes back to back, ``key_off`` their offsets. Returns
    (start, end, state), each (len(lines), n_keys): the value is ``buf[start:end]`` when state
    is VALUE.
    """
    n = lines.shape[0]
    nk = key_off.shape[0] - 1
    start = np.zeros((n, nk), np.int64)
    end = np.zeros((n, nk), np.int64)
    state = np.zeros((n, nk), np.int8)
    for i in nb.prange(n):
        li = lines[i]
        s = fs[li, 7]
        e = fs[li, 8] - 1
        if e - s == 1 and buf[s] == DOT:
            continue
        p = s
        while p < e:
            q = p
            while q < e and buf[q] != SEMI:
                q += 1
            eq = p
            while eq < q and buf[eq] != EQ:
                eq += 1
            klen = eq - p
            for k in range(nk):
                ko = key_off[k]
                if key_off[k + 1] - ko != klen:
                    continue
                same = True
                for j in range(klen):
                    if buf[p + j] != keys[ko + j]:
                        same = False
                        break
                if not same:
                    continue
                if state[i, k] != ABSENT:
                    state[i, k] = TWICE
                elif eq < q:
                    state[i, k] = VALUE
                    start[i, k] = eq + 1
                    end[i, k] = q
                else:
                    state[i, k] = BARE
                break
            p = q + 1
    return start, end, state


@dataclass(frozen=True)
class InfoField:
    """One kept INFO field as the header declares it."""

    id: str
    number: str
    type: str

    @property
    def column(self) -> str:
        return fmt.info_column(self.id)

    @property
    def arrow_type(self) -> pa.DataType:
        return fmt.info_arrow_type(self.number, self.type)

    def label(self) -> str:
        return f"INFO/{self.id} (Number={self.number}, Type={self.type})"


@dataclass(frozen=True)
class InfoSpec:
    """The INFO fields one ingest keeps, in the order asked for."""

    fields: tuple[InfoField, ...]
    keys: np.ndarray = field(repr=False, compare=False)
    key_off: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def of(cls, fields: Sequence[InfoField]) -> InfoSpec:
        raw = [f.id.encode("ascii") for f in fields]
        off = np.zeros(len(raw) + 1, np.int64)
        np.cumsum([len(r) for r in raw], out=off[1:])
        keys = np.frombuffer(b"".join(raw), np.uint8).copy()
        return cls(tuple(fields), keys, off)


def parse_info_option(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"AC,VQSLOD"`` (or a list of such texts) -> the INFO IDs to keep, checked.

    An ID must be a plain identifier (``[A-Za-z_][A-Za-z0-9_]*``, at most 63 characters) so a
    site filter and a policy file can name it, must not be a fixed site column's name
    (``chrom pos id ref alt qual filter …``, any case), and two IDs may not differ only in case
    (SQL names are case-insensitive).
    """
    if names is None:
        return ()
    texts = [names] if isinstance(names, str) else list(names)
    out: dict[str, None] = {}
    for text in texts:
        for raw in text.split(","):
            name = raw.strip()
            if not name:
                continue
            if not fmt.INFO_ID.fullmatch(name):
                raise ConfigError(
                    f"--info {name[:70]!r}: GenoVault keeps INFO fields whose ID is a plain "
                    "identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters) so that site "
                    "filters and policy files can name it; rename the field first, e.g. "
                    "`bcftools annotate --rename-annots`")
            if name.lower() in fmt.RESERVED_INFO_IDS:
                raise ConfigError(
                    f"--info {name}: this INFO ID has the name of a fixed site column "
                    f"({', '.join(sorted(fmt.RESERVED_INFO_IDS))}; any case), which a site "
                    "filter could not tell apart; rename the field first, e.g. "
                    "`bcftools annotate --rename-annots`")
            out[name] = None
    seen: dict[str, str] = {}
    for name in out:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ConfigError(f"--info names {other!r} and {name!r}, which differ only in "
                              "case: SQL names are case-insensitive, so a filter could not "
                              "tell them apart")
    return tuple(out)


def resolve(names: Sequence[str], header: VcfHeader, path: str) -> InfoSpec:
    """The kept fields as ``header`` declares them (InvalidInput naming an undeclared one)."""
    fields = []
    for name in names:
        d = info_declaration(header, name, path)
        fields.append(InfoField(d.id, d.number, d.type))
    return InfoSpec.of(fields)


@dataclass
class _Values:
    """One field's values for the lines of a chunk."""

    spec: InfoField
    present: np.ndarray  # bool per line: a value (not '.') or, for a Flag, the key
    offsets: np.ndarray | None = None  # int64 per line + 1, into ``flat``
    flat: pa.Array | None = None  # typed elements (null for '.')


@dataclass
class ParsedInfo:
    """The kept INFO fields of some lines, checked; ``bad`` marks lines with a problem."""

    values: list[_Values]
    bad: np.ndarray
    _reasons: list[tuple[np.ndarray, Callable[[int], str]]]

    def reason(self, i: int) -> str:
        """Why line ``i`` (an index into the parsed lines) was refused."""
        for mask, why in self._reasons:
            if mask[i]:
                return why(i)
        raise AssertionError("line is not bad")  # pragma: no cover

    def columns(self, row_line: np.ndarray, allele: np.ndarray) -> dict[str, pa.Array]:
        """The INFO columns of rows whose line (index into the parsed lines) is ``row_line``
        and whose ALT allele (1-based, 0 for a record without ALT) is ``allele``."""
        out: dict[str, pa.Array] = {}
        for v in self.values:
            out[v.spec.column] = _split(v, row_line, allele.astype(np.int64))
        return out


def parse(buf: np.ndarray, fs: np.ndarray, lines: np.ndarray, n_alt: np.ndarray,
          spec: InfoSpec) -> ParsedInfo:
    """Find, check and type the kept fields of chunk lines ``lines`` (``n_alt`` per line)."""
    n = int(lines.size)
    start, end, state = info_spans(buf, fs, lines.astype(np.int64), spec.keys, spec.key_off)
    values: list[_Values] = []
    reasons: list[tuple[np.ndarray, Callable[[int], str]]] = []
    bad = np.zeros(n, np.bool_)
    na = n_alt.astype(np.int64)

    def text(i: int, k: int) -> str:
        return bytes(buf[start[i, k]:end[i, k]]).decode("utf-8", "replace")

    def flag(mask: np.ndarray, why: Callable[[int], str]) -> None:
        if mask.any():
            reasons.append((mask, why))
            bad[mask] = True

    for k, f in enumerate(spec.fields):
        st = state[:, k]

        def twice(i: int, f: InfoField = f) -> str:
            return f"{f.label()} appears more than once in INFO"

        flag(st == TWICE, twice)
        if f.type == "Flag":
            def valued(i: int, f: InfoField = f, k: int = k) -> str:
                return f"{f.label()}: a Flag takes no value, found {text(i, k)[:60]!r}"

            flag(st == VALUE, valued)
            values.append(_Values(f, (st == VALUE) | (st == BARE)))
            continue

        def bare(i: int, f: InfoField = f) -> str:
            return f"{f.label()} has no value (write {f.id}=… or leave it out)"

        flag(st == BARE, bare)
        has = st == VALUE
        s = np.where(has, start[:, k], 0)
        e = np.where(has, end[:, k], 0)
        # '.' and an empty value (``AC=``, which htslib reads as missing) are null
        dot = has & ((e == s) | ((e - s == 1) & (buf[s] == DOT)))
        present = has & ~dot
        v = _Values(f, present)
        values.append(v)
        offsets, data = gather_strings(buf, np.where(present, s, 0), np.where(present, e, 0))
        strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data),
                                              pa.py_buffer(np.packbits(present,
                                                                       bitorder="little")))
        if f.type in ("String", "Character"):
            _check_utf8(strings, present, f, flag)
        lists = pc.split_pattern(strings, ",")
        raw_off = np.asarray(lists.offsets).astype(np.int64)
        elems = lists.values.slice(int(raw_off[0]), int(raw_off[-1] - raw_off[0]))
        v.offsets = raw_off - raw_off[0]
        lengths = np.diff(v.offsets)
        # the number of values the declaration asks for, given the record's ALT count
        want = _expected(f.number, na)
        wrong = present & (want >= 0) & (lengths != want)

        def count(i: int, f: InfoField = f, want: np.ndarray = want,
                  lengths: np.ndarray = lengths) -> str:
            return (f"{f.label()}: a record with {int(na[i])} ALT allele(s) needs {int(want[i])} "
                    f"value(s), found {int(lengths[i])}")

        flag(wrong, count)
        elem_dot = pc.equal(elems, ".")
        if f.type in ("Integer", "Float"):  # an empty number is missing too, as in htslib
            elem_dot = pc.or_(elem_dot, pc.equal(elems, ""))
        ok = _elements_ok(elems, f.type)
        good = np.asarray(pc.or_(elem_dot, ok).to_numpy(zero_copy_only=False), np.bool_)
        elem_line = np.repeat(np.arange(n), lengths)
        bad_elem = np.zeros(n, np.bool_)
        bad_elem[elem_line[~good]] = True

        def malformed(i: int, f: InfoField = f, good: np.ndarray = good,
                      offsets: np.ndarray = v.offsets, elems: pa.Array = elems) -> str:
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            first = lo + int(np.flatnonzero(~good[lo:hi])[0])
            return f"{f.label()}: {str(elems[first].as_py())[:60]!r} is not {_what(f.type)}"

        flag(bad_elem, malformed)
        elems = pc.if_else(elem_dot, pa.scalar(None, pa.string()), elems)
        v.flat = _typed(elems, f, ~good, elem_line, n, flag)
    return ParsedInfo(values, bad, reasons)


def _expected(number: str, na: np.ndarray) -> np.ndarray:
    """Values per record for ``number`` (-1: any count); see the table in the docstring."""
    if number == "A":
        return np.where(na > 0, na, -1)
    if number == "R":
        return na + 1
    if number == "G":
        return (na + 1) * (na + 2) // 2
    if number == ".":
        return np.full(na.shape, -1, np.int64)
    return np.full(na.shape, int(number), np.int64)


def _what(vcf_type: str) -> str:
    return {"Integer": "an Integer", "Float": "a Float"}.get(vcf_type, "text")


def _elements_ok(elems: pa.Array, vcf_type: str) -> pa.Array:
    if vcf_type == "Integer":
        return pc.match_substring_regex(elems, _INT_RE)
    if vcf_type == "Float":
        return pc.match_substring_regex(elems, _FLOAT_RE)
    return pc.greater_equal(pc.utf8_length(elems), 0)  # any text (htslib keeps '' too)


def _check_utf8(strings: pa.Array, present: np.ndarray, f: InfoField,
                flag: Callable[[np.ndarray, Callable[[int], str]], None]) -> None:
    try:
        strings.validate(full=True)
        return
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(len(strings), np.bool_)
    for i in np.flatnonzero(present).tolist():
        try:
            strings[i].as_py()
        except UnicodeDecodeError:
            bad[i] = True

    def why(i: int) -> str:
        return f"{f.label()}: the value is not valid UTF-8 text"

    flag(bad, why)


def _typed(elems: pa.Array, f: InfoField, bad_elem: np.ndarray, elem_line: np.ndarray,
           n_lines: int, flag: Callable[[np.ndarray, Callable[[int], str]], None]) -> pa.Array:
    """String elements -> the field's Arrow type (elements already refused become null)."""
    scalar = fmt.info_arrow_type("1", f.type)
    if scalar == pa.string():
        return elems
    if bad_elem.any():
        elems = pc.if_else(pa.array(bad_elem), pa.scalar(None, pa.string()), elems)
    if f.type == "Integer":
        elems = pc.replace_substring_regex(elems, r"^\+", "")
    try:
        return pc.cast(elems, scalar)
    except pa.ArrowInvalid:
        if f.type != "Integer":
            raise
    # an Integer beyond 64 bits (rare): one element at a time
    texts = elems.to_pylist()
    big = np.array([x is not None and not -(1 << 63) <= int(x) < (1 << 63) for x in texts],
                   np.bool_).reshape(len(texts))
    lines = np.zeros(n_lines, np.bool_)
    lines[elem_line[big]] = True

    def why(i: int) -> str:
        first = int(np.flatnonzero(big & (elem_line == i))[0])
        return f"{f.label()}: {str(texts[first])[:60]!r} does not fit a 64-bit integer"

    flag(lines, why)
    return pa.array([None if x is None or b else int(x) for x, b in zip(texts, big, strict=True)],
                    pa.int64())


def _split(v: _Values, row_line: np.ndarray, k: np.ndarray) -> pa.Array:
    """One field's column for the rows (line index, ALT k) as bcftools norm -m- splits it."""
    f = v.spec
    present = v.present[row_line]
    if f.type == "Flag":
        return pa.array(present, pa.bool_())
    assert v.offsets is not None and v.flat is not None
    o = v.offsets[row_line]
    if f.number in ("A", "1"):
        valid = present & (k >= 1) if f.number == "A" else present
        idx = o + (k - 1 if f.number == "A" else 0)
        return v.flat.take(pa.array(np.where(valid, idx, 0), mask=~valid))
    if f.number == "R":
        lengths = np.where(k >= 1, 2, 1)
        parts = [o, o + k]
    elif f.number == "G":
        g = k * (k + 1) // 2
        lengths = np.where(k >= 1, 3, 1)
        parts = [o, o + g, o + g + k]
    else:  # '.' or a count: every value
        lengths = v.offsets[row_line + 1] - o
        parts = []
    lengths = np.where(present, lengths, 0)
    row_off = np.zeros(row_line.size + 1, np.int64)
    np.cumsum(lengths, out=row_off[1:])
    total = int(row_off[-1])
    if parts:
        idx = np.stack(parts, axis=1).reshape(-1)
        keep = (np.arange(len(parts))[None, :] < lengths[:, None]).reshape(-1)
        idx = idx[keep]
    else:
        idx = np.repeat(o - row_off[:-1], lengths) + np.arange(total)
    values = v.flat.take(pa.array(idx, pa.int64()))
    return pa.ListArray.from_arrays(pa.array(row_off.astype(np.int32)), values,
                                    type=f.arrow_type, mask=pa.array(~present))
