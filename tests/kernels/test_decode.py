"""The reference decoder's rules (it is also the ingest oracle) and the packed layout."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels._helpers import VCF_DIR
from tests.reference.vcf_decode import decode_vcf, pack_codes


def test_decode_vcf__splits_multiallelic_like_bcftools_norm():
    dec = decode_vcf(VCF_DIR / "bcftools__norm.vcf")
    assert dec.samples and len(dec.alt) == len(dec.pos) == dec.codes.shape[0]
    keys = zip(dec.chrom, dec.pos, dec.alt, strict=True)
    rows = {(c, int(p), a): i for i, (c, p, a) in enumerate(keys)}
    # 1:105 TAAACCCTAAA -> TAA,TAACCCTAAA with GT 1/2: each split row is a het
    assert dec.codes[rows[("1", 105, "TAA")]].tolist() == [1, 1]
    assert dec.codes[rows[("1", 105, "TAACCCTAAA")]].tolist() == [1, 1]
    # 20:275 A -> C,G with haploid GT 2: ALT C row is hom-ref, ALT G row hom-alt, both haploid
    assert dec.codes[rows[("20", 275, "C")]].tolist() == [0, 0]
    assert dec.codes[rows[("20", 275, "G")]].tolist() == [2, 2]
    assert dec.n_haploid[rows[("20", 275, "G")]] == 2
    # ALT "." is one row of hom-ref calls
    assert dec.codes[rows[("20", 59, ".")]].tolist() == [0, 0]
    # ./. is missing
    assert dec.codes[rows[("20", 274, "AAAAAAAAAAAAAAAAAAA")]].tolist() == [3, 3]
    assert dec.codes.dtype == np.int8 and dec.n_haploid.dtype == np.int32
    assert dec.pos.dtype == np.int64


def test_decode_vcf__half_calls_are_missing_and_haploid_is_homozygous():
    dec = decode_vcf(VCF_DIR / "cyvcf2__test.vcf.gz")
    row = int(np.nonzero(dec.pos == 15274)[0][0])  # 132 samples with ./1
    assert (dec.codes[row] == 3).sum() == 134
    hap = decode_vcf(VCF_DIR / "cyvcf2__test-haploidX.vcf")
    assert hap.codes[0].tolist() == [2, 2, 2] and hap.n_haploid[0] == 3


@pytest.mark.parametrize("name", ["bio2zarr__triploid.vcf.gz", "bio2zarr__mixed_ploidy.vcf.gz"])
def test_decode_vcf__rejects_ploidy_above_two(name):
    with pytest.raises(ValueError, match="ploidy"):
        decode_vcf(VCF_DIR / name)


def test_pack_codes__plink_bed_bit_order_and_zero_padding():
    codes = np.array([[1, 2, 3, 0, 2]], np.int8)
    packed = pack_codes(codes)
    assert packed.dtype == np.uint8 and packed.shape == (1, 2)
    assert packed[0, 0] == 0b00_11_10_01
    assert packed[0, 1] == 0b00_00_00_10  # padding bits are zero
    with pytest.raises(ValueError):
        pack_codes(np.array([[4]]))
