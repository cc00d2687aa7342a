"""The DP mechanism: OpenDP discrete Laplace, sensitivity and ε per answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vault.privacy.dp import CellNoise, DPSession, noisy_counts, sensitivity
from vault.privacy.ledger import BudgetExhausted, Ledger


def test_cell_noise__epsilon_is_opendp_map_and_noise_is_integer() -> None:
    n = CellNoise(0.25)
    assert n.scale == 4.0
    assert n.epsilon(1) == pytest.approx(0.25) and n.epsilon(10) == pytest.approx(2.5)
    x = np.full((2000, 4), 100, np.int64)
    y = n.sample(x)
    assert y.dtype == np.int64 and (y >= 0).all()
    d = (y - x).ravel().astype(float)
    # discrete Laplace, scale 4: variance 2t/(1-t)^2 with t = exp(-1/4)
    t = np.exp(-0.25)
    assert d.var() == pytest.approx(2 * t / (1 - t) ** 2, rel=0.1)
    assert abs(d.mean()) < 0.5


def test_sensitivity__groups_of_one_column_compose_in_parallel() -> None:
    keys = ["1:5:A:G|overall", "1:5:A:G|population=p1", "1:5:A:G|population=p2",
            "1:6:A:G|overall"]
    assert sensitivity(keys) == 3  # (v5, overall), (v5, population), (v6, overall)


def test_noisy_counts__charges_new_variants_and_reuses(tmp_path: Path) -> None:
    s = DPSession(Ledger(tmp_path / "l.db"), "p", 0.5, 10.0, 30)
    pos = np.array([10, 20, 30])
    overall = np.array([[90, 8, 2, 0], [50, 40, 10, 0], [100, 0, 0, 0]])
    groups = np.zeros((3, 0, 4), np.int64)
    wanted = np.array([True, True, False])
    o, _g = noisy_counts(s, "v", "1", pos, ["A"] * 3, ["G"] * 3, overall, groups, wanted,
                        None, ())
    assert s.spent == pytest.approx(1.0) and s.new_cells == 2
    assert o[2].tolist() == [0, 0, 0, 0]  # not wanted: never released
    s2 = DPSession(s.ledger, "p", 0.5, 10.0, 30)
    o2, _ = noisy_counts(s2, "v", "1", pos, ["A"] * 3, ["G"] * 3, overall, groups, wanted,
                         None, ())
    assert s2.spent == 0.0 and (o2 == o).all()
    # another principal pays (and gets its own noise)
    s3 = DPSession(s.ledger, "q", 0.5, 0.6, 30)
    with pytest.raises(BudgetExhausted):
        noisy_counts(s3, "v", "1", pos, ["A"] * 3, ["G"] * 3, overall, groups, wanted, None, ())


def test_presence_threshold_has_a_noise_margin(tmp_path: Path) -> None:
    s = DPSession(Ledger(tmp_path / "l.db"), "p", 0.25, 10.0, 30, presence_margin_sd=2.0)
    assert s.presence_threshold(11) == 11 + int(np.ceil(2 * s.noise.ac_sd()))
