"""Case/control tests vs the references, scipy, and plink2's case/control genotype counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

import kernels
from kernels import Status
from tests.kernels._helpers import ORACLE, column, decoded, packed, read_table, sample_groups
from tests.reference import stats_ref as ref


def _run(case, control):
    res = kernels.case_control_tests(np.array([case], np.int64), np.array([control], np.int64))
    return {k: v[0] for k, v in res.__dict__.items()}


def _individuals(case, control):
    """Expand genotype counts to (dosage, is_case) per called individual."""
    dosage, is_case = [], []
    for flag, counts in ((1, case), (0, control)):
        for d in range(3):
            dosage += [d] * int(counts[d])
            is_case += [flag] * int(counts[d])
    return np.array(dosage), np.array(is_case)


GALLERY = [
    pytest.param((30, 15, 5, 2), (40, 8, 2, 0), id="typical"),
    pytest.param((10, 0, 0, 0), (12, 0, 0, 3), id="monomorphic"),
    pytest.param((0, 0, 0, 5), (20, 5, 1, 0), id="no-called-cases"),
    pytest.param((0, 0, 0, 0), (20, 5, 1, 0), id="empty-case-group"),
    pytest.param((20, 3, 0, 0), (25, 0, 0, 0), id="zero-cell"),
    pytest.param((0, 7, 0, 0), (0, 9, 0, 0), id="all-het"),
    pytest.param((0, 1, 0, 0), (1, 0, 0, 0), id="one-case-one-control"),
    pytest.param((400, 0, 0, 0), (0, 0, 400, 0), id="far-tail"),
]


@pytest.mark.parametrize(("case", "control"), GALLERY)
def test_case_control_tests__gallery(case, control):
    got = _run(case, control)
    a, b = case[1] + 2 * case[2], 2 * sum(case[:3]) - case[1] - 2 * case[2]
    c, d = control[1] + 2 * control[2], 2 * sum(control[:3]) - control[1] - 2 * control[2]
    assert got["table"].tolist() == [a, b, c, d]
    if a + b == 0 or c + d == 0:
        assert got["allelic_status"] == Status.NO_CASES_OR_CONTROLS
        assert np.isnan(got["chi2_p"]) and np.isnan(got["odds_ratio"])
        return
    if a + c == 0 or b + d == 0:
        assert got["allelic_status"] == Status.MONOMORPHIC and np.isnan(got["fisher_p"])
        return
    assert got["chi2"] == pytest.approx(ref.allelic_chi2(a, b, c, d), rel=1e-12)
    assert got["chi2_p"] == pytest.approx(stats.chi2.sf(got["chi2"], 1), rel=1e-10)
    fisher = ref.fisher_exact(a, b, c, d)
    assert got["fisher_p"] == pytest.approx(fisher, rel=1e-10)
    assert got["allelic_status"] == (Status.OK if fisher > 0 else Status.P_UNDERFLOW)
    trend = ref.trend_chi2(*_individuals(case, control))
    if trend is None:
        assert got["trend_status"] == Status.SINGULAR and np.isnan(got["trend_p"])
    else:
        assert got["trend_chi2"] == pytest.approx(trend, rel=1e-10)
        assert got["trend_p"] == pytest.approx(stats.chi2.sf(trend, 1), rel=1e-9)
    ci = ref.odds_ratio_ci(a, b, c, d)
    if ci is None:
        assert got["or_status"] == Status.ZERO_CELL and np.isnan(got["odds_ratio"])
    else:
        assert got["or_status"] == Status.OK
        np.testing.assert_allclose(
            [got["odds_ratio"], got["or_ci_low"], got["or_ci_high"]], ci, rtol=1e-12
        )


@settings(deadline=None, max_examples=100)
@given(
    st.tuples(*[st.integers(0, 60)] * 4),
    st.tuples(*[st.integers(0, 60)] * 4),
)
def test_case_control_tests__match_scipy(case, control):
    got = _run(case, control)
    a, b, c, d = (int(x) for x in got["table"])
    assume(got["allelic_status"] in (Status.OK, Status.P_UNDERFLOW))
    x2, p, _, _ = stats.chi2_contingency([[a, b], [c, d]], correction=False)
    assert got["chi2"] == pytest.approx(x2, rel=1e-9, abs=1e-12)
    assert got["chi2_p"] == pytest.approx(p, rel=1e-8)
    assert got["fisher_p"] == pytest.approx(stats.fisher_exact([[a, b], [c, d]]).pvalue, rel=1e-8)


def test_fisher__deep_tail_and_underflow():
    got = _run((200, 0, 0, 0), (0, 0, 200, 0))  # table [[0, 400], [400, 0]]
    assert got["fisher_p"] == pytest.approx(
        stats.fisher_exact([[0, 400], [400, 0]]).pvalue, rel=1e-9
    )
    assert got["fisher_p"] < 1e-200
    got = _run((700, 0, 0, 0), (0, 0, 700, 0))  # p ~ 1e-840: below double range
    assert got["fisher_p"] == 0.0 and got["allelic_status"] == Status.P_UNDERFLOW
    assert got["ln_fisher_p"] < -800 * math.log(10)


def test_chi2_1df_sf__tail_to_1e_300():
    for x in (1.0, 30.0, 300.0, 1300.0, 1370.0):
        want = stats.chi2.sf(x, 1)
        assert kernels.chi2_1df_sf(x) == pytest.approx(want, rel=1e-12)
    assert kernels.chi2_1df_sf(1370.0) < 1e-298


def test_case_control_counts__equal_plink2_glm_counts():
    """One counting pass with case/control groups gives plink2's per-phenotype genotype
    counts (the cells every association statistic is computed from)."""
    _, _, case = sample_groups("msprime_n200")
    dec = decoded("msprime_n200")
    counts = kernels.count_genotypes(packed("msprime_n200"), len(dec.samples), case, 2)
    rows = read_table(ORACLE / "msprime_n200.plink2.glm.logistic")
    assert len(rows) == len(dec.pos)
    cols = ("NON_A1_CT", "HET_A1_CT", "HOM_A1_CT")
    for k, col in enumerate(cols):
        np.testing.assert_array_equal(counts.groups[:, 1, k], column(rows, f"CASE_{col}"))
        np.testing.assert_array_equal(counts.groups[:, 0, k], column(rows, f"CTRL_{col}"))
