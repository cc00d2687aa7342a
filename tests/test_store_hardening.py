"""Negative tests of the store hardening (attacker review of the store, findings 2, 3, 5, 6,
8, 9, 10). Each test reproduces a finding against the current code; against the code before
its fix it fails. Real OpenBao throughout (fixtures in conftest.py), never a mocked KMS.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.baodev import DevServer
from tests.support.vcfgen import header, random_records, write_vcf
from vault.cli import main
from vault.cli.output import safe, tsv_cell
from vault.errors import ConfigError, InvalidInput, SampleSheetError, StoreError, VaultError
from vault.ids import check_dataset_id
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.keys.bootstrap import mint_role_token
from vault.privacy.cells import is_small, suppress_qc
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

REPO = Path(__file__).resolve().parent.parent
ESC_TITLE = "\x1b]0;pwned\x07"


# --- helpers ---------------------------------------------------------------------------------


def vcf(path: Path, samples: list[str], n: int = 40, seed: int = 0, chrom: str = "1",
        extra: list[str] | None = None) -> Path:
    recs, _ = random_records(len(samples), n, seed=seed, chrom=chrom)
    return write_vcf(path, header(samples) + recs + (extra or []))


def sheet(path: Path, cols: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [["sample", *cols], *rows]) + "\n")
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (but the lock) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def env(tmp_path: Path, bao_server: DevServer, bootstrapped: object) -> Callable[[str], dict]:
    """Environment of a CLI call with a fresh token of ``role`` over the ``store`` fixture."""

    def make(role: str) -> dict[str, str]:
        return {"VAULT_ADDR": bao_server.addr,
                "VAULT_TOKEN": mint_role_token(bao_server.client(), role, ttl="10m"),
                "GENOVAULT_STORE": str(tmp_path / "store"),
                "GENOVAULT_HOME": str(tmp_path / "home"),
                "GENOVAULT_NO_PROGRESS": "1"}

    return make


def child_env(bao: DevServer, token: str, home: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "BAO_", "GENOVAULT_"))}
    out.update(VAULT_ADDR=bao.addr, VAULT_TOKEN=token, GENOVAULT_HOME=str(home),
               GENOVAULT_NO_PROGRESS="1")
    return out


# Ingest through the Python API in a child process: argv = vcf, dataset, store, umask, mode
# ("plain", or "kill_after_register": SIGKILL once the samples are registered in Vault and
# the pending marker says so).
CHILD_INGEST = """
import os, signal, sys
from pathlib import Path
from vault.keys.client import connect
from vault.settings import load_settings
from vault.ingest import registration
from vault.ingest.pipeline import IngestOptions, ingest
from vault.store.dataset import Store

os.umask(int(sys.argv[4], 8))
if sys.argv[5] == "kill_after_register":
    original = registration.write_marker
    def marker_then_die(path, *words):
        original(path, *words)
        if words[-1:] == ("complete",):
            os.kill(os.getpid(), signal.SIGKILL)
    registration.write_marker = marker_then_die
ingest(Path(sys.argv[1]), sys.argv[2], client=connect(load_settings(), "ingest"),
       store=Store(Path(sys.argv[3])), options=IngestOptions(progress=False))
