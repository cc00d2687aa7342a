"""HWE exact / mid-p / ExcHet / F: exact-integer reference and the far tail."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import kernels
from kernels import Status
from tests.reference import stats_ref as ref


def _hardy(hom_ref, het, hom_alt):
    counts = np.array([[hom_ref, het, hom_alt, 0]], np.int64)
    p, midp, exc, status = kernels.hardy_weinberg(counts)
    return p[0], midp[0], exc[0], status[0]


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 150), st.integers(0, 150), st.integers(0, 150))
def test_hardy_weinberg__matches_exact_enumeration(hom_ref, het, hom_alt):
    assume(hom_ref + het + hom_alt > 0)
    p, midp, exc, _ = _hardy(hom_ref, het, hom_alt)
    want = ref.hwe_exact(hom_ref, het, hom_alt)
    assert p == pytest.approx(want[0], rel=1e-11)
    assert midp == pytest.approx(want[1], rel=1e-11)
    assert exc == pytest.approx(want[2], rel=1e-11)


# p-values plink2 --hardy / --hardy midp prints for these counts (see fixtures README)
PLINK2_TAIL = [
    pytest.param(500, 0, 500, 1.31967e-301, 6.59835e-302, id="no-het-1e-301"),
    pytest.param(0, 1000, 0, 5.36356e-300, 2.74776e-300, id="all-het-5e-300"),
    pytest.param(400, 200, 400, 1.16984e-85, 6.81711e-86, id="het-deficit-1e-85"),
    pytest.param(2000, 0, 1, 0.000249938, 0.000124969, id="rare-hom"),
    pytest.param(900, 100, 0, 0.169078, 0.132154, id="common"),
]


@pytest.mark.parametrize(("hom_ref", "het", "hom_alt", "p_plink2", "midp_plink2"), PLINK2_TAIL)
def test_hardy_weinberg__far_tail_equals_plink2(hom_ref, het, hom_alt, p_plink2, midp_plink2):
    p, midp, _, status = _hardy(hom_ref, het, hom_alt)
    assert p == pytest.approx(p_plink2, rel=5.1e-6)
    assert midp == pytest.approx(midp_plink2, rel=5.1e-6)
    assert status == Status.OK


def test_hardy_weinberg__underflow_is_explicit():
    # true p ~ 1e-336: below the double range; plink2 prints 0
    p, _, _, status = _hardy(9000, 2000, 1000)
    assert p == 0.0 and status == Status.P_UNDERFLOW


def test_hardy_weinberg__monomorphic_and_empty_have_status():
    p, midp, exc, status = _hardy(10, 0, 0)
    assert (p, midp, exc, status) == (1.0, 0.5, 1.0, Status.MONOMORPHIC)
    p, midp, exc, status = _hardy(0, 0, 0)
    assert math.isnan(p) and status == Status.NO_CALLS


def test_hardy_weinberg__large_cohort_is_exact():
    # 5,000 genotypes: exact integer enumeration is still feasible once
    counts = (3750, 1000, 250)
    p, midp, exc, _ = _hardy(*counts)
    want = ref.hwe_exact(*counts)
    assert p == pytest.approx(want[0], rel=1e-9)
    assert midp == pytest.approx(want[1], rel=1e-9)
    assert exc == pytest.approx(want[2], rel=1e-9)


def test_inbreeding_f__definition():
    f, status = kernels.inbreeding_f(np.array([[30, 40, 30, 5], [10, 0, 0, 0]]))
    assert f[0] == pytest.approx(1 - 40 / (2 * 0.5 * 0.5 * 100))
    assert status.tolist() == [Status.OK, Status.MONOMORPHIC] and np.isnan(f[1])
