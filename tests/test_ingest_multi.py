"""One batch from many files: a real VCF split with bcftools, ingested in one command or part
by part (``--batch``), equals the ingest of the whole file; refused mixes leave nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import numpy as np
import pytest

from tests.support.baodev import DevServer
from tests.test_crash import child_env, run_cli, tree
from vault.errors import (
    ConfigError,
    DuplicateIngest,
    InvalidInput,
    SampleSheetError,
)
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader
from vault.store.verify import verify_dataset

pytestmark = pytest.mark.integration  # real OpenBao, bcftools

CEU = Path(__file__).parent / "data" / "vcf" / "SeqArray__CEU_Exon.vcf.gz"  # 90 samples
# chromosome 1 has records in the 10 Mb bins 0 … 23; 113,056,912 and 113,056,979 are two
# consecutive records inside bin 11
SPLIT_IN_BIN = 113_056_912
REST = ",".join(str(c) for c in range(2, 10))
LATE = ",".join(str(c) for c in range(10, 23))


def view(out: Path, *args: str, src: Path = CEU) -> Path:
    subprocess.run(["bcftools", "view", *args, "-Oz", "-o", str(out), str(src)], check=True,
                   capture_output=True)
    return out


def samples_of(path: Path) -> list[str]:
    out = subprocess.run(["bcftools", "query", "-l", str(path)], check=True,
                         capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The CEU file split three ways (by POS, ``-t``), plus a sample sheet with groups.

    ``a``/``b``/``c``: chromosome 1 split inside one 10 Mb bin, then 2-9 with the rest of 1,
    then 10-22. ``a10``/``b10``: chromosome 1 split at a bin boundary (110 Mb)."""
    d = tmp_path_factory.mktemp("multi")
    out = {
        "a": view(d / "a.vcf.gz", "-t", f"1:1-{SPLIT_IN_BIN}"),
        "b": view(d / "b.vcf.gz", "-t", f"1:{SPLIT_IN_BIN + 1}-300000000,{REST}"),
        "c": view(d / "c.vcf.gz", "-t", LATE),
        "a10": view(d / "a10.vcf.gz", "-t", "1:1-109999999"),
        "b10": view(d / "b10.vcf.gz", "-t", f"1:110000000-300000000,{REST}"),
    }
    ids = samples_of(CEU)
    sheet = d / "sheet.tsv"
    sheet.write_text("sample\tpop\n" + "".join(f"{s}\t{'XYZ'[i % 3]}\n"
                                                for i, s in enumerate(ids)))
    out["sheet"] = sheet
    return out


@pytest.fixture
def run(store: Store, ingest_client: hvac.Client) -> Callable[..., IngestResult]:
    def go(paths: Path | list[Path], ds: str, sheet: Path | None = None,
           **options: Any) -> IngestResult:
        return ingest(paths, ds, client=ingest_client, store=store, sample_sheet=sheet,
                      options=IngestOptions(progress=False, **options))

    return go


