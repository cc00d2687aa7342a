"""Files bound to their place in the cryptography (schema 6), against a real OpenBao.

A new dataset's Parquet keys are derived Transit keys; each file's wrapped keys are made with
the derivation context ``genovault-file/v1/<dataset>/<file id>`` of its signed manifest entry.
These tests skip GenoVault's own checksum check on purpose (they call pyarrow with the
keyring's decryption properties, as a reader that skipped the check would): a file moved or
copied to another entry, *with* its key material, must still fail to decrypt, in Vault.
Datasets created before stay readable and stay unbound.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import hvac
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.vcfgen import cohort_vcf
from vault.errors import IntegrityError, KeyNotTrusted, StoreError
from vault.ingest import pipeline
from vault.ingest.pipeline import IngestResult
from vault.keys import lifecycle, signing
from vault.keys.kms import Keyring, key_material_path, place_context, wrapped_keys
from vault.keys.names import PARQUET_CLASSES, transit_key_name
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.manifest import FileEntry, Manifest
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "vcf"
SMALL = DATA / "bio2zarr__sample.vcf.gz"  # 3 samples, contigs 19, 20, X: 3 variant files
#: how Vault's refusal to unwrap (wrong context: "message authentication failed") surfaces
UNWRAP = "Vault could not unwrap the stored key"


def _ds(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _read(path: Path, keyring: Keyring, file_id: str | None) -> pa.Table:
    """Decrypt every column of ``path`` as the file of entry ``file_id``, with no checksum
    check (what a reader that skipped GenoVault's check would do)."""
    props = keyring.decryption_properties(str(path), file_id)
    return pq.ParquetFile(str(path), decryption_properties=props).read()


def _plant(folder: Path, donor: FileEntry, target: FileEntry) -> Path:
    """Copy the donor's file and key material over the target's place; the target's path."""
    dst = folder / target.path
    shutil.copyfile(folder / donor.path, dst)
    shutil.copyfile(key_material_path(str(folder / donor.path)), key_material_path(str(dst)))
    return dst


@pytest.fixture
def bound(ingest_file: Callable[..., IngestResult]) -> str:
    ds = _ds("bind")
    ingest_file(SMALL, ds)
    return ds


def test_new_dataset__is_bound_derived_keys_one_distinct_id_and_kek_per_file(
        bound: str, store: Store, bao_server) -> None:
    m = store.manifest(bound)
    assert m.schema_version == fmt.SCHEMA_VERSION == 6 and m.binding == "transit-derived-v1"
    files = m.files()
    ids = [f.file_id for f in files]
    assert len(files) >= 5 and None not in ids and len(set(ids)) == len(ids)
    root = bao_server.client()
    keys = [*{transit_key_name(bound, c) for c in PARQUET_CLASSES},
            *m.transit_keys("genotypes")]
    for name in set(keys):
        info = root.secrets.transit.read_key(name)["data"]
        assert (info["derived"], info["convergent_encryption"]) == (True, False), name
    pseudonym = root.secrets.transit.read_key(transit_key_name(bound, "pseudonym"))["data"]
    assert pseudonym["derived"] is False  # HMAC pseudonyms: not per file
    # no wrapped KEK is shared between two files (each file has its own context)
    folder = store.dataset_dir(bound)
    per_file = [{w for _k, w in wrapped_keys(key_material_path(str(folder / f.path)))}
                for f in files]  # within a file, a master key's KEK wraps several DEKs
    assert all(len(w) >= 2 for w in per_file)
    assert len(set().union(*per_file)) == sum(len(w) for w in per_file)
    # and the manifest says so in the signed bytes, per entry
    raw = json.loads((folder / fmt.MANIFEST).read_text())
    assert raw["binding"] == "transit-derived-v1" and raw["batches"][0]["samples_file"][
        "file_id"] == m.batches[0].samples_file.file_id


def test_moved_file_with_its_key_material__fails_to_decrypt_in_vault(
        bound: str, store: Store, query_client: hvac.Client, bao_server) -> None:
    m = store.manifest(bound)
    folder = store.dataset_dir(bound)
    target, donor = m.batches[0].variant_files[0], m.batches[0].variant_files[1]
    keyring = Keyring(query_client, bound)
    donor_rows = _read(folder / donor.path, keyring, donor.file_id)  # control: it decrypts
    assert donor_rows.num_rows == donor.rows
    dst = _plant(folder, donor, target)
    keyring.clear_caches()
    with pytest.raises(IntegrityError, match=UNWRAP):
        _read(dst, keyring, target.file_id)  # decrypted as the file of the target's entry
    # the same bytes still decrypt as the donor's entry: only the place differs
    assert _read(dst, Keyring(query_client, bound), donor.file_id).equals(donor_rows)
    # even root cannot unwrap the donor's wrapped keys with the target's context
    context = base64.b64encode(place_context(bound, target.file_id).encode()).decode()
    for name, wrapped in wrapped_keys(key_material_path(str(dst))):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="authentication failed"):
            bao_server.client().secrets.transit.decrypt_data(name=name, ciphertext=wrapped,
                                                             context=context)
    # and GenoVault's own reader refuses it before it decrypts anything
    with pytest.raises(IntegrityError, match="checksum"):
        DatasetReader(store, bound, Keyring(query_client, bound))._read(target.path, None)