"""


def run_child(bao: DevServer, token: str, tmp_path: Path, path: Path, ds: str, store: Store,
              umask: str = "022", mode: str = "plain") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD_INGEST, str(path), ds, str(store.root), umask, mode],
        cwd=REPO, env=child_env(bao, token, tmp_path / "home"), text=True,
        capture_output=True, timeout=120, check=False)


# --- finding 3: the plaintext manifest named individuals' traits ------------------------------

PATIENT = "PATIENT_0042"
PATIENT_SAMPLE = "PATIENT_0042_S1"
SECRETS = [PATIENT, PATIENT_SAMPLE, "BRCA1_carrier", "EUR", "haploid", "phenotype", "mrn",
           "population"]


def haploid_vcf(path: Path, sample: str) -> Path:
    """One sample, some haploid calls (the count of them said 'male' in the old manifest)."""
    lines = header([sample], contigs=["1", "X"])
    lines += [f"1\t{1000 + 10 * i}\t.\tA\tG\t50\tPASS\t.\tGT\t{'0/1' if i % 2 else '0/0'}"
              for i in range(20)]
    lines += [f"X\t{5000 + 10 * i}\t.\tC\tT\t50\tPASS\t.\tGT\t{'1' if i % 3 else '0'}"
              for i in range(12)]
    return write_vcf(path, lines)


def _json_texts(x: object) -> list[str]:
    """Keys and non-key-material strings of a JSON value (nested JSON strings included)."""
    if isinstance(x, dict):
        return [t for k, v in x.items() for t in [str(k), *_json_texts(v)]]
    if isinstance(x, list):
        return [t for v in x for t in _json_texts(v)]
    if isinstance(x, str) and not re.fullmatch(r"(vault:v[0-9]+:)?[A-Za-z0-9+/=_-]{16,}", x):
        try:
            inner = json.loads(x)
        except ValueError:
            return [x]
        # a nested JSON document: its own keys and strings, not its raw text (which holds the
        # random base64 of wrapped keys, where a short needle turns up by chance)
        return _json_texts(inner) if isinstance(inner, dict | list) else [x]
    return []


def assert_plaintext_free(folder: Path, needles: list[str]) -> dict[str, int]:
    """Every file is PARE-encrypted Parquet, Parquet key material JSON, the lock, a pending
    marker or the manifest; no needle in any file that is not ciphertext."""
    kinds = {"parquet": 0, "key_material": 0, "manifest": 0, "lock": 0, "pending": 0}
    for p in sorted(q for q in folder.rglob("*") if not q.is_dir()):
        data = p.read_bytes()
        if p.suffix == ".parquet":
            assert data[:4] == data[-4:] == b"PARE", f"{p} is not encrypted Parquet"
            kinds["parquet"] += 1
            continue  # ciphertext: a 3-byte needle could occur in it by chance
        if p.name.startswith("_KEY_MATERIAL_FOR_") and p.suffix == ".json":
            kinds["key_material"] += 1
            # scan the structure, not the random base64 of wrapped keys
            texts = _json_texts(json.loads(data))
            text = "\n".join(texts)
        elif p.name == fmt.MANIFEST:
            kinds["manifest"] += 1
            # keys and values, not the random base64 of the signature or the hex checksums
            text = "\n".join(_json_texts(json.loads(data)))
        elif p.name == ".lock":
            kinds["lock"] += 1
            assert data == b""
            continue
        elif p.parent.name == ".pending":
            kinds["pending"] += 1
            assert re.fullmatch(rb"[0-9a-f]{32}", data), p
            continue
        else:
            raise AssertionError(f"unexpected plaintext file in the store: {p}")
        for needle in needles:  # short needles case-sensitively ("kmsInstanceURL")
            assert needle not in text, f"{p} names {needle!r}"
            assert len(needle) < 6 or needle.lower() not in text.lower(), f"{p}: {needle!r}"
    return kinds


@pytest.mark.integration
def test_manifest__names_no_source_no_label_no_qc(
        ingest_file: Callable[..., IngestResult], store: Store,
        reader: Callable[[str], DatasetReader], tmp_path: Path) -> None:
    one = haploid_vcf(tmp_path / f"{PATIENT}.vcf", PATIENT_SAMPLE)
    one_sheet = sheet(tmp_path / "one.tsv", ["phenotype", "population", "sex"],
                      [[PATIENT_SAMPLE, "BRCA1_carrier", "EUR", "M"]])
    res = ingest_file(one, "traits", sample_sheet=one_sheet)
    assert res.qc["haploid_calls_as_homozygous"] == 12  # it was counted ...
    many = [f"COHORT_{i:02d}" for i in range(30)]
    mrn_rows = [[s, f"MRN{i:07d}", "EUR" if i < 20 else "AFR"] for i, s in enumerate(many)]
    ingest_file(vcf(tmp_path / "cohort.vcf", many, seed=3), "traits",
                sample_sheet=sheet(tmp_path / "many.tsv", ["mrn", "population"], mrn_rows),
                allow_identifying_columns=("mrn",))

    folder = store.dataset_dir("traits")
    # every key and value, but not the signature's random base64 (where "qc" turns up by chance)
    manifest = "\n".join(_json_texts(json.loads((folder / fmt.MANIFEST).read_text())))
    assert "signature" in manifest and "batches" in manifest  # the structure is scanned
    for needle in [*SECRETS, *many, "MRN0000001", "AFR", "groups", "qc", "source_name"]:
        assert needle not in manifest, needle
    kinds = assert_plaintext_free(folder, [*SECRETS, *many, "MRN0000001", "AFR"])
    assert kinds["manifest"] == 1 and kinds["parquet"] >= 4 and kinds["pending"] == 0, kinds
    # ... and is kept encrypted in the batch's info file, for the query role
    r = reader("traits")
    info = r.batch_info(r.batches[0])
    assert info["source_name"] == f"{PATIENT}.vcf"
    assert info["qc"]["haploid_calls_as_homozygous"] == 12
    assert info["qc"]["groups"]["phenotype"] == {"BRCA1_carrier": {"samples": 1,
                                                                   "missingness": 0.0}}


@pytest.mark.integration
def test_datasets_show_details__prints_no_statistic_and_points_to_the_report(
        ingest_file: Callable[..., IngestResult], env: Callable[[str], dict],
        tmp_path: Path) -> None:
    """`datasets show --details` is no way around the report's policy decision, disclosure
    control and audit record: it names sources and group columns, and no count of anyone."""
    many = [f"COHORT_{i:02d}" for i in range(30)]
    rows = [[s, "EUR" if i < 22 else "AFR", "F" if i < 15 else "M"] for i, s in enumerate(many)]
    ingest_file(vcf(tmp_path / "cohort.vcf", many, seed=4), "shown",
                sample_sheet=sheet(tmp_path / "s.tsv", ["population", "sex"], rows))
    r = CliRunner().invoke(main, ["datasets", "show", "shown", "--details"], env=env("query"))
    assert r.exit_code == 0, r.output
    assert "source cohort.vcf, group columns population, sex" in r.output
    assert "`genovault report shown`" in r.output
    # no group named, no per-group size, no missingness, no QC line (the old output had
    # "sex: F n=15 miss=…; M n=15 miss=…")
    for needle in ("EUR", "AFR", "F n=", "n=15", "miss", "missingness", "records read"):
        assert needle not in r.output, needle
    r = CliRunner().invoke(main, ["datasets", "show", "shown", "--details", "--json"],
                           env=env("query"))
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)["batch_info"]
    assert info == {"b0001": {"sources": ["cohort.vcf"],
                              "group_columns": ["population", "sex"]}}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=6), min_size=1, max_size=4))
def test_suppress_qc__small_groups_are_unnamed_and_not_recoverable(
        columns: list[list[int]]) -> None:
    """No group of 1..k-1 samples is named, and their total is never recoverable as the batch
    total minus the shown groups while it is itself under k."""
    total = max((sum(c) for c in columns), default=0)
    columns = [c + [total - sum(c)] for c in columns]  # every column adds up to the total
    qc = {"samples": total, "missingness": 0.1,
          "groups": {f"c{i}": {f"g{j}": {"samples": n, "missingness": 0.1}
                               for j, n in enumerate(c)} for i, c in enumerate(columns)}}
    out = suppress_qc(qc)
    if is_small(total):
        assert out["missingness"] is None
        assert all(list(g) == ["(groups under k)"] for g in out["groups"].values())
        return
    for i, c in enumerate(columns):
        groups = out["groups"][f"c{i}"]
        for j, n in enumerate(c):
            name = f"g{j}"
            if is_small(n):
                assert name not in groups, (c, groups)
            elif name in groups and isinstance(groups[name]["samples"], int):
                assert groups[name]["samples"] == n
        shown = sum(v["samples"] for v in groups.values() if isinstance(v["samples"], int))
        hidden = total - shown
        assert not is_small(hidden), (c, groups)


def test_suppress_qc__one_sample_batch_shows_nothing_about_its_sample() -> None:
    qc = {"samples": 1, "missingness": 0.0, "haploid_calls_as_homozygous": 12,
          "groups": {"phenotype": {"BRCA1_carrier": {"samples": 1, "missingness": 0.0}}}}
    out = suppress_qc(qc)
    assert "BRCA1_carrier" not in json.dumps(out)
    assert out["haploid_calls_as_homozygous"] is None and out["missingness"] is None


# --- finding 2 (part): the sample registry ---------------------------------------------------


@pytest.mark.integration
def test_registry__duplicate_sample_across_files_refused_and_leaves_nothing(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["DUP_A0", "DUP_A1", "DUP_A2"], seed=1), "dups")
    folder = store.dataset_dir("dups")
    before = tree(folder)
    with pytest.raises(SampleSheetError, match=re.escape("1 sample(s) are already in dataset")):
        ingest_file(vcf(tmp_path / "b.vcf", ["DUP_B0", "DUP_A1", "DUP_B1"], seed=2), "dups")
    assert tree(folder) == before
    assert not (folder / ".pending").exists() or not any((folder / ".pending").iterdir())
    # the refused file's new samples were released: they can come in another file
    res = ingest_file(vcf(tmp_path / "c.vcf", ["DUP_B0", "DUP_B1"], seed=3), "dups")
    assert res.batch == "b0002"
    assert store.manifest("dups").sample_count == 5


@pytest.mark.integration
def test_registry__ingest_token_can_neither_read_nor_list(
        bao_server: DevServer, bootstrapped: object, ingest_client: hvac.Client,
        ingest_file: Callable[..., IngestResult], store: Store,
        reader: Callable[[str], DatasetReader], tmp_path: Path) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["REG_0", "REG_1"], seed=1), "reg")
    uid = store.manifest("reg").uid
    pseudonym = reader("reg").samples().column("pseudonym")[0].as_py()
    entry = f"/v1/genovault-registry/reg/{uid}/{pseudonym}"
    # the entry exists (root sees it) ...
    assert bao_server.client().adapter.get(entry)["data"] == {"registered": "1"}
    # ... but neither the global ingest role nor a dataset-scoped token can read or list
    scoped = bao_server.client(mint_role_token(bao_server.client(), "ingest", dataset="reg"))
    for client in (ingest_client, scoped):
        with pytest.raises(hvac.exceptions.Forbidden):
            client.adapter.get(entry)
        for folder in (f"/v1/genovault-registry/reg/{uid}", "/v1/genovault-registry/reg",
                       "/v1/genovault-registry"):
            with pytest.raises(hvac.exceptions.Forbidden):
                client.adapter.list(folder)
    assert not (store.dataset_dir("reg") / "pseudonyms.json").exists()
    assert not list(store.root.rglob("pseudonyms*"))


@pytest.mark.integration
def test_registry__failed_ingest_releases_its_samples(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path) -> None:
    # a second batch, so that the dataset (and its registry uid) outlives the failure
    ingest_file(vcf(tmp_path / "base.vcf", ["BASE_0", "BASE_1"], seed=4), "released")
    before = tree(store.dataset_dir("released"))
    samples = ["FAIL_0", "FAIL_1", "FAIL_2"]
    bad = vcf(tmp_path / "bad.vcf", samples, seed=5,
              extra=["1\t999999\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\t0/1\tnot_a_gt"])
    with pytest.raises(InvalidInput, match=re.escape("bad.vcf:44")):
        ingest_file(bad, "released")  # fails after the registry step, while parsing
    assert tree(store.dataset_dir("released")) == before
    res = ingest_file(vcf(tmp_path / "good.vcf", samples, seed=5), "released")
    assert res.batch == "b0002" and store.manifest("released").sample_count == 5


@pytest.mark.integration
def test_registry__kill_after_registration_then_rerun_completes(
        bao_server: DevServer, ingest_client: hvac.Client, store: Store,
        reader: Callable[[str], DatasetReader], tmp_path: Path) -> None:
    # a second batch: the dataset's registry uid is fixed, so the rerun meets the killed
    # run's registrations (a first ingest would start a new uid either way)
    ingest(vcf(tmp_path / "base.vcf", ["KBASE_0"], seed=5), "killed", client=ingest_client,
           store=store, options=IngestOptions(progress=False))
    path = vcf(tmp_path / "k.vcf", ["KILL_0", "KILL_1", "KILL_2", "KILL_3"], seed=6)
    killed = run_child(bao_server, ingest_client.token, tmp_path, path, "killed", store,
                       mode="kill_after_register")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    folder = store.dataset_dir("killed")
    assert [b.batch for b in store.manifest("killed").batches] == ["b0001"]
    assert len(list((folder / ".pending").iterdir())) == 1  # the marker of the killed run
    res = ingest(path, "killed", client=ingest_client, store=store,
                 options=IngestOptions(progress=False))
    assert res.batch == "b0002"
    assert reader("killed").n_samples == 5
    assert not any((folder / ".pending").iterdir())
    # the samples are registered for good: another file with one of them is refused
    with pytest.raises(SampleSheetError, match="already in dataset"):
        ingest(vcf(tmp_path / "k2.vcf", ["KILL_9", "KILL_2"], seed=7), "killed",
               client=ingest_client, store=store, options=IngestOptions(progress=False))


# --- finding 5: symbolic links ---------------------------------------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder of someone else's that a planted link points at."""
    v = tmp_path / "victim"
    (v / "sub").mkdir(parents=True)
    (v / "precious.txt").write_text("keep me")
    (v / "sub" / "also.txt").write_text("keep me too")
    return v


