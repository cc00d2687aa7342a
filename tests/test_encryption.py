"""Negative tests of the encryption claims, against a real OpenBao (no mocked KMS).

One real VCF (SeqArray CEU exome, 90 samples) is ingested once per module with a sample sheet
whose ``population`` values are distinctive strings; every test then attacks that store (or a
copy of it): looks for plaintext in the bytes, reads without keys, with the wrong Vault role,
with a column-scoped or dataset-scoped token, and after tampering with data, manifest and key
material. Every error raised along the way is checked for tokens where it is raised, and one
test provokes one error of each kind itself and checks them all (no test relies on another
having run: each passes alone and in any order).
"""

from __future__ import annotations

import json
import pickle
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import hvac
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.reference.vcf_decode import decode_vcf, pack_codes
from tests.support.baodev import DevServer, free_port
from vault.errors import DatasetNotFound, IntegrityError, VaultDown, VaultForbidden
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys.bootstrap import BootstrapReport, mint_role_token, write_query_policy
from vault.keys.kms import Keyring, TransitKmsClient
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.manifest import Manifest, VariantFile
from vault.store.reader import DatasetReader
from vault.store.verify import verify_dataset

pytestmark = pytest.mark.integration  # every test ingests into / reads from OpenBao

DATA = Path(__file__).parent / "data" / "vcf"
CEU = DATA / "SeqArray__CEU_Exon.vcf.gz"
SMALL = DATA / "bio2zarr__sample.vcf.gz"
POPULATIONS = ("Utah-CEPH-popZETA", "Nordic-founder-popOMEGA")
ALL_SITE_COLUMNS = tuple(fmt.SITE_COLUMNS)
COLUMN_NAMES = (*fmt.SITE_COLUMNS, fmt.GENOTYPE_COLUMN, *fmt.SAMPLE_BASE_COLUMNS, "population")


@dataclass
class Env:
    server: DevServer
    root: hvac.Client
    store: Store
    ds: str  # the CEU dataset ("A")
    other: str  # a second dataset ("B")
    ingest_token: str
    query_token: str
    sample_ids: list[str]
    groups: list[str]
    ref_packed: np.ndarray  # reference packing of every CEU row, file order
    tokens: list[str] = field(default_factory=list)  # every secret token of this module

    def client(self, token: str | None = None) -> hvac.Client:
        return self.server.client(token or self.query_token)

    def reader(self, token: str | None = None, store: Store | None = None,
               dataset: str | None = None) -> DatasetReader:
        ds = dataset or self.ds
        return DatasetReader(store or self.store, ds, Keyring(self.client(token), ds))

    def mint(self, policies: list[str]) -> str:
        tok = str(self.root.auth.token.create(policies=policies, ttl="15m")["auth"]
                  ["client_token"])
        self.tokens.append(tok)
        return tok

    def expect(self, exc_type: type[BaseException], fn: Callable[[], object]) -> BaseException:
        """Run ``fn``, require ``exc_type``, and require the error to carry no token."""
        with pytest.raises(exc_type) as info:
            fn()
        self.assert_no_token(info.value)
        return info.value

    def assert_no_token(self, err: BaseException) -> None:
        """No token of this module in ``str``, ``repr`` or the whole chained traceback."""
        text = "".join(traceback.format_exception(err)) + repr(err) + str(err)
        assert self.tokens, "no tokens to look for"
        for tok in self.tokens:
            assert tok not in text, "a Vault token leaked into an error message"