def ds_id(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def content(store: Store, ds: str, client: hvac.Client) -> dict[str, Any]:
    """Everything a reader gives: every site column and genotype, partitions, QC, samples."""
    r = DatasetReader(store, ds, Keyring(client, ds))
    sites: list[dict[str, Any]] = []
    packed = []
    for block in r.blocks(site_columns=tuple(fmt.SITE_COLUMNS)):
        sites += block.sites.to_pylist()
        packed.append(block.packed)
    m = r.manifest
    assert verify_dataset(r).ok
    return {
        "sites": sites,
        "packed": np.concatenate(packed),
        "contigs": m.contigs,
        "partitions": sorted((m.contigs[f.contig], f.bin, f.rows)
                             for b in m.batches for f in b.variant_files),
        "qc": [r.batch_info(b)["qc"] for b in m.batches],
        "n_samples": r.n_samples,
        "groups": r.samples(["pop"]).column("pop").to_pylist(),
    }


def assert_same_in_genome_order(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Parts added later number their contigs in the order they arrive (1-9 after 10-22):
    the rows in genome order, and everything else (the QC with its groups), are equal."""
    key = {c: i for i, c in enumerate(want["contigs"])}
    order = sorted(range(len(got["sites"])),
                   key=lambda i: (key[got["sites"][i]["chrom"]], got["sites"][i]["pos"]))
    assert [got["sites"][i] for i in order] == want["sites"]
    assert np.array_equal(got["packed"][order], want["packed"])
    for key_ in ("partitions", "qc", "n_samples", "groups"):
        assert got[key_] == want[key_], key_


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["sites"] == want["sites"]
    assert np.array_equal(got["packed"], want["packed"])
    for key in ("contigs", "partitions", "qc", "n_samples", "groups"):
        assert got[key] == want[key], key


@pytest.fixture(scope="module")
def whole(bao_server: DevServer, bootstrapped: object, parts: dict[str, Path],
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the reader gives for the whole CEU file ingested as one (own store, once)."""
    store = Store(tmp_path_factory.mktemp("whole") / "store")
    ds = ds_id("whole")
    ingest(CEU, ds, client=bao_server.client(mint_role_token(bao_server.client(), "ingest")),
           store=store, sample_sheet=parts["sheet"], options=IngestOptions(progress=False))
    return content(store, ds, bao_server.client(mint_role_token(bao_server.client(), "query")))


# --- one command ------------------------------------------------------------------------------


def test_multi__three_files_in_any_order_equal_the_whole_file(
        run: Callable[..., IngestResult], store: Store, query_client: hvac.Client,
        parts: dict[str, Path], whole: dict[str, Any]) -> None:
    ds = ds_id("split")
    res = run([parts["c"], parts["a"], parts["b"]], ds, parts["sheet"])
    assert res.batch == "b0001" and res.part is None
    m = store.manifest(ds)
    assert len(m.batches) == 1 and m.version == 1 and m.schema_version == fmt.SCHEMA_VERSION
    b = m.batches[0]
    # written in genome order, whatever the order given
    assert [s["name"] for s in res.sources] == ["a.vcf.gz", "b.vcf.gz", "c.vcf.gz"]
    from vault.store.fsutil import sha256_file

    assert [s.sha256 for s in b.sources] == [sha256_file(parts[k]) for k in "abc"]
    got = content(store, ds, query_client)
    assert_same(got, whole)
    # the bin split between a and b is one partition file, as for the whole file
    assert len({(f.contig, f.bin) for f in b.variant_files}) == len(b.variant_files)
    # per-source QC adds up to the batch's
    per = [s["qc"]["variants_written"] for s in res.sources]
    assert sum(per) == res.qc["variants_written"] and all(per)
    info = DatasetReader(store, ds, Keyring(query_client, ds)).batch_info(b)
    assert [s["name"] for s in info["sources"]] == ["a.vcf.gz", "b.vcf.gz", "c.vcf.gz"]


def test_multi__bcf_parts_equal_the_whole_file(
        run: Callable[..., IngestResult], store: Store, query_client: hvac.Client,
        parts: dict[str, Path], whole: dict[str, Any], tmp_path: Path) -> None:
    bcfs = []
    for k in "bca":  # given out of order: sorted by the first record of each BCF
        out = tmp_path / f"{k}.bcf"
        subprocess.run(["bcftools", "view", "-Ob", "-o", str(out), str(parts[k])], check=True)
        bcfs.append(out)
    ds = ds_id("bcf")
    res = run(bcfs, ds, parts["sheet"])
    assert [s["name"] for s in res.sources] == ["a.bcf", "b.bcf", "c.bcf"]
    assert_same(content(store, ds, query_client), whole)


@pytest.mark.parametrize("case", ["other_samples", "other_order"])
def test_multi__different_sample_list_refused_naming_both_files(
        run: Callable[..., IngestResult], store: Store, parts: dict[str, Path],
        tmp_path: Path, case: str) -> None:
    ids = samples_of(CEU)
    if case == "other_samples":
        bad = view(tmp_path / "b_bad.vcf.gz", "-t", f"1:{SPLIT_IN_BIN + 1}-300000000",
                   "-s", "^" + ids[5])
        match = "89 sample"
    else:
        order = [ids[1], ids[0], *ids[2:]]
        bad = view(tmp_path / "b_bad.vcf.gz", "-t", f"1:{SPLIT_IN_BIN + 1}-300000000",
                   "-s", ",".join(order))
        match = "different order \\(first difference: column 10"
    ds = ds_id("mix")
    with pytest.raises(SampleSheetError, match=match) as err:
        run([parts["a"], bad], ds)
    assert "b_bad.vcf.gz" in str(err.value) and "a.vcf.gz" in str(err.value)
    assert not any(s in str(err.value) for s in ids)  # columns, never ids
    assert not store.exists(ds) and not store.dataset_dir(ds).exists()


def test_multi__overlapping_regions_refused_naming_both_files(
        run: Callable[..., IngestResult], store: Store, parts: dict[str, Path],
        tmp_path: Path) -> None:
    over = view(tmp_path / "over.vcf.gz", "-t", "1:113000000-300000000")
    ds = ds_id("over")
    with pytest.raises(InvalidInput, match="overlap .*a.vcf.gz, whose records on it reach "
                                           f"POS {SPLIT_IN_BIN}") as err:
        run([over, parts["a"]], ds)
    assert err.value.path == str(over) and err.value.line is not None
    assert not store.exists(ds)
    # a contig split between files that do not follow one another
    inter = view(tmp_path / "inter.vcf.gz", "-t", f"1:1-{SPLIT_IN_BIN},2")
    with pytest.raises(InvalidInput, match=r"continue here after .*inter\.vcf\.gz went on"):
        run([inter, parts["b"]], ds)
    assert not store.exists(ds)


def test_multi__one_bad_file_leaves_nothing_and_the_good_files_ingest_after(
        run: Callable[..., IngestResult], store: Store, query_client: hvac.Client,
        parts: dict[str, Path], tmp_path: Path, whole: dict[str, Any]) -> None:
    text = subprocess.run(["bcftools", "view", str(parts["c"])], check=True,
                          capture_output=True, text=True).stdout.split("\n")
    first = next(i for i, line in enumerate(text) if line and not line.startswith("#"))
    bad_line = first + 30
    f = text[bad_line].split("\t")
    text[bad_line] = "\t".join([f[0], "12x", *f[2:]])
    bad = tmp_path / "c_bad.vcf"
    bad.write_text("\n".join(text))
    ds = ds_id("bad")
    with pytest.raises(InvalidInput) as err:
        run([parts["a"], parts["b"], bad], ds, parts["sheet"])
    assert err.value.path == str(bad) and err.value.line == bad_line + 1
    assert not store.exists(ds) and not store.dataset_dir(ds).exists()
    # nothing was kept of it: not the files, not the sample registrations
    run([parts["a"], parts["b"], parts["c"]], ds, parts["sheet"])
    assert_same(content(store, ds, query_client), whole)


def test_multi__duplicate_files_refused(run: Callable[..., IngestResult], store: Store,
                                        parts: dict[str, Path], tmp_path: Path) -> None:
    ds = ds_id("dup")
    copy = tmp_path / "copy_of_a.vcf.gz"
    shutil.copy(parts["a"], copy)
    with pytest.raises(DuplicateIngest, match=r"copy_of_a\.vcf\.gz and .*a\.vcf\.gz are the same"):
        run([parts["a"], copy], ds)
    assert not store.exists(ds)
    run([parts["a"], parts["b"]], ds)
    before = store.manifest(ds)
    # a file of a batch, even not its first, is refused later (as a new batch or a part)
    with pytest.raises(DuplicateIngest, match="as batch b0001 \\(its source file #2\\)"):
        run([parts["b"]], ds)
    with pytest.raises(DuplicateIngest, match=r"copy_of_a\.vcf\.gz: this exact file"):
        run([parts["c"], copy], ds, batch="b0001")
    assert store.manifest(ds) == before


# --- a later part: --batch --------------------------------------------------------------------


def test_part__added_file_by_file_equals_the_whole_file(
        run: Callable[..., IngestResult], store: Store, query_client: hvac.Client,
        parts: dict[str, Path], whole: dict[str, Any]) -> None:
    ds = ds_id("parts")
    run(parts["a10"], ds, parts["sheet"])
    res = run(parts["c"], ds, batch="b0001")
    assert res.batch == "b0001" and res.part == 2
    res = run(parts["b10"], ds, batch="b0001")
    assert res.part == 3 and res.qc["groups"] == {}  # the part's own QC, no labels at ingest
    m = store.manifest(ds)
    assert len(m.batches) == 1 and m.sample_count == 90 and m.version == 3
    b = m.batches[0]
    assert [p.info_file is not None for p in b.parts] == [True, True]
    report = verify_dataset(DatasetReader(store, ds, Keyring(query_client, ds)))
    assert report.ok and report.files_checked == 2 + 2 + len(b.variant_files)
    assert sorted({f.path.split("/")[1] for f in b.variant_files}) == [
        "b0001", "b0001.p0002", "b0001.p0003"]
    assert_same_in_genome_order(content(store, ds, query_client), whole)
    info = DatasetReader(store, ds, Keyring(query_client, ds)).batch_info(b)
    assert [s["name"] for s in info["sources"]] == ["a10.vcf.gz", "c.vcf.gz", "b10.vcf.gz"]
    assert "missing_per_sample" not in info


def test_part__refusals_leave_the_batch_as_it_was(
        run: Callable[..., IngestResult], store: Store, parts: dict[str, Path],
        tmp_path: Path) -> None:
    ds = ds_id("refuse")
    run(parts["a"], ds)
    before = store.manifest(ds)
    ids = samples_of(CEU)
    reordered = view(tmp_path / "r.vcf.gz", "-t", LATE, "-s", ",".join([*ids[1:], ids[0]]))
    with pytest.raises(SampleSheetError, match="batch's samples in a different order"):
        run(reordered, ds, batch="b0001")
    fewer = view(tmp_path / "f.vcf.gz", "-t", LATE, "-s", "^" + ids[3])
    with pytest.raises(SampleSheetError, match="89 sample\\(s\\), the batch 90"):
        run(fewer, ds, batch="b0001")
    # b starts inside the 10 Mb bin where a ends: that partition is a's file
    with pytest.raises(InvalidInput, match="batch b0001 already holds records on contig '1' in "
                                           "110,000,000-119,999,999 \\(its position bin 11\\)"):
        run(parts["b"], ds, batch="b0001")
    with pytest.raises(ConfigError, match="has no batch 'b0002'"):
        run(parts["c"], ds, batch="b0002")
    with pytest.raises(ConfigError, match="does not exist, so it has no batch b0001"):
        run(parts["c"], ds + "-none", batch="b0001")
    assert not store.dataset_dir(ds + "-none").exists()
    with pytest.raises(ConfigError, match="sample sheet cannot be given with --batch"):
        run(parts["c"], ds, parts["sheet"], batch="b0001")
    assert store.manifest(ds) == before
    assert sorted(p.name for p in (store.dataset_dir(ds) / "batches").iterdir()) == ["b0001"]


def test_part__compaction_after_withdrawal_folds_the_parts_in(
        run: Callable[..., IngestResult], store: Store, query_client: hvac.Client,
        role_client: Callable[[str], hvac.Client], parts: dict[str, Path]) -> None:
    from vault.keys import lifecycle

    ds = ds_id("compact")
    run(parts["a10"], ds, parts["sheet"])
    run(parts["b10"], ds, batch="b0001")
    gone = samples_of(CEU)[7]
    lifecycle.withdraw(store, ds, role_client("admin"), [gone])
    before = content(store, ds, query_client)
    assert before["n_samples"] == 89
    lifecycle.compact(store, ds, query_client, role_client("ingest"))
    after = content(store, ds, query_client)
    assert_same(after, before)
    m = store.manifest(ds)
    assert [p.info_file for p in m.batches[0].parts] == [None]
    assert sorted(p.name for p in (store.dataset_dir(ds) / "batches").iterdir()) == [
        f"b0001.c{m.version}"]


# --- crashes: killed at the worst moment (in place, manifest not written) -------------------


def test_crash__multi_file_ingest_killed_before_the_manifest_then_rerun(
        bao_server: DevServer, ingest_client: hvac.Client, query_client: hvac.Client,
        store: Store, tmp_path: Path, parts: dict[str, Path], whole: dict[str, Any]) -> None:
    ds = ds_id("crash-multi")
    listing = tmp_path / "files.txt"
    listing.write_text(f"# the CEU release\n{parts['c']}\n\n{parts['b']}\n")
    args = ["ingest", str(parts["a"]), "--list", str(listing), "-d", ds,
            "--samples", str(parts["sheet"])]
    env = child_env(bao_server, ingest_client.token, store, tmp_path / "home")
    killed = run_cli(args, env, kill_at_commit=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (store.dataset_dir(ds) / "batches" / "b0001" / "info.parquet").is_file()
    assert not store.exists(ds) and ds not in store.list()
    done = run_cli([*args, "--json"], env, kill_at_commit=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["batch"] == "b0001" and [s["name"] for s in out["sources"]] == [
        "a.vcf.gz", "b.vcf.gz", "c.vcf.gz"]
    assert_same(content(store, ds, query_client), whole)
    assert not any((store.dataset_dir(ds) / ".pending").iterdir())


def test_crash__part_killed_before_the_manifest_keeps_the_batch_then_rerun(
        bao_server: DevServer, ingest_client: hvac.Client, query_client: hvac.Client,
        run: Callable[..., IngestResult], store: Store, tmp_path: Path,
        parts: dict[str, Path], whole: dict[str, Any]) -> None:
    ds = ds_id("crash-part")
    run(parts["a10"], ds, parts["sheet"])
    run(parts["c"], ds, batch="b0001")
    folder = store.dataset_dir(ds)
    before_tree = tree(folder)
    before = content(store, ds, query_client)
    args = ["ingest", str(parts["b10"]), "-d", ds, "--batch", "b0001"]
    env = child_env(bao_server, ingest_client.token, store, tmp_path / "home")
    killed = run_cli(args, env, kill_at_commit=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (folder / "batches" / "b0001.p0003" / "info.parquet").is_file()
    # the part's folder is all that was added; readers see the batch as it was
    assert {k: v for k, v in tree(folder).items()
            if not k.startswith("batches/b0001.p0003/")} == before_tree
    assert_same(content(store, ds, query_client), before)
    done = run_cli(args, env, kill_at_commit=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "added b10.vcf.gz to batch b0001" in done.stdout
    assert_same_in_genome_order(content(store, ds, query_client), whole)
    assert sorted(p.name for p in (folder / "batches").iterdir()) == [
        "b0001", "b0001.p0002", "b0001.p0003"]


def test_cli__refusal_names_both_files_in_genovault_style(
        bao_server: DevServer, ingest_client: hvac.Client, store: Store, tmp_path: Path,
        parts: dict[str, Path]) -> None:
    over = view(tmp_path / "over.vcf.gz", "-t", "1:113000000-300000000")
    ds = ds_id("cli")
    env = child_env(bao_server, ingest_client.token, store, tmp_path / "home")
    r = run_cli(["ingest", str(parts["a"]), str(over), "-d", ds], env, kill_at_commit=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: {over}:") and "a.vcf.gz" in r.stderr
    assert not store.exists(ds)


def test_cli__details_of_a_multi_file_batch_name_every_file_and_no_statistic(
        bao_server: DevServer, run: Callable[..., IngestResult], store: Store,
        tmp_path: Path) -> None:
    """--details names every source file, parts added later included, and prints no QC
    (of the batch or of any file): the statistics are the report's (docs/report.md)."""
    from click.testing import CliRunner

    from tests.support.vcfgen import header, random_records, write_vcf
    from vault.cli import main

    ids = ["SMALL_A", "SMALL_B", "SMALL_C"]  # fewer than k: one person's numbers in each cell
    files = []
    for i, chrom in enumerate(["1", "2", "3"]):
        lines, _ = random_records(3, 40, seed=i, chrom=chrom, missing=0.2)
        files.append(write_vcf(tmp_path / f"small{chrom}.vcf", header(ids) + lines))
    ds = ds_id("small")
    run(files[:2], ds)
    run(files[2], ds, batch="b0001")
    env = {"VAULT_ADDR": bao_server.addr,
           "VAULT_TOKEN": mint_role_token(bao_server.client(), "query", ttl="5m"),
           "GENOVAULT_STORE": str(store.root), "GENOVAULT_HOME": str(tmp_path / "home")}
    r = CliRunner().invoke(main, ["datasets", "show", ds, "--details", "--json"], env=env)
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)["batch_info"]["b0001"]
    assert info == {"sources": ["small1.vcf", "small2.vcf", "small3.vcf"],
                    "group_columns": []}
    for needle in ("qc", "missingness", "missing_per_sample", "records_read"):
        assert needle not in r.stdout, needle
    text = CliRunner().invoke(main, ["datasets", "show", ds, "--details"], env=env)
    assert text.exit_code == 0, text.output
    assert "and 2 more source file(s)" in text.stdout
    assert "source small1.vcf, small2.vcf, small3.vcf" in text.stdout
    assert "missingness" not in text.stdout and "records read" not in text.stdout
    assert f"`genovault report {ds}`" in text.stdout


def test_multi__info_fields_of_split_files_equal_the_whole_file(
        run: Callable[..., IngestResult], store: Store, query_client: hvac.Client,
        parts: dict[str, Path]) -> None:
    """--info with several files: the kept INFO columns, row for row, as for the whole file
    (typed, nulls kept), and one batch-wide set of INFO columns."""
    keep = ("AC", "DP", "HM2", "AA")

    def info_rows(ds: str) -> list[dict[str, Any]]:
        r = DatasetReader(store, ds, Keyring(query_client, ds))
        cols = list(r.info_columns())
        assert [fmt.info_id_of(c) for c in cols] == list(keep)
        rows: list[dict[str, Any]] = []
        for block in r.blocks(site_columns=("pos", "ref", "alt", *cols), genotypes=False):
            rows += block.sites.to_pylist()
        return rows

    one, split = ds_id("info-one"), ds_id("info-split")
    run(CEU, one, info=keep)
    run([parts["b"], parts["c"], parts["a"]], split, info=keep)
    want, got = info_rows(one), info_rows(split)
    assert got == want and len(want) > 100
    split_vcf = subprocess.run(["bcftools", "norm", "-m-", "-Ov", str(CEU)], check=True,
                               capture_output=True).stdout
    ac = subprocess.run(["bcftools", "query", "-f", "%INFO/AC\n", "-"], input=split_vcf,
                        check=True, capture_output=True).stdout.decode().split()
    assert [r["info_AC"] for r in got] == [None if a == "." else int(a) for a in ac]
    assert {type(r["info_HM2"]) for r in want} == {bool}
    assert any(isinstance(r["info_DP"], int) for r in want)