def victim_intact(v: Path) -> None:
    assert (v / "precious.txt").read_text() == "keep me"
    assert (v / "sub" / "also.txt").read_text() == "keep me too"
    assert sorted(p.name for p in v.rglob("*")) == ["also.txt", "precious.txt", "sub"]


@pytest.mark.integration
def test_symlink__staging_link_never_deletes_its_target(
        ingest_file: Callable[..., IngestResult], store: Store, victim: Path,
        tmp_path: Path) -> None:
    first = vcf(tmp_path / "a.vcf", ["LINK_0", "LINK_1"], seed=1)
    ingest_file(first, "linked")
    staging = store.dataset_dir("linked") / ".staging"
    before = store.manifest("linked")
    if staging.exists():
        staging.rmdir()
    staging.symlink_to(victim, target_is_directory=True)
    # a refused duplicate file, and a good new one: both refused before any deletion
    for path in (first, vcf(tmp_path / "b.vcf", ["LINK_2"], seed=2)):
        with pytest.raises(StoreError, match=re.escape(str(staging))):
            ingest_file(path, "linked")
        victim_intact(victim)
    assert staging.is_symlink()
    with pytest.raises(StoreError, match="symbolic link"):
        store.manifest("linked")
    staging.unlink()
    assert store.manifest("linked") == before


