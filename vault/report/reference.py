"""The reference (target) distribution a cohort is compared with: ``--reference target.tsv``.

A tab-separated file with the header ``column	group	expected_share`` and one row per group:
the grouping column, the group's name and its expected share (0 … 1) of the target
population (e.g. census figures, the recruitment plan). The shares of a column must sum to 1
(± 0.001); every group must be a reportable group of the dataset (unknown groups and groups
under the minimum size are refused alike, so the error never tells whether a tiny group
exists). Lines starting with ``#`` and blank lines are ignored. The API takes the same
shares as ``reference=column:group=share`` parameters (:func:`reference_from_params`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from vault.errors import ConfigError

HEADER = ("column", "group", "expected_share")
TOLERANCE = 1e-3
MAX_BYTES = 1 << 20
MAX_PARAMS = 200


def load_reference(path: Path, groups: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """``{column: {group: share}}`` from ``path``; ``groups``: the reportable groups per column.

    Raises ConfigError with the file, the line and what to fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"reference file {path} does not exist")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"reference file {path} is larger than {MAX_BYTES} bytes")
    text = path.read_text(encoding="utf-8")
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ConfigError(f"reference file {path} is empty: expected a header "
                          f"{chr(9).join(HEADER)!r} and one row per group")
    head_no, head = lines[0]
    header = tuple(h.strip().lower() for h in head.split("\t"))
    if header != HEADER:
        raise ConfigError(f"{path}:{head_no}: the header must be the three tab-separated "
                          f"columns {', '.join(HEADER)} (found {', '.join(header)!s})")
    rows = []
    for no, line in lines[1:]:
        row = next(csv.reader([line], delimiter="\t"))
        if len(row) != 3:
            raise ConfigError(f"{path}:{no}: expected 3 tab-separated fields "
                              f"(column, group, expected_share), found {len(row)}")
        rows.append((f"{path}:{no}", row))
    return _shares(rows, str(path), groups, "a header but no rows")


def reference_from_params(items: Sequence[str], groups: Mapping[str, Sequence[str]]
                          ) -> dict[str, dict[str, float]]:
    """The same shares from the API's ``reference`` parameters, one ``column:group=share``
    each (``population:pop1=0.6``); the same checks as :func:`load_reference`."""
    if len(items) > MAX_PARAMS:
        raise ConfigError(f"at most {MAX_PARAMS} reference parameters")
    rows = []
    for i, text in enumerate(items, 1):
        col, sep, rest = str(text).partition(":")
        group, sep2, share = rest.rpartition("=")
        if not sep or not sep2 or not col.strip() or not group.strip():
            raise ConfigError(f"reference parameter #{i} {str(text)[:80]!r}: expected "
                              "column:group=share, e.g. population:pop1=0.18")
        rows.append((f"reference parameter #{i}", [col, group, share]))
    return _shares(rows, "the reference parameters", groups, "no entries")


def _shares(rows: Sequence[tuple[str, Sequence[str]]], source: str,
            groups: Mapping[str, Sequence[str]], empty: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for where, row in rows:
        col, group, share_text = (x.strip() for x in row)
        if col not in groups:
            raise ConfigError(f"{where}: unknown grouping column {col!r}; this dataset "
                              f"has: {', '.join(groups) or 'none'}")
        if group not in groups[col]:
            raise ConfigError(
                f"{where}: {group!r} is not a reportable group of column {col!r} "
                f"(reportable: {', '.join(groups[col]) or 'none'}; groups under the minimum "
                "size are not named)")
        try:
            share = float(share_text)
        except ValueError:
            raise ConfigError(f"{where}: expected_share {share_text!r} is not a number "
                              "(write 0.18 for 18 %)") from None
        if not math.isfinite(share) or not 0.0 <= share <= 1.0:
            raise ConfigError(f"{where}: expected_share {share_text} must be between 0 "
                              "and 1 (write 0.18 for 18 %)")
        if group in out.setdefault(col, {}):
            raise ConfigError(f"{where}: group {group!r} of column {col!r} is listed "
                              "twice")
        out[col][group] = share
    if not out:
        raise ConfigError(f"{source} has {empty}")
    for col, shares in out.items():
        total = sum(shares.values())
        if abs(total - 1.0) > TOLERANCE:
            raise ConfigError(f"{source}: the expected shares of column {col!r} sum to "
                              f"{total:.4f}, not 1: list every group of the column once, "
                              "with shares that add up to 1")
    return out