@pytest.fixture(scope="module")
def env(bao_server: DevServer, bootstrapped: BootstrapReport,
        tmp_path_factory: pytest.TempPathFactory) -> Env:
    tmp = tmp_path_factory.mktemp("enc")
    root = bao_server.client()
    ingest_token = mint_role_token(root, "ingest", ttl="15m")
    query_token = mint_role_token(root, "query", ttl="15m")
    ref = decode_vcf(CEU)
    groups = [POPULATIONS[i % 2] for i in range(len(ref.samples))]
    sheet = tmp / "sheet.tsv"
    sheet.write_text("sample\tpopulation\n"
                     + "".join(f"{s}\t{g}\n" for s, g in zip(ref.samples, groups, strict=True)))
    store = Store(tmp / "store")
    suffix = uuid.uuid4().hex[:8]
    ds, other = f"enc-a-{suffix}", f"enc-b-{suffix}"
    ic = bao_server.client(ingest_token)
    # 100 Mb bins: ~40 variant files, enough to tamper with one among many, and quick to verify
    opts = IngestOptions(progress=False, bin_size=100_000_000)
    ingest(CEU, ds, client=ic, store=store, sample_sheet=sheet, options=opts)
    ingest(SMALL, other, client=ic, store=store, options=opts)
    e = Env(bao_server, root, store, ds, other, ingest_token, query_token, list(ref.samples),
            groups, pack_codes(ref.codes),
            tokens=[bao_server.root_token, ingest_token, query_token])
    return e


def dataset_files(store: Store, ds: str) -> list[Path]:
    return sorted(p for p in store.dataset_dir(ds).rglob("*") if p.is_file())


def variant_entries(store: Store, ds: str) -> list[VariantFile]:
    return [f for b in store.manifest(ds).batches for f in b.variant_files]


def largest_variant_file(store: Store, ds: str) -> VariantFile:
    return max(variant_entries(store, ds), key=lambda f: f.bytes)


def column_name_needles(name: str) -> list[bytes]:
    """How a column name shows up in a Parquet footer: a Thrift string (length byte + name)."""
    raw = name.encode()
    out = [bytes([len(raw)]) + raw]
    if len(raw) >= 5:  # long enough that a chance hit in ciphertext is negligible
        out.append(raw)
    return out


def distinctive_windows(packed: np.ndarray, width: int = 12) -> list[bytes]:
    out = []
    for row in packed:
        b = row.tobytes()
        for s in range(0, len(b) - width + 1, 3):
            w = b[s:s + width]
            if len(set(w)) >= 6:
                out.append(w)
    return out


