"""VCF 4.3 edge cases checked against bcftools 1.16: a sample column with more ':'-separated
values than FORMAT has keys is an error to htslib ("Incorrect number of FORMAT fields",
`bcftools view` exits 8), so ingest refuses it at its line; fewer values (trailing fields
dropped) stay valid.

Where GenoVault is stricter than htslib (which reads these files without a word, and
sometimes wrongly), each case below runs `bcftools view` on the same file to show what the
reference does: a data line ending in a tab, a FORMAT key given twice, columns after INFO in a
file without samples, a last line without its newline (a file cut mid-line), a contig
declared twice. Where htslib refuses (a #CHROM line with FORMAT but no sample), so does
ingest."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pysam
import pytest

from tests.reliability_ingest.test_fuzz_parse import parse
from tests.support.vcfgen import header, unpack, write_vcf
from vault.errors import InvalidInput
from vault.store.dataset import Store

pytestmark = pytest.mark.integration  # bcftools is the reference; some tests ingest

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


def bcftools_view(path: Path) -> tuple[int, str]:
    """(exit code, data lines) of `bcftools view -H` on ``path``: the reference reading."""
    out = subprocess.run(["bcftools", "view", "-H", str(path)], capture_output=True,
                         text=True, check=False)
    return out.returncode, out.stdout


def _refused(path: Path, line: int, reason: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        parse(path)
    assert err.value.path == str(path) and err.value.line == line, str(err.value)
    assert reason in err.value.reason, err.value.reason
    return err.value


NO_SAMPLES = [*H[:-1], "\t".join(H[-1].split("\t")[:8])]  # #CHROM..INFO

LAX = [  # (header, record, reason): htslib reads the line, GenoVault refuses it
    pytest.param(H, OK + "\t", "the line ends with a tab (an empty column after the last",
                 id="trailing-tab"),
    pytest.param(H, OK + "\t\r", "the line ends with a tab", id="trailing-tab-crlf"),
    pytest.param(H, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP\t0/1:3\t0/0:1\t1/1:2\t",
                 "the line ends with a tab", id="trailing-tab-gt-dp"),
    pytest.param(H, "1\t200\t.\tC\tT\t.\tPASS\t.\tDP\t3\t1\t2\t",
                 "the line ends with a tab", id="trailing-tab-no-gt"),
    pytest.param(NO_SAMPLES, "1\t200\t.\tC\tT\t.\tPASS\t.\t", "the line ends with a tab",
                 id="trailing-tab-no-samples"),
    # htslib drops the extra column silently: sample #4 of a 3-sample header
    pytest.param(H, OK + "\t0/1\t", "more sample columns than the header declares "
                 "(column 13: sample #4)", id="extra-column-then-tab"),
    pytest.param(NO_SAMPLES, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/1",
                 "more sample columns than the header declares", id="columns-without-samples"),
    # htslib reads GT:GT as one GT of four alleles (`bcftools view` prints '2,4:0/1')
    pytest.param(H, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT:GT\t0/1:0/1\t0/0:0/0\t1/1:1/1",
                 "a FORMAT key is listed twice", id="gt-twice"),
    pytest.param(H, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP:GQ:DP\t0/1:3:4:3\t0/0\t1/1",
                 "a FORMAT key is listed twice", id="dp-twice"),
]


@pytest.mark.parametrize(("hdr", "record", "reason"), LAX)
def test_edge__line_htslib_reads_is_refused(tmp_path: Path, hdr: list[str], record: str,
                                            reason: str) -> None:
    first = "\t".join(OK.split("\t")[:8]) if hdr is NO_SAMPLES else OK
    path = write_vcf(tmp_path / "lax.vcf", hdr + [first, record])
    assert bcftools_view(path)[0] == 0  # the reference reads it (and drops or mangles)
    _refused(path, len(hdr) + 2, reason)


@pytest.mark.parametrize("record", ["1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP:GQ\t0/1:3:4\t.\t1/1",
                                    "1\t200\t.\tC\tT\t.\tPASS\t.\tG\t0/1\t.\t1/1",
                                    "1\t200\t.\tC\tT\t.\tPASS\t.\tGT:DP\t0/1:3\t0/0:\t1/1"],
                         ids=["three-keys", "one-letter-key", "empty-value"])
def test_edge__distinct_format_keys_accepted(tmp_path: Path, record: str) -> None:
    path = write_vcf(tmp_path / "ok.vcf", H + [OK, record])
    assert len(parse(path)[1]) == 2


def test_edge__chrom_line_with_format_but_no_sample_refused_like_htslib(
        tmp_path: Path) -> None:
    """htslib: "Could not parse the #CHROM.. line, either FORMAT is missing or spaces are
    present instead of tabs"; a sites-only file ends the #CHROM line at INFO."""
    hdr = [*H[:-1], "\t".join(H[-1].split("\t")[:9])]
    path = write_vcf(tmp_path / "fmt.vcf", hdr + ["1\t100\t.\tA\tG\t50\tPASS\t.\tGT"])
    assert bcftools_view(path)[0] != 0
    _refused(path, len(hdr), "a FORMAT column but no sample columns")
    ok = write_vcf(tmp_path / "sites.vcf", NO_SAMPLES + ["1\t100\t.\tA\tG\t50\tPASS\t."])
    assert bcftools_view(ok)[0] == 0
    assert [r[:3] for r in parse(ok)[1]] == [("1", 100, "G")]