def test_samples_file_swapped_into_another_batch__fails_to_decrypt(
        bound: str, store: Store, query_client: hvac.Client, tmp_path: Path,
        ingest_file: Callable[..., IngestResult]) -> None:
    """The second batch's samples file and key material in the first batch's place."""
    ingest_file(cohort_vcf(tmp_path / "b2.vcf", ["BIND_B0", "BIND_B1"], 20)[0], bound)
    m = store.manifest(bound)
    folder = store.dataset_dir(bound)
    target, donor = m.batches[0].samples_file, m.batches[1].samples_file
    dst = _plant(folder, donor, target)
    with pytest.raises(IntegrityError, match=UNWRAP):
        _read(dst, Keyring(query_client, bound), target.file_id)


def test_file_copied_into_another_dataset__fails_to_decrypt(
        bound: str, store: Store, query_client: hvac.Client,
        ingest_file: Callable[..., IngestResult]) -> None:
    other = _ds("bind-o")
    ingest_file(SMALL, other)
    a, b = store.manifest(bound), store.manifest(other)
    src = store.dataset_dir(bound) / a.batches[0].variant_files[0].path
    target = b.batches[0].variant_files[0]
    dst = store.dataset_dir(other) / target.path
    shutil.copyfile(src, dst)
    shutil.copyfile(key_material_path(str(src)), key_material_path(str(dst)))
    with pytest.raises(IntegrityError, match=UNWRAP):
        _read(dst, Keyring(query_client, other), target.file_id)


def test_binding_stripped_from_the_manifest__refused_by_its_signature(
        bound: str, store: Store, query_client: hvac.Client) -> None:
    """Without ``binding`` and the file ids the files would be opened without a context;
    the manifest is signed, so the edited one is refused (and the keys, being derived, would
    refuse a call without context anyway)."""
    path = store.dataset_dir(bound) / fmt.MANIFEST
    raw = json.loads(path.read_text())
    del raw["binding"]
    for b in raw["batches"]:
        for f in [b["samples_file"], b["info_file"], *b["variant_files"]]:
            del f["file_id"]
    path.write_text(json.dumps(raw))
    signing.forget()
    with pytest.raises(IntegrityError):
        reader = DatasetReader(store, bound, Keyring(query_client, bound))
        reader._read(reader.manifest.batches[0].variant_files[0].path, None)


def test_manifest__bound_needs_distinct_ids_and_unbound_has_none(bound: str,
                                                                  store: Store) -> None:
    raw = json.loads((store.dataset_dir(bound) / fmt.MANIFEST).read_text())
    Manifest.model_validate(raw)
    b = raw["batches"][0]
    missing = json.loads(json.dumps(raw))
    del missing["batches"][0]["info_file"]["file_id"]
    twice = json.loads(json.dumps(raw))
    twice["batches"][0]["info_file"]["file_id"] = b["samples_file"]["file_id"]
    unbound = json.loads(json.dumps(raw))
    del unbound["binding"]
    for bad in (missing, twice, unbound):
        with pytest.raises(ValueError, match="file id"):
            Manifest.model_validate(bad)
    path = store.root / "m.json"
    path.write_text(json.dumps(missing))
    with pytest.raises(StoreError, match="invalid manifest"):
        Manifest.load(path)