@pytest.fixture(scope="module")
def genotype_needles(env: Env, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """12-byte runs of the reference packing that a *plaintext* Parquet copy of the store
    (same writer settings: zstd level 1, the same dictionary columns) does contain — so the
    scan below would find them if the genotype column were not encrypted."""
    control = tmp_path_factory.mktemp("control")
    reader = env.reader()
    candidates = distinctive_windows(env.ref_packed)
    assert len(candidates) > 100
    found: set[bytes] = set()
    for i, entry in enumerate(variant_entries(env.store, env.ds)):
        table = reader._read(entry.path, [*ALL_SITE_COLUMNS, fmt.GENOTYPE_COLUMN])
        path = control / f"{i}.parquet"
        pq.write_table(table, path, compression="zstd", compression_level=1,
                       use_dictionary=["chrom", "filter"], write_statistics=True)
        data = path.read_bytes()
        found.update(w for w in candidates if w in data)
    assert len(found) >= 10, "control failed: plaintext Parquet does not show genotype bytes"
    return sorted(found)[:200]


# --- bytes on disk -------------------------------------------------------------------------


def test_parquet_files__start_and_end_with_PARE(env: Env) -> None:
    files = [p for p in dataset_files(env.store, env.ds) if p.suffix == ".parquet"]
    # + samples.parquet and info.parquet of the one batch
    assert len(files) == len(variant_entries(env.store, env.ds)) + 2
    for p in files:
        data = p.read_bytes()
        assert data[:4] == b"PARE" and data[-4:] == b"PARE", p.name
        assert b"PAR1" not in data[:4] + data[-4:]


def test_plaintext_scan__detector_finds_everything_in_a_plaintext_copy(
        env: Env, tmp_path: Path) -> None:
    """The scan of the next test is sensitive: on unencrypted copies it finds every needle."""
    reader = env.reader()
    samples = reader.samples()
    samples = samples.append_column("sample_id", pa.array(env.sample_ids))
    path = tmp_path / "plain_samples.parquet"
    pq.write_table(samples, path, compression="zstd", compression_level=1, use_dictionary=[])
    data = path.read_bytes()
    for name in (*fmt.SAMPLE_BASE_COLUMNS, "population"):
        assert all(n in data for n in column_name_needles(name)), name
    assert all(g.encode() in data for g in POPULATIONS)
    # zstd hides most ids behind back-references to similar earlier ids, never all of them
    # (so the id scan is a tripwire; that ids are never stored at all is checked on the
    # decrypted samples table in the next test)
    assert any(s.encode() in data for s in env.sample_ids)
    entry = largest_variant_file(env.store, env.ds)
    table = reader._read(entry.path, [*ALL_SITE_COLUMNS, fmt.GENOTYPE_COLUMN])
    path = tmp_path / "plain_variants.parquet"
    pq.write_table(table, path, compression="zstd", compression_level=1,
                   use_dictionary=["chrom", "filter"])
    data = path.read_bytes()
    for name in (*ALL_SITE_COLUMNS, fmt.GENOTYPE_COLUMN):
        assert any(n in data for n in column_name_needles(name)), name


def test_store_files__contain_no_column_name_sample_id_group_value_or_genotype_bytes(
        env: Env, genotype_needles: list[bytes]) -> None:
    m = env.store.manifest(env.ds)
    key_names = set(m.keys.values()) | set(m.transit_keys("genotypes"))  # per-batch keys too
    sample_needles = [s.encode() for s in env.sample_ids]
    group_needles = [g.encode() for g in POPULATIONS]
    checked = {"parquet": 0, "key_material": 0}
    for p in dataset_files(env.store, env.ds):
        data = p.read_bytes()
        if p.suffix == ".parquet":
            checked["parquet"] += 1
            names = [n for c in COLUMN_NAMES for n in column_name_needles(c)]
        elif p.name.startswith("_KEY_MATERIAL_FOR_"):
            checked["key_material"] += 1
            # Transit key *names* ("genovault.<ds>.genotypes") are public by design (they are
            # in the manifest); they are the only allowed mention, and only as masterKeyID.
            text = data.decode()
            for inner in json.loads(text).values():
                master = json.loads(inner)["masterKeyID"]
                assert master in key_names, master
                text = text.replace(json.dumps(master)[1:-1], "")
            data = text.encode()
            names = [c.encode() for c in COLUMN_NAMES if len(c) >= 5]
            names += [f'"{c}"'.encode() for c in COLUMN_NAMES]
        else:
            assert p.name in (fmt.MANIFEST, ".lock"), f"unexpected file {p}"
            continue
        for needle in [*names, *sample_needles, *group_needles, *genotype_needles]:
            assert needle not in data, f"{p.name} contains {needle[:20]!r}"
    assert checked["parquet"] > 20 and checked["key_material"] == checked["parquet"]
    # sample ids are not stored at all, not even encrypted: only keyed pseudonyms
    decrypted = env.reader().samples()
    values = {str(v) for c in decrypted.columns for v in c.to_pylist()}
    assert not values & set(env.sample_ids)
    assert decrypted.column("population").to_pylist() == env.groups
    manifest = (env.store.dataset_dir(env.ds) / fmt.MANIFEST).read_text()
    assert not any(s in manifest for s in env.sample_ids)
    assert not any(t in manifest for t in env.tokens)


# --- reading without the right keys ---------------------------------------------------------


def test_plain_pyarrow__cannot_read_without_decryption(env: Env) -> None:
    for p in [p for p in dataset_files(env.store, env.ds) if p.suffix == ".parquet"][:5]:
        env.expect(OSError, partial(pq.read_table, p))
        env.expect(OSError, partial(pq.read_metadata, p))


def test_reader__vault_unreachable_raises_vault_down_without_fallback(env: Env) -> None:
    dead = hvac.Client(url=f"http://127.0.0.1:{free_port()}", token=env.query_token, timeout=5)
    reader = DatasetReader(env.store, env.ds, Keyring(dead, env.ds))
    env.expect(VaultDown, reader.samples)
    # no plaintext fallback: without keys nothing at all is yielded, not even site columns
    yielded: list[object] = []
    err = env.expect(VaultDown, lambda: yielded.extend(reader.blocks(genotypes=False)))
    assert "unreachable" in str(err) and "decrypt" in str(err)
    assert yielded == []


def test_reader__ingest_role_token_cannot_read_back(env: Env) -> None:
    reader = env.reader(env.ingest_token)
    for fn in (lambda: list(reader.blocks()), reader.samples,
               lambda: list(reader.blocks(genotypes=False))):
        err = env.expect(VaultForbidden, fn)
        assert "403" in str(err) and "permission denied" in str(err)
        assert "decrypt" in str(err)


def test_reader__token_allowed_sites_and_footer_reads_sites_but_not_genotypes(
        env: Env) -> None:
    keys = env.store.manifest(env.ds).keys
    policy = f"enc-sites-only-{uuid.uuid4().hex[:8]}"
    env.root.sys.create_or_update_acl_policy(policy, "".join(
        f'path "transit/decrypt/{keys[c]}" {{\n  capabilities = ["update"]\n}}\n'
        for c in ("sites", "footer")))
    token = env.mint([policy])
    reader = env.reader(token)
    cols = ("pos", "ref", "alt", "chrom")
    sites = pa.concat_tables([b.sites for b in reader.blocks(site_columns=cols,
                                                             genotypes=False)])
    ref = decode_vcf(CEU)
    assert sites.num_rows == len(ref.pos)
    assert sites.column("pos").to_numpy().tolist() == ref.pos.tolist()
    assert sites.column("alt").to_pylist() == ref.alt
    err = env.expect(VaultForbidden, lambda: list(reader.blocks(site_columns=cols)))
    assert keys["genotypes"] in str(err) and "403" in str(err)
    err = env.expect(VaultForbidden, reader.samples)
    assert keys["samples"] in str(err)
    # and the same token still reads sites afterwards (the refusal cached nothing bad)
    assert sum(b.n_variants for b in reader.blocks(genotypes=False)) == len(ref.pos)


def test_reader__query_token_scoped_to_dataset_a_cannot_read_dataset_b(env: Env) -> None:
    name = f"genovault-query-enc-{uuid.uuid4().hex[:8]}"
    write_query_policy(env.root, name, [env.ds])
    token = env.mint([name])
    ok = env.reader(token)
    assert ok.samples().num_rows == len(env.sample_ids)
    assert sum(b.n_variants for b in ok.blocks()) == env.ref_packed.shape[0]
    other = env.reader(token, dataset=env.other)
    for fn in (lambda: list(other.blocks()), other.samples,
               lambda: list(other.blocks(genotypes=False))):
        err = env.expect(VaultForbidden, fn)
        assert f"genovault.{env.other}." in str(err) and "403" in str(err)
    # the general query role can read B: the refusal is the scope, not a broken dataset
    assert env.reader(dataset=env.other).samples().num_rows == 3


# --- tampering ------------------------------------------------------------------------------


@pytest.fixture
def copy_store(env: Env, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the CEU dataset to tamper with. A test that re-signs the copy's
    manifest moves the dataset's version anchor in Vault; it is put back afterwards."""
    from vault.keys import signing

    store = Store(tmp_path / "store")
    shutil.copytree(env.store.dataset_dir(env.ds), store.dataset_dir(env.ds))
    anchored = signing.read_anchor(env.root, env.ds)
    yield store
    if anchored is not None and signing.read_anchor(env.root, env.ds) != anchored:
        # only root can rewind an anchor: delete its history, write it again up to the old one
        entry = signing.anchor_entry(env.root, env.ds)
        entry.reset()
        uid = env.store.manifest(env.ds).uid
        entry.fill(anchored[0], lambda v: {"version": v, "uid": uid, "sha256": anchored[1]
                                           if v == anchored[0] else "0" * 64})
    signing.forget()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _update_manifest_checksum(store: Store, ds: str, rel: str, client: hvac.Client) -> None:
    """Record the damaged file's checksum in a manifest GenoVault signs again (as if the damage
    had happened before the commit), so that only the AES-GCM tag can catch it."""
    from vault.keys.signing import commit_signed
    from vault.store.fsutil import parquet_tail_sha256, sha256_file

    raw = store.manifest(ds).model_dump(mode="json")
    path = store.dataset_dir(ds) / rel
    for b in raw["batches"]:
        for f in [b["samples_file"], b["info_file"], *b["variant_files"]]:
            if f["path"] == rel:
                f["sha256"] = sha256_file(path)
                f["bytes"] = path.stat().st_size
                try:
                    f["tail_sha256"] = parquet_tail_sha256(path)
                except ValueError:  # no Parquet tail left: readers check the whole file
                    f.pop("tail_sha256", None)
    commit_signed(store, ds, Manifest.model_validate(raw), client, store.manifest(ds))


def _genotype_chunk_middle(env: Env, store: Store, rel: str) -> int:
    reader = env.reader(store=store)
    md = reader._open(rel).metadata
    idx = md.schema.to_arrow_schema().get_field_index(fmt.GENOTYPE_COLUMN)
    col = md.row_group(0).column(idx)
    start = col.dictionary_page_offset or col.data_page_offset
    return int(start + col.total_compressed_size // 2)


def _read_everything(reader: DatasetReader) -> None:
    for _ in reader.blocks(site_columns=ALL_SITE_COLUMNS, genotypes=True):
        pass


@pytest.mark.parametrize("where", ["file_middle", "genotype_chunk"])
@pytest.mark.parametrize("manifest_updated", [False, True],
                         ids=["manifest_as_is", "manifest_checksum_updated"])
def test_variant_file__flipped_byte_is_detected(env: Env, copy_store: Store, where: str,
                                                manifest_updated: bool) -> None:
    entry = largest_variant_file(copy_store, env.ds)
    rel = entry.path
    path = copy_store.dataset_dir(env.ds) / rel
    offset = path.stat().st_size // 2 if where == "file_middle" else \
        _genotype_chunk_middle(env, copy_store, rel)
    _flip(path, offset)
    if manifest_updated:  # only the AES-GCM tag can catch it now
        _update_manifest_checksum(copy_store, env.ds, rel, env.root)
    err = env.expect(IntegrityError, lambda: _read_everything(env.reader(store=copy_store)))
    assert rel in str(err)
    report = verify_dataset(env.reader(store=copy_store))
    assert not report.ok
    assert len(report.problems) == 1 and report.problems[0].startswith(rel)
    if manifest_updated:
        assert "checksum" not in report.problems[0]  # caught by decryption, not the manifest
    else:
        assert "checksum mismatch" in report.problems[0]


def test_manifest__records_each_files_parquet_tail_checksum(env: Env) -> None:
    """Schema 5: every file entry carries the SHA-256 of the file's Parquet tail (crypto
    metadata + encrypted footer) beside the whole-file SHA-256."""
    from vault.store.fsutil import parquet_tail, parquet_tail_sha256, sha256_file

    m = env.store.manifest(env.ds)
    assert m.schema_version == fmt.SCHEMA_VERSION == 6
    files = m.files()
    assert files
    for f in files:
        path = env.store.dataset_dir(env.ds) / f.path
        assert f.tail_sha256 == parquet_tail_sha256(path) and f.sha256 == sha256_file(path)
        tail = parquet_tail(path)
        assert tail.endswith(b"PARE") and 8 < len(tail) < f.bytes  # encrypted footer


def test_variant_file__another_files_body_under_its_tail_fails_to_decrypt(
        env: Env, copy_store: Store) -> None:
    """The reader checks a file's size and tail against the signed manifest, and AES-GCM the
    rest: here the tail (and size) are the listed file's own, the pages another file's. Every
    page is authenticated under the listed file's random AAD, so decryption fails."""
    from vault.store.fsutil import parquet_tail

    entries = sorted(variant_entries(copy_store, env.ds), key=lambda f: f.bytes)
    assert len(entries) >= 2
    target, donor = entries[-1], entries[-2]
    folder = copy_store.dataset_dir(env.ds)
    tail = parquet_tail(folder / target.path)
    body = (folder / donor.path).read_bytes()[:-len(parquet_tail(folder / donor.path))]
    spliced = (body + bytes(target.bytes))[:target.bytes - len(tail)] + tail
    assert len(spliced) == target.bytes
    (folder / target.path).write_bytes(spliced)
    err = env.expect(IntegrityError, lambda: _read_everything(env.reader(store=copy_store)))
    assert target.path in str(err) and "manifest's checksum" not in str(err)
    assert "decryption failed" in str(err) or "cannot be decrypted" in str(err)


def test_samples_file__flipped_byte_with_updated_checksum_is_detected(
        env: Env, copy_store: Store) -> None:
    rel = copy_store.manifest(env.ds).batches[0].samples_file.path
    path = copy_store.dataset_dir(env.ds) / rel
    _flip(path, path.stat().st_size // 2)
    _update_manifest_checksum(copy_store, env.ds, rel, env.root)
    env.expect(IntegrityError, env.reader(store=copy_store).samples)
    assert not verify_dataset(env.reader(store=copy_store)).ok


@pytest.mark.parametrize("field_name", ["wrappedKEK", "wrappedDEK"])
@pytest.mark.parametrize("key", ["footerKey", "genotypes_column"])
def test_key_material__changed_wrapped_key_fails_loudly(env: Env, copy_store: Store,
                                                        field_name: str, key: str) -> None:
    rel = largest_variant_file(copy_store, env.ds).path
    path = copy_store.dataset_dir(env.ds) / rel
    km_path = path.parent / f"_KEY_MATERIAL_FOR_{path.name}.json"
    material = json.loads(km_path.read_text())
    m = copy_store.manifest(env.ds)
    geno_key = m.batches[0].genotype_key or m.keys["genotypes"]  # the batch's own key
    name = "footerKey" if key == "footerKey" else next(
        k for k, v in material.items() if json.loads(v)["masterKeyID"] == geno_key)
    inner = json.loads(material[name])
    value = inner[field_name]
    i = len(value) // 2
    inner[field_name] = value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1:]
    material[name] = json.dumps(inner, separators=(",", ":"))
    km_path.write_text(json.dumps(material, separators=(",", ":")))
    # A fresh reader that reaches this file first must fail. (A reader that already unwrapped
    # the same KEK from another file of the batch uses its cached copy and never looks at the
    # damaged wrappedKEK: the data it decrypts is still authentic, checked by AES-GCM.)
    entry = largest_variant_file(copy_store, env.ds)
    manifest = copy_store.manifest(env.ds)
    size = manifest.partition.bin_size
    lo = entry.bin * size
    region = f"{manifest.contigs[entry.contig]}:{max(lo, 1)}-{lo + size - 1}"
    err = env.expect(IntegrityError, lambda: list(env.reader(store=copy_store).blocks(region)))
    assert rel in str(err) or "unwrap" in str(err)
    # verify must find it although it reads many files of the same batch before this one
    report = verify_dataset(env.reader(store=copy_store))
    assert not report.ok and [p for p in report.problems if p.startswith(rel)] == \
        report.problems


@pytest.mark.parametrize("manifest_updated", [False, True],
                         ids=["manifest_as_is", "manifest_checksum_updated"])
@pytest.mark.parametrize("keep", [0.5, -1], ids=["half", "last_byte"])
def test_variant_file__truncated_is_detected(env: Env, copy_store: Store, keep: float,
                                             manifest_updated: bool) -> None:
    rel = largest_variant_file(copy_store, env.ds).path
    path = copy_store.dataset_dir(env.ds) / rel
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)] if keep > 0 else data[:-1])
    if manifest_updated:
        _update_manifest_checksum(copy_store, env.ds, rel, env.root)
    err = env.expect(IntegrityError, lambda: _read_everything(env.reader(store=copy_store)))
    assert rel in str(err)
    report = verify_dataset(env.reader(store=copy_store))
    assert [p for p in report.problems if p.startswith(rel)] == report.problems != []