def test_edge__chrom_line_with_trailing_tab_refused_like_htslib(tmp_path: Path) -> None:
    path = write_vcf(tmp_path / "h.vcf", [*H[:-1], H[-1] + "\t", OK])
    assert bcftools_view(path)[0] != 0  # "Empty sample name: trailing spaces/tabs ..."
    _refused(path, len(H), "the #CHROM line ends with a tab (an empty column 13)")


CUT = [OK, "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/1\t1/1\t0"]  # '0/1' cut after '0'


@pytest.mark.parametrize("container", ["plain", "gzip", "bgzf"])
def test_edge__last_line_without_newline_refused_when_plain(tmp_path: Path, container: str) -> None:
    """bcftools reads the cut line as a haploid '0' (a valid, wrong call); a plain file whose
    last line has no newline may have been cut there, so ingest refuses it at that line. A
    gzip or BGZF stream is proved whole by its trailer (or end-of-file marker): its text,
    final newline or not, is what its producer compressed, and it is read as bcftools
    reads it."""
    text = ("\n".join(H + CUT)).encode()
    path = tmp_path / f"cut.{container}.vcf"
    if container == "plain":
        path.write_bytes(text)
    elif container == "gzip":
        path = path.with_suffix(".vcf.gz")
        path.write_bytes(gzip.compress(text))
    else:
        plain = tmp_path / "cut.txt"
        plain.write_bytes(text)
        path = path.with_suffix(".vcf.gz")
        pysam.tabix_compress(str(plain), str(path), force=True)
    rc, out = bcftools_view(path)
    assert rc == 0 and out.rstrip("\n").endswith("\t1/1\t0")
    if container == "plain":
        _refused(path, len(H) + 2, "the last line has no newline at its end")
    else:
        assert len(parse(path)[1]) == 2
    # the same records with their newline are read
    assert len(parse(write_vcf(tmp_path / "whole.vcf", H + CUT))[1]) == 2


@pytest.mark.integration
def test_edge__last_line_without_newline_leaves_nothing(
        tmp_path: Path, ingest_file: Callable, store: Store) -> None:
    path = tmp_path / "cut.vcf"
    path.write_text("\n".join(H + CUT))
    for skip in (False, True):  # never skipped: the file itself is cut
        with pytest.raises(InvalidInput) as err:
            ingest_file(path, "cut", skip_invalid=skip)
        assert err.value.line == len(H) + 2
        assert not store.exists("cut")
        assert not list(store.dataset_dir("cut").rglob("*.parquet"))


@pytest.mark.parametrize(("second", "same"), [("##contig=<ID=1>", "the same line"),
                                              ("##contig=<ID=1,length=500>",
                                               "a different line")],
                         ids=["same-line", "other-length"])
def test_edge__contig_declared_twice_refused(tmp_path: Path, second: str, same: str) -> None:
    """htslib keeps the first of two ##contig lines of one ID without a word, whatever the
    second says; GenoVault stores the header's contigs and refuses the ambiguity."""
    hdr = [H[0], "##contig=<ID=1>", second, *H[1:]]
    path = write_vcf(tmp_path / "c.vcf", hdr + [OK])
    assert bcftools_view(path)[0] == 0
    _refused(path, 3, f"contig '1' declared twice (line 2 declares it too, with {same})")


@pytest.mark.parametrize("later", [
    "1\t300\t.\tX\tT\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1",  # bad REF
    "1\t300\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/x\t1/1",  # bad GT
], ids=["bad-ref", "bad-gt"])
def test_edge__first_bad_line_is_the_one_reported(tmp_path: Path, later: str) -> None:
    """An order error (checked after parsing) on line 7 comes before a parse error on line 8
    of the same chunk: line 7 is reported, as bcftools' own first complaint would be."""
    recs = [OK, "1\t50\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1", later]
    path = write_vcf(tmp_path / "two.vcf", H + recs)
    _refused(path, len(H) + 2, "records are not sorted: POS 50 comes after POS 100")
    dup = write_vcf(tmp_path / "dup.vcf", H + [OK, "1\t100\t.\tA\tG,G\t.\tPASS\t.\tGT\t0/0"
                                               "\t0/1\t1/1", later])
    _refused(dup, len(H) + 2, "an ALT allele is listed twice")


