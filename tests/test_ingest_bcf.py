"""Native BCF: every real VCF that bcftools converts gives, as BCF, the same records as the VCF
(every site column, INFO values, QUAL, every genotype, the same errors), and malformed BCF is
refused with the record's number and leaves nothing behind.

The oracle is the VCF text path of the same file (itself checked against pysam in
test_ingest_roundtrip) and, for the synthetic gallery, the expected values written out.
"""

from __future__ import annotations

import gzip
import itertools
import math
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.vcfgen import header, random_records, unpack, write_vcf
from tests.test_ingest_limits import BGZF_EOF, _bgzf_block
from tests.test_ingest_limits import run_child as run_child  # the fixture
from vault.errors import InvalidInput
from vault.ingest import vcfparse as vp
from vault.ingest.bcf import BcfReader
from vault.ingest.source import open_source
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "vcf"
FILES = sorted(p.name for p in DATA.iterdir() if p.suffix not in (".csi", ".tbi", ".tsv"))
VCFS = [f for f in FILES if not f.endswith(".bcf")]
#: the real files bcftools refuses to convert (their headers or records are broken)
NOT_CONVERTIBLE = {"cyvcf2__test-invalid-header.vcf", "hail__malformed.vcf"}
SITE_COLUMNS = ("chrom", "pos", "id", "ref", "alt", "qual", "filter", "allele_index",
                "n_alleles", "n_haploid", "n_half_call")


def to_bcf(src: Path, dst: Path, fmt: str = "b") -> Path | None:
    """``bcftools view -O<fmt>`` of src (b: BGZF BCF, u: uncompressed), or None if bcftools
    refuses it. (Written through stdout: with ``-o x.bcf`` bcftools picks the format from
    the file name.)"""
    with open(dst, "wb") as out:
        proc = subprocess.run(["bcftools", "view", "--no-version", f"-O{fmt}", str(src)],
                              stdout=out, stderr=subprocess.DEVNULL, check=False)
    return dst if proc.returncode == 0 and dst.stat().st_size else None


def _number(v: str) -> Any:
    try:
        x = np.float32(v)
    except ValueError:
        return v
    return "nan" if math.isnan(x) else x


def info_values(text: str) -> dict[str, Any]:
    """INFO text as {key: True (flag) or a tuple of values (None for '.')}; numbers compared
    as float32 (what a Float field holds), so 1e+06 and 1000000 are the same value."""
    if text == ".":
        return {}
    out: dict[str, Any] = {}
    for kv in text.split(";"):
        key, eq, value = kv.partition("=")
        out[key] = tuple(None if v in (".", "") else _number(v)
                         for v in value.split(",")) if eq else True
    return out


def records(chunks: Iterator[Any], n_samples: int) -> list[tuple[Any, ...]]:
    """Per record: error code and column, the site fields, INFO values, QUAL, the packed
    genotypes of its rows and its haploid / half-call / no-GT counts."""
    out = []
    for b in chunks:
        c = b if isinstance(b, vp.ParsedChunk) else vp.parse_chunk(b, n_samples)
        for li in range(c.n_lines):
            err = int(c.err[li])
            if err:
                out.append((err, int(c.err_col[li])))
                continue
            rows = c.packed[c.row_start[li]:c.row_start[li + 1]]
            out.append((0, [c.field(li, k) for k in (0, 1, 2, 3, 4, 6)],
                        info_values(c.field(li, 7)), bool(c.qual_null[li]),
                        None if c.qual_null[li] else float(c.qual[li]),
                        unpack(rows, n_samples).tolist(), int(c.n_hap[li]),
                        int(c.n_half[li]), bool(c.no_gt[li])))
    return out


def parse_file(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    ch = open_source(path).chunker()
    lines = ch.read_header()
    last = lines[-1] if lines else ""
    n = max(0, last.count("\t") - 8) if last.startswith("#CHROM") else 0
    return lines, records(ch.data_chunks(), n)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | None]:
    out = tmp_path_factory.mktemp("bcf")
    return {name: to_bcf(DATA / name, out / f"{name}.bcf") for name in VCFS}


