"""Pieces of multi-file ingest that need no Vault: click's errors in GenoVault's style, the
schema-4 manifest reading schema-3 ones byte for byte, QC merging, file order, sample lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vault.cli import main
from vault.ingest.fileset import SourceFile, sort_files
from vault.ingest.header import VcfHeader, sample_list_problem
from vault.store import batchinfo
from vault.store import format as fmt
from vault.store.manifest import Batch, Manifest, Part

# --- click usage errors: "error:" like every GenoVault message --------------------------------


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["ingest", "a.vcf.gz", "b.vcf.gz"], "error: Missing option '--dataset'",
                 id="ingest-without-dataset"),
    pytest.param(["ingest", "-d", "ds"], "error: give the file(s) to ingest",
                 id="ingest-without-files"),
    pytest.param(["no-such-command"], "error: No such command", id="unknown-command"),
    pytest.param(["--bogus"], "error: No such option '--bogus'", id="unknown-root-option"),
    pytest.param(["datasets", "show"], "error: Missing argument 'DATASET'",
                 id="nested-group-missing-argument"),
    pytest.param(["ingest", "x.vcf", "-d", "ds", "--ttl-minutes", "0"],
                 "error: Invalid value for '--ttl-minutes'", id="bad-parameter-value"),
])
def test_cli_usage_error__printed_as_genovault_error(args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert "Error:" not in r.output and "Usage:" in r.stderr


def test_cli_help__unchanged_and_exit_0() -> None:
    r = CliRunner().invoke(main, ["ingest", "--help"])
    assert r.exit_code == 0 and "FILE..." in r.output and "--batch" in r.output


# --- manifest: schema 3 reads as it was written -------------------------------------------------

V3_BATCH: dict[str, Any] = {
    "batch": "b0001", "sample_offset": 0, "n_samples": 3,
    "source": {"sha256": "a" * 64, "bytes": 10, "format": "bgzf", "fileformat": "VCFv4.2"},
    "absent_sites": "not_assessed", "ingested_at": "2026-01-01T00:00:00Z",
    "ingested_by": {"display_name": "token", "entity_id": ""},
    "samples_file": {"path": "batches/b0001/samples.parquet", "rows": 3, "bytes": 1,
                     "sha256": "b" * 64},
    "info_file": {"path": "batches/b0001/info.parquet", "rows": 1, "bytes": 1,
                  "sha256": "c" * 64},
    "variant_files": [{"path": "batches/b0001/variants/c0000/bin000000.parquet", "rows": 5,
                       "bytes": 1, "sha256": "d" * 64, "contig": 0, "bin": 0}],
    "genotype_key": "genovault.x.genotypes.b0001",
}


def _v3_manifest() -> dict[str, Any]:
    return {"format": "genovault-dataset", "schema_version": 3, "dataset": "x",
            "uid": "e" * 32, "created_at": "t", "updated_at": "t", "keys": {"sites": "k"},
            "partition": {"bin_size": 10, "by": ["contig", "position_bin"]},
            "sample_count": 3, "contigs": ["1"], "batches": [V3_BATCH], "version": 1,
            "withdrawn": [], "consents": [], "tombstone": None, "signature": None}


def test_manifest__schema_3_loads_and_serialises_to_its_own_bytes(tmp_path: Path) -> None:
    raw = _v3_manifest()
    path = tmp_path / fmt.MANIFEST
    path.write_text(json.dumps(raw))
    m = Manifest.load(path)
    assert m.schema_version == 3
    # the signature covers these bytes: nothing of schema 4 may appear in them
    assert json.loads(m.dumps()) == raw
    assert m.signed_bytes() == json.dumps({k: v for k, v in raw.items() if k != "signature"},
                                          sort_keys=True, separators=(",", ":")).encode()
    assert m.batches[0].sources == [m.batches[0].source]


def test_manifest__schema_4_parts_round_trip_and_unknown_schema_refused(
        tmp_path: Path) -> None:
    raw = _v3_manifest()
    raw["schema_version"] = 4
    part_info = {"path": "batches/b0001.p0002/info.parquet", "rows": 1, "bytes": 1,
                 "sha256": "f" * 64}
    raw["batches"] = [{**V3_BATCH, "sample_list_sha256": "1" * 64,
                       "sample_set_sha256": "2" * 64,
                       "parts": [{"sha256": "3" * 64, "bytes": 4, "format": "text",
                                  "fileformat": None, "ingested_at": "t",
                                  "ingested_by": {"display_name": "p", "entity_id": ""},
                                  "info_file": part_info}]}]
    path = tmp_path / fmt.MANIFEST
    path.write_text(json.dumps(raw))
    m = Manifest.load(path)
    b = m.batches[0]
    assert isinstance(b.parts[0], Part) and [s.sha256[0] for s in b.sources] == ["a", "3"]
    assert json.loads(m.dumps()) == raw
    assert part_info["path"] in [f.path for f in m.files()]
    raw["schema_version"] = 7
    path.write_text(json.dumps(raw))
    with pytest.raises(Exception, match="schema version 7 is not supported"):
        Manifest.load(path)


def test_manifest__a_batch_without_parts_omits_the_schema_4_fields() -> None:
    b = Batch.model_validate(V3_BATCH)
    assert set(b.model_dump(mode="json")) == set(V3_BATCH)


# --- QC of parts merged into the batch's ------------------------------------------------------


def _qc(rows: int, n: int, missing: list[int], labels: list[str] | None,
        read: int, skipped: dict[str, int]) -> dict[str, Any]:
    """A QC report as ingest writes it, for ``missing`` calls per sample."""
    qc: dict[str, Any] = {
        "records_read": read, "records_written": rows, "variants_written": rows,
        "multiallelic_records": 1, "multiallelic_split_rows_added": 1,
        "haploid_calls_as_homozygous": 2, "half_calls_as_missing": 0,
        "records_without_gt_as_missing": 0, "skipped_records": skipped, "samples": n,
        "missingness": sum(missing) / (rows * n) if rows else None, "groups": {}}
    if labels is not None:
        qc["groups"]["pop"] = {
            g: {"samples": labels.count(g),
                "missingness": sum(m for m, lab in zip(missing, labels, strict=True)
                                   if lab == g) / (rows * labels.count(g)) if rows else None}
            for g in sorted(set(labels))}
    return qc


def test_batchinfo_merge__equals_the_qc_of_all_files_at_once() -> None:
    labels = ["A", "B", "A", "C", "A", "B", "A"]
    first, part1, part2 = [1, 0, 7, 3, 0, 2, 1], [0, 5, 1, 0, 0, 9, 4], [2, 2, 2, 0, 1, 0, 3]
    info = {"source_name": "a.vcf", "group_columns": ["pop"], "sources": [{"name": "a.vcf"}],
            "qc": _qc(13, 7, first, labels, 14, {"unsorted": 1})}
    parts = [{"qc": _qc(rows, 7, miss, None, rows, sk), "sources": [{"name": name}],
              batchinfo.MISSING_PER_SAMPLE: miss, "group_columns": []}
             for rows, miss, sk, name in [(29, part1, {"unsorted": 2, "bad_alt": 1}, "b.vcf"),
                                          (3, part2, {}, "c.vcf")]]
    merged = batchinfo.merge(info, parts, lambda: {"pop": labels})
    total = [a + b + c for a, b, c in zip(first, part1, part2, strict=True)]
    want = _qc(45, 7, total, labels, 14 + 29 + 3, {"bad_alt": 1, "unsorted": 3})
    want["multiallelic_records"] = want["multiallelic_split_rows_added"] = 3
    want["haploid_calls_as_homozygous"] = 6
    assert merged["qc"] == want
    assert [s["name"] for s in merged["sources"]] == ["a.vcf", "b.vcf", "c.vcf"]
    assert batchinfo.MISSING_PER_SAMPLE not in merged


# --- order of the files and their sample lists ------------------------------------------------


def _file(name: str, contigs: list[str], first: tuple[str, int] | None) -> SourceFile:
    return SourceFile(Path(name), "bgzf", VcfHeader(3, "VCFv4.2", ["s"], contigs), "0" * 64,
                       1, first)


def test_sort_files__by_declared_contig_then_position_whatever_the_order_given() -> None:
    declared = [str(c) for c in range(1, 23)]
    files = [_file("chr10.vcf.gz", declared, ("10", 5)), _file("chr2b.vcf.gz", declared,
                                                                ("2", 900)),
             _file("empty.vcf.gz", declared, None), _file("chr2a.vcf.gz", declared, ("2", 7)),
             _file("chr1.vcf.gz", declared, ("1", 100))]
    assert [f.path.name for f in sort_files(files)] == [
        "chr1.vcf.gz", "chr2a.vcf.gz", "chr2b.vcf.gz", "chr10.vcf.gz", "empty.vcf.gz"]
    # without ##contig lines: contigs in the order of the files that start on them
    files = [_file("y.vcf", [], ("chrY", 9)), _file("x2.vcf", [], ("chrX", 50)),
             _file("x1.vcf", [], ("chrX", 1))]
    assert [f.path.name for f in sort_files(files)] == ["y.vcf", "x1.vcf", "x2.vcf"]


@pytest.mark.parametrize(("mine", "other", "expect"), [
    pytest.param(["a", "b", "c"], ["a", "b", "c"], None, id="same"),
    pytest.param(["a", "b"], ["a", "b", "c"], "2 sample(s) against 3", id="fewer"),
    pytest.param(["a", "x", "c"], ["a", "b", "c"], "column 11 holds an id", id="other-ids"),
    pytest.param(["a", "c", "b"], ["a", "b", "c"], "different order (first difference: "
                                                   "column 11", id="other-order"),
])
def test_sample_list_problem__names_columns_never_ids(mine: list[str], other: list[str],
                                                      expect: str | None) -> None:
    problem = sample_list_problem(mine, other)
    if expect is None:
        assert problem is None
    else:
        assert problem is not None and expect in problem
        assert "'x'" not in problem and " x " not in problem
