"""Checks on the sample sheet's grouping labels before anything is stored.

* Control characters (including bidi overrides) in a column name or label are refused: a
  label is shown to people in terminals, reports and spreadsheets.
* A grouping column that looks like an identifier — at least :data:`MIN_VALUES_TO_JUDGE`
  labelled samples, more than half of them with a label no other sample of the batch has
  (an MRN, a date of birth, a name) — is refused unless an admin insists
  (``--allow-identifying-column COL``): grouping by it would single out people.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from vault.errors import SampleSheetError
from vault.ingest.samplesheet import SampleSheet

MIN_VALUES_TO_JUDGE = 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def identifier_like(values: Iterable[str | None]) -> bool:
    """True if most labelled samples carry a label that no other sample has."""
    labelled = [v for v in values if v is not None]
    if len(labelled) < MIN_VALUES_TO_JUDGE:
        return False
    counts = Counter(labelled)
    singletons = sum(1 for v in labelled if counts[v] == 1)
    return singletons * 2 > len(labelled)


def check_labels(sheet: SampleSheet, *, allow_identifying: Iterable[str] = (),
                 where: str) -> None:
    """Raise SampleSheetError for a control character or an identifier-like column."""
    allowed = set(allow_identifying)
    unknown = allowed - set(sheet.columns)
    if unknown:
        raise SampleSheetError(f"{where}: --allow-identifying-column names no column of the "
                               f"sample sheet: {', '.join(sorted(unknown))}")
    for col, values in sheet.columns.items():
        if _CONTROL.search(col):
            raise SampleSheetError(f"{where}: a column name contains a control character; "
                                   "remove it")
        bad = [i for i, v in enumerate(values) if v is not None and _CONTROL.search(v)]
        if bad:
            raise SampleSheetError(
                f"{where}: column {col!r}: {len(bad)} label(s) contain control characters "
                f"(first at sample #{bad[0] + 1} in VCF order); labels must be plain text")
        if col not in allowed and identifier_like(values):
            raise SampleSheetError(
                f"{where}: column {col!r} looks like an identifier (most of its values belong "
                "to a single sample), so grouping by it would single people out; remove it "
                f"from the sheet, or (admin) keep it with --allow-identifying-column {col}")
