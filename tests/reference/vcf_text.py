"""A slow, plain-Python decoder of VCF *text* into the store's 2-bit codes: the oracle of the
differential fuzz tests (tests/reliability_ingest/test_fuzz_parse.py).

It decodes only what the store keeps of a record: CHROM, POS, the ALT alleles (one row per
ALT, ``bcftools norm -m-``) and the GT of every sample, by the rules of docs/format.md (the
same as tests/reference/vcf_decode.py, which reads through pysam):

* GT is the first FORMAT key (a FORMAT without GT: every sample missing); its value runs to
  the first ``:`` of the sample column; alleles are integers or ``.``, separated by ``/`` or
  ``|``;
* in the row for ALT k, allele k counts as ALT and every other allele as REF;
* diploid: number of ALT copies; a half-call (``./1``) or ``./.`` is missing (3);
* haploid: homozygous (``1`` -> 2 in row 1), ``.`` missing; ploidy > 2 is an error;
* an allele index above the number of ALT alleles is an error.

It does not judge the other columns (that is the parser's job); it raises ``ValueError`` for a
record whose genotypes it cannot decode by these rules.
"""

from __future__ import annotations

from dataclasses import dataclass

MISSING = 3


@dataclass
class Row:
    chrom: str
    pos: int
    alt: str
    codes: list[int]
    n_haploid: int


def _alleles(gt: str) -> list[int | None]:
    parts: list[str] = []
    token = ""
    for ch in gt:
        if ch in "/|":
            parts.append(token)
            token = ""
        else:
            token += ch
    parts.append(token)
    out: list[int | None] = []
    for p in parts:
        if p == ".":
            out.append(None)
        elif p.isdigit() and p.isascii():
            out.append(int(p))
        else:
            raise ValueError(f"malformed GT {gt!r}")
    return out


def decode_record(line: str, n_samples: int) -> list[Row]:
    """The rows of one data line (without its newline)."""
    cols = line.split("\t")
    chrom, pos = cols[0], int(cols[1])
    alt_field = cols[4]
    alts = ["."] if alt_field == "." else alt_field.split(",")
    n_alt = 0 if alt_field == "." else len(alts)
    fmt = cols[8].split(":") if len(cols) > 8 else []
    samples = cols[9:]
    if len(samples) != n_samples:
        raise ValueError(f"{len(samples)} sample columns, the header has {n_samples}")
    has_gt = bool(fmt) and fmt[0] == "GT"
    if "GT" in fmt and not has_gt:
        raise ValueError("GT is not the first FORMAT key")
    calls: list[list[int | None] | None] = []
    for s in samples:
        if not has_gt:
            calls.append(None)
            continue
        alleles = _alleles(s.split(":", 1)[0])
        if len(alleles) > 2:
            raise ValueError("ploidy > 2")
        if any(a is not None and a > n_alt for a in alleles):
            raise ValueError("allele index out of range")
        calls.append(alleles)
    rows = []
    for k, alt in enumerate(alts, start=1):
        target = k if n_alt else -1
        codes = []
        haploid = 0
        for c in calls:
            if c is None:
                codes.append(MISSING)
            elif len(c) == 1:
                if c[0] is None:
                    codes.append(MISSING)
                else:
                    codes.append(2 if c[0] == target else 0)
                    haploid += 1
            elif c[0] is None or c[1] is None:
                codes.append(MISSING)
            else:
                codes.append(int(c[0] == target) + int(c[1] == target))
        rows.append(Row(chrom, pos, alt, codes, haploid))
    return rows


def decode_text(text: str, n_samples: int) -> list[Row]:
    """Every row of the data lines of ``text`` (header lines skipped)."""
    rows: list[Row] = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not line or line.startswith("#"):
            continue
        rows += decode_record(line, n_samples)
    return rows
