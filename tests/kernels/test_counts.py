"""count_genotypes and the statistics derived from counts vs the naive references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kernels
from kernels import Status
from tests.reference import stats_ref as ref
from tests.reference.vcf_decode import pack_codes


def _case(codes, group=None, n_groups=0):
    return np.array(codes, dtype=np.int8, ndmin=2), group, n_groups


RNG = np.random.default_rng(20261128)

GALLERY = [
    pytest.param(*_case(np.zeros((0, 7))), id="empty-no-variants"),
    pytest.param(np.zeros((3, 0), np.int8), None, 0, id="no-samples"),
    pytest.param(*_case([[1]]), id="one-sample-het"),
    pytest.param(*_case([[3]]), id="one-sample-missing"),
    pytest.param(*_case([[3] * 9, [3] * 9]), id="all-missing"),
    pytest.param(*_case([[0] * 6, [2] * 6]), id="monomorphic"),
    pytest.param(*_case([[1] * 13]), id="all-het"),
    pytest.param(*_case(RNG.integers(0, 4, (5, 5))), id="n5-not-multiple-of-4"),
    pytest.param(*_case(RNG.integers(0, 4, (4, 31))), id="n31-word-boundary"),
    pytest.param(*_case(RNG.integers(0, 4, (4, 33))), id="n33-word-boundary"),
    pytest.param(*_case(RNG.integers(0, 4, (3, 65))), id="n65-two-words"),
    pytest.param(
        *_case(RNG.integers(0, 4, (6, 10)), np.array([0, 0, 0, 0, 0, 2, 2, 2, 2, 2], np.int32), 3),
        id="group-of-size-0",
    ),
    pytest.param(
        *_case(RNG.integers(0, 4, (6, 10)), np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0], np.int32), 2),
        id="group-of-size-1",
    ),
    pytest.param(
        *_case(
            RNG.integers(0, 4, (6, 11)),
            np.array([-1, 0, 1, -1, 0, 1, 0, -1, 1, 0, -1], np.int32),
            2,
        ),
        id="ungrouped-samples",
    ),
    pytest.param(
        *_case(RNG.integers(0, 4, (4, 70)), RNG.integers(-1, 40, 70).astype(np.int32), 40),
        id="many-groups-lookup-path",
    ),
]


def _check_counts(codes, group, n_groups):
    n_samples = codes.shape[1]
    packed = pack_codes(codes)
    got = kernels.count_genotypes(packed, n_samples, group, n_groups)
    want_overall, want_groups = ref.genotype_counts(codes, group, n_groups)
    np.testing.assert_array_equal(got.overall, want_overall)
    np.testing.assert_array_equal(got.groups, want_groups)
    # per-group counts add up to overall minus the samples in no group
    if n_groups:
        ungrouped = codes[:, group < 0] if n_samples else codes
        ungrouped_counts = np.stack([(ungrouped == k).sum(axis=1) for k in range(4)], axis=1)
        np.testing.assert_array_equal(got.groups.sum(axis=1) + ungrouped_counts, got.overall)
    return got


@pytest.mark.parametrize(("codes", "group", "n_groups"), GALLERY)
def test_count_genotypes__gallery(codes, group, n_groups):
    _check_counts(codes, group, n_groups)


@settings(deadline=None, max_examples=60)
@given(
    data=st.data(),
    n_var=st.integers(0, 6),
    n_samples=st.integers(0, 140),
    n_groups=st.integers(0, 6),
)
def test_count_genotypes__matches_reference(data, n_var, n_samples, n_groups):
    codes = data.draw(hnp.arrays(np.int8, (n_var, n_samples), elements=st.integers(0, 3)))
    group = None
    if n_groups:
        group = data.draw(
            hnp.arrays(np.int32, (n_samples,), elements=st.integers(-1, n_groups - 1))
        )
    _check_counts(codes, group, n_groups)


def test_count_genotypes__never_counts_padding():
    # 5 samples: 3 padding slots in the last byte; set them to garbage-free zeros (layout rule)
    codes = np.array([[1, 1, 1, 1, 2]], np.int8)
    got = kernels.count_genotypes(pack_codes(codes), 5)
    np.testing.assert_array_equal(got.overall, [[0, 4, 1, 0]])


def test_count_genotypes__rejects_bad_input():
    packed = pack_codes(np.zeros((2, 9), np.int8))
    with pytest.raises(ValueError, match="bytes per row"):
        kernels.count_genotypes(packed, 13)
    with pytest.raises(ValueError, match="group values"):
        kernels.count_genotypes(packed, 9, np.full(9, 3, np.int32), 2)
    with pytest.raises(ValueError, match="shape"):
        kernels.count_genotypes(packed, 9, np.zeros(8, np.int32), 1)


@pytest.mark.parametrize(("codes", "group", "n_groups"), GALLERY)
def test_variant_stats__gallery(codes, group, n_groups):
    got = _check_counts(codes, group, n_groups)
    for counts in (got.overall, got.groups):
        vs = kernels.variant_stats(counts)
        flat = counts.reshape(-1, 4)
        for i, (hom_ref, het, hom_alt, missing) in enumerate(flat):
            idx = np.unravel_index(i, counts.shape[:-1])
            want = ref.allele_stats(int(hom_ref), int(het), int(hom_alt), int(missing))
            assert vs.ac[idx] == want["ac"] and vs.an[idx] == want["an"]
            if want["af"] is None:
                assert np.isnan(vs.af[idx]) and vs.af_status[idx] == Status.NO_CALLS
            else:
                assert vs.af[idx] == pytest.approx(want["af"], rel=1e-15)
                assert vs.af_status[idx] == Status.OK
            if want["call_rate"] is None:
                assert np.isnan(vs.call_rate[idx]) and vs.missing_status[idx] == Status.NO_CALLS
            else:
                assert vs.call_rate[idx] == pytest.approx(want["call_rate"], rel=1e-15)
                assert vs.f_missing[idx] == pytest.approx(want["f_missing"], abs=1e-15)
            called = hom_ref + het + hom_alt
            if called == 0:
                assert vs.hwe_status[idx] == Status.NO_CALLS and np.isnan(vs.hwe_p[idx])
            else:
                p, midp, exc = ref.hwe_exact(int(hom_ref), int(het), int(hom_alt))
                assert vs.hwe_p[idx] == pytest.approx(p, rel=1e-12)
                assert vs.hwe_midp[idx] == pytest.approx(midp, rel=1e-12)
                assert vs.exc_het[idx] == pytest.approx(exc, rel=1e-12)
                mono = want["ac"] in (0, want["an"])
                assert vs.hwe_status[idx] == (Status.MONOMORPHIC if mono else Status.OK)
            f = ref.inbreeding_f(int(hom_ref), int(het), int(hom_alt))
            if f is None:
                assert np.isnan(vs.inbreeding_f[idx]) and vs.f_status[idx] != Status.OK
            else:
                assert vs.inbreeding_f[idx] == pytest.approx(f, rel=1e-12, abs=1e-12)