def test_bound_dataset__refuses_a_key_someone_made_without_derivation(
        bao_server, ingest_file: Callable[..., IngestResult], store: Store) -> None:
    """A non-derived key ignores the context: binding would be silently lost. Ingest refuses
    it before anything is written."""
    ds = _ds("bind-nd")
    bao_server.client().secrets.transit.create_key(transit_key_name(ds, "sites"),
                                                    key_type="aes256-gcm96")
    with pytest.raises(KeyNotTrusted, match="derived is false"):
        ingest_file(SMALL, ds)
    assert not store.exists(ds)


def test_rotation_of_a_bound_dataset__rewraps_with_each_files_context(
        bound: str, store: Store, role_client, query_client: hvac.Client) -> None:
    before = DatasetReader(store, bound, Keyring(query_client, bound))
    rows = {f.path: before._read(f.path, None) for f in before.manifest.files()}
    admin = role_client("admin")
    rewrap_calls: list[int] = []
    post = admin.adapter.post

    def counted(url, *args, **kw):
        if "/rewrap/" in url:  # the real call still goes to Vault
            rewrap_calls.append(len((kw.get("json") or {}).get("batch_input") or [None]))
        return post(url, *args, **kw)

    admin.adapter.post = counted  # type: ignore[method-assign]
    rep = lifecycle.rotate(store, bound, admin, retire=True)
    assert rep.retired and rep.rewrapped_files == rep.files == len(rows)
    assert rep.vault_rewraps >= 2 * len(rows)  # one per file and key: nothing shared
    # ... in one batch call per key (footer, sites, samples, the batch's genotypes)
    assert len(rewrap_calls) == 4 and sum(rewrap_calls) == rep.vault_rewraps
    signing.forget()
    after = DatasetReader(store, bound, Keyring(query_client, bound))
    for path, table in rows.items():
        assert after._read(path, None).equals(table)


# --- datasets created before schema 6 -------------------------------------------------------


class _Unbound(Keyring):
    """A keyring as GenoVault wrote before schema 6: no derived keys, no file ids."""

    def __init__(self, *args, bound: bool = False, **kw) -> None:
        super().__init__(*args, bound=False, **kw)


def test_dataset_created_unbound__reads_grows_and_rotates_unbound(
        monkeypatch: pytest.MonkeyPatch, ingest_file: Callable[..., IngestResult], tmp_path: Path,
        store: Store, role_client, query_client: hvac.Client, bao_server) -> None:
    ds = _ds("unbound")
    with monkeypatch.context() as mp:
        mp.setattr(pipeline, "Keyring", _Unbound)
        ingest_file(SMALL, ds)
    m = store.manifest(ds)
    assert m.binding is None and all(f.file_id is None for f in m.files())
    assert "binding" not in json.loads((store.dataset_dir(ds) / fmt.MANIFEST).read_text())
    # a later batch of such a dataset stays unbound (its own genotypes key is not derived)
    ingest_file(cohort_vcf(tmp_path / "b2.vcf", ["UNB_B0", "UNB_B1"], 20)[0], ds)
    m = store.manifest(ds)
    assert len(m.batches) == 2 and m.binding is None and all(f.file_id is None
                                                             for f in m.files())
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    first = {f.path: reader._read(f.path, None) for f in m.files()}
    for name in [transit_key_name(ds, "sites"), m.batches[1].genotype_key]:
        assert bao_server.client().secrets.transit.read_key(name)["data"]["derived"] is False
    lifecycle.rotate(store, ds, role_client("admin"))
    signing.forget()
    again = DatasetReader(store, ds, Keyring(query_client, ds))
    assert all(again._read(p, None).equals(t) for p, t in first.items())
    assert store.manifest(ds).binding is None


# --- unwrapping ahead (one Transit batch call per key for many files) -------------------------


class _Counting:
    """Counts the real Transit decrypt calls a client makes (Vault still answers them)."""

    def __init__(self, client: hvac.Client) -> None:
        self.calls: list[int] = []  # items per call
        real = client.secrets.transit.decrypt_data

        def counted(*args, **kw):
            self.calls.append(len(kw.get("batch_input") or [None]))
            return real(*args, **kw)

        client.secrets.transit.decrypt_data = counted  # type: ignore[method-assign]