@pytest.mark.integration
def test_symlink__dangling_manifest_tmp_link_is_not_written_through(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["TMP_0", "TMP_1"], seed=1), "tmplink")
    target = tmp_path / "elsewhere" / "planted.json"
    target.parent.mkdir()
    tmp_link = store.dataset_dir("tmplink") / f".{fmt.MANIFEST}.tmp"
    tmp_link.symlink_to(target)
    with pytest.raises(StoreError, match=re.escape(str(tmp_link))):
        ingest_file(vcf(tmp_path / "b.vcf", ["TMP_2"], seed=2), "tmplink")
    assert not target.exists() and not target.is_symlink()
    tmp_link.unlink()
    assert [b.batch for b in store.manifest("tmplink").batches] == ["b0001"]


@pytest.mark.integration
def test_symlink__store_root_link_is_refused(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["ROOT_0"], seed=1), "rootds")
    link = tmp_path / "store-link"
    link.symlink_to(store.root, target_is_directory=True)
    before = tree(store.root)
    with pytest.raises(StoreError, match=re.escape(str(link))):
        Store(link)
    assert tree(store.root) == before


@pytest.mark.integration
def test_symlink__dataset_folder_link_is_refused_before_anything_is_touched(
        ingest_file: Callable[..., IngestResult], ingest_client: hvac.Client,
        store: Store, tmp_path: Path) -> None:
    other = Store(tmp_path / "other-store")
    ingest(vcf(tmp_path / "a.vcf", ["DSL_0", "DSL_1"], seed=1), "real", client=ingest_client,
           store=other, options=IngestOptions(progress=False))
    real = other.dataset_dir("real")
    store.make_root()
    link = store.root / "real"
    link.symlink_to(real, target_is_directory=True)
    before = {p.relative_to(real).as_posix(): p.read_bytes() if p.is_file() else None
              for p in real.rglob("*")}
    with pytest.raises(StoreError, match=re.escape(str(link))):
        ingest_file(vcf(tmp_path / "b.vcf", ["DSL_2"], seed=2), "real")
    with pytest.raises(StoreError, match=re.escape(str(link))):
        store.manifest("real")
    assert store.list() == []
    after = {p.relative_to(real).as_posix(): p.read_bytes() if p.is_file() else None
             for p in real.rglob("*")}
    assert after == before  # not even a new .lock


