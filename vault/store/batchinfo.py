"""A batch's information (source names, QC report) when it lives in several encrypted files.

A batch ingested in one command has one info file: the QC report over all its source files
(with groups) and one entry per source file (name, sha256, its own QC without groups). A part
added later (``genovault ingest --batch``) is written by the ingest role, which cannot decrypt
the batch's info file to update it (and never rewrites a file), so the part brings an info
file of its own: its QC without groups (the group labels are in the batch's encrypted
samples table) and its missing calls per sample. :func:`merge` turns them into one report
for the whole batch, groups included, exactly as if every file had been ingested at once.
Everything here is decrypted data: whoever shows it applies disclosure control.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

UNKNOWN = "(unknown)"
#: key of a part's info that holds its missing calls per sample (consumed by merge, never shown)
MISSING_PER_SAMPLE = "missing_per_sample"


def _missing(missingness: float | None, rows: int, n: int) -> int:
    """Missing calls behind a missingness ratio (exact: the ratio was calls / (rows * n))."""
    return 0 if missingness is None else round(missingness * rows * n)


def merge(info: Mapping[str, Any], parts: Sequence[Mapping[str, Any]],
          labels: Callable[[], Mapping[str, Sequence[str | None]]]) -> dict[str, Any]:
    """The batch's info with the parts' QC added in (``labels()``: the batch's group labels
    per sample and column, read only when a part needs them)."""
    qc = dict(info["qc"])
    n = int(qc["samples"])
    rows = int(qc["variants_written"] or 0)
    missing = _missing(qc["missingness"], rows, n)
    groups = {col: {g: dict(v, missing=_missing(v["missingness"], rows, int(v["samples"])))
                    for g, v in per.items()} for col, per in qc.get("groups", {}).items()}
    sources = list(info.get("sources", []))
    for part in parts:
        pqc = part["qc"]
        for key, value in pqc.items():
            if key in ("samples", "missingness", "groups"):
                continue
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int):
                qc[key] = int(qc.get(key) or 0) + value
            elif isinstance(value, dict):  # counts per reason (skipped records)
                merged = dict(qc.get(key) or {})
                for k, v in value.items():
                    merged[k] = int(merged.get(k, 0)) + int(v)
                qc[key] = dict(sorted(merged.items()))
        per_sample = part[MISSING_PER_SAMPLE]
        missing += sum(per_sample)
        if groups:
            by_col = labels()
            for col, per in groups.items():
                for s, lab in enumerate(by_col[col]):
                    per[UNKNOWN if lab is None else lab]["missing"] += per_sample[s]
        sources += part.get("sources", [])
    rows = int(qc["variants_written"] or 0)
    qc["missingness"] = missing / (rows * n) if rows and n else None
    qc["groups"] = {col: {g: {"samples": v["samples"],
                              "missingness": (v["missing"] / (rows * v["samples"]))
                              if rows and v["samples"] else None}
                          for g, v in per.items()} for col, per in groups.items()}
    out = {k: v for k, v in info.items() if k != MISSING_PER_SAMPLE}
    return {**out, "qc": qc, "sources": sources}
