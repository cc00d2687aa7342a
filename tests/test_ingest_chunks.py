"""Chunk boundaries: records that straddle decompressed chunks are parsed exactly once, in order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.vcfgen import cohort_vcf, unpack
from vault.ingest import source


@pytest.mark.integration
@pytest.mark.parametrize("bgzip", [True, False], ids=["bgzf", "plain-text"])
def test_chunks__tiny_chunks_give_identical_genotypes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ingest_file: Callable,
        reader: Callable, bgzip: bool) -> None:
    samples = [f"s{i}" for i in range(37)]  # not a multiple of 4
    name = "c.vcf.gz" if bgzip else "c.vcf"
    path, codes = cohort_vcf(tmp_path / name, samples, 4000, seed=3, bgzip=bgzip)
    # ~40 BGZF blocks per slice would hide straddling; force many small slices/chunks
    monkeypatch.setattr(source, "CHUNK_COMPRESSED", 1 << 16)
    monkeypatch.setattr(source, "CHUNK_TEXT", 10_007)
    res = ingest_file(path, "chunks", bin_size=50_000)
    assert res.qc["variants_written"] == 4000
    rd = reader("chunks")
    got, pos = [], []
    for block in rd.blocks():
        got.append(unpack(block.packed, len(samples)))
        pos += block.sites.column("pos").to_pylist()
    assert pos == [1000 + 100 * i for i in range(4000)]
    np.testing.assert_array_equal(np.concatenate(got), codes)
    # positions 1,000..400,900 fall into 50 kb bins 0..8
    assert [f.bin for f in rd.batches[0].variant_files] == list(range(9))


@pytest.mark.parametrize("text, start", [
    pytest.param(b"", 0, id="empty"),
    pytest.param(b"no newline at all", 0, id="none"),
    pytest.param(b"\n", 0, id="first-byte"),
    pytest.param(b"ab\ncd\n", 3, id="from-start"),
    pytest.param(b"ab\ncd", 3, id="none-after-start"),
    pytest.param(b"x" * 4095 + b"\n", 0, id="last-byte-of-first-window"),
    pytest.param(b"x" * 4096 + b"\n", 0, id="first-byte-of-second-window"),
    pytest.param(b"x" * 3_000_000 + b"\nrest", 5, id="long-line"),
])
def test_find_nl_re__same_as_the_kernel(text, start):
    from vault.ingest.source import _find_nl, _find_nl_re

    buf = np.frombuffer(text, np.uint8).copy()
    assert _find_nl_re(buf, start) == _find_nl(buf, start) == text.find(b"\n", start)