@pytest.mark.integration
def test_symlink__deep_in_batches_is_refused_for_reads_and_writes(
        ingest_file: Callable[..., IngestResult], store: Store,
        reader: Callable[[str], DatasetReader], victim: Path, tmp_path: Path) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["DEEP_0", "DEEP_1"], seed=1), "deep")
    folder = store.dataset_dir("deep")
    variants = next((folder / "batches" / "b0001" / "variants").iterdir())
    planted = variants / "bin999999.parquet"
    planted.symlink_to(victim / "precious.txt")
    debris = folder / "batches" / "b0009"  # an unlisted batch the next writer would delete
    debris.symlink_to(victim, target_is_directory=True)
    with pytest.raises(StoreError, match=re.escape(str(folder / "batches"))):
        ingest_file(vcf(tmp_path / "b.vcf", ["DEEP_2"], seed=2), "deep")
    with pytest.raises(StoreError, match="symbolic link"):
        reader("deep")
    victim_intact(victim)
    debris.unlink()
    with pytest.raises(StoreError, match=re.escape(str(planted))):
        store.manifest("deep")
    victim_intact(victim)


# --- finding 6: modes -------------------------------------------------------------------------


@pytest.mark.integration
def test_modes__folders_0700_files_0600_even_under_umask_0(
        bao_server: DevServer, ingest_client: hvac.Client, store: Store,
        tmp_path: Path) -> None:
    samples = [f"MODE_{i}" for i in range(5)]
    first = run_child(bao_server, ingest_client.token, tmp_path,
                      vcf(tmp_path / "a.vcf", samples, seed=1), "modes", store, umask="0")
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_child(bao_server, ingest_client.token, tmp_path,
                       vcf(tmp_path / "b.vcf", ["MODE_9"], seed=2, chrom="2"), "modes", store,
                       umask="0")
    assert second.returncode == 0, second.stderr[-2000:]
    wrong = []
    checked = 0
    for p in [store.root, *sorted(store.root.rglob("*"))]:
        st_ = os.lstat(p)
        want = 0o700 if stat.S_ISDIR(st_.st_mode) else 0o600
        assert stat.S_ISDIR(st_.st_mode) or stat.S_ISREG(st_.st_mode), p
        checked += 1
        if stat.S_IMODE(st_.st_mode) != want:
            wrong.append(f"{p.relative_to(store.root)}: {stat.S_IMODE(st_.st_mode):o}")
    assert not wrong, wrong
    assert checked > 15