@pytest.mark.parametrize("fmt", ["vcf", "bcf"])
def test_edge__header_not_utf8_refused(tmp_path: Path, fmt: str) -> None:
    """Two sample ids that differ only in bytes that are not UTF-8 (Latin-1 'é' and 'è')
    decoded with replacement to the same text: one id, one pseudonym, for two people (in one
    file a duplicate; across batches one registry entry). VCF is UTF-8 (§1.2): refused."""
    chrom = b"\t".join(b.encode() for b in H[-1].split("\t")[:9])
    head = [h.encode() for h in H[:-1]] + [b"##contig=<ID=1>"]  # BCF needs it
    data = b"\n".join([*head, chrom + b"\tRen\xe9\tRen\xe8\ts3",
                       b"1\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/0\t0/1\t1/1"]) + b"\n"
    path = tmp_path / "latin1.vcf"
    path.write_bytes(data)
    if fmt == "bcf":  # bcftools will not write these ids: convert others, then patch them
        path.write_bytes(data.replace(b"Ren\xe9", b"RenA").replace(b"Ren\xe8", b"RenB"))
        bcf = tmp_path / "latin1.bcf"
        with open(bcf, "wb") as out:
            subprocess.run(["bcftools", "view", "-Ou", str(path)], stdout=out, check=True)
        raw = bcf.read_bytes()
        assert raw.count(b"RenA\tRenB") == 1
        bcf.write_bytes(raw.replace(b"RenA\tRenB", b"Ren\xe9\tRen\xe8"))
        path = bcf
        chrom_line = raw[:raw.index(b"#CHROM")].count(b"\n") + 1  # bcftools adds lines
    else:
        chrom_line = len(H) + 1
    with pytest.raises(InvalidInput) as err:
        parse(path)
    assert err.value.line == chrom_line, str(err.value)
    assert "the #CHROM line is not valid UTF-8" in err.value.reason
    assert "Ren" not in str(err.value)  # never quotes a sample id


def test_edge__a_latin1_meta_line_is_read_as_htslib_reads_it(tmp_path: Path) -> None:
    """An older file's Latin-1 description (a ##source, an INFO Description) holds no id
    GenoVault keeps: read with replacement, as htslib reads it."""
    head = [h.encode() for h in H[:-1]]
    data = b"\n".join([head[0], b"##source=G\xe9noTool", *head[1:], H[-1].encode(),
                       OK.encode()]) + b"\n"
    path = tmp_path / "latin1-meta.vcf"
    path.write_bytes(data)
    assert bcftools_view(path)[0] == 0
    assert len(parse(path)[1]) == 1


def test_edge__overlong_last_line_without_newline_refused_even_when_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A last line over the line limit is dropped unread as it streams past (`line_too_long`,
    skippable); if it has no newline either, the file may be cut there: refused with
    --skip-invalid too. (Read in 64 KiB pieces, so that the line spans several.)"""
    from vault.ingest import source
    from vault.ingest.fileset import survey
    from vault.ingest.limits import max_line_bytes
    from vault.ingest.pipeline import IngestOptions, _Ingest

    long = "1\t200\t.\tC\tT\t.\tPASS\tX=" + "A" * (max_line_bytes(3) + 10) + "\tGT\t0/1\t0/1\t0"
    monkeypatch.setattr(source, "CHUNK_TEXT", 1 << 16)
    path = tmp_path / "long.vcf"
    path.write_text("\n".join(H + [OK, long]))
    files = survey([path])
    ing = _Ingest([path], "x", None, None, None,  # type: ignore[arg-type]
                  IngestOptions(progress=False, skip_invalid=True))

    class Sink:
        def add(self, *a: object) -> None:
            pass

        def abort(self) -> None:
            pass

    with pytest.raises(InvalidInput) as err:
        ing._parse_files(Sink(), files, 3, [], None, lambda: None)  # type: ignore[arg-type]
    assert err.value.line == len(H) + 2 and "no newline at its end" in err.value.reason
    path.write_text("\n".join(H + [OK, long]) + "\n")  # with its newline: skipped, counted
    qcs = ing._parse_files(Sink(), survey([path]), 3, [], None,  # type: ignore[arg-type]
                           lambda: None)
    assert qcs[0].skipped == {"line_too_long": 1}