def test_bcf__every_real_file_is_compared(converted: dict[str, Path | None]) -> None:
    assert {n for n, p in converted.items() if p is None} == NOT_CONVERTIBLE


@pytest.mark.parametrize("name", sorted(set(VCFS) - NOT_CONVERTIBLE))
def test_bcf__equals_vcf_record_for_record(name: str,
                                           converted: dict[str, Path | None]) -> None:
    bcf_path = converted[name]
    assert bcf_path is not None
    _, want = parse_file(DATA / name)
    _, got = parse_file(bcf_path)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"record {i + 1}"


# -- whole ingests: the stored datasets are the same, the errors name the same record ------

def _dataset(reader: Any, ds: str) -> tuple[dict[str, list[Any]], np.ndarray]:
    rd = reader(ds)
    sites: dict[str, list[Any]] = {c: [] for c in SITE_COLUMNS}
    codes = []
    for block in rd.blocks(site_columns=SITE_COLUMNS):
        for c in SITE_COLUMNS:
            sites[c] += block.sites.column(c).to_pylist()
        codes.append(unpack(block.packed, rd.n_samples))
    return sites, (np.concatenate(codes) if codes else np.zeros((0, rd.n_samples), np.int8))


@pytest.mark.parametrize("name", ["cyvcf2__test.vcf.gz", "cyvcf2__test-haploidX.vcf",
                                  "bio2zarr__1kg_2020_chrM.vcf.gz", "htslib__formatmissing.vcf"])
def test_bcf__ingest_stores_what_the_vcf_stores(name: str, tmp_path: Path,
                                                ingest_file: Callable, reader: Callable,
                                                converted: dict[str, Path | None]) -> None:
    bcf_path = converted[name]
    assert bcf_path is not None
    ds = name.split(".")[0].lower().replace("__", "-")
    res_v = ingest_file(DATA / name, ds + "-v")
    res_b = ingest_file(bcf_path, ds + "-b")
    assert res_b.qc == res_v.qc
    assert res_b.manifest.batches[0].source.format == "bcf"
    sites_v, codes_v = _dataset(reader, ds + "-v")
    sites_b, codes_b = _dataset(reader, ds + "-b")
    assert sites_b == sites_v
    np.testing.assert_array_equal(codes_b, codes_v)


