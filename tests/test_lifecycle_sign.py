"""Part A of the lifecycle: a manifest nobody can forge, roll back or re-sign, and files bound to
their place. Against a real OpenBao (never a mocked Vault)."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf
from vault.errors import IntegrityError, VaultForbidden
from vault.ingest.pipeline import IngestResult
from vault.keys import signing
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.manifest import Manifest, Signature
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration


def _ds() -> str:
    return f"sig-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def dataset(tmp_path: Path, ingest_file: Callable[..., IngestResult]) -> str:
    ds = _ds()
    vcf, _ = cohort_vcf(tmp_path / "a.vcf", [f"S{i}" for i in range(12)], 300,
                        chrom="1", step=50_000)
    ingest_file(vcf, ds, bin_size=5_000_000)
    signing.forget()  # every test starts like a fresh reader process
    return ds


def _write_raw(store: Store, ds: str, raw: dict) -> None:
    (store.dataset_dir(ds) / fmt.MANIFEST).write_text(json.dumps(raw))


def _refused(fn: Callable[[], object], match: str) -> IntegrityError:
    with pytest.raises(IntegrityError, match=match) as info:
        fn()
    return info.value


def test_signed_manifest__reads_and_is_anchored(store: Store, dataset: str, reader,
                                                bao_server: DevServer) -> None:
    m = store.manifest(dataset)
    assert m.schema_version == fmt.SCHEMA_VERSION and m.version == 1 and m.signature is not None
    assert m.signature.key == "genovault.manifest"
    assert signing.read_anchor(bao_server.client(), dataset) == (1, signing.digest(m))
    r = reader(dataset)
    assert r.n_samples == 12 and sum(b.n_variants for b in r.blocks()) == 300
    pins = json.loads((store.root / ".trust" / "manifest-signing.json").read_text())
    assert pins["key"] == "genovault.manifest" and "1" in pins["keys"]


def test_edited_manifest__is_refused(store: Store, dataset: str, reader) -> None:
    raw = json.loads((store.dataset_dir(dataset) / fmt.MANIFEST).read_text())
    raw["batches"][0]["absent_sites"] = "hom_ref"
    _write_raw(store, dataset, raw)
    _refused(lambda: reader(dataset), "fails its signature check")


def test_unsigned_manifest__is_refused(store: Store, dataset: str, reader) -> None:
    raw = json.loads((store.dataset_dir(dataset) / fmt.MANIFEST).read_text())
    raw["signature"] = None
    _write_raw(store, dataset, raw)
    _refused(lambda: reader(dataset), "not signed")


def test_manifest_resigned_by_someone_else__is_refused(store: Store, dataset: str, reader,
                                                       bao_server: DevServer) -> None:
    m = store.manifest(dataset)
    # a key of one's own, claiming to be GenoVault's key version 1
    evil = Ed25519PrivateKey.generate()
    forged = m.model_copy(update={"signature": Signature(
        key="genovault.manifest", key_version=1,
        value="vault:v1:" + base64.b64encode(evil.sign(m.signed_bytes())).decode())})
    store.commit(dataset, forged)
    _refused(lambda: reader(dataset), "fails its signature check")
    # a Transit key of one's own (root can make one, GenoVault does not trust it)
    root = bao_server.client()
    root.secrets.transit.create_key(name="evil-signer", key_type="ed25519")
    sig = root.secrets.transit.sign_data(
        name="evil-signer", hash_input=base64.b64encode(m.signed_bytes()).decode())["data"]
    store.commit(dataset, m.model_copy(update={"signature": Signature(
        key="evil-signer", key_version=1, value=sig["signature"])}))
    _refused(lambda: reader(dataset), "not GenoVault's")


def test_rolled_back_manifest__is_refused(tmp_path: Path, store: Store, dataset: str, reader,
                                          ingest_file: Callable[..., IngestResult]) -> None:
    path = store.dataset_dir(dataset) / fmt.MANIFEST
    old = path.read_bytes()
    vcf, _ = cohort_vcf(tmp_path / "b.vcf", [f"T{i}" for i in range(8)], 300, seed=3,
                        chrom="1", step=50_000)
    ingest_file(vcf, dataset, bin_size=5_000_000)
    assert store.manifest(dataset).version == 2
    path.write_bytes(old)  # a genuine, signed, older manifest
    _refused(lambda: reader(dataset), "rolled back")
    signing.forget()  # a fresh process: the Vault anchor catches it
    _refused(lambda: reader(dataset), "version 2 was committed")


def test_moved_or_swapped_file__fails(store: Store, dataset: str, reader) -> None:
    m = store.manifest(dataset)
    files = m.batches[0].variant_files
    assert len(files) >= 2
    folder = store.dataset_dir(dataset)
    a, b = folder / files[0].path, folder / files[1].path
    for name in (lambda p: p, lambda p: p.parent / f"_KEY_MATERIAL_FOR_{p.name}.json"):
        tmp = name(a).with_suffix(".swap")
        shutil.move(name(a), tmp)
        shutil.move(name(b), name(a))
        shutil.move(tmp, name(b))
    err = _refused(lambda: list(reader(dataset).blocks()), "does not match the signed")
    assert files[0].path in str(err)


def test_pin__replaced_public_key_is_refused(store: Store, dataset: str, reader) -> None:
    pin = store.root / ".trust" / "manifest-signing.json"
    reader(dataset)
    raw = json.loads(pin.read_text())
    evil = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    raw["keys"]["1"] = base64.b64encode(evil).decode()
    pin.write_text(json.dumps(raw))
    signing.forget()
    _refused(lambda: reader(dataset), "differs from the one in Vault")


def test_scoped_query_token__reads_its_dataset_only(store: Store, tmp_path: Path,
                                                    dataset: str, bao_server: DevServer,
                                                    ingest_file) -> None:
    other = _ds()
    vcf, _ = cohort_vcf(tmp_path / "o.vcf", [f"O{i}" for i in range(6)], 50, seed=5)
    ingest_file(vcf, other)
    token = mint_role_token(bao_server.client(), "query", dataset=dataset)
    client = bao_server.client(token)
    meta = client.auth.token.lookup_self()["data"]
    assert meta["policies"] == [f"genovault-query-{dataset}"]
    assert DatasetReader(store, dataset, Keyring(client, dataset)).samples().num_rows == 12
    with pytest.raises((VaultForbidden, IntegrityError)):
        DatasetReader(store, other, Keyring(client, other)).samples()


def test_cached_kek__each_files_own_wrapped_key_is_checked(store: Store, dataset: str,
                                                           query_client: hvac.Client) -> None:
    m = store.manifest(dataset)
    f0, f1 = m.batches[0].variant_files[:2]
    folder = store.dataset_dir(dataset)
    kr = Keyring(query_client, dataset)
    r = DatasetReader(store, dataset, kr)
    r._read(f0.path, None)  # unwraps (and caches) the batch's KEKs
    km = folder / Path(f1.path).parent / f"_KEY_MATERIAL_FOR_{Path(f1.path).name}.json"
    material = json.loads(km.read_text())
    name = next(k for k, v in material.items()
                if json.loads(v).get("masterKeyID") == m.batches[0].genotype_key)
    inner = json.loads(material[name])
    v = inner["wrappedKEK"]
    i = len(v) // 2
    inner["wrappedKEK"] = v[:i] + ("A" if v[i] != "A" else "B") + v[i + 1:]
    material[name] = json.dumps(inner)
    km.write_text(json.dumps(material))
    # same KEK id, so pyarrow's cache would serve it; the keyring makes Vault check it
    with pytest.raises(IntegrityError):
        r._read(f1.path, None)


def test_manifest_model__old_schema_is_refused_with_advice(store: Store, dataset: str) -> None:
    raw = json.loads((store.dataset_dir(dataset) / fmt.MANIFEST).read_text())
    raw["schema_version"] = 2
    path = store.dataset_dir(dataset) / fmt.MANIFEST
    path.write_text(json.dumps(raw))
    with pytest.raises(Exception, match="keys adopt"):
        Manifest.load(path)