def test_variant_file__deleted_is_detected(env: Env, copy_store: Store) -> None:
    rel = largest_variant_file(copy_store, env.ds).path
    (copy_store.dataset_dir(env.ds) / rel).unlink()
    err = env.expect(IntegrityError, lambda: _read_everything(env.reader(store=copy_store)))
    assert "missing" in str(err)
    assert verify_dataset(env.reader(store=copy_store)).problems == [f"{rel}: missing"]


def test_untampered_copy__reads_and_verifies(env: Env, copy_store: Store) -> None:
    """Control for the tamper tests: the copy itself is fine and equals the reference."""
    reader = env.reader(store=copy_store)
    assert verify_dataset(reader).ok
    packed = np.concatenate([b.packed for b in reader.blocks()])
    assert np.array_equal(packed, env.ref_packed)


def test_reader__unknown_dataset_is_not_found(env: Env) -> None:
    env.expect(DatasetNotFound, lambda: env.reader(dataset="enc-no-such-dataset"))


# --- secrets in objects -------------------------------------------------------------------


def test_keyring_and_kms_client__refuse_pickling_and_redact_repr(env: Env) -> None:
    client = env.client()
    for obj in (Keyring(client, env.ds), TransitKmsClient(client)):
        err = env.expect(TypeError, partial(pickle.dumps, obj))
        assert "cannot be pickled" in str(err)
        for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
            with pytest.raises(TypeError):
                pickle.dumps(obj, protocol=proto)
        assert "redacted" in repr(obj)
        assert env.query_token not in repr(obj) and env.query_token not in str(obj)


