"""LD r^2 in a window and the site-frequency spectrum vs references and scikit-allel."""

from __future__ import annotations

import allel
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kernels
from kernels import Status
from tests.kernels._helpers import decoded, packed, sample_groups
from tests.reference import stats_ref as ref
from tests.reference.vcf_decode import pack_codes


def _check_ld(codes, window_variants, pos=None, window_bp=None):
    n_var, n_samples = codes.shape
    got = kernels.ld_r2(pack_codes(codes), n_samples, pos, window_variants, window_bp)
    pos_arr = np.arange(n_var) if pos is None else pos
    want = []
    for i in range(n_var):
        for j in range(i + 1, min(n_var, i + window_variants + 1)):
            if window_bp is not None and pos_arr[j] - pos_arr[i] > window_bp:
                break
            want.append((i, j, *ref.r2_pair(codes[i], codes[j])))
    assert list(zip(got.i.tolist(), got.j.tolist(), strict=True)) == [(i, j) for i, j, _, _ in want]
    for k, (_, _, r2, n_obs) in enumerate(want):
        assert got.n_obs[k] == n_obs
        if r2 is None:
            assert got.status[k] != Status.OK and np.isnan(got.r2[k])
        else:
            assert got.status[k] == Status.OK
            assert got.r2[k] == pytest.approx(r2, rel=1e-12, abs=1e-14)
    return got


RNG = np.random.default_rng(7)
LD_GALLERY = [
    pytest.param(np.zeros((0, 5), np.int8), id="empty"),
    pytest.param(np.array([[1], [2]], np.int8), id="one-sample"),
    pytest.param(np.full((3, 9), 3, np.int8), id="all-missing"),
    pytest.param(np.array([[0] * 6, [0, 1, 2, 0, 1, 2]], np.int8), id="monomorphic"),
    pytest.param(np.array([[1] * 7, [0, 1, 2, 0, 1, 2, 2]], np.int8), id="all-het"),
    pytest.param(np.array([[0, 1, 2, 3, 2], [0, 1, 2, 2, 3]], np.int8), id="perfect-ld"),
    pytest.param(RNG.integers(0, 4, (12, 37)).astype(np.int8), id="n37-random"),
    pytest.param(RNG.integers(0, 4, (6, 70)).astype(np.int8), id="n70-three-words"),
]


@pytest.mark.parametrize("codes", LD_GALLERY)
def test_ld_r2__gallery(codes):
    _check_ld(codes, window_variants=4)


@settings(deadline=None, max_examples=40)
@given(
    codes=hnp.arrays(
        np.int8,
        st.tuples(st.integers(1, 8), st.integers(1, 80)),
        elements=st.integers(0, 3),
    ),
    window=st.integers(1, 8),
)
def test_ld_r2__matches_reference(codes, window):
    _check_ld(codes, window)


def test_ld_r2__window_bp_and_threshold():
    codes = RNG.integers(0, 3, (10, 40)).astype(np.int8)
    pos = np.array([10, 20, 35, 60, 61, 62, 200, 201, 500, 900])
    _check_ld(codes, window_variants=9, pos=pos, window_bp=50)
    codes[3] = codes[2]
    got = kernels.ld_r2(pack_codes(codes), 40, pos, 9, 50, min_r2=0.99)
    assert (2, 3) in list(zip(got.i.tolist(), got.j.tolist(), strict=True))
    assert (got.r2 >= 0.99).all() and (got.status == Status.OK).all()


def test_ld_r2__on_msprime_matches_numpy_correlation():
    dec = decoded("msprime_n200")
    n = len(dec.samples)
    got = kernels.ld_r2(packed("msprime_n200")[:300], n, dec.pos[:300], window_variants=5)
    dosage = dec.codes[:300].astype(float)  # no missing calls in the simulation
    ok = got.status == Status.OK
    want = np.array(
        [np.corrcoef(dosage[i], dosage[j])[0, 1] ** 2 for i, j in zip(got.i, got.j, strict=True)]
    )
    np.testing.assert_allclose(got.r2[ok], want[ok], rtol=1e-10, atol=1e-14)
    assert ok.sum() > 100


@pytest.mark.parametrize("folded", [False, True], ids=["unfolded", "folded"])
def test_site_frequency_spectrum__equals_scikit_allel_per_group(folded):
    pop, _, _ = sample_groups("msprime_n200")
    dec = decoded("msprime_n200")
    counts = kernels.count_genotypes(packed("msprime_n200"), len(dec.samples), pop, 5)
    biallelic = np.ones(len(dec.pos), bool)  # split rows: ALT count is the derived count
    for g in range(5):
        ac, an = kernels.allele_counts(counts.groups[:, g])
        n_chrom = 2 * int((pop == g).sum())
        got = kernels.site_frequency_spectrum(ac, an, n_chrom, folded)
        assert got.n_used == len(ac) and got.n_excluded == 0
        ac_b = ac[biallelic]
        if folded:
            want = allel.sfs_folded(np.column_stack([an[biallelic] - ac_b, ac_b]), n_chrom)
        else:
            want = allel.sfs(ac_b, n_chrom)
        np.testing.assert_array_equal(got.counts, want)
        np.testing.assert_array_equal(got.counts, ref.sfs(ac, an, n_chrom, folded))


def test_site_frequency_spectrum__excludes_incomplete_variants():
    ac = np.array([0, 1, 2, 3, 1])
    an = np.array([4, 4, 4, 4, 2])
    got = kernels.site_frequency_spectrum(ac, an, 4)
    assert got.counts.tolist() == [1, 1, 1, 1, 0]
    assert (got.n_used, got.n_excluded) == (4, 1)
    folded = kernels.site_frequency_spectrum(ac, an, 4, folded=True)
    assert folded.counts.tolist() == [1, 2, 1]
