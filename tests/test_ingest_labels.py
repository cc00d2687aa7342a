"""Sample-sheet labels before anything is stored (attacker review, findings 3 and 9).

* an identifier-like grouping column (an MRN) is refused unless an admin insists with
  ``--allow-identifying-column``; repeated values and small sheets are not judged;
* control and bidi characters in labels, and control characters in contig names, are
  refused at ingest, so they never reach a terminal or a spreadsheet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.baodev import DevServer
from tests.support.vcfgen import header, random_records, write_vcf
from vault.cli import main
from vault.errors import InvalidInput, SampleSheetError
from vault.ingest.labels import MIN_VALUES_TO_JUDGE, check_labels, identifier_like
from vault.ingest.pipeline import IngestResult
from vault.ingest.samplesheet import SampleSheet
from vault.keys.bootstrap import mint_role_token
from vault.store.dataset import Store
from vault.store.reader import DatasetReader


def vcf(path: Path, samples: list[str], seed: int = 0, chrom: str = "1") -> Path:
    recs, _ = random_records(len(samples), 30, seed=seed, chrom=chrom)
    return write_vcf(path, header(samples) + recs)


def sheet(path: Path, cols: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [["sample", *cols], *rows]) + "\n")
    return path


SAMPLES = [f"LBL_{i:02d}" for i in range(20)]


def mrn_sheet(path: Path, samples: list[str] = SAMPLES) -> Path:
    return sheet(path, ["mrn", "population"],
                 [[s, f"MRN{i:07d}", "EUR" if i % 2 else "AFR"] for i, s in enumerate(samples)])


# --- identifier-like columns (unit) -----------------------------------------------------------


def test_identifier_like__rules() -> None:
    unique = [f"id{i}" for i in range(MIN_VALUES_TO_JUDGE)]
    assert identifier_like(unique)
    assert not identifier_like(unique[:-1])  # fewer than 10 labelled samples: not judged
    assert not identifier_like([*unique[:-1], None, None])  # unknowns are not labels
    assert not identifier_like(["EUR", "AFR"] * 10)  # repeated values
    half = [f"u{i}" for i in range(10)] + ["x"] * 10  # exactly half unique: not "most"
    assert not identifier_like(half)
    assert identifier_like([f"u{i}" for i in range(11)] + ["x"] * 9)


def test_check_labels__names_column_and_the_fix() -> None:
    s = SampleSheet({"population": ["EUR", "AFR"] * 10,
                     "mrn": [f"MRN{i}" for i in range(20)]})
    with pytest.raises(SampleSheetError) as info:
        check_labels(s, where="s.tsv")
    msg = str(info.value)
    assert "'mrn'" in msg and "--allow-identifying-column mrn" in msg
    assert "MRN1" not in msg  # never a value
    check_labels(s, allow_identifying=("mrn",), where="s.tsv")
    with pytest.raises(SampleSheetError, match=r"names no column.*nosuch"):
        check_labels(s, allow_identifying=("nosuch",), where="s.tsv")


@pytest.mark.parametrize("label", ["a\x1b]0;pwned\x07", "x\x00", "r\rb", "bell\x07",
                                   "c1\x9b", "\u202eRUE", "iso\u2066", "nl\u2028"],
                         ids=repr)
def test_check_labels__control_characters_refused(label: str) -> None:
    s = SampleSheet({"population": ["EUR", label, "AFR"]})
    with pytest.raises(SampleSheetError, match=r"'population'.*control characters.*#2"):
        check_labels(s, where="s.tsv")


def test_check_labels__control_character_in_column_name_refused() -> None:
    with pytest.raises(SampleSheetError, match="column name contains a control"):
        check_labels(SampleSheet({"pop\x1b": ["EUR"]}), where="s.tsv")


# --- through the ingest and the CLI (real OpenBao) -----------------------------------------


@pytest.mark.integration
def test_ingest__identifier_like_column_refused_and_nothing_created(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path) -> None:
    path = vcf(tmp_path / "a.vcf", SAMPLES)
    with pytest.raises(SampleSheetError) as info:
        ingest_file(path, "ids", sample_sheet=mrn_sheet(tmp_path / "s.tsv"))
    assert "'mrn'" in str(info.value) and "--allow-identifying-column mrn" in str(info.value)
    assert not store.dataset_dir("ids").exists()


@pytest.mark.integration
def test_ingest__repeated_values_and_small_sheets_are_accepted(
        ingest_file: Callable[..., IngestResult], reader: Callable[[str], DatasetReader],
        tmp_path: Path) -> None:
    rows = [[s, f"site{i % 4}", f"MRN{i}"] for i, s in enumerate(SAMPLES)]
    rows = [[s, site, "NA" if i >= 9 else mrn] for i, (s, site, mrn) in enumerate(rows)]
    # "site": 4 values repeated; "mrn": unique but only 9 labelled samples (not judged)
    ingest_file(vcf(tmp_path / "a.vcf", SAMPLES), "accepted",
                sample_sheet=sheet(tmp_path / "s.tsv", ["site", "mrn"], rows))
    small = SAMPLES[:9]
    ingest_file(vcf(tmp_path / "b.vcf", [f"S{s}" for s in small], seed=2), "accepted",
                sample_sheet=mrn_sheet(tmp_path / "t.tsv", [f"S{s}" for s in small]))
    assert reader("accepted").n_samples == 29


@pytest.mark.integration
def test_cli__allow_identifying_column(tmp_path: Path, bao_server: DevServer,
                                       bootstrapped: object) -> None:
    env = {"VAULT_ADDR": bao_server.addr,
           "VAULT_TOKEN": mint_role_token(bao_server.client(), "ingest", ttl="10m"),
           "GENOVAULT_STORE": str(tmp_path / "store"), "GENOVAULT_HOME": str(tmp_path / "home"),
           "GENOVAULT_NO_PROGRESS": "1"}
    args = ["ingest", str(vcf(tmp_path / "a.vcf", SAMPLES)), "-d", "clids",
            "--samples", str(mrn_sheet(tmp_path / "s.tsv"))]
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 1
    assert "'mrn' looks like an identifier" in r.stderr
    assert "--allow-identifying-column mrn" in r.stderr
    assert not (tmp_path / "store" / "clids").exists()
    r = CliRunner().invoke(main, [*args, "--allow-identifying-column", "mrn"], env=env)
    assert r.exit_code == 0, r.output
    assert "as batch b0001" in r.stdout
    # all 20 groups are of one sample: none is named, no size shown (the labels are kept,
    # encrypted, for grouping by an admin's choice)
    assert "mrn: (groups under k) n=suppressed miss=n/a" in r.stdout
    assert "MRN" not in r.stdout and "n=1 " not in r.stdout


@pytest.mark.integration
def test_ingest__label_with_escape_refused(ingest_file: Callable[..., IngestResult],
                                           store: Store, tmp_path: Path) -> None:
    samples = SAMPLES[:3]
    rows = [[samples[0], "EUR"], [samples[1], "x\x1b]0;pwned\x07"], [samples[2], "AFR"]]
    with pytest.raises(SampleSheetError, match="control characters"):
        ingest_file(vcf(tmp_path / "a.vcf", samples), "esclabel",
                    sample_sheet=sheet(tmp_path / "s.tsv", ["population"], rows))
    assert not store.dataset_dir("esclabel").exists()


@pytest.mark.integration
@pytest.mark.parametrize("chrom", ["chr1\x1b]0;pwned\x07", "1\x00", "chr\x7f", "c\x9b1"],
                         ids=repr)
def test_ingest__contig_name_with_control_character_refused(
        chrom: str, ingest_file: Callable[..., IngestResult], store: Store,
        tmp_path: Path) -> None:
    path = tmp_path / "a.vcf"
    recs, _ = random_records(2, 5, chrom=chrom)
    write_vcf(path, header(["CTG_0", "CTG_1"]) + recs)
    with pytest.raises(InvalidInput) as info:
        ingest_file(path, "escctg")
    assert "a.vcf:4" in str(info.value)
    assert "\x1b" not in str(info.value) and "\x00" not in str(info.value)
    assert not store.dataset_dir("escctg").exists()
