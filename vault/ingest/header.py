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
# VCF 4.3 §1.4.7 (the same rule as CHROM in vcf_fields.py)
_CONTIG_RE = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*")


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
    contigs: list[str] = []
    meta: dict[str, list[str]] = {}
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
                if key == "contig":
                    problem = contig_name_problem(m.group(1))
                    if problem:
                        raise InvalidInput(path, i, problem)
                    if m.group(1) in contigs:
                        raise InvalidInput(path, i, f"contig {m.group(1)!r} declared twice")
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
    if len(cols) > 8:
        if cols[8] != "FORMAT":
            raise InvalidInput(path, chrom_line, "column 9 of the #CHROM line must be FORMAT")
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
                     contigs=contigs, meta=meta)


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
