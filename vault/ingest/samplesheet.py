"""Sample sheets: TSV/CSV files that give each VCF sample its grouping columns.

The first column holds the sample id (header ``sample`` or ``sample_id``) and must match the
VCF header exactly: every VCF sample once, nothing else. The other columns are grouping
columns (population, sex, phenotype, cohort, ...). Empty, ``NA`` and ``.`` mean unknown.
Errors name the sheet line or the VCF column, never the id itself.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from vault.errors import SampleSheetError
from vault.store.format import SAMPLE_BASE_COLUMNS

ID_COLUMNS = ("sample", "sample_id")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
NULLS = {"", "NA", "N/A", "."}
_SHOW = 5


@dataclass
class SampleSheet:
    """Grouping columns, each a list of values (or None) in VCF sample order."""

    columns: dict[str, list[str | None]]

    @classmethod
    def empty(cls) -> SampleSheet:
        return cls({})


def _positions(items: list[int]) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def read_sample_sheet(path: Path, vcf_samples: list[str]) -> SampleSheet:
    if not path.is_file():
        raise SampleSheetError(f"{path}: sample sheet not found")
    text = path.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if ("\t" in first or path.suffix.lower() in (".tsv", ".txt")) else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if not rows or not any(c.strip() for c in rows[0]):
        raise SampleSheetError(f"{path}: empty sample sheet (expected a header line)")
    header = [h.strip() for h in rows[0]]
    if header[0].lower() not in ID_COLUMNS:
        raise SampleSheetError(f"{path}:1: the first column must be named 'sample' or "
                               "'sample_id'")
    groups = header[1:]
    for name in groups:
        if not _NAME_RE.match(name):
            raise SampleSheetError(f"{path}:1: invalid column name {name!r} (use letters, "
                                   "digits and '_', not starting with a digit)")
        if name in SAMPLE_BASE_COLUMNS or name.lower() in ID_COLUMNS:
            raise SampleSheetError(f"{path}:1: column name {name!r} is reserved")
    if len(set(groups)) != len(groups):
        raise SampleSheetError(f"{path}:1: duplicate column names")
    by_id: dict[str, tuple[int, list[str]]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise SampleSheetError(f"{path}:{lineno}: {len(row)} fields, the header has "
                                   f"{len(header)}")
        sid = row[0].strip()
        if not sid:
            raise SampleSheetError(f"{path}:{lineno}: empty sample id")
        if sid in by_id:
            raise SampleSheetError(f"{path}:{lineno}: duplicate sample id (also on line "
                                   f"{by_id[sid][0]})")
        by_id[sid] = (lineno, [c.strip() for c in row[1:]])
    vcf_set = set(vcf_samples)
    extra = sorted(line for sid, (line, _) in by_id.items() if sid not in vcf_set)
    missing = [i + 10 for i, s in enumerate(vcf_samples) if s not in by_id]
    problems = []
    if extra:
        problems.append(f"{len(extra)} sheet row(s) name a sample that is not in the VCF "
                        f"header (sheet lines {_positions(extra)})")
    if missing:
        problems.append(f"{len(missing)} VCF sample(s) have no row in the sheet (VCF #CHROM "
                        f"columns {_positions(missing)})")
    if problems:
        raise SampleSheetError(f"{path}: sample ids must match the VCF header exactly: "
                               + "; ".join(problems))
    columns: dict[str, list[str | None]] = {g: [] for g in groups}
    for s in vcf_samples:
        values = by_id[s][1]
        for g, v in zip(groups, values, strict=True):
            columns[g].append(None if v in NULLS else v)
    return SampleSheet(columns)
