"""Larger cohorts: an msprime simulation and the bundled demo cohort round-trip exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.reference.vcf_decode import decode_vcf
from tests.support.cohorts import simulate_cohort
from tests.support.vcfgen import unpack
from vault.ingest import source

DEMO = Path(__file__).parents[1] / "vault" / "sample_data"


def _read_all(rd: object, n: int) -> tuple[list[int], list[str], np.ndarray]:
    pos: list[int] = []
    alt: list[str] = []
    codes = []
    for block in rd.blocks(site_columns=("pos", "alt")):  # type: ignore[attr-defined]
        pos += block.sites.column("pos").to_pylist()
        alt += block.sites.column("alt").to_pylist()
        codes.append(unpack(block.packed, n))
    return pos, alt, np.concatenate(codes)


@pytest.mark.slow
@pytest.mark.integration
def test_scale__msprime_cohort_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         ingest_file: Callable, reader: Callable) -> None:
    vcf = simulate_cohort(1001, out_dir=tmp_path, seed=5, sequence_length=2e6)
    ref = decode_vcf(vcf)
    assert ref.codes.shape[0] > 1000  # thousands of sites, some multiallelic
    monkeypatch.setattr(source, "CHUNK_COMPRESSED", 1 << 18)  # many chunks and straddles
    res = ingest_file(vcf, "sim", bin_size=250_000)
    assert res.qc["variants_written"] == ref.codes.shape[0]
    pos, alt, codes = _read_all(reader("sim"), 1001)
    assert pos == ref.pos.tolist()
    assert alt == ref.alt
    np.testing.assert_array_equal(codes, ref.codes)


@pytest.mark.integration
def test_scale__demo_cohort_roundtrip_with_groups(ingest_file: Callable,
                                                  reader: Callable) -> None:
    vcf = DEMO / "demo_cohort.vcf.gz"
    ref = decode_vcf(vcf)
    res = ingest_file(vcf, "demo", sample_sheet=DEMO / "demo_cohort_samples.tsv")
    assert res.qc["groups"]["population"] == {
        p: {"samples": 100, "missingness": pytest.approx(0.01, abs=0.002)}
        for p in ("pop1", "pop2", "pop3")}
    rd = reader("demo")
    pos, alt, codes = _read_all(rd, 300)
    assert pos == ref.pos.tolist() and alt == ref.alt
    np.testing.assert_array_equal(codes, ref.codes)
    assert rd.samples(["population"]).column("population").to_pylist() == \
        ["pop1"] * 100 + ["pop2"] * 100 + ["pop3"] * 100