def test_reader__unwraps_many_files_keys_in_one_call_per_key(
        store: Store, role_client, tmp_path: Path,
        ingest_file: Callable[..., IngestResult]) -> None:
    ds = _ds("bind-many")
    vcf, _ = cohort_vcf(tmp_path / "many.vcf", [f"MANY_{i}" for i in range(6)], 400,
                        step=1000)
    ingest_file(vcf, ds, bin_size=5_000)  # 80 small variant files: two windows
    client = role_client("query")
    counting = _Counting(client)
    reader = DatasetReader(store, ds, Keyring(client, ds))
    files = reader.manifest.files()
    assert len(files) > DatasetReader.UNWRAP_AHEAD
    tables = [reader._read(f.path, None) for f in files]
    assert sum(t.num_rows for t in tables) == sum(f.rows for f in files)
    # 4 master keys (footer, samples, sites, the batch's genotypes): one batch call each
    # per UNWRAP_AHEAD files, instead of a call per file and key
    per_window = -(-len(files) // DatasetReader.UNWRAP_AHEAD)
    assert len(counting.calls) <= 4 * per_window + 2, counting.calls
    assert sum(counting.calls) >= 2 * len(files)


def test_reader__reading_the_samples_unwraps_no_variant_files_keys(
        store: Store, role_client, tmp_path: Path,
        ingest_file: Callable[..., IngestResult]) -> None:
    """A service whose counts come from Dask workers reads only the samples table: the
    keys of the genotype files must stay wrapped in its process."""
    ds = _ds("bind-samples")
    vcf, _ = cohort_vcf(tmp_path / "samples.vcf", [f"SMP_{i}" for i in range(6)], 60,
                        step=1000)
    ingest_file(vcf, ds, bin_size=5_000)  # a dozen variant files
    client = role_client("query")
    counting = _Counting(client)
    reader = DatasetReader(store, ds, Keyring(client, ds))
    samples = reader.manifest.batches[0].samples_file
    assert reader._read(samples.path, None).num_rows == 6
    # the samples table's footer and samples keys, nothing of the 12 variant files
    assert counting.calls == [1, 1], counting.calls
    variant = reader.manifest.batches[0].variant_files[0]
    assert reader._read(variant.path, None).num_rows == variant.rows
    # now the variant files' window: footer, sites, genotypes, of every variant file
    n = len(reader.manifest.batches[0].variant_files)
    assert n > 6 and sorted(counting.calls[2:]) == [n, n, n], counting.calls


def test_reader__skipping_the_checksum_a_planted_file_still_fails_to_decrypt(
        bound: str, store: Store, query_client: hvac.Client) -> None:
    """Unwrapping ahead must not open a door: a file (with its key material) planted in
    another entry's place is refused at decryption even by a reader that trusts the file."""
    m = store.manifest(bound)
    target, donor = m.batches[0].variant_files[0], m.batches[0].variant_files[1]
    _plant(store.dataset_dir(bound), donor, target)
    reader = DatasetReader(store, bound, Keyring(query_client, bound))
    reader._hashed.update(f.path for f in m.files())  # as if the checksum had matched
    with pytest.raises(IntegrityError, match=UNWRAP):
        reader._read(target.path, None)
    assert reader._read(donor.path, None).num_rows == donor.rows  # the rest still reads


def test_keys_unwrapped_ahead__are_forgotten_after_the_cache_lifetime_or_a_clear(
        bound: str, store: Store, query_client: hvac.Client) -> None:
    m = store.manifest(bound)
    folder = store.dataset_dir(bound)
    files = [(str(folder / f.path), f.file_id or "") for f in m.files()]
    keyring = Keyring(query_client, bound)
    got = keyring.prefetch(files)
    assert got >= 2 * len(files) and len(keyring._unwrapped) == got
    keyring.clear_caches()
    assert keyring._unwrapped == {}
    assert keyring.prefetch(files) == got
    keyring.CACHE_LIFETIME = timedelta(0)  # this keyring's only
    time.sleep(0.01)
    assert keyring.prefetch([]) == 0 and keyring._unwrapped == {}