@pytest.mark.integration
def test_modes__loose_store_folder_is_reported(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["LOOSE_0"], seed=1), "loose")
    caplog.set_level(logging.WARNING, logger="genovault.store")
    store.manifest("loose")
    assert not [r for r in caplog.records if r.name == "genovault.store"]
    for loose in (store.dataset_dir("loose"), store.root):
        loose.chmod(0o755)
        caplog.clear()
        store.manifest("loose")
        warned = [r.getMessage() for r in caplog.records if r.name == "genovault.store"
                  and r.levelno == logging.WARNING]
        assert any(str(loose) in m and "755" in m for m in warned), (loose, warned)
        loose.chmod(0o700)


# --- finding 8: dataset ids -------------------------------------------------------------------

BAD_IDS = ["demo\n", "Demo", "../x", "", "a" * 64, "-a", "de mo", "demo/x", "démo", ".hidden"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_dataset_id__refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid dataset id"):
        check_dataset_id(bad)
    with pytest.raises(ConfigError):
        Store(Path("/nonexistent")).dataset_dir(bad)


def test_dataset_id__accepted() -> None:
    for good in ("demo", "a", "a" * 63, "0-a_b", "x-1"):
        assert check_dataset_id(good) == good


@pytest.mark.integration
@pytest.mark.parametrize("bad", BAD_IDS[:6], ids=repr)
def test_dataset_id__cli_exit_2_and_nothing_created(
        bad: str, env: Callable[[str], dict], tmp_path: Path) -> None:
    path = vcf(tmp_path / "a.vcf", ["CLI_0"], seed=1)
    e = env("ingest")
    r = CliRunner().invoke(main, ["ingest", str(path), f"--dataset={bad}"], env=e)
    assert r.exit_code == 2, r.output
    assert "invalid dataset id" in r.stderr
    assert not Path(e["GENOVAULT_STORE"]).exists()
    r = CliRunner().invoke(main, ["datasets", "show", "--", bad], env=env("query"))
    assert r.exit_code == 2 and "invalid dataset id" in r.stderr
    assert not Path(e["GENOVAULT_STORE"]).exists()


@pytest.mark.integration
def test_dataset_id__first_ingest_vault_refuses_leaves_no_folder(
        bao_server: DevServer, bootstrapped: object, store: Store, tmp_path: Path) -> None:
    other_token = mint_role_token(bao_server.client(), "ingest", dataset="other")
    with pytest.raises(VaultError, match=r"403|permission denied"):
        ingest(vcf(tmp_path / "a.vcf", ["REFUSED_0"], seed=1), "notmine",
               client=bao_server.client(other_token), store=store,
               options=IngestOptions(progress=False))
    assert not store.dataset_dir("notmine").exists()
    assert not store.root.exists() or list(store.root.iterdir()) == []


# --- finding 9: terminal escapes and formulas -------------------------------------------------


@pytest.mark.parametrize(("raw", "shown"), [
    (ESC_TITLE, "\\x1b]0;pwned\\x07"),
    ("a\rb", "a\\x0db"),
    ("nul\x00", "nul\\x00"),
    ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("\u202eevil", "\\u202eevil"),
    ("\u2066iso\u2069", "\\u2066iso\\u2069"),
    ("line\u2028sep", "line\\u2028sep"),
    ("plain é ü 中", "plain é ü 中"),
    (42, "42"),
])
def test_safe__escapes_control_and_bidi(raw: object, shown: str) -> None:
    assert safe(raw) == shown
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]",
                         safe(raw))


