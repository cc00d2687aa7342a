"""Shared loaders for the kernel tests: decoded VCFs and oracle tables (cached per file)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from tests.reference.vcf_decode import DecodedVcf, decode_vcf, pack_codes

TESTS = Path(__file__).resolve().parent.parent
VCF_DIR = TESTS / "data" / "vcf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ORACLE = FIXTURES / "oracle"

# oracle name -> input VCF (the same files regenerate.sh feeds to bcftools/plink2)
ORACLE_INPUTS = {
    "ceu_exon": VCF_DIR / "SeqArray__CEU_Exon.vcf.gz",
    "cyvcf2_test": VCF_DIR / "cyvcf2__test.vcf.gz",
    "chr22": VCF_DIR / "bio2zarr__chr22.vcf.gz",
    "haploid_x": VCF_DIR / "cyvcf2__test-haploidX.vcf",
    "msprime_n200": FIXTURES / "msprime_n200.vcf.gz",
}


@functools.cache
def decoded(name: str) -> DecodedVcf:
    return decode_vcf(ORACLE_INPUTS[name])


@functools.cache
def packed(name: str) -> np.ndarray:
    return pack_codes(decoded(name).codes)


def read_table(path: Path) -> list[dict[str, str]]:
    """A tab-separated oracle table as dicts; bcftools' '# [1]CHROM' header is normalised."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    header = lines[0].lstrip("#").strip().split("\t")
    header = [h.split("]", 1)[1] if h.startswith("[") else h for h in header]
    header = [h.lstrip("#") for h in header]
    return list(csv.DictReader(lines[1:], fieldnames=header, delimiter="\t"))


def column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    """Numeric column; '.' and 'NA' become NaN."""
    return np.array([np.nan if r[name] in (".", "NA") else float(r[name]) for r in rows])


def sample_groups(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(population index, sex (1 male), phenotype (1 case)) from the msprime sample sheet."""
    rows = read_table(FIXTURES / f"{name}.samples.tsv")
    pop = np.array([int(r["population"].removeprefix("POP")) for r in rows], np.int32)
    male = np.array([r["sex"] == "M" for r in rows], np.int32)
    case = np.array([r["phenotype"] == "case" for r in rows], np.int32)
    return pop, male, case