# file -> (VCF line, reason), as in test_ingest_roundtrip.REJECTED
REJECTED = {
    "bcftools__norm.vcf": (60, "ALT is not"),
    "bio2zarr__field_type_combos.vcf.gz": (51, "ALT allele is listed twice"),
    "bio2zarr__mixed_ploidy.vcf.gz": (11, "ploidy > 2"),
    "bio2zarr__triploid.vcf.gz": (8, "ploidy > 2"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_bcf__rejected_like_the_vcf_at_the_same_record(
        name: str, ingest_file: Callable, store: Store,
        converted: dict[str, Path | None]) -> None:
    line, reason = REJECTED[name]
    bcf_path = converted[name]
    assert bcf_path is not None
    with pytest.raises(InvalidInput) as vcf_err:
        ingest_file(DATA / name, "rej-v")
    with pytest.raises(InvalidInput) as bcf_err:
        ingest_file(bcf_path, "rej-b")
    n_header = len(parse_file(DATA / name)[0])
    assert vcf_err.value.line == line and reason in vcf_err.value.reason
    assert bcf_err.value.line is None
    assert bcf_err.value.reason == f"record {line - n_header}: {vcf_err.value.reason}"
    assert not store.exists("rej-b")


# -- a synthetic gallery: what real files rarely have -------------------------------------

GALLERY_SAMPLES = ["a", "b", "c", "d", "e"]
MANY_ALTS = ",".join("A" + "C" * k for k in range(1, 66))  # 65 ALT alleles: int16 GT
GALLERY = [
    "##fileformat=VCFv4.2",
    '##FILTER=<ID=q10,Description="low">',
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="d">',
    '##INFO=<ID=AF,Number=A,Type=Float,Description="f">',
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="c">',
    '##INFO=<ID=DB,Number=0,Type=Flag,Description="flag">',
    '##INFO=<ID=NOTE,Number=.,Type=String,Description="s">',
    '##INFO=<ID=BIG,Number=1,Type=Integer,Description="int32">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="depth">',
    "##contig=<ID=1>",
    "##contig=<ID=X>",
    "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
               *GALLERY_SAMPLES]),
    # phased and unphased, a half-call, a missing call
    "1\t100\trs1\tA\tG\t29.5\tPASS\tDP=14;AF=0.5;DB\tGT\t0|1\t1|1\t0/0\t./1\t./.",
    # multi-allelic with INFO vectors holding a missing value, floats of every size
    "1\t200\t.\tC\tT,G,CA\t0.1\tq10\tAF=1e-30,3.4e+38,.;AC=1,.,2;NOTE=x,yz\tGT\t1/2\t0/3\t2|2"
    "\t3/0\t./.",
    # FORMAT without GT: every sample missing
    "1\t300\t.\tG\tA\t.\t.\tBIG=2000000000;DP=-5\tDP\t3\t4\t5\t6\t7",
    # 65 ALT alleles: GT is an int16 vector
    f"1\t400\t.\tA\t{MANY_ALTS}\t1e3\tPASS\t.\tGT\t0/65\t64/65\t0/0\t1/0\t./.",
    # haploid and diploid calls mixed; no ALT
    "X\t500\t.\tT\tC\t.\tPASS\t.\tGT\t0\t1/1\t.\t1\t0/0",
    "X\t550\t.\tG\t.\t.\tPASS\t.\tGT\t0/0\t0\t.\t./.\t0|0",
    "X\t600\t.\tT\tC\t.\tPASS\tNOTE=.\tGT:DP\t0:1\t1:2\t.:3\t0/1:4\t1|0:5",
]


def test_bcf__gallery_equals_vcf(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "g.vcf", GALLERY)
    bcf_path = to_bcf(vcf, tmp_path / "g.bcf")
    assert bcf_path is not None
    _, want = parse_file(vcf)
    _, got = parse_file(bcf_path)
    assert got == want
    # and what they are, written out
    assert [r[0] for r in got] == [0] * 7
    phased, multi, no_gt, many, haploid, no_alt, mixed = got
    assert phased[5] == [[1, 2, 0, 3, 3]] and phased[7] == 1  # one half-call
    assert phased[2] == {"DP": (14,), "AF": (np.float32(0.5),), "DB": True}
    assert multi[2] == {"AF": (np.float32(1e-30), np.float32(3.4e38), None),
                        "AC": (1, None, 2), "NOTE": ("x", "yz")}
    assert multi[5] == [[1, 0, 0, 0, 3], [1, 0, 2, 0, 3], [0, 1, 0, 1, 3]]
    assert multi[4] == pytest.approx(0.1) and multi[1][5] == "q10"
    assert no_gt[8] is True and no_gt[5] == [[3, 3, 3, 3, 3]]
    assert no_gt[2] == {"BIG": (2000000000,), "DP": (-5,)}
    assert len(many[5]) == 65 and many[5][64] == [1, 1, 0, 0, 3] and many[5][63] == [0, 1, 0,
                                                                                        0, 3]
    assert haploid[5] == [[0, 2, 3, 2, 0]] and haploid[6] == 2
    assert no_alt[1][4] == "." and no_alt[5] == [[0, 0, 3, 3, 0]] and no_alt[6] == 1
    assert mixed[5] == [[0, 2, 3, 1, 1]] and mixed[6] == 2 and mixed[2] == {"NOTE": (None,)}


