"""Kernels vs committed bcftools +fill-tags and plink2 outputs on real and simulated VCFs.

Inputs and commands: tests/kernels/fixtures/README.md (regenerate.sh). Both tools print 6
significant digits (bcftools through a float32), so values are compared to that precision;
counts are compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from tests.kernels._helpers import ORACLE, ORACLE_INPUTS, column, decoded, packed, read_table

NAMES = sorted(ORACLE_INPUTS)
# plink2 writes no --hardy output for chrX without sex information (haploid_x): those files
# are compared on every other statistic; test_hardy__plink2_has_no_chrx_oracle pins it down.
HARDY_NAMES = [n for n in NAMES if n != "haploid_x"]
# haploid_x has no row whose calls are all diploid (3 samples, all haploid): the bcftools HWE
# comparison at diploid rows runs on the others, and the diploid-call test below covers it.
DIPLOID_NAMES = HARDY_NAMES


def _stats(name):
    dec = decoded(name)
    counts = kernels.count_genotypes(packed(name), len(dec.samples))
    return dec, counts.overall, kernels.variant_stats(counts.overall)


def _close(got, want, rel=5.1e-6, tiny=0.0):
    """Equal to printed precision (6 significant digits); values below ``tiny`` must both be
    below it. Returns how many values were compared, which must be at least one: a
    comparison of two empty selections would pass whatever the kernel computes."""
    got = np.asarray(got, float)
    want = np.asarray(want, float)
    assert got.shape == want.shape, f"shapes differ: {got.shape} vs {want.shape}"
    assert got.size > 0, "nothing compared: the selection is empty"
    both_tiny = (got < tiny) & (want < tiny)
    ok = both_tiny | np.isclose(got, want, rtol=rel, atol=0.0) | (np.isnan(got) & np.isnan(want))
    bad = np.nonzero(~ok)[0]
    first = bad[:5]
    assert bad.size == 0, f"{bad.size} mismatches, rows {first}: {got[first]} vs {want[first]}"
    return got.size


def _rows(name, suffix):
    path = ORACLE / f"{name}.{suffix}"
    assert path.exists(), f"oracle fixture {path.name} missing: run regenerate.sh"
    rows = read_table(path)
    dec = decoded(name)
    assert len(rows) > 0, f"oracle fixture {path.name} has no rows"
    assert len(rows) == len(dec.pos), "oracle and decoder disagree on the number of split rows"
    np.testing.assert_array_equal(column(rows, "POS").astype(np.int64), dec.pos)
    assert [r["ALT"] for r in rows] == dec.alt
    return rows


@pytest.mark.parametrize("name", NAMES)
def test_counts__equal_plink2_geno_counts(name):
    _, counts, _ = _stats(name)
    rows = _rows(name, "plink2.gcount")
    for k, col in enumerate(["HOM_REF_CT", "HET_REF_ALT_CTS", "TWO_ALT_GENO_CTS", "MISSING_CT"]):
        np.testing.assert_array_equal(counts[:, k], column(rows, col).astype(np.int64), err_msg=col)


@pytest.mark.parametrize("name", NAMES)
def test_allele_frequency__equals_plink2_freq(name):
    _, _, vs = _stats(name)
    rows = _rows(name, "plink2.afreq")
    np.testing.assert_array_equal(vs.an, column(rows, "OBS_CT").astype(np.int64))
    _close(vs.af, column(rows, "ALT_FREQS"))


@pytest.mark.parametrize("name", NAMES)
def test_missingness__equals_plink2_missing(name):
    _, _, vs = _stats(name)
    rows = _rows(name, "plink2.vmiss")
    np.testing.assert_array_equal(vs.n_missing, column(rows, "MISSING_CT").astype(np.int64))
    np.testing.assert_array_equal(vs.n_samples, column(rows, "OBS_CT").astype(np.int64))
    _close(vs.f_missing, column(rows, "F_MISS"))


def test_hardy__plink2_has_no_chrx_oracle():
    assert not (ORACLE / "haploid_x.plink2.hardy").exists()
    assert not (ORACLE / "haploid_x.plink2.midp.hardy").exists()
    assert (ORACLE / "haploid_x.plink2.afreq").exists()


@pytest.mark.parametrize("name", HARDY_NAMES)
def test_hardy__equals_plink2_hardy(name):
    _, _, vs = _stats(name)
    rows = _rows(name, "plink2.hardy")
    _close(vs.hwe_p, column(rows, "P"))
    o_het = column(rows, "O(HET_A1)")
    e_het = column(rows, "E(HET_A1)")
    defined = e_het > 0
    assert defined.sum() > 0, "no row with a defined inbreeding F to compare"
    assert (vs.f_status[defined] == kernels.Status.OK).all()
    # F from the printed 6-digit O and E: compare to that precision
    np.testing.assert_allclose(
        vs.inbreeding_f[defined], 1 - o_het[defined] / e_het[defined], rtol=0, atol=2e-5
    )
    assert np.isnan(vs.inbreeding_f[~defined]).all()


@pytest.mark.parametrize("name", HARDY_NAMES)
def test_hardy_midp__equals_plink2_hardy_midp(name):
    _, _, vs = _stats(name)
    rows = _rows(name, "plink2.midp.hardy")
    _close(vs.hwe_midp, column(rows, "MIDP"))


@pytest.mark.parametrize("name", NAMES)
def test_allele_counts__equal_bcftools_up_to_documented_rules(name):
    """bcftools counts a haploid call as 1 allele (the store: 2, as plink2) and the called
    allele of a half-call (the store: missing), so per row
    AN_bcftools = AN - n_haploid + n_half_calls and
    AC_bcftools = AC - haploid ALT calls + half-calls whose called allele is this ALT."""
    _, _, vs = _stats(name)
    rows = _rows(name, "bcftools.tsv")
    kinds = _call_kinds(name)
    np.testing.assert_array_equal(
        vs.an - kinds["haploid"] + kinds["half"], column(rows, "AN").astype(np.int64)
    )
    np.testing.assert_array_equal(
        vs.ac - kinds["haploid_alt"] + kinds["half_alt"], column(rows, "AC").astype(np.int64)
    )
    # bcftools F_MISSING counts a half-call as missing, like the store
    _close(vs.f_missing, column(rows, "F_MISSING"), rel=1e-5)
    # AF is the same under both rules where no half-call is present and the calls are either
    # all diploid or all haploid (a haploid call adds 1 to AC and AN for bcftools, 2 to both
    # here); rows mixing the two differ by rule and are covered by AN/AC above.
    no_half = kinds["half"] == 0
    same_af = no_half & ((kinds["haploid"] == 0) | (kinds["haploid"] == vs.n_called))
    same_af &= vs.n_called > 0
    _close(vs.af[same_af], column(rows, "AF")[same_af], rel=1e-5)
    if name == "haploid_x":  # the all-haploid rows are the ones compared there
        assert (kinds["haploid"][same_af] > 0).all()


@pytest.mark.parametrize("name", DIPLOID_NAMES)
def test_hwe_and_exchet__equal_bcftools_at_diploid_rows(name):
    _, _, vs = _stats(name)
    rows = _rows(name, "bcftools.tsv")
    kinds = _call_kinds(name)
    plain = (kinds["haploid"] == 0) & (kinds["half"] == 0)
    # bcftools stores float32: 6 digits, and values below ~1e-38 lose precision
    _close(vs.hwe_p[plain], column(rows, "HWE")[plain], rel=1e-5, tiny=1e-36)
    _close(vs.exc_het[plain], column(rows, "ExcHet")[plain], rel=1e-5, tiny=1e-36)


@pytest.mark.parametrize("name", NAMES)
def test_hwe_and_exchet__equal_bcftools_on_the_diploid_calls(name):
    """bcftools' HWE and ExcHet use the diploid genotypes only; the kernel on the counts of the
    diploid calls (haploid calls, stored as homozygous, taken out) gives the same at every row
    without half-calls and with a diploid call. Where no diploid call is left (every row of
    haploid_x) the kernel says NO_CALLS (NaN) and bcftools prints 1 for its empty table. No
    input has a row mixing haploid and diploid calls, so only those two kinds are exercised."""
    _, counts, _ = _stats(name)
    rows = _rows(name, "bcftools.tsv")
    kinds = _call_kinds(name)
    diploid = counts.copy()
    diploid[:, 0] -= kinds["haploid"] - kinds["haploid_alt"]
    diploid[:, 2] -= kinds["haploid_alt"]
    assert (diploid >= 0).all()
    p, _, exc_het, status = kernels.hardy_weinberg(diploid)
    no_half = kinds["half"] == 0
    has_diploid = diploid[:, :3].sum(axis=1) > 0
    empty = no_half & ~has_diploid
    assert (status[empty] == kernels.Status.NO_CALLS).all()
    assert np.isnan(p[empty]).all() and np.isnan(exc_het[empty]).all()
    assert (column(rows, "HWE")[empty] == 1).all() and (column(rows, "ExcHet")[empty] == 1).all()
    if name == "haploid_x":
        assert empty.sum() == len(rows), "haploid_x: every row is all-haploid"
        return
    use = no_half & has_diploid
    _close(p[use], column(rows, "HWE")[use], rel=1e-5, tiny=1e-36)
    _close(exc_het[use], column(rows, "ExcHet")[use], rel=1e-5, tiny=1e-36)


def test_haploid__kernel_equals_plink2_and_differs_from_bcftools_by_rule():
    dec, _, vs = _stats("haploid_x")
    assert dec.n_haploid.sum() > 0, "the haploid example must contain haploid calls"
    rows_p2 = _rows("haploid_x", "plink2.afreq")
    rows_bcf = _rows("haploid_x", "bcftools.tsv")
    np.testing.assert_array_equal(vs.an, column(rows_p2, "OBS_CT").astype(np.int64))
    an_bcf = column(rows_bcf, "AN").astype(np.int64)
    assert (vs.an != an_bcf).any()
    np.testing.assert_array_equal(vs.an - an_bcf, dec.n_haploid)


_KINDS: dict[str, dict[str, np.ndarray]] = {}


def _call_kinds(name):
    """Per split row: called haploid genotypes, those equal to this ALT, half-calls, and
    half-calls whose called allele is this ALT (read once through pysam)."""
    if name not in _KINDS:
        import pysam

        out: dict[str, list[int]] = {"haploid": [], "haploid_alt": [], "half": [], "half_alt": []}
        with pysam.VariantFile(str(ORACLE_INPUTS[name])) as vcf:
            for rec in vcf:
                gts = [rec.samples[i]["GT"] for i in range(len(rec.samples))]
                for k in range(1, (len(rec.alts) if rec.alts else 1) + 1):
                    hap = [g for g in gts if g is not None and len(g) == 1 and g[0] is not None]
                    half = [g for g in gts if len(g or ()) == 2 and None in g and g != (None, None)]
                    out["haploid"].append(len(hap))
                    out["haploid_alt"].append(sum(g[0] == k for g in hap))
                    out["half"].append(len(half))
                    out["half_alt"].append(sum(k in g for g in half))
        _KINDS[name] = {key: np.array(val, np.int64) for key, val in out.items()}
    return _KINDS[name]
