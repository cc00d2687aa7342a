"""Linked-table suppression (vault.privacy.tables) and binned histograms (no Vault needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from vault.privacy.tables import Sum, protect_tables
from vault.query.samplestats import binned

K = 11


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4), st.integers(2, 4), st.integers(0, 10_000))
def test_protect_tables__no_suppressed_cell_is_recoverable(rows: int, cols: int,
                                                           seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = rng.choice([0, 1, 2, 5, 12, 30, 60], size=(rows, cols))
    cells = {("x", i, j): int(table[i, j]) for i in range(rows) for j in range(cols)}
    cells |= {("r", i): int(table[i].sum()) for i in range(rows)}
    cells |= {("c", j): int(table[:, j].sum()) for j in range(cols)}
    sums = [Sum(("r", i), tuple(("x", i, j) for j in range(cols))) for i in range(rows)]
    sums += [Sum(("c", j), tuple(("x", i, j) for i in range(rows))) for j in range(cols)]
    sums += [Sum(None, tuple(("r", i) for i in range(rows))),
             Sum(None, tuple(("c", j) for j in range(cols)))]
    prot = protect_tables(cells, sums, K)
    for c, n in cells.items():
        assert prot.released(c) != (0 < n < K) or not prot.released(c)
    for s in sums:
        members = [*s.terms, *([s.total] if s.total is not None else [])]
        assert sum(not prot.released(c) for c in members) != 1
    # linear programming: every suppressed cell can take more than one value
    hidden = [c for c in cells if not prot.released(c)]
    if not hidden:
        return
    index = {c: i for i, c in enumerate(hidden)}
    a_eq, b_eq = [], []
    total = int(table.sum())
    for s in sums:
        row = np.zeros(len(hidden))
        rhs = float(total if s.total is None else 0)
        if s.total is not None:
            if s.total in index:
                row[index[s.total]] -= 1
            else:
                rhs -= 0 - cells[s.total]
                rhs = float(cells[s.total])
        for t in s.terms:
            if t in index:
                row[index[t]] += 1
            else:
                rhs -= cells[t]
        a_eq.append(row)
        b_eq.append(rhs)
    for c in hidden:
        obj = np.zeros(len(hidden))
        obj[index[c]] = 1
        lo = linprog(obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        assert lo.status == 0 and hi.status == 0
        assert -hi.fun - lo.fun > 0.5, f"{c} is pinned to {lo.fun}"


def test_protect_tables__small_cell_and_complement() -> None:
    cells = {"a": 3, "b": 40, "c": 50}
    prot = protect_tables(cells, [Sum(None, ("a", "b", "c"))], K)
    assert prot.reasons == {"a": "count<k", "b": "complementary"}


def test_binned__small_bins_are_merged_and_values_never_returned() -> None:
    values = np.array([0.05] * 3 + [0.5] * 40 + [0.55] * 12 + [0.95] * 2)
    out = binned(values, [0.0, 0.1, 0.2, 0.5, 0.6, 0.9, 1.0], K)
    counts = [b["count"] for b in out["bins"]]
    assert sum(counts) == values.size
    assert not any(0 < c < K for c in counts)
    assert set(out) == {"bins", "n", "merged_bins", "suppressed", "rule"}
    tiny = binned(np.array([0.5] * 4), [0.0, 1.0], K)
    assert tiny["suppressed"] and tiny["bins"][0]["count"] is None


def test_binned__rejects_bad_edges() -> None:
    from vault.errors import ConfigError

    with pytest.raises(ConfigError):
        binned(np.array([0.1]), [0.5, 0.2], K)