def test_errors_and_reprs__contain_no_token(env: Env, copy_store: Store) -> None:
    """Provokes one error of each kind itself (unreachable Vault, wrong role, dataset scope,
    tampering, unknown dataset, pickling): none carries a token of the module in str, repr or
    chained traceback; neither do the reprs of the key-layer objects."""
    errors: list[BaseException] = []

    def provoke(exc_type: type[BaseException], fn: Callable[[], object]) -> None:
        with pytest.raises(exc_type) as info:
            fn()
        errors.append(info.value)

    scoped = f"genovault-query-enc-{uuid.uuid4().hex[:8]}"
    write_query_policy(env.root, scoped, [env.ds])
    scoped_token = env.mint([scoped])
    unrelated_token = env.mint(["default"])
    dead = hvac.Client(url=f"http://127.0.0.1:{free_port()}", token=env.query_token, timeout=5)
    # Vault unreachable before anything was pinned: the reader cannot even verify the manifest
    provoke(VaultDown, lambda: DatasetReader(env.store, env.ds, Keyring(dead, env.ds)).samples())
    provoke(VaultForbidden, lambda: env.reader(env.ingest_token).samples())
    provoke(VaultForbidden, lambda: list(env.reader(env.ingest_token).blocks()))
    provoke(VaultForbidden, lambda: env.reader(scoped_token, dataset=env.other).samples())
    provoke(VaultForbidden, lambda: env.reader(unrelated_token).samples())
    rel = largest_variant_file(copy_store, env.ds).path
    _flip(copy_store.dataset_dir(env.ds) / rel, (copy_store.dataset_dir(env.ds) / rel).stat()
          .st_size // 2)
    _update_manifest_checksum(copy_store, env.ds, rel, env.root)
    provoke(IntegrityError, lambda: _read_everything(env.reader(store=copy_store)))
    provoke(DatasetNotFound, lambda: env.reader(dataset="enc-no-such-dataset"))
    provoke(TypeError, partial(pickle.dumps, Keyring(env.client(), env.ds)))
    provoke(TypeError, partial(pickle.dumps, TransitKmsClient(env.client(scoped_token))))
    assert len(errors) == 9
    assert {env.query_token, env.ingest_token, scoped_token, unrelated_token} <= set(env.tokens)
    assert env.server.root_token in env.tokens
    texts = ["".join(traceback.format_exception(err)) + repr(err) + str(err) for err in errors]
    texts += [repr(Keyring(env.client(tok), env.ds)) for tok in (None, scoped_token)]
    texts += [repr(TransitKmsClient(env.client(tok))) for tok in (None, scoped_token)]
    for text in texts:
        for tok in env.tokens:
            assert tok not in text, "a Vault token leaked into an error message or repr"
