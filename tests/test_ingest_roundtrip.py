"""Round trip on the real VCFs: what the store gives back equals an independent decoding.

The oracle is tests/reference/vcf_decode.py (pysam, one sample at a time); the store path is
the numba text parser (or htslib for BCF), Parquet encryption with keys in a real OpenBao,
and the decrypting reader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.reference.vcf_decode import decode_vcf
from tests.support.vcfgen import unpack
from vault.errors import InvalidInput
from vault.store.dataset import Store

DATA = Path(__file__).parent / "data" / "vcf"

ACCEPTED = [
    "SeqArray__CEU_Exon.vcf.gz",
    "bcftools__mpileup.X.vcf",
    "bio2zarr__1kg_2020_chr20_annotations.bcf",
    "bio2zarr__1kg_2020_chrM.vcf.gz",
    "bio2zarr__chr22.vcf.gz",
    "bio2zarr__chr_m_indels.vcf.gz",
    "bio2zarr__empty.vcf",
    "bio2zarr__multi_contig.vcf.gz",
    "bio2zarr__out_of_order_contigs.vcf.gz",
    "bio2zarr__sample.vcf.gz",
    "bio2zarr__sample_all_missing_gts.vcf.gz",
    "cyvcf2__test-haploidX.vcf",
    "cyvcf2__test.vcf.gz",
    "hail__bad_flag_number.vcf",
    "hail__x-chromosome.vcf",
    "htslib__formatmissing.vcf",
]

# file -> (line, part of the reason)
REJECTED = {
    "bcftools__norm.vcf": (60, "ALT is not"),
    "bio2zarr__field_type_combos.vcf.gz": (51, "ALT allele is listed twice"),
    "bio2zarr__mixed_ploidy.vcf.gz": (11, "ploidy > 2"),
    "bio2zarr__triploid.vcf.gz": (8, "ploidy > 2"),
    "cyvcf2__test-invalid-header.vcf": (2, "the #CHROM line ends with a tab"),
    "hail__malformed.vcf": (54, "malformed GT"),
}


def _dataset_id(name: str) -> str:
    return name.split(".")[0].lower().replace("__", "-")[:60]


def test_gallery__covers_every_file() -> None:
    files = {p.name for p in DATA.iterdir() if p.suffix not in (".csi", ".tbi", ".tsv")}
    assert files == set(ACCEPTED) | set(REJECTED)


@pytest.mark.integration
@pytest.mark.parametrize("name", ACCEPTED)
def test_roundtrip__genotypes_equal_independent_decoding(
        name: str, ingest_file: Callable, reader: Callable) -> None:
    path = DATA / name
    ref = decode_vcf(path)
    ds = _dataset_id(name)
    res = ingest_file(path, ds)
    rd = reader(ds)
    assert rd.n_samples == len(ref.samples)
    chrom: list[str] = []
    pos: list[int] = []
    refa: list[str] = []
    alt: list[str] = []
    nhap: list[int] = []
    codes = []
    for block in rd.blocks(site_columns=("chrom", "pos", "ref", "alt", "n_haploid")):
        chrom += block.sites.column("chrom").to_pylist()
        pos += block.sites.column("pos").to_pylist()
        refa += block.sites.column("ref").to_pylist()
        alt += block.sites.column("alt").to_pylist()
        nhap += block.sites.column("n_haploid").to_pylist()
        assert block.packed is not None
        assert block.packed.shape == (block.n_variants, (rd.n_samples + 3) // 4)
        codes.append(unpack(block.packed, rd.n_samples))
        if rd.n_samples % 4:  # padding bits of the last byte are zero
            assert not np.any(block.packed[:, -1] >> (2 * (rd.n_samples % 4)))
    assert chrom == ref.chrom
    assert pos == ref.pos.tolist()
    assert refa == ref.ref
    assert alt == ref.alt
    assert nhap == ref.n_haploid.tolist()
    got = np.concatenate(codes) if codes else np.zeros((0, rd.n_samples), np.int8)
    np.testing.assert_array_equal(got, ref.codes)
    assert res.qc["variants_written"] == len(ref.pos)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REJECTED))
def test_roundtrip__rejected_file_names_line_and_leaves_nothing(
        name: str, ingest_file: Callable, store: Store) -> None:
    line, reason = REJECTED[name]
    ds = _dataset_id(name)
    with pytest.raises(InvalidInput) as err:
        ingest_file(DATA / name, ds)
    assert err.value.line == line
    assert reason in err.value.reason
    assert str(DATA / name) in str(err.value)
    assert not store.exists(ds)
    assert ds not in store.list()
    folder = store.dataset_dir(ds)
    assert not list(folder.rglob("*.parquet"))
