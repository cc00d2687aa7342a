"""Logistic regression vs plink2 --glm (no-firth, omit-ref) and between the two code paths."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from kernels import Status
from kernels.jit import jit
from kernels.logistic import (
    LogisticResult,
    _exp,
    _logistic_per_sample,
    _logistic_samples,
    _null_fit,
)
from tests.kernels._helpers import ORACLE, column, decoded, packed, read_table, sample_groups
from tests.reference import stats_ref as ref
from tests.reference.vcf_decode import pack_codes

NAME = "msprime_n200"


def _compare(res, suffix):
    rows = read_table(ORACLE / f"{NAME}.plink2.{suffix}")
    assert len(rows) == len(res.beta)
    beta = column(rows, "BETA")
    defined = ~np.isnan(beta)
    ok = (res.status == Status.OK) | (res.status == Status.P_UNDERFLOW)
    # plink2 reports a number exactly where we converge
    mismatch = np.nonzero(defined != ok)[0]
    assert mismatch.size == 0, (mismatch[:5], res.status[mismatch[:5]])
    # plink2's NA reasons map onto our status codes
    for row, status in zip(np.array(rows)[~defined], res.status[~defined], strict=True):
        err = row["ERRCODE"]
        if err.startswith("SEPARATION"):
            assert status == Status.SEPARATION
        elif err.startswith("CONST_ALLELE"):
            assert status == Status.MONOMORPHIC
    np.testing.assert_array_equal(res.n_obs[defined], column(rows, "OBS_CT")[defined])
    # plink2 2.00a3.5 fits logistic regression in single precision: its BETA is good to
    # ~5e-6 absolute, SE to ~3e-5 and P to ~1e-4 relative (our float64 fit is checked to
    # 1e-8 against the numpy reference in test_logistic_regression__equals_float64_reference).
    tolerances = {"BETA": (0, 1e-5), "SE": (5e-5, 0), "Z_STAT": (0, 1e-4), "P": (2e-4, 0)}
    for ours, col in ((res.beta, "BETA"), (res.se, "SE"), (res.z, "Z_STAT"), (res.p, "P")):
        rtol, atol = tolerances[col]
        np.testing.assert_allclose(
            ours[defined], column(rows, col)[defined], rtol=rtol, atol=atol, err_msg=col
        )
    return int(defined.sum())


def test_logistic_regression__equals_plink2_glm_without_covariates():
    _, _, case = sample_groups(NAME)
    dec = decoded(NAME)
    res = kernels.logistic_regression(packed(NAME), len(dec.samples), case)
    assert _compare(res, "glm.logistic") > 500


def test_logistic_regression__equals_plink2_glm_with_covariates():
    pop, male, case = sample_groups(NAME)
    dec = decoded(NAME)
    covar = np.column_stack([pop, male]).astype(np.float64)
    res = kernels.logistic_regression(packed(NAME), len(dec.samples), case, covar)
    assert _compare(res, "glm_covar.logistic") > 500


@pytest.mark.parametrize(
    "kind", ["discrete-merged-rows", "continuous-per-sample-rows", "one-continuous-fused-k3"]
)
def test_logistic_regression__equals_float64_reference(kind):
    pop, male, case = sample_groups(NAME)
    dec = decoded(NAME)
    n = len(dec.samples)
    covar = np.column_stack([pop, male]).astype(np.float64)
    if kind.startswith("continuous"):
        covar = np.column_stack([covar, np.sin(np.arange(n) * 0.7)])
    elif kind.startswith("one-continuous"):  # k = 3: the fused single-sweep pass
        covar = np.sin(np.arange(n) * 0.7)[:, None]
    res = kernels.logistic_regression(packed(NAME), n, case, covar)
    checked = 0
    for v in np.nonzero(res.status == Status.OK)[0][::25]:
        called = dec.codes[v] != 3
        x = np.column_stack([np.ones(n), dec.codes[v], covar])[called]
        fit = ref.logistic_fit(x, case[called].astype(float))
        assert fit is not None
        assert res.beta[v] == pytest.approx(fit[0][1], rel=1e-8, abs=1e-12)
        assert res.se[v] == pytest.approx(fit[1][1], rel=1e-8)
        checked += 1
    assert checked > 50


def test_logistic__counts_path_equals_per_sample_path():
    _, _, case = sample_groups(NAME)
    dec = decoded(NAME)
    n = len(dec.samples)
    fast = kernels.logistic_regression(packed(NAME), n, case)
    # no covariates, each sample its own covariate "pattern": one row per sample, no merging
    slow = _logistic_samples(
        packed(NAME),
        n,
        case.astype(np.int8),
        np.arange(n, dtype=np.int64),
        np.zeros((n, 0)),
        np.zeros(1),
    )
    np.testing.assert_array_equal(fast.status, slow[5])
    ok = fast.status == Status.OK
    np.testing.assert_allclose(fast.beta[ok], slow[0][ok], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.se[ok], slow[1][ok], rtol=1e-9)


GALLERY = [
    pytest.param(
        [[0, 1, 2, 0, 1, 2]], [1, 1, 1, 1, 1, 1], Status.NO_CASES_OR_CONTROLS, id="no-controls"
    ),
    pytest.param([[0, 0, 0, 0, 0, 3]], [1, 0, 1, 0, 1, 0], Status.MONOMORPHIC, id="monomorph"),
    pytest.param([[1, 1, 1, 1, 1, 1]], [1, 0, 1, 0, 1, 0], Status.SINGULAR, id="all-het"),
    pytest.param([[2, 2, 2, 0, 0, 0]], [1, 1, 1, 0, 0, 0], Status.SEPARATION, id="separation"),
    pytest.param([[3, 3, 3, 3, 1, 0]], [1, 0, 1, 0, 1, 0], Status.TOO_FEW_SAMPLES, id="two-calls"),
    pytest.param(
        [[0, 1, 2, 0, 1, 0, 1, 2]], [1, 0, 1, 0, 1, 1, 0, -1], Status.OK, id="ok-missing-pheno"
    ),
]


@pytest.mark.parametrize(("codes", "pheno", "status"), GALLERY)
def test_logistic_regression__status_gallery(codes, pheno, status):
    codes = np.array(codes, np.int8)
    n = codes.shape[1]
    y = np.array(pheno)
    for covar in (None, np.linspace(-1, 1, n)[:, None] ** 2):
        res = kernels.logistic_regression(pack_codes(codes), n, y, covar)
        assert res.status[0] == status
        assert np.isnan(res.beta[0]) == (status != Status.OK)


def _per_sample_result(codes_packed, n, y, covar):
    """The one-row-per-sample path forced, whatever the number of distinct covariate rows."""
    use = y >= 0
    out = _logistic_per_sample(
        codes_packed,
        n,
        y.astype(np.int8),
        np.arange(n, dtype=np.int64),
        np.ascontiguousarray(covar, dtype=np.float64),
        _null_fit(y[use].astype(np.int8), covar[use]),
    )
    beta, se, z, p, odds, st, iters, n_obs, n_cases, ac = out
    return LogisticResult(beta, se, z, p, odds, n_obs, n_cases, n_obs - n_cases, ac, iters, st)


def test_logistic__per_sample_path_equals_plink2_glm_with_covariates():
    # the discrete covariates normally take the merged-rows path; here the per-sample path
    # (sparse unpack, start from the carriers-only fit, fused SIMD passes) must give the same
    # NA pattern, status codes and agreement with plink2
    pop, male, case = sample_groups(NAME)
    dec = decoded(NAME)
    covar = np.column_stack([pop, male]).astype(np.float64)
    res = _per_sample_result(packed(NAME), len(dec.samples), case, covar)
    assert _compare(res, "glm_covar.logistic") > 500
    merged = kernels.logistic_regression(packed(NAME), len(dec.samples), case, covar)
    np.testing.assert_array_equal(res.status, merged.status)
    np.testing.assert_array_equal(res.n_obs, merged.n_obs)
    ok = res.status == Status.OK
    np.testing.assert_allclose(res.beta[ok], merged.beta[ok], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.se[ok], merged.se[ok], rtol=1e-8)


@pytest.mark.parametrize("n_covar", [1, 3])
def test_logistic_regression__per_sample_missing_calls_and_phenotypes(n_covar):
    # missing genotypes and left-out samples (missing phenotype, NaN covariate) on the
    # per-sample path; every variant reuses its chunk's buffers, so each must also equal a
    # fit of that variant alone
    _, _, case = sample_groups(NAME)
    dec = decoded(NAME)
    n = len(dec.samples)
    rng = np.random.default_rng(5)
    codes = dec.codes[:400].copy()
    codes[rng.random(codes.shape) < 0.05] = 3
    y = case.copy()
    y[rng.choice(n, 7, replace=False)] = -1
    covar = np.column_stack([np.cos(np.arange(n) * (0.3 + j)) for j in range(n_covar)])
    covar[rng.choice(n, 3, replace=False), 0] = np.nan
    block = pack_codes(codes)
    res = kernels.logistic_regression(block, n, y, covar)
    kept = (y >= 0) & np.isfinite(covar).all(axis=1)
    checked = 0
    for v in range(codes.shape[0]):
        called = kept & (codes[v] != 3)
        assert res.n_obs[v] == called.sum()
        assert res.n_cases[v] == y[called].sum()
        if v % 10 == 0:
            alone = kernels.logistic_regression(block[v : v + 1], n, y, covar)
            assert alone.status[0] == res.status[v]
            np.testing.assert_array_equal(alone.beta[0], res.beta[v])
            np.testing.assert_array_equal(alone.se[0], res.se[v])
        if res.status[v] != Status.OK or v % 4:
            continue
        x = np.column_stack([np.ones(n), codes[v], covar])[called]
        fit = ref.logistic_fit(x, y[called].astype(float))
        assert fit is not None
        assert res.beta[v] == pytest.approx(fit[0][1], rel=1e-8, abs=1e-12)
        assert res.se[v] == pytest.approx(fit[1][1], rel=1e-8)
        checked += 1
    assert checked > 30


def test_exp__within_one_ulp_of_libm():
    @jit()
    def many(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = _exp(x[i])
        return out

    x = np.concatenate([np.linspace(-708, 708, 400_001), np.linspace(-1, 1, 100_001)])
    got = many(x)
    want = np.exp(x)
    assert np.max(np.abs(got - want) / np.spacing(want)) <= 1.0
    # clamped outside [-708, 708]: finite, positive, monotone limits
    ends = many(np.array([-1e4, -709.0, 709.0, 1e4]))
    assert np.all(np.isfinite(ends)) and np.all(ends > 0)
    assert ends[0] == ends[1] == _exp(-708.0) and ends[2] == ends[3] == _exp(708.0)
