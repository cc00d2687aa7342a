"""Small-cell and complementary suppression of linked count tables (people per group).

Used by the data-quality and representation report (vault.report), which shows sample
counts in several tables that are tied by sums: per grouping column (groups + unlabelled =
cohort), per batch and column (groups = batch size), per group over batches (batches = the
group's total) and cross-tabulations (a row of population × sex sums to the population's
total, a column to the sex's total). A suppressed cell that is the only
unknown of any one of these sums would be recovered by subtraction.

:func:`protect_tables` takes every cell and every sum, suppresses cells of 1 … k−1 (0 is not
small), then repeats until nothing changes: for each sum with exactly one unknown among its
terms and its total, the released non-zero term with the smallest count is suppressed too
(``complementary``), or the total if no term is left. Totals that are public (the cohort and
batch sizes) are never suppressed. This is the usual iterative heuristic of statistical
offices. It is followed by an audit with linear programming over all sums together (counts
>= 0): a suppressed cell that they pin to one value gets a further complementary cell next to
it, until none is pinned (a Hypothesis test checks both on random tables). Interval widths
are not enforced: a suppressed cell may be narrowed to a range, never to one value.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from vault.privacy.cells import is_small

#: a cell id: any hashable value (the report uses tuples such as ("col", column, group))
C = TypeVar("C", bound=Hashable)

SMALL = "count<k"
COMPLEMENTARY = "complementary"


@dataclass(frozen=True)
class Sum(Generic[C]):
    """``total`` (a cell id, or None for a public constant) = Σ ``terms``."""

    total: C | None
    terms: tuple[C, ...]


@dataclass
class Protected(Generic[C]):
    """Reason per suppressed cell (absent: released)."""

    reasons: dict[C, str] = field(default_factory=dict)

    def released(self, cell: C) -> bool:
        return cell not in self.reasons


def protect_tables(cells: Mapping[C, int], sums: Iterable[Sum[C]], k: int,
                   public: Iterable[C] = (),
                   presuppressed: Iterable[C] | Mapping[C, str] = ()
                   ) -> Protected[C]:
    """Which cells to suppress (and why) so that no cell of 1 … k−1 shows or follows from a
    sum. ``public`` cells are never suppressed (they must not be small); ``presuppressed``
    cells are suppressed as complementary from the start (e.g. by another rule)."""
    fixed = set(public)
    sums = list(sums)
    out: Protected[C] = Protected()
    for c, n in cells.items():
        if is_small(int(n), k):
            if c in fixed:
                raise ValueError(f"public cell {c!r} holds a small count")
            out.reasons[c] = SMALL
    pre: Mapping[C, str] = presuppressed if isinstance(presuppressed, Mapping) else \
        dict.fromkeys(presuppressed, COMPLEMENTARY)
    for c, why in pre.items():
        if c in cells and c not in out.reasons and c not in fixed:
            out.reasons[c] = why
    while True:
        _single_unknowns(cells, sums, fixed, out)
        pinned = _pinned(cells, sums, out)
        if not pinned:
            return out
        # a cell pinned by several sums together: hide the smallest released term next to it
        c = pinned[0]
        near = sorted((int(cells[t]), str(t), t) for s in sums
                      if c in s.terms or c == s.total
                      for t in (*s.terms, *([s.total] if s.total is not None else []))
                      if t not in out.reasons and t not in fixed and int(cells[t]) > 0)
        if not near:
            near = sorted((int(cells[t]), str(t), t) for t in cells
                          if t not in out.reasons and t not in fixed)
        if not near:
            raise ValueError("cannot protect the tables")
        out.reasons[near[0][2]] = COMPLEMENTARY


def _pinned(cells: Mapping[C, int], sums: list[Sum[C]], out: Protected[C]) -> list[C]:
    """Suppressed cells that the released cells and all sums together fix to one value
    (linear programming over non-negative counts)."""
    import numpy as np
    from scipy.optimize import linprog

    hidden = [c for c in cells if c in out.reasons]
    if not hidden:
        return []
    index = {c: i for i, c in enumerate(hidden)}
    a_eq, b_eq = [], []
    for s in sums:
        row = np.zeros(len(hidden))
        total = sum(int(cells[t]) for t in s.terms) if s.total is None else int(cells[s.total])
        rhs = float(total)
        if s.total is not None and s.total in index:
            row[index[s.total]] -= 1
            rhs = 0.0
        for t in s.terms:
            if t in index:
                row[index[t]] += 1
            else:
                rhs -= int(cells[t])
        if row.any():
            a_eq.append(row)
            b_eq.append(rhs)
    pinned = []
    for c in hidden:
        obj = np.zeros(len(hidden))
        obj[index[c]] = 1.0
        lo = linprog(obj, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None),
                     method="highs")
        hi = linprog(-obj, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None),
                     method="highs")
        if lo.status == 0 and hi.status == 0 and (-hi.fun - lo.fun) < 0.5:
            pinned.append(c)
    return pinned


def _single_unknowns(cells: Mapping[C, int], sums: list[Sum[C]], fixed: set[C],
                     out: Protected[C]) -> None:
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