@pytest.mark.parametrize(("raw", "cell"), [
    ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
    ("+1", "+1"),
    ("-2", "-2"),
    ("-2.5e3", "-2.5e3"),
    ("+A1", "'+A1"),
    ("-A1+B1", "'-A1+B1"),
    ("@x", "'@x"),
    ("\t=1", "'\t=1"),
    ("\r=1", "\\x0d=1"),
    ("\u202e", "\\u202e"),
    ("=1\x1b", "'=1\\x1b"),
    ("EUR", "EUR"),
    (None, ""),
    (3, "3"),
    (-3, "-3"),
])
def test_tsv_cell__formulas_prefixed_numbers_kept(raw: object, cell: str) -> None:
    assert tsv_cell(raw) == cell


@pytest.mark.integration
def test_cli__error_with_control_characters_is_printed_escaped(
        ingest_file: Callable[..., IngestResult], env: Callable[[str], dict], store: Store,
        tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["datasets", "show", f"demo{ESC_TITLE}"], env=env("query"))
    assert r.exit_code == 2
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert "demo\\x1b]0;pwned\\x07" in r.stderr
    # a name planted in the store reaches an error message as it is: printed escaped
    ingest_file(vcf(tmp_path / "a.vcf", ["ESC_0"], seed=1), "esc")
    planted = store.dataset_dir("esc") / f"x{ESC_TITLE}"
    planted.symlink_to(tmp_path)
    r = CliRunner().invoke(main, ["datasets", "show", "esc"], env=env("query"))
    assert r.exit_code == 1, r.output
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert "x\\x1b]0;pwned\\x07: is a symbolic link" in r.stderr


# --- finding 10: stray folders in the store ---------------------------------------------------


@pytest.mark.integration
def test_datasets_list__skips_and_reports_what_is_not_a_dataset(
        ingest_file: Callable[..., IngestResult], env: Callable[[str], dict], store: Store,
        tmp_path: Path) -> None:
    ingest_file(vcf(tmp_path / "a.vcf", ["LIST_0", "LIST_1"], seed=1), "good")
    manifest = (store.dataset_dir("good") / fmt.MANIFEST).read_text()
    (store.root / "BAD").mkdir()
    (store.root / "BAD" / fmt.MANIFEST).write_text(manifest)
    (store.root / "nomanifest").mkdir()
    (store.root / "garbage").mkdir()
    (store.root / "garbage" / fmt.MANIFEST).write_text("{not json")
    (store.root / "foreign").mkdir()
    (store.root / "foreign" / fmt.MANIFEST).write_text(manifest)  # dataset "good"'s
    (store.root / f"e{ESC_TITLE}").mkdir()
    r = CliRunner().invoke(main, ["datasets", "list"], env=env("query"))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["good\t2 samples\t1 batch(es)\t40 variant rows"]
    err = r.stderr.splitlines()
    assert all(line.startswith("skipped ") for line in err), err
    for name in ("'BAD': not a valid dataset id", "nomanifest: no manifest",
                 "garbage:", "foreign:", "e\\x1b]0;pwned\\x07"):
        assert any(name in line for line in err), (name, err)
    assert "\x1b" not in r.stderr
    assert len(err) == 5
