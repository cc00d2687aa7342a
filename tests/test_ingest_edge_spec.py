"""VCF 4.3 edge cases checked against bcftools 1.16: a sample column with more ':'-separated
values than FORMAT has keys is an error to htslib ("Incorrect number of FORMAT fields",
`bcftools view` exits 8), so ingest refuses it at its line; fewer values (trailing fields
dropped) stay valid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.vcfgen import header, unpack, write_vcf
from vault.errors import InvalidInput
from vault.store.dataset import Store

S = ["s1", "s2", "s3"]
H = header(S)
H = H[:2] + ['##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
             '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="GQ">'] + H[2:]  # 5 lines
OK = "1\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/0\t0/1\t1/1"

TOO_MANY = [
    pytest.param("1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/1:5\t0/0\t1/1", 10, id="gt-only"),
    pytest.param("1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/1:\t0/0\t1/1", 10, id="gt-trailing-colon"),
    pytest.param("1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP\t0/1:3\t0/0:3:4\t1/1", 11, id="gt-dp"),
    pytest.param("1\t200\t.\tC\tT,G\t.\tPASS\t.\tGT:DP\t0/2\t1/2\t1/1:3:4", 12,
                 id="multiallelic"),
    pytest.param("1\t200\t.\tC\tT\t.\tPASS\t.\tDP\t3\t1\t2:4", 12, id="no-gt"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("record", "column"), TOO_MANY)
def test_edge__more_sample_values_than_format_keys_rejected(
        tmp_path: Path, ingest_file: Callable, store: Store, record: str, column: int) -> None:
    path = write_vcf(tmp_path / "bad.vcf", H + [OK, record])
    with pytest.raises(InvalidInput) as err:
        ingest_file(path, "bad")
    assert err.value.line == 7, str(err.value)
    assert "more ':'-separated values than FORMAT has keys" in err.value.reason
    assert f"(column {column}: sample #{column - 9})" in err.value.reason
    assert str(path) in str(err.value)
    assert not store.exists("bad")


@pytest.mark.integration
def test_edge__more_sample_values_skipped_and_counted(
        tmp_path: Path, ingest_file: Callable) -> None:
    bad = TOO_MANY[0].values[0]
    path = write_vcf(tmp_path / "bad.vcf", H + [OK, bad], bgzip=True)
    res = ingest_file(path, "skip", skip_invalid=True)
    assert res.qc["skipped_records"] == {"too_many_format_values": 1}
    assert res.qc["records_written"] == 1


@pytest.mark.integration
def test_edge__trailing_format_values_dropped_accepted(
        tmp_path: Path, ingest_file: Callable, reader: Callable) -> None:
    """bcftools: `0/1`, `0/1:5` and `./.:.` under GT:DP:GQ are valid (the rest missing)."""
    recs = [OK,
            "1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP:GQ\t0/1\t0/1:5\t1/1:3:20",
            "1\t300\t.\tC\tT\t.\tPASS\t.\tGT:DP:GQ\t.\t./.:.\t0/0:.:.",
            "1\t400\t.\tC\tT\t.\tPASS\t.\tDP:GQ\t3\t3:4\t.",
            "1\t500\t.\tC\tT\t.\tPASS\t.\tGT:DP\t0/1:\t0/0:3\t1/1"]
    res = ingest_file(write_vcf(tmp_path / "ok.vcf", H + recs), "ok")
    assert res.qc["skipped_records"] == {}
    got = np.concatenate([unpack(b.packed, 3) for b in reader("ok").blocks()])
    assert got.tolist() == [[0, 1, 2], [1, 1, 2], [3, 3, 0], [3, 3, 3], [1, 0, 2]]
