"""Small-cell and complementary suppression of linked count tables (people per group).

The report shows sample counts in several tables that are tied by sums: per grouping column
(groups + unlabelled = cohort), per batch and column (groups = batch size), per group over
batches (batches = the group's total) and cross-tabulations (a row of population × sex sums to
the population's total, a column to the sex's total). A suppressed cell that is the only
unknown of any one of these sums would be recovered by subtraction.

:func:`protect_tables` takes every cell and every sum, suppresses cells of 1 … k−1 (0 is not
small), then repeats until nothing changes: for each sum with exactly one unknown among its
terms and its total, the released non-zero term with the smallest count is suppressed too
(``complementary``), or the total if no term is left. Totals that are public (the cohort and
batch sizes) are never suppressed. This is the usual iterative heuristic of statistical
offices: it guarantees that no sum has a single unknown (tested, together with a linear
programming check that no suppressed cell has a single feasible value, on random tables).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from vault.privacy.cells import is_small

SMALL = "count<k"
COMPLEMENTARY = "complementary"


@dataclass(frozen=True)
class Sum:
    """``total`` (a cell id, or None for a public constant) = Σ ``terms``."""

    total: Hashable | None
    terms: tuple[Hashable, ...]


@dataclass
class Protected:
    """Reason per suppressed cell (absent: released)."""

    reasons: dict[Hashable, str] = field(default_factory=dict)

    def released(self, cell: Hashable) -> bool:
        return cell not in self.reasons


def protect_tables(cells: dict[Hashable, int], sums: Iterable[Sum], k: int,
                   public: Iterable[Hashable] = (),
                   presuppressed: Iterable[Hashable] = ()) -> Protected:
    """Which cells to suppress (and why) so that no cell of 1 … k−1 shows or follows from a
    sum. ``public`` cells are never suppressed (they must not be small); ``presuppressed``
    cells are suppressed as complementary from the start (e.g. by another rule)."""
    fixed = set(public)
    sums = list(sums)
    out = Protected()
    for c, n in cells.items():
        if is_small(int(n), k):
            if c in fixed:
                raise ValueError(f"public cell {c!r} holds a small count")
            out.reasons[c] = SMALL
    for c in presuppressed:
        if c in cells and c not in out.reasons and c not in fixed:
            out.reasons[c] = COMPLEMENTARY
    changed = True
    while changed:
        changed = False
        for s in sums:
            members = list(s.terms) + ([s.total] if s.total is not None else [])
            unknown = [c for c in members if c in out.reasons]
            if len(unknown) != 1:
                continue
            # one unknown: it equals total − Σ others (or Σ terms); hide one more
            pick = sorted((int(cells[c]), str(c)) for c in s.terms
                          if c not in out.reasons and c not in fixed and int(cells[c]) > 0)
            if pick:
                choice = next(c for c in s.terms if str(c) == pick[0][1]
                              and int(cells[c]) == pick[0][0])
            elif s.total is not None and s.total not in fixed and s.total not in out.reasons:
                choice = s.total
            else:
                # the only released terms are 0 (known to be 0 here) and the total is public:
                # hide a zero term so that the suppressed cell has a second unknown
                zeros = [c for c in s.terms if c not in out.reasons and c not in fixed]
                if not zeros:
                    raise ValueError(f"cannot protect the sum over {s.terms!r}")
                choice = zeros[0]
            out.reasons[choice] = COMPLEMENTARY
            changed = True
    return out