def test_bcf__uncompressed_and_plain_gzip_bcf(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "g.vcf", GALLERY)
    want = parse_file(to_bcf(vcf, tmp_path / "g.bcf") or vcf)
    plain = to_bcf(vcf, tmp_path / "u.bcf", fmt="u")
    assert plain is not None and plain.read_bytes()[:4] == b"BCF\x02"
    gz = tmp_path / "z.bcf"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, gz):
        assert open_source(path).kind == "bcf"
        assert parse_file(path) == want


def test_bcf__records_straddling_chunks(tmp_path: Path) -> None:
    samples = [f"s{i}" for i in range(37)]
    recs, _ = random_records(len(samples), 2000, seed=4)
    vcf = write_vcf(tmp_path / "c.vcf.gz", header(samples, contigs=["1"]) + recs, bgzip=True)
    bcf_path = to_bcf(vcf, tmp_path / "c.bcf", fmt="u")
    assert bcf_path is not None
    raw = bcf_path.read_bytes()
    _, want = parse_file(vcf)
    rng = np.random.default_rng(1)
    cuts = np.cumsum(rng.choice([1, 3, 7, 8, 9, 70, 1000, 5000], size=len(raw) // 500))
    cuts = [0, *[int(c) for c in cuts if c < len(raw)], len(raw)]
    pieces = (raw[a:b] for a, b in itertools.pairwise(cuts))
    reader = BcfReader(pieces, bcf_path)
    reader.read_header()
    assert records(reader.data_chunks(), len(samples)) == want


def test_bcf__version_2_1_and_idx_out_of_order(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "g.vcf", GALLERY)
    plain = to_bcf(vcf, tmp_path / "u.bcf", fmt="u")
    assert plain is not None
    raw = plain.read_bytes()
    want = parse_file(plain)[1]
    v21 = tmp_path / "v21.bcf"
    v21.write_bytes(raw[:4] + b"\x01" + raw[5:])
    assert parse_file(v21)[1] == want
    # the header's INFO lines moved to its end: their IDX= keep the dictionary as it was
    (n,) = struct.unpack_from("<I", raw, 5)
    lines = raw[9:9 + n].rstrip(b"\0").split(b"\n")
    info = [ln for ln in lines if ln.startswith(b"##INFO")]
    assert all(b"IDX=" in ln for ln in info)
    rest = [ln for ln in lines if not ln.startswith(b"##INFO")]
    moved = b"\n".join(rest[:-2] + info + rest[-2:]) + b"\0"
    assert len(moved) == n
    shuffled = tmp_path / "idx.bcf"
    shuffled.write_bytes(raw[:9] + moved + raw[9 + n:])
    assert parse_file(shuffled)[1] == want
    # two IDs with the same IDX: refused
    clash = moved.replace(b"ID=DP,Number=1,Type=Integer,Description=\"d\",IDX=",
                          b"ID=DQ,Number=1,Type=Integer,Description=\"d\",IDX=", 1)
    (tmp_path / "clash.bcf").write_bytes(raw[:9] + clash + raw[9 + n:])
    with pytest.raises(InvalidInput, match="is given to"):
        parse_file(tmp_path / "clash.bcf")


# -- malformed BCF ------------------------------------------------------------------------

SMALL = [*header(["s1", "s2", "s3"], contigs=["1"]),
         *[f"1\t{100 * (i + 1)}\t.\tA\tG\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1" for i in range(5)]]


def _plain_records(tmp_path: Path) -> tuple[bytes, list[int]]:
    """An uncompressed BCF of SMALL and the offset of each record."""
    plain = to_bcf(write_vcf(tmp_path / "s.vcf", SMALL), tmp_path / "s.bcf", fmt="u")
    assert plain is not None
    raw = plain.read_bytes()
    (n,) = struct.unpack_from("<I", raw, 5)
    offs, p = [], 9 + n
    while p < len(raw):
        offs.append(p)
        ls, li = struct.unpack_from("<II", raw, p)
        p += 8 + ls + li
    assert len(offs) == 5
    return raw, offs


def _patch(raw: bytes, at: int, fmt: str, *values: int) -> bytes:
    out = bytearray(raw)
    struct.pack_into(fmt, out, at, *values)
    return bytes(out)


def _mutants(raw: bytes, offs: list[int]) -> dict[str, tuple[bytes, str]]:
    r2, r3 = offs[1], offs[2]
    ls, li = struct.unpack_from("<II", raw, r2)
    gt = r2 + 8 + ls + 3  # record 2: FORMAT key, GT descriptor, then s1's two GT bytes
    return {
        "truncated": (raw[:r3 + 10], "record 3: truncated BCF record (the file ends inside "
                                     "it): re-copy the file"),
        "shared-too-short": (_patch(raw, r2, "<II", 10, li + ls - 10),
                             "record 2: malformed BCF record (its shared part is shorter"),
        "indiv-too-short": (_patch(raw, r2, "<II", ls, li - 4)[:r3 - 4] + raw[r3:],
                            "record 2: malformed BCF record (a FORMAT field runs past"),
        "bad-contig": (_patch(raw, r2 + 8, "<i", 7),
                       "record 2: malformed BCF record (CHROM is not an index of the "
                       "header's contig dictionary)"),
        "bad-type": (_patch(raw, r2 + 8 + 24, "<B", 0x14),
                     "record 2: malformed BCF record (a typed value has an unknown type)"),
        "allele-out-of-range": (_patch(raw, gt + 2, "<B", (5 + 1) << 1),
                                "record 2: GT refers to an allele index larger than the "
                                "number of ALT alleles (column 11: sample #2)"),
        "version-2.3": (raw[:4] + b"\x03" + raw[5:], "BCF version 2.3 is not supported"),
    }


@pytest.mark.parametrize("case", ["truncated", "shared-too-short", "indiv-too-short",
                                  "bad-contig", "bad-type", "allele-out-of-range",
                                  "version-2.3"])
def test_bcf__malformed_is_refused_and_leaves_nothing(case: str, tmp_path: Path,
                                                      ingest_file: Callable,
                                                      store: Store) -> None:
    raw, offs = _plain_records(tmp_path)
    data, reason = _mutants(raw, offs)[case]
    path = tmp_path / f"{case}.bcf"
    path.write_bytes(data)
    with pytest.raises(InvalidInput) as err:
        ingest_file(path, "badbcf")
    assert err.value.path == str(path) and err.value.line is None
    assert err.value.reason.startswith(reason), err.value.reason
    assert not store.exists("badbcf")
    assert not list(store.dataset_dir("badbcf").rglob("*.parquet"))


def test_bcf__bad_gt_record_skipped_with_skip_invalid(tmp_path: Path,
                                                      ingest_file: Callable) -> None:
    raw, offs = _plain_records(tmp_path)
    data, _ = _mutants(raw, offs)["allele-out-of-range"]
    path = tmp_path / "skip.bcf"
    path.write_bytes(data)
    res = ingest_file(path, "skipbcf", skip_invalid=True)
    assert res.qc["skipped_records"] == {"allele_out_of_range": 1}
    assert res.qc["records_written"] == 4


@pytest.mark.parametrize("skip", [False, True], ids=["refused", "skipped"])
def test_bcf__record_over_the_line_limit_is_never_held(skip: bool, tmp_path: Path,
                                                       run_child: Callable[..., dict]) -> None:
    raw, offs = _plain_records(tmp_path)
    # record 2 declares 600 MiB of individual data (zeros, ~0.6 MB compressed), then the rest
    ls, _ = struct.unpack_from("<II", raw, offs[1])
    filler = 600 << 20
    head = raw[:offs[1]] + struct.pack("<II", ls, filler) + raw[offs[1] + 8:offs[1] + 8 + ls]
    path = tmp_path / "long.bcf"
    with open(path, "wb") as fh:
        for i in range(0, len(head), 0xFF00):
            fh.write(_bgzf_block(head[i:i + 0xFF00]))
        zeros = _bgzf_block(b"\0" * 0xFF00)
        for _ in range(filler // 0xFF00):
            fh.write(zeros)
        tail = b"\0" * (filler % 0xFF00) + raw[offs[2]:]
        fh.write(_bgzf_block(tail))
        fh.write(BGZF_EOF)
    assert path.stat().st_size < 4 << 20
    rep = run_child(path, skip=skip)
    if skip:
        assert rep["error"] is None, rep
        assert rep["qc"]["skipped_records"] == {"line_too_long": 1}
        assert rep["qc"]["records_written"] == 4
    else:
        assert rep["reason"].startswith("record 2: data line longer than GenoVault's limit")


def test_bcf__straddling_overlong_and_truncated_at_eof(tmp_path: Path) -> None:
    raw, offs = _plain_records(tmp_path)
    ls, _ = struct.unpack_from("<II", raw, offs[1])
    data = raw[:offs[1]] + struct.pack("<II", ls, 5 << 20) + raw[offs[1] + 8:]
    pieces = [data[:offs[1] + 3], data[offs[1] + 3:]]  # the length bytes straddle
    reader = BcfReader(iter(pieces), tmp_path / "x.bcf")
    reader.read_header()
    out = []
    with pytest.raises(InvalidInput, match=r"^.*record 2: truncated BCF record"):
        for c in reader.data_chunks():
            out.append(c)
    assert [int(e) for c in out for e in c.err] == [0, vp.E_LONG_LINE]


@pytest.mark.parametrize("sample", [0, 3, 5, 8])
@pytest.mark.parametrize("raw_value", [0x06, 0x01, 0x80, 0x81])
def test_bcf__unusual_gt_value_anywhere_in_a_biallelic_record(sample: int, raw_value: int,
                                                              tmp_path: Path) -> None:
    """The 4-samples-per-load path must hand every unusual value to the general rules:
    allele 2 of a biallelic record (0x06), a phased missing allele (0x01), the int8 missing
    value (0x80) and an end-of-vector as the first allele (0x81), in the loaded body (samples
    0-7) and in the tail (sample 8)."""
    samples = [f"s{i}" for i in range(9)]
    lines = [*header(samples, contigs=["1"]),
             "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(["0/1"] * 9)]
    plain = to_bcf(write_vcf(tmp_path / "n.vcf", lines), tmp_path / "n.bcf", fmt="u")
    assert plain is not None
    raw = bytearray(plain.read_bytes())
    (n,) = struct.unpack_from("<I", raw, 5)
    rec = 9 + n
    ls, _ = struct.unpack_from("<II", raw, rec)
    gt = rec + 8 + ls + 3  # FORMAT key (2 bytes), GT descriptor, then two bytes per sample
    assert raw[gt:gt + 18] == bytes([2, 4] * 9)
    raw[gt + 2 * sample] = raw_value
    plain.write_bytes(bytes(raw))
    (got,) = parse_file(plain)[1]
    if raw_value == 0x06:
        assert got == (vp.E_ALLELE, sample)
        return
    if raw_value == 0x80:
        assert got == (vp.E_GT, sample)
        return
    codes = [1] * 9
    codes[sample] = 3  # './1' (a half-call) or '.' then allele 1 (missing)
    assert got[0] == 0 and got[5] == [codes]
    assert got[7] == (1 if raw_value == 0x01 else 0)


@pytest.mark.parametrize(("written", "forged"), [
    # an ID of tabs: the rendered line would read REF C, ALT T (the record says A, G)
    ("rsXXXXXXXXXXXXXX", b"r\tC\tT\t5\tPASS\tX=1"),
    ("rsXXXXXXXXXXXXXX", b"r\nC\tT\t5\tPASS\tX=1"),
    # an INFO string with ';': the rendered INFO would hold a second key, KEEP=7
    ("S=XXXXXXXX", b"S=a;KEEP=7"),
], ids=["id-tabs", "id-newline", "info-semicolon"])
def test_bcf__string_that_would_break_its_vcf_text_is_refused(written: str, forged: bytes,
                                                              tmp_path: Path) -> None:
    """BCF strings are length-prefixed, so they can hold what VCF text cannot; the decoder
    renders the shared part as text, which such a string would re-split (htslib reads the
    binary fields and would see REF A, ALT G, no KEEP). Refused, never re-split."""
    info = written if written.startswith("S=") else "."
    vid = "." if written.startswith("S=") else written
    head = header(["s1", "s2", "s3"], contigs=["1"])
    lines = [*head[:-1], '##INFO=<ID=S,Number=1,Type=String,Description="s">',
             '##INFO=<ID=KEEP,Number=1,Type=Integer,Description="k">', head[-1],
             f"1\t100\t{vid}\tA\tG\t.\tPASS\t{info}\tGT\t0/0\t0/1\t1/1"]
    plain = to_bcf(write_vcf(tmp_path / "t.vcf", lines), tmp_path / "t.bcf", fmt="u")
    assert plain is not None
    raw = plain.read_bytes()
    old = written.removeprefix("S=").encode()
    assert raw.count(old) == 1 and len(forged.removeprefix(b"S=")) == len(old)
    plain.write_bytes(raw.replace(old, forged.removeprefix(b"S=")))
    with pytest.raises(InvalidInput) as err:
        parse_file(plain)
    assert err.value.reason.startswith("record 1: malformed BCF record (an ID, allele or INFO "
                                       "string holds a tab"), err.value.reason


# -- FORMAT keys and FILTER values htslib refuses (bcf_record_check) ------------------------

def _bcftools_reads(path: Path) -> bool:
    return subprocess.run(["bcftools", "view", "-H", str(path)], capture_output=True,
                          check=False).returncode == 0


def _indiv(raw: bytes, offs: list[int], r: int) -> int:
    """Offset of record r's individual part (0-based r)."""
    ls, _ = struct.unpack_from("<II", raw, offs[r])
    return offs[r] + 8 + ls


def test_bcf__unknown_format_key_is_refused(tmp_path: Path) -> None:
    """htslib refuses a FORMAT key that is not an ID of the header's dictionary ("Invalid
    FORMAT id"); the decoder skipped such a field by its typed length."""
    lines = [*SMALL[:2], '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="d">', *SMALL[2:]]
    lines[-5:] = [f"1\t{100 * (i + 1)}\t.\tA\tG\t.\tPASS\t.\tGT:DP\t0/0:1\t0/1:2\t1/1:3"
                  for i in range(5)]
    plain = to_bcf(write_vcf(tmp_path / "f.vcf", lines), tmp_path / "f.bcf", fmt="u")
    assert plain is not None
    raw = plain.read_bytes()
    (n,) = struct.unpack_from("<I", raw, 5)
    offs, p = [], 9 + n
    while p < len(raw):
        offs.append(p)
        ls, li = struct.unpack_from("<II", raw, p)
        p += 8 + ls + li
    ip = _indiv(raw, offs, 1)
    dp = ip + 3 + 2 * 3  # GT key (2 bytes), GT descriptor, 3 x 2 GT bytes; then DP's key
    assert raw[dp] == 0x11
    bad = tmp_path / "unknown.bcf"
    bad.write_bytes(_patch(raw, dp + 1, "<B", 120))  # no ID has index 120
    assert _bcftools_reads(plain) and not _bcftools_reads(bad)
    with pytest.raises(InvalidInput) as err:
        parse_file(bad)
    assert err.value.reason.startswith("record 2: malformed BCF record (a FORMAT key is not "
                                       "an index of the header's dictionary)"), err.value
    # a FORMAT key given twice: the same error as in VCF text, not "GT ... not first"
    twice = tmp_path / "twice.bcf"
    twice.write_bytes(_patch(raw, dp + 1, "<B", raw[ip + 1]))  # DP's key := GT's key
    got = parse_file(twice)[1]
    assert [g[0] for g in got] == [0, vp.E_FORMAT_TWICE, 0, 0, 0]
    assert vp.ERRORS[vp.E_FORMAT_TWICE][1].startswith("a FORMAT key is listed twice")
    text = write_vcf(tmp_path / "t.vcf", [*lines[:-4], "1\t200\t.\tA\tG\t.\tPASS\t.\t"
                                          "GT:GT\t0/0:0/0\t0/1:0/1\t1/1:1/1", *lines[-3:]])
    assert [g[0] for g in parse_file(text)[1]] == [0, vp.E_FORMAT_TWICE, 0, 0, 0]


def test_bcf__filter_padded_with_end_of_vector_is_refused(tmp_path: Path) -> None:
    """FILTER is a plain typed vector: htslib refuses an end-of-vector value in it ("Invalid
    FILTER id -127"); the decoder read it as the vector's end."""
    raw, offs = _plain_records(tmp_path)
    r = offs[1]
    ls, li = struct.unpack_from("<II", raw, r)
    shared = raw[r + 8:r + 8 + ls]
    f = 24 + 1 + 2 + 2  # fixed fields, ID '.', alleles 'A' and 'G': then FILTER
    assert shared[f:f + 2] == b"\x11\x00"  # one int8: PASS
    padded = shared[:f] + b"\x21\x00\x81" + shared[f + 2:]  # PASS, end-of-vector
    data = (raw[:r] + struct.pack("<II", ls + 1, li) + padded + raw[r + 8 + ls:])
    path = tmp_path / "pad.bcf"
    path.write_bytes(data)
    assert not _bcftools_reads(path)
    with pytest.raises(InvalidInput) as err:
        parse_file(path)
    assert err.value.reason.startswith("record 2: malformed BCF record (a FILTER or INFO key "
                                       "is not an index of the header's dictionary"), err.value
    # two real FILTER values stay fine
    two = tmp_path / "two.bcf"
    two.write_bytes(raw[:r] + struct.pack("<II", ls + 1, li)
                    + shared[:f] + b"\x21\x00\x00" + shared[f + 2:] + raw[r + 8 + ls:])
    assert _bcftools_reads(two)
    got = parse_file(two)[1]
    assert got[1][0] == 0 and got[1][1][5] == "PASS;PASS"


def test_bcf__record_with_samples_in_a_file_without_any_is_refused(tmp_path: Path) -> None:
    """As in VCF text (columns after INFO when the #CHROM line has none): a record whose
    n_sample is not the header's 0 carries data of samples nobody declared."""
    lines = [*header([], contigs=["1"])[:-1],
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]),
             *[f"1\t{100 * (i + 1)}\t.\tA\tG\t.\tPASS\t." for i in range(3)]]
    plain = to_bcf(write_vcf(tmp_path / "sites.vcf", lines), tmp_path / "sites.bcf", fmt="u")
    assert plain is not None
    raw = plain.read_bytes()
    (n,) = struct.unpack_from("<I", raw, 5)
    r2 = 9 + n + 8 + struct.unpack_from("<I", raw, 9 + n)[0]  # record 2 (no indiv part)
    assert [g[0] for g in parse_file(plain)[1]] == [0, 0, 0]
    assert struct.unpack_from("<I", raw, r2 + 8 + 20)[0] == 0  # n_sample | n_fmt << 24
    bad = tmp_path / "claims.bcf"
    bad.write_bytes(_patch(raw, r2 + 8 + 20, "<I", 1))
    assert [g[0] for g in parse_file(bad)[1]] == [0, vp.E_MANY_SAMPLES, 0]
