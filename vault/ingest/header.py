"""VCF header validation: meta lines, the #CHROM line, sample ids, declared contigs.

Messages name the file and line; they never quote a sample id (an identifier of a person),
only its column number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vault.errors import InvalidInput

FIXED = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
_STRUCTURED = ("##INFO=", "##FORMAT=", "##FILTER=", "##contig=", "##ALT=")
_ID_RE = re.compile(r"[<,]ID=([^,>]+)")
_VERSION_RE = re.compile(r"VCFv4\.[0-9]+")
# VCF 4.3 §1.4.7 (the same rule as CHROM in vcf_fields.py)
_CONTIG_RE = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*")


def header_text(raw: bytes, path: str, line: int) -> str:
    """Header bytes (one line, or several joined by newlines) as text; InvalidInput at the
    line of the first bad byte if the ``#CHROM`` line is not UTF-8 (VCF 4.3 §1.2): decoding
    it with replacement would change a sample id silently, so two different ids could
    become one id (and one pseudonym). A meta line (``##``) that is not UTF-8 is decoded
    with replacement, as htslib reads it (a Latin-1 description in an older file): the IDs
    GenoVault keeps from meta lines are checked against their ASCII grammars anyway."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = raw.split(b"\n")
    for i, one in enumerate(lines):
        if one.startswith(b"#CHROM"):
            try:
                one.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(path, line + i,
                                   "the #CHROM line is not valid UTF-8 (VCF 4.3 §1.2: VCF "
                                   "text is UTF-8; read with replacement two sample ids "
                                   "could become one): convert the file, e.g. with "
                                   "`iconv -f latin1 -t utf-8`") from None
    return "\n".join(one.decode("utf-8", "replace") for one in lines)


def contig_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a contig ID (VCF 4.3 §1.4.7), or None.

    A ':' is allowed here although GenoVault refuses it in CHROM (it is reserved by the
    region syntax): GRCh38 headers declare HLA contigs such as ``HLA-A*01:01:01:01`` in
    nearly every file, so only records that use such a contig are refused.
    """
    if not _CONTIG_RE.fullmatch(name):
        return (f"contig ID {name[:60]!r} is not a valid contig name: VCF 4.3 allows only "
                "[0-9A-Za-z!#$%&+./:;?@^_|~-] then also '*' and '=' (no whitespace, control "
                "characters, commas, quotes or brackets)")
    return None


@dataclass
class VcfHeader:
    """What ingest needs from a VCF header."""

    n_lines: int
    fileformat: str
    samples: list[str]
    contigs: list[str] = field(default_factory=list)
    meta: dict[str, list[str]] = field(default_factory=dict)
    #: ``##INFO`` lines by ID: (line number, the line), first declaration first; parsed on
    #: demand by :func:`info_declaration` (only the INFO fields an ingest keeps are checked)
    info_lines: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def has_samples(self) -> bool:
        return bool(self.samples)


def parse_header(lines: list[str], path: str) -> VcfHeader:
    """Validate header lines (without newlines) and return what they declare."""
    if not lines:
        raise InvalidInput(path, 1,
                           "no VCF header: the file must start with '##fileformat=VCFv4.x'")
    if not lines[0].startswith("##fileformat=VCFv"):
        raise InvalidInput(path, 1, "first line must be '##fileformat=VCFv4.x'")
    fileformat = lines[0].split("=", 1)[1]
    if not _VERSION_RE.fullmatch(fileformat):
        # VCF 4.3 §1.4.1: the version is required; 3.x files follow other rules (htslib
        # reads any text here as if it were 4.x)
        raise InvalidInput(path, 1, f"##fileformat must be a VCF 4 version (VCFv4.0 to "
                                    f"VCFv4.5), got {fileformat[:40]!r}: GenoVault reads "
                                    "VCF 4 only")
    contigs: list[str] = []
    contig_lines: dict[str, tuple[int, str]] = {}
    meta: dict[str, list[str]] = {}
    info_lines: dict[str, list[tuple[int, str]]] = {}
    chrom_line = None
    for i, line in enumerate(lines, start=1):
        if line.startswith("##"):
            if chrom_line is not None:
                raise InvalidInput(path, i, "meta-information line after the #CHROM line")
            if line.startswith(_STRUCTURED):
                key = line[2:line.index("=")]
                if not (line.endswith(">") and "=<" in line):
                    raise InvalidInput(path, i, f"malformed ##{key} line: expected "
                                                f"##{key}=<ID=...,...>")
                m = _ID_RE.search(line)
                if not m:
                    raise InvalidInput(path, i, f"##{key} line without ID=")
                meta.setdefault(key, []).append(m.group(1))
                if key == "INFO":
                    info_lines.setdefault(m.group(1), []).append((i, line))
                if key == "contig":
                    problem = contig_name_problem(m.group(1))
                    if problem:
                        raise InvalidInput(path, i, problem)
                    if m.group(1) in contig_lines:
                        first, text = contig_lines[m.group(1)]
                        same = "the same line" if text == line else "a different line"
                        raise InvalidInput(path, i, f"contig {m.group(1)!r} declared twice "
                                                    f"(line {first} declares it too, with "
                                                    f"{same}): keep one ##contig line per ID "
                                                    "(the spec's header dictionaries hold "
                                                    "each ID once)")
                    contig_lines[m.group(1)] = (i, line)
                    contigs.append(m.group(1))
            elif "=" not in line:
                raise InvalidInput(path, i, "meta-information line without '=' "
                                            "(expected ##key=value)")
        elif line.startswith("#CHROM"):
            if chrom_line is not None:
                raise InvalidInput(path, i, "second #CHROM line")
            chrom_line = i
        else:
            raise InvalidInput(path, i, "header line must start with '##' or '#CHROM'")
    if chrom_line is None:
        raise InvalidInput(path, len(lines) + 1,
                           "missing '#CHROM' header line before the first record")
    if chrom_line != len(lines):
        raise InvalidInput(path, chrom_line + 1, "header continues after the #CHROM line")
    cols = lines[-1].split("\t")
    if cols[:8] != FIXED:
        raise InvalidInput(path, chrom_line,
                           "the #CHROM line must be tab-separated and start with "
                           + "\\t".join(FIXED))
    samples: list[str] = []
    if len(cols) > 8 and cols[-1] == "":
        # htslib: "Empty sample name: trailing spaces/tabs in the header line?"
        raise InvalidInput(path, chrom_line, f"the #CHROM line ends with a tab (an empty "
                                             f"column {len(cols)}): remove trailing tabs")
    if len(cols) > 8:
        if cols[8] != "FORMAT":
            raise InvalidInput(path, chrom_line, "column 9 of the #CHROM line must be FORMAT")
        if len(cols) == 9:
            # VCF 4.3 §1.5: FORMAT is followed by the sample IDs; htslib refuses the line
            # ("either FORMAT is missing or spaces are present instead of tabs")
            raise InvalidInput(path, chrom_line, "the #CHROM line has a FORMAT column but no "
                                                 "sample columns: a file without samples "
                                                 "ends the #CHROM line at INFO")
        samples = cols[9:]
        seen: dict[str, int] = {}
        for j, s in enumerate(samples):
            col = j + 10
            if not s.strip() or s != s.strip():
                raise InvalidInput(path, chrom_line, f"empty sample name or stray whitespace in "
                                                     f"column {col} of the #CHROM line")
            if s in seen:
                raise InvalidInput(path, chrom_line, f"duplicate sample id in columns "
                                                     f"{seen[s]} and {col} of the #CHROM line")
            seen[s] = col
    return VcfHeader(n_lines=len(lines), fileformat=fileformat, samples=samples,
                     contigs=contigs, meta=meta, info_lines=info_lines)


def sample_list_problem(samples: list[str], other: list[str]) -> str | None:
    """Why the sample list ``samples`` is not ``other`` (same ids, same order), or None.

    Says where the lists part (column numbers, never an id): different counts, ids that are
    missing or extra, or the same ids in another order.
    """
    if samples == other:
        return None
    if len(samples) != len(other):
        detail = f"{len(samples)} sample(s) against {len(other)}"
    elif set(samples) != set(other):
        mine = set(other)
        col = next(j for j, s in enumerate(samples) if s not in mine) + 10
        detail = f"other samples (column {col} holds an id the other file does not have)"
    else:
        col = next(j for j, (a, b) in enumerate(zip(samples, other, strict=True)) if a != b)
        detail = (f"the same samples in a different order (first difference: column {col + 10}"
                  "; reorder with `bcftools view -S samples.txt`)")
    return detail


# -- ##INFO declarations ---------------------------------------------------------------------

INFO_NUMBERS = ("A", "R", "G", ".")
INFO_TYPES = ("Integer", "Float", "Flag", "Character", "String")
_NUMBER_RE = re.compile(r"[0-9]+|[ARG.]")


@dataclass(frozen=True)
class InfoDeclaration:
    """What a ``##INFO=<ID=…,Number=…,Type=…>`` line declares (Description is not needed)."""

    id: str
    number: str  # "A", "R", "G", "." or a count such as "1"
    type: str  # one of INFO_TYPES
    line: int


def structured_fields(line: str) -> dict[str, str] | None:
    """The ``key=value`` pairs of a structured meta line (``##KEY=<…>``), quoted values
    unquoted (``\\"`` and ``\\\\`` escapes); None if the text inside ``<…>`` does not split
    into such pairs. The first occurrence of a key wins."""
    start = line.find("=<")
    if start < 0 or not line.endswith(">"):
        return None
    text = line[start + 2:-1]
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq <= i:
            return None
        key = text[i:eq]
        if "," in key or '"' in key:
            return None
        j = eq + 1
        if j < n and text[j] == '"':
            j += 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                return None  # unterminated quote
            value = "".join(buf)
            j += 1
            if j < n and text[j] != ",":
                return None
        else:
            k = text.find(",", j)
            k = n if k < 0 else k
            value = text[j:k]
            j = k
        out.setdefault(key, value)
        i = j + 1 if j < n else n
    return out


def info_declaration(header: VcfHeader, info_id: str, path: str) -> InfoDeclaration:
    """The checked declaration of INFO field ``info_id``; InvalidInput naming the field if the
    header does not declare it, declares it twice differently, or declares it malformed."""
    found = header.info_lines.get(info_id)
    if not found:
        declared = ", ".join(list(header.info_lines)[:20]) or "none"
        raise InvalidInput(path, None, f"INFO field {info_id!r} is not declared in the header "
                                       f"(no ##INFO=<ID={info_id},…> line), so its Number and "
                                       f"Type are unknown; the header declares: {declared}")
    decls = []
    for line_no, line in found:
        f = structured_fields(line)
        if f is None:
            raise InvalidInput(path, line_no, f"malformed ##INFO line for {info_id!r}: expected "
                                              "##INFO=<ID=…,Number=…,Type=…,Description=\"…\">")
        number, type_ = f.get("Number"), f.get("Type")
        if number is None or not _NUMBER_RE.fullmatch(number):
            raise InvalidInput(path, line_no, f"##INFO {info_id!r}: Number must be a count or "
                                              f"one of A, R, G, '.', got {number!r}")
        if type_ not in INFO_TYPES:
            raise InvalidInput(path, line_no, f"##INFO {info_id!r}: Type must be one of "
                                              f"{', '.join(INFO_TYPES)}, got {type_!r}")
        if type_ != "Flag" and number == "0":
            raise InvalidInput(path, line_no, f"##INFO {info_id!r}: Number=0 is only for "
                                              "Type=Flag")
        decls.append(InfoDeclaration(info_id, number, type_, line_no))
    first = decls[0]
    for d in decls[1:]:
        if (d.number, d.type) != (first.number, first.type):
            raise InvalidInput(path, d.line, f"##INFO {info_id!r} is declared again with "
                                             f"Number={d.number},Type={d.type} (line "
                                             f"{first.line} says Number={first.number},"
                                             f"Type={first.type})")
    return first
