"""Data quality at ingest: each malformed input is rejected with file, line and reason, and
nothing becomes visible; --skip-invalid drops exactly the bad records and counts them."""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.vcfgen import header, unpack, write_vcf
from vault.errors import InvalidInput
from vault.store.dataset import Store

S = ["s1", "s2", "s3"]
H = header(S)  # 3 header lines: record k is on line 3 + k
GOOD = [
    "1\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/0\t0/1\t1/1",
    "1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP\t0|1:3\t./.:0\t1/0:7",
    "1\t300\t.\tG\tA,C\t20\tPASS\t.\tGT\t1/2\t0/2\t./1",
    "2\t50\t.\tT\tTA\t1e2\tPASS\t.\tGT\t0\t1\t.",
]


def _with(line_no: int, text: str) -> list[str]:
    """GOOD records with record ``line_no`` (1-based among records) replaced by ``text``."""
    recs = list(GOOD)
    recs[line_no - 1] = text
    return recs


BAD_RECORDS = [
    pytest.param(_with(2, "1\t50\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "not sorted: POS 50 comes after POS 100 on the same contig; sort the file "
                 "first: `bcftools sort in.vcf.gz -Oz -o sorted.vcf.gz`", "unsorted",
                 id="unsorted-position"),
    pytest.param([*GOOD, "1\t400\t.\tA\tG\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"], 8,
                 "appears again after other contigs; sort the file first: `bcftools sort",
                 "unsorted", id="contig-not-contiguous"),
    pytest.param(_with(2, "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "duplicate record", "duplicate", id="duplicate-record"),
    pytest.param(_with(2, "1\t200\t.\tX\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "REF must be", "bad_ref", id="bad-ref"),
    pytest.param(_with(2, "1\t200\t.\tC\tT,\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "ALT is not", "bad_alt", id="bad-alt-empty-allele"),
    pytest.param(_with(2, "1\t200\t.\tC\t<DEL\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "ALT is not", "bad_alt", id="bad-alt-unclosed-symbolic"),
    # htslib reads these (bcftools 1.16 view exits 0); a GT of allele 1 would count as a variant
    *[pytest.param(_with(2, f"1\t200\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t0/0\t0/1\t0/0"), 5,
                   "an ALT allele is the REF allele itself", "alt_is_ref", id=f"alt-is-ref-{name}")
      for name, ref, alt in [("snv", "C", "C"), ("case", "C", "c"), ("second", "CT", "C,CT"),
                             ("n", "N", "N")]],
    pytest.param(_with(2, "1\tabc\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "POS is not", "bad_pos", id="bad-pos"),
    # 2^64 + 150: wrapped around to POS 150 (sorted, so it was stored there); htslib refuses
    pytest.param(_with(2, "1\t18446744073709551766\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"),
                 5, "POS is not a non-negative integer (of at most 63 bits): "
                 "'18446744073709551766'", "bad_pos", id="pos-past-64-bits"),
    # 32,768 distinct ALTs: allele_index and n_alleles (int16) wrapped around to -32,768
    pytest.param(_with(2, "1\t200\t.\tC\t" + ",".join(
        "".join(t) for t in itertools.islice(itertools.product("ACGT", repeat=8), 32768))
        + "\t.\tPASS\t.\tGT\t0/0\t0/32768\t1/1"), 5, "more than 32,767 ALT alleles",
        "too_many_alts", id="alt-count-past-int16"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\tq\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "QUAL", "bad_qual", id="bad-qual"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t-1.5\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "QUAL must be '.' or a non-negative number: '-1.5'", "bad_qual",
                 id="negative-qual"),
    *[pytest.param(_with(2, f"{chrom}\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                   "CHROM is not a valid contig name", "bad_chrom", id=f"bad-chrom-{name}")
      for name, chrom in [("space", "chr 1"), ("comma", "1,2"), ("star-first", "*1"),
                          ("equals-first", "=1"), ("angle-inside", "ch<r>1"),
                          ("unclosed-symbolic", "<ctg1"), ("empty-symbolic", "<>"),
                          ("space-in-symbolic", "<ctg 1>"), ("control-char", "chr\x011"),
                          ("quote", 'chr"1'), ("bracket", "chr[1]"), ("non-ascii", "chré")]],
    pytest.param(_with(2, "chr1:2\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "CHROM contains ':' which VCF allows but GenoVault reserves for its regions",
                 "chrom_with_colon", id="chrom-with-colon"),
    *[pytest.param(_with(2, f"1\t200\t.\tC\t{alt}\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                   "ALT is not '.' or a comma-separated list of: bases", "bad_alt",
                   id=f"bad-alt-{name}")
      for name, alt in [("symbolic-two-closers", "<INS>BLAH>"), ("symbolic-empty", "<>"),
                        ("symbolic-space", "<A B>"), ("symbolic-in-bases", "C<DEL>"),
                        ("breakend-mixed-brackets", "C]17:198982["),
                        ("breakend-no-pos", "C]17]"), ("breakend-no-chrom", "C]:5]"),
                        ("breakend-bad-pos", "C]17:1x]"), ("breakend-no-bases", "]17:5]"),
                        ("breakend-both-sides", "C]17:5]T"), ("breakend-space", "C[chr 1:5["),
                        ("single-breakend-both-dots", ".C."), ("dot-in-list", "T,.")]],
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/x\t0/0"), 5,
                 "malformed GT value (column 11: sample #2)", "bad_gt", id="bad-gt"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/1/1\t0/0"), 5,
                 "ploidy > 2", "ploidy_gt_2", id="triploid"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/2\t0/0"), 5,
                 "allele index larger", "allele_out_of_range", id="allele-out-of-range"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0"), 5,
                 "fewer sample columns", "too_few_samples", id="too-few-samples"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0\t0/0"), 5,
                 "more sample columns", "too_many_samples", id="too-many-samples"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS"), 5,
                 "fewer than 8", "too_few_columns", id="truncated-line"),
    pytest.param(_with(2, "1\t200\t\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"), 5,
                 "empty column", "empty_field", id="empty-field"),
    pytest.param(_with(2, "1\t200\t.\tC\tT\t.\tPASS\t.\tDP:GT\t3:0/0\t3:0/0\t3:0/0"), 5,
                 "GT is in FORMAT but not its first key", "gt_not_first", id="gt-not-first"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("records", "line", "reason", "key"), BAD_RECORDS)
def test_validation__bad_record_rejected_with_line(
        tmp_path: Path, ingest_file: Callable, store: Store, records: list[str], line: int,
        reason: str, key: str) -> None:
    path = write_vcf(tmp_path / "bad.vcf", H + records)
    with pytest.raises(InvalidInput) as err:
        ingest_file(path, "bad")
    assert err.value.line == line, str(err.value)
    assert reason in err.value.reason
    assert str(path) in str(err.value)
    assert not store.exists("bad")
    assert not list(store.dataset_dir("bad").rglob("*.parquet"))


@pytest.mark.integration
@pytest.mark.parametrize(("records", "line", "reason", "key"), BAD_RECORDS)
def test_validation__skip_invalid_drops_and_counts(
        tmp_path: Path, ingest_file: Callable, reader: Callable, records: list[str],
        line: int, reason: str, key: str) -> None:
    path = write_vcf(tmp_path / "bad.vcf", H + records, bgzip=True)
    res = ingest_file(path, "skip", skip_invalid=True)
    assert res.qc["skipped_records"] == {key: 1}
    assert res.qc["records_read"] == len(records)
    assert res.qc["records_written"] == len(records) - 1
    # the surviving rows are exactly the good records' rows
    bad_text = records[line - len(H) - 1]
    kept = [r for r in records if r is not bad_text]
    expected = write_vcf(tmp_path / "kept.vcf", H + kept)
    from tests.reference.vcf_decode import decode_vcf

    ref = decode_vcf(expected)
    rd = reader("skip")
    pos, codes = [], []
    for b in rd.blocks():
        pos += b.sites.column("pos").to_pylist()
        codes.append(unpack(b.packed, 3))
    assert pos == ref.pos.tolist()
    np.testing.assert_array_equal(np.concatenate(codes), ref.codes)


BAD_HEADERS = [
    pytest.param(["##fileformat=VCFv4.2"] + H[1:], "", 1, None, id="ok-control"),
    pytest.param(["#fileformat=VCFv4.2"] + H[1:], "", 1, "first line must be", id="no-fileformat"),
    # htslib reads any version text (bcftools 1.16 accepts these); VCF 3.3 has other rules
    *[pytest.param([f"##fileformat={v}"] + H[1:], "", 1, "##fileformat must be a VCF 4 version",
                   id=f"fileformat-{v}") for v in ("VCFv3.3", "VCFvX", "VCFv4", "VCFv4.2 ")],
    pytest.param(["##fileformat=VCFv4.5"] + H[1:], "", 1, None, id="ok-fileformat-4.5"),
    pytest.param(H[:-1], "", 3, "missing '#CHROM'", id="no-chrom-line"),
    pytest.param(H[:-1] + ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\ts1"],
                 "", 3, "duplicate sample id in columns 10 and 12", id="duplicate-sample"),
    pytest.param(H[:-1] + ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\ts3\t"],
                 "", 3, "the #CHROM line ends with a tab (an empty column 13)",
                 id="trailing-tab"),
    pytest.param(H[:-1] + ["#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT s1 s2 s3"],
                 "", 3, "tab-separated", id="spaces-not-tabs"),
    pytest.param(H[:1] + ["##INFO=<ID=X,Number=1"] + H[1:], "", 2, "malformed ##INFO",
                 id="unclosed-info"),
    pytest.param(H[:1] + ["##contig=<ID=1>", "##contig=<ID=1>"] + H[1:], "", 3,
                 "declared twice", id="contig-twice"),
    pytest.param(H[:1] + ["##contig=<ID=1>"] + H[1:], "", 8, "not declared",
                 id="undeclared-contig"),
    pytest.param(H[:1] + ["##contig=<ID=chr 1>"] + H[1:], "", 2, "not a valid contig name",
                 id="contig-id-space"),
    pytest.param(H[:1] + ["##contig=<ID=*1>"] + H[1:], "", 2, "not a valid contig name",
                 id="contig-id-star-first"),
    pytest.param(H[:1] + ["##contig=<ID=chr\x7f>"] + H[1:], "", 2, "not a valid contig name",
                 id="contig-id-control-char"),
    # declaring a contig with ':' is fine (GRCh38 HLA contigs); a record using it is
    # refused (bad-chrom cases above)
    pytest.param(H[:1] + ["##contig=<ID=1>", "##contig=<ID=2>", "##contig=<ID=HLA-A*01:01>"]
                 + H[1:], "", 1, None, id="ok-contig-id-colon-declared"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("hdr", "_unused", "line", "reason"), BAD_HEADERS)
def test_validation__header(tmp_path: Path, ingest_file: Callable, store: Store,
                            hdr: list[str], _unused: str, line: int, reason: str | None) -> None:
    path = write_vcf(tmp_path / "h.vcf", hdr + GOOD)
    if reason is None:
        ingest_file(path, "hdr")
        assert store.exists("hdr")
        return
    with pytest.raises(InvalidInput) as err:
        ingest_file(path, "hdr")
    assert err.value.line == line, str(err.value)
    assert reason in err.value.reason
    assert not store.exists("hdr")


@pytest.mark.integration
def test_validation__error_messages_never_quote_sample_ids(
        tmp_path: Path, ingest_file: Callable) -> None:
    secret = "PATIENT-0042"
    hdr = H[:-1] + ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
                    f"{secret}\ts2\t{secret}"]
    with pytest.raises(InvalidInput) as err:
        ingest_file(write_vcf(tmp_path / "dup.vcf", hdr + GOOD), "dup")
    assert secret not in str(err.value)


@pytest.mark.integration
def test_validation__truncated_bgzf_rejected(tmp_path: Path, ingest_file: Callable,
                                             store: Store) -> None:
    from tests.support.vcfgen import cohort_vcf

    path, _ = cohort_vcf(tmp_path / "c.vcf.gz", [f"s{i}" for i in range(50)], 3000, bgzip=True)
    data = path.read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput) as err:
        ingest_file(cut, "cut")
    assert "truncated" in str(err.value)
    assert not store.exists("cut")


@pytest.mark.integration
def test_validation__corrupt_bgzf_block_rejected(tmp_path: Path, ingest_file: Callable,
                                                 store: Store) -> None:
    from tests.support.vcfgen import cohort_vcf

    path, _ = cohort_vcf(tmp_path / "c.vcf.gz", [f"s{i}" for i in range(50)], 3000, bgzip=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "flip.vcf.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(InvalidInput):
        ingest_file(bad, "flip")
    assert not store.exists("flip")


@pytest.mark.integration
@pytest.mark.parametrize(("fmt", "suffix"), [("z", ".vcf.gz"), ("b", ".bcf")],
                         ids=["vcf.gz", "bcf"])
def test_validation__bgzf_cut_at_a_block_boundary_rejected(
        tmp_path: Path, ingest_file: Callable, store: Store, fmt: str, suffix: str) -> None:
    """htslib writes whole records per BGZF block, so a file cut at a block boundary (a
    killed `bcftools view -Oz`, a short copy) still decodes, just without its last records:
    only the missing end-of-file block tells. bcftools refuses it ("no BGZF EOF marker");
    so must ingest, not load the first half as if it were the file."""
    import struct
    import subprocess

    from tests.support.vcfgen import random_records

    samples = [f"s{i}" for i in range(50)]
    vcf = write_vcf(tmp_path / "c.vcf",
                    header(samples, contigs=["1"]) + random_records(50, 3000)[0])
    whole = tmp_path / f"c{suffix}"
    with open(whole, "wb") as out:
        subprocess.run(["bcftools", "view", "--no-version", f"-O{fmt}", str(vcf)], stdout=out,
                       check=True)
    data = whole.read_bytes()
    starts, p = [], 0
    while p < len(data):
        starts.append(p)
        p += struct.unpack_from("<H", data, p + 16)[0] + 1
    assert len(starts) > 4
    cut = tmp_path / f"cut{suffix}"
    for at in (starts[len(starts) // 2], starts[-1]):  # mid-file; only the EOF block gone
        cut.write_bytes(data[:at])
        with pytest.raises(InvalidInput) as err:
            ingest_file(cut, "cut")
        assert err.value.path == str(cut)
        assert "no BGZF end-of-file marker" in err.value.reason
        assert not store.exists("cut")


@pytest.mark.integration
def test_validation__plain_gzip_and_crlf_accepted(tmp_path: Path, ingest_file: Callable,
                                                  reader: Callable) -> None:
    text = "\r\n".join(H + GOOD) + "\r\n"
    path = tmp_path / "crlf.vcf.gz"
    with gzip.open(path, "wt", newline="") as fh:
        fh.write(text)
    res = ingest_file(path, "crlf")
    assert res.qc["variants_written"] == 5
    plain = write_vcf(tmp_path / "lf.vcf", H + GOOD)
    from tests.reference.vcf_decode import decode_vcf

    ref = decode_vcf(plain)
    got = np.concatenate([unpack(b.packed, 3) for b in reader("crlf").blocks()])
    np.testing.assert_array_equal(got, ref.codes)


@pytest.mark.integration
def test_validation__qc_counts_rules(tmp_path: Path, ingest_file: Callable) -> None:
    res = ingest_file(write_vcf(tmp_path / "ok.vcf", H + GOOD), "qc")
    qc = res.qc
    assert qc["records_read"] == 4
    assert qc["variants_written"] == 5
    assert qc["multiallelic_records"] == 1
    assert qc["multiallelic_split_rows_added"] == 1
    assert qc["half_calls_as_missing"] == 1  # ./1
    assert qc["haploid_calls_as_homozygous"] == 2  # '0' and '1' on line 4
    # missing calls: ./. (1 row) + ./1 (2 rows) + '.' (1 row) = 4 of 5 rows x 3 samples
    assert qc["missingness"] == pytest.approx(4 / 15)


@pytest.mark.integration
def test_validation__bcf_errors_name_the_record(tmp_path: Path, ingest_file: Callable,
                                                store: Store) -> None:
    import pysam

    text = write_vcf(tmp_path / "u.vcf", header(S, contigs=["1", "2"]) + [
        "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1",
        "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/0\t0/0\t0/0"])
    bcf = tmp_path / "u.bcf"
    with pysam.VariantFile(str(text)) as src, \
            pysam.VariantFile(str(bcf), "wb", header=src.header) as dst:
        for rec in src:
            dst.write(rec)
    with pytest.raises(InvalidInput) as err:
        ingest_file(bcf, "ubcf")
    assert err.value.line is None
    assert err.value.reason.startswith("record 2: records are not sorted")
    assert not store.exists("ubcf")


VALID_FORMS = [
    # what VCF 4.3 allows and GenoVault stores as written
    "1\t100\t.\tA\tG\t0\tPASS\t.\tGT\t0/0\t0/1\t1/1",
    "1\t101\t.\tA\t<DEL>,<*>\tINFINITY\tPASS\t.\tGT\t0/1\t0/2\t1/2",
    "1\t102\t.\tA\t<DUP:TANDEM>\t-0\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "1\t103\t.\tG\tG]17:198982]\t.5\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "1\t104\t.\tT\t]13:123456]T\t1E3\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "1\t105\t.\tC\tC[2:321682[,[17:198983[C\t.\tPASS\t.\tGT\t0/1\t0/2\t0/0",
    "1\t106\t.\tC\tCAGT[<ctg1>:7[\t.\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "1\t107\t.\tA\t.A,A.,.ACG\t.\tPASS\t.\tGT\t0/1\t0/2\t0/3",
    "1\t108\t.\tA\tacgtn,*\t.\tPASS\t.\tGT\t0/1\t0/2\t0/0",
    "1\t109\t.\tA\tG[HLA-A*01:01:5[\t.\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "HLA-A*01\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "<ctg1>\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t0/0",
    "x!#$%&+./;?@^_|~-*=\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t0/0",
]


@pytest.mark.integration
def test_validation__valid_forms_accepted(tmp_path: Path, ingest_file: Callable,
                                          reader: Callable) -> None:
    contigs = ["1", "HLA-A*01", "<ctg1>", "x!#$%&+./;?@^_|~-*="]
    hdr = H[:1] + [f"##contig=<ID={c}>" for c in contigs if not c.startswith("<")] + H[1:]
    res = ingest_file(write_vcf(tmp_path / "ok.vcf", hdr[:1] + H[1:] + VALID_FORMS), "forms")
    assert res.qc["skipped_records"] == {}
    assert res.qc["records_written"] == len(VALID_FORMS)
    rows = [(b.sites.column("chrom").to_pylist(), b.sites.column("alt").to_pylist())
            for b in reader("forms").blocks(site_columns=("chrom", "alt"), genotypes=False)]
    chroms = {c for cs, _ in rows for c in cs}
    alts = {a for _, als in rows for a in als}
    assert chroms == set(contigs)
    assert {"<*>", "G]17:198982]", "CAGT[<ctg1>:7[", ".ACG", "acgtn", "*"} <= alts
    # the ##contig IDs of the same names are accepted too
    ingest_file(write_vcf(tmp_path / "ok2.vcf", hdr + VALID_FORMS[:1]), "forms2")
