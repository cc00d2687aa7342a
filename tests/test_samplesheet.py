"""Sample sheets: exact match with the VCF header, clear errors without sample ids, groups kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.vcfgen import header, write_vcf
from vault.errors import SampleSheetError
from vault.ingest.samplesheet import read_sample_sheet
from vault.privacy.cells import suppress_qc
from vault.store.dataset import Store

SAMPLES = ["NA001", "NA002", "NA003"]


def _sheet(tmp_path: Path, text: str, name: str = "sheet.tsv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("sample\tpop\nNA001\tA\nNA002\tB\n", "no row in the sheet (VCF #CHROM columns 12)",
                 id="vcf-sample-missing"),
    pytest.param("sample\tpop\nNA001\tA\nNA002\tB\nNA003\tC\nNA009\tD\n",
                 "not in the VCF header (sheet lines 5)", id="extra-sheet-row"),
    pytest.param("sample\tpop\nNA001\tA\nNA002\tB\nNA003\tC\nNA001\tD\n",
                 ":5: duplicate sample id (also on line 2)", id="duplicate-row"),
    pytest.param("id\tpop\nNA001\tA\n", "first column must be named", id="no-sample-column"),
    pytest.param("sample\t1pop\nNA001\tA\n", "invalid column name", id="bad-column-name"),
    pytest.param("sample\tpseudonym\nNA001\tA\n", "reserved", id="reserved-column"),
    pytest.param("sample\tpop\tpop\nNA001\tA\tB\n", "duplicate column names", id="dup-columns"),
    pytest.param("sample\tpop\nNA001\tA\textra\n", ":2: 3 fields", id="ragged-row"),
    pytest.param("", "empty sample sheet", id="empty"),
])
def test_samplesheet__errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(_sheet(tmp_path, text), SAMPLES)
    assert message in str(err.value)
    for sid in SAMPLES + ["NA009"]:
        assert sid not in str(err.value)


def test_samplesheet__csv_nulls_and_vcf_order(tmp_path: Path) -> None:
    sheet = read_sample_sheet(
        _sheet(tmp_path, "sample_id,pop,sex\nNA003,C,NA\nNA001,A,F\nNA002,,M\n", "s.csv"),
        SAMPLES)
    assert sheet.columns == {"pop": ["A", None, "C"], "sex": ["F", "M", None]}


@pytest.mark.integration
def test_samplesheet__groups_stored_encrypted_and_ids_pseudonymised(
        tmp_path: Path, ingest_file: Callable, reader: Callable, store: Store) -> None:
    vcf = write_vcf(tmp_path / "x.vcf", header(SAMPLES) + [
        "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1"])
    sheet = _sheet(tmp_path, "sample\tpopulation\tsex\nNA002\tEUR\tF\nNA001\tAFR\tM\n"
                             "NA003\tEUR\t\n")
    res = ingest_file(vcf, "groups", sample_sheet=sheet)
    # the QC report is exact and stored encrypted (the batch's info file), never in the
    # plaintext manifest; whoever shows it suppresses small groups (vault.privacy)
    assert res.qc["groups"]["population"] == {"AFR": {"samples": 1, "missingness": 0.0},
                                              "EUR": {"samples": 2, "missingness": 0.0}}
    rd = reader("groups")
    assert rd.batch_info(rd.batches[0])["qc"] == res.qc
    raw = json.loads((store.dataset_dir("groups") / "manifest.json").read_text())
    # without the signature's random base64, where a 3-letter needle can turn up by chance
    manifest_text = json.dumps({k: v for k, v in raw.items() if k != "signature"})
    for trait in ("AFR", "EUR", "population", "sex", "x.vcf"):
        assert trait not in manifest_text
    # a batch of 3 samples: no group is named, no per-sample total shown
    shown = suppress_qc(res.qc)
    assert shown["groups"]["population"] == {"(groups under k)": {
        "samples": "<11", "missingness": None, "groups": "suppressed"}}
    assert shown["missingness"] is None and "AFR" not in json.dumps(shown)
    t = reader("groups").samples()
    assert t.column_names == ["sample_index", "pseudonym", "population", "sex"]
    assert t.column("sample_index").to_pylist() == [0, 1, 2]
    assert t.column("population").to_pylist() == ["AFR", "EUR", "EUR"]
    assert t.column("sex").to_pylist() == ["M", "F", None]
    pseudo = t.column("pseudonym").to_pylist()
    assert len(set(pseudo)) == 3
    assert not set(pseudo) & set(SAMPLES)
    # the same id gets the same pseudonym again in this dataset, another in another dataset
    vcf2 = write_vcf(tmp_path / "y.vcf", header(SAMPLES) + [
        "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1",
        "1\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1"])
    ingest_file(vcf2, "other")
    other = reader("other").samples().column("pseudonym").to_pylist()
    assert not set(other) & set(pseudo)
    files = [f for f in store.dataset_dir("groups").rglob("*") if f.is_file()]
    assert any(f.suffix == ".parquet" for f in files)  # an empty scan would pass
    for f in files:
        data = f.read_bytes()
        for sid in SAMPLES:
            assert sid.encode() not in data, f


@pytest.mark.integration
def test_pseudonyms__stable_across_key_rotation(
        tmp_path: Path, ingest_file: Callable, reader: Callable, role_client: Callable,
        ingest_client: object) -> None:
    import hvac.exceptions

    from vault.errors import SampleSheetError as Dup
    from vault.keys.kms import Keyring

    rec = "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1"
    ingest_file(write_vcf(tmp_path / "a.vcf", header(SAMPLES) + [rec]), "rot")
    before = reader("rot").samples().column("pseudonym").to_pylist()
    admin = role_client("admin")
    admin.secrets.transit.rotate_key("genovault.rot.pseudonym")
    assert Keyring(ingest_client, "rot").pseudonymise(SAMPLES) == before
    # a sample that is already in the dataset is still recognised after the rotation
    with pytest.raises(Dup):
        ingest_file(write_vcf(tmp_path / "b.vcf", header(["NA002", "NEW1"]) + [
            "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0"]), "rot")
    # the ingest role may only use version 1 of the key
    with pytest.raises(hvac.exceptions.Forbidden):
        ingest_client.adapter.post("/v1/transit/hmac/genovault.rot.pseudonym/sha2-256",
                                   json={"input": "eA==", "key_version": "2"})
    with pytest.raises(hvac.exceptions.Forbidden):  # no key_version = the latest (v2)
        ingest_client.adapter.post("/v1/transit/hmac/genovault.rot.pseudonym/sha2-256",
                                   json={"input": "eA=="})


@pytest.mark.integration
def test_pseudonyms__many_chunks_pipelined_equal_one_by_one(
        tmp_path: Path, ingest_file: Callable, ingest_client: object) -> None:
    """More than one HMAC batch (200 ids each) goes over pipelined connections: the digests
    come back in input order, equal to asking for each id on its own, and equal ids get equal
    digests wherever they sit."""
    from vault.keys.kms import Keyring

    rec = "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1"
    ingest_file(write_vcf(tmp_path / "a.vcf", header(SAMPLES) + [rec]), "chunks")
    keyring = Keyring(ingest_client, "chunks")
    ids = [f"P{i:05d}" for i in range(650)] + ["P00007"]
    many = keyring.pseudonymise(ids)
    assert len(many) == len(ids) == len(set(many)) + 1 and many[-1] == many[7]
    for i in (0, 199, 200, 401, 649):
        assert keyring.pseudonymise([ids[i]]) == [many[i]]


@pytest.mark.integration
def test_pseudonyms__through_a_proxy_one_by_one_equal_pipelined(
        tmp_path: Path, ingest_file: Callable, ingest_client: object,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a proxy applies to Vault's address, the requests go one by one through hvac's
    own session (here forced, without a proxy): the same digests as pipelined."""
    import vault.keys.pipelined as pipelined
    from vault.keys.kms import Keyring

    rec = "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1"
    ingest_file(write_vcf(tmp_path / "a.vcf", header(SAMPLES) + [rec]), "proxied")
    keyring = Keyring(ingest_client, "proxied")
    ids = [f"Q{i:05d}" for i in range(450)]
    direct = keyring.pseudonymise(ids)
    monkeypatch.setattr(pipelined, "proxied", lambda client: True)
    assert keyring.pseudonymise(ids) == direct
