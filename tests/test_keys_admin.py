"""Finding "admin brings its own key" (HIGH): admins manage keys through explicit endpoints only,
and ingest refuses any key GenoVault did not create. Everything against the real OpenBao.

Before the fix the admin policy granted update on transit/keys/genovault.*, which includes
.../import: test_admin__cannot_import_key_material and test_ingest__refuses_an_imported_key
reproduce the attack.
"""

from __future__ import annotations

import base64
import itertools
import os

import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from tests.support.vaultasserts import forbidden
from vault.errors import KeyNotTrusted
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys.kms import Keyring

pytestmark = pytest.mark.integration

PLAINTEXT = base64.b64encode(b"a data key, 32 bytes long.......").decode()
VCF = b"""##fileformat=VCFv4.2
##contig=<ID=1,length=1000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1
"""
_n = itertools.count()


def fresh(prefix: str = "adm") -> str:
    return f"{prefix}{next(_n)}"


@pytest.fixture
def root(bao_server, bootstrapped) -> hvac.Client:
    return bao_server.client()


def wrapped_key_material(client: hvac.Client, key: bytes) -> str:
    """BYOK (Vault docs "Bring your own key"): RSA-OAEP-SHA256 over an ephemeral AES key, then
    AES-KWP (RFC 5649) of the target key under it, concatenated and base64-encoded."""
    pem = client.adapter.get("/v1/transit/wrapping_key")["data"]["public_key"]
    public = serialization.load_pem_public_key(pem.encode())
    ephemeral = os.urandom(32)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    blob = public.encrypt(ephemeral, oaep) + aes_key_wrap_with_padding(ephemeral, key)  # type: ignore[union-attr]
    return base64.b64encode(blob).decode()


def import_key(client: hvac.Client, name: str, key: bytes, wrap_with: hvac.Client) -> None:
    client.adapter.post(f"/v1/transit/keys/{name}/import", json={
        "ciphertext": wrapped_key_material(wrap_with, key), "type": "aes256-gcm96",
        "hash_function": "SHA256"})


# --- the admin policy: each allowed and each denied endpoint --------------------------------


def test_admin__cannot_import_key_material(role_client, root):
    admin = role_client("admin")
    ds = fresh()
    name = f"genovault.{ds}.genotypes"
    forbidden(import_key, admin, name, os.urandom(32), wrap_with=root)
    forbidden(admin.adapter.get, "/v1/transit/wrapping_key")
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.transit.read_key(name)


def test_admin__cannot_import_a_version_into_an_existing_key(role_client, root):
    ds = fresh()
    name = f"genovault.{ds}.genotypes"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    forbidden(role_client("admin").adapter.post, f"/v1/transit/keys/{name}/import_version",
              json={"ciphertext": "AAAA"})


def test_admin__allowed_endpoints(role_client, root):
    t = role_client("admin").secrets.transit
    name = f"genovault.{fresh()}.sites"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    ciphertext = root.secrets.transit.encrypt_data(name, plaintext=PLAINTEXT)["data"]["ciphertext"]
    assert t.read_key(name)["data"]["latest_version"] == 1
    assert name in t.list_keys()["data"]["keys"]
    t.rotate_key(name)
    t.rotate_key(name)
    t.update_key_configuration(name, min_decryption_version=2)
    t.update_key_configuration(name, min_encryption_version=3)
    t.update_key_configuration(name, auto_rotate_period="0")
    # trim would destroy v1 for good (one admin crypto-shredding alone): refused
    forbidden(t.trim_key, name, min_version=2)
    assert t.read_key(name)["data"]["min_available_version"] == 0
    # the raised floor is reversible: v1 ciphertexts open again once it is lowered
    with pytest.raises(hvac.exceptions.InvalidRequest, match="too old"):
        t.rewrap_data(name, ciphertext=ciphertext)
    t.update_key_configuration(name, min_decryption_version=1)
    assert t.rewrap_data(name, ciphertext=ciphertext)["data"]["ciphertext"].startswith("vault:v3")


def test_admin__rewrap_is_allowed(role_client, root):
    t = role_client("admin").secrets.transit
    name = f"genovault.{fresh()}.sites"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    ciphertext = root.secrets.transit.encrypt_data(name, plaintext=PLAINTEXT)["data"]["ciphertext"]
    t.rotate_key(name)
    assert t.rewrap_data(name, ciphertext=ciphertext)["data"]["ciphertext"].startswith("vault:v2:")


@pytest.mark.parametrize("param", ["deletion_allowed", "exportable", "allow_plaintext_backup"])
def test_admin__cannot_set_dangerous_config(role_client, root, param):
    name = f"genovault.{fresh()}.sites"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    forbidden(role_client("admin").secrets.transit.update_key_configuration, name,
              **{param: True})
    assert root.secrets.transit.read_key(name)["data"][param] is False


def test_admin__denied_endpoints(role_client, root):
    admin = role_client("admin")
    t = admin.secrets.transit
    name = f"genovault.{fresh()}.sites"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    ciphertext = root.secrets.transit.encrypt_data(name, plaintext=PLAINTEXT)["data"]["ciphertext"]
    forbidden(t.create_key, f"genovault.{fresh()}.sites", key_type="aes256-gcm96")
    forbidden(t.delete_key, name)
    forbidden(t.export_key, name, key_type="encryption-key")
    forbidden(t.backup_key, name)
    forbidden(t.restore_key, "AAAA", name=f"genovault.{fresh()}.sites")
    forbidden(t.encrypt_data, name, plaintext=PLAINTEXT)
    forbidden(t.decrypt_data, name, ciphertext=ciphertext)
    forbidden(t.generate_data_key, name, key_type="plaintext")
    forbidden(t.generate_hmac, name, PLAINTEXT)
    forbidden(admin.sys.read_acl_policy, "genovault-admin")


def test_acl_globs__star_only_at_the_end_plus_is_one_segment(bao_server, root):
    """OpenBao 2.7 semantics the admin policy relies on."""
    root.sys.create_or_update_acl_policy("gv-glob-probe", '''
path "transit/keys/genovault.*/rotate" { capabilities = ["update"] }
path "transit/keys/+" { capabilities = ["read"] }
''')
    token = root.auth.token.create(policies=["gv-glob-probe"], ttl="5m")["auth"]["client_token"]
    t = bao_server.client(token).secrets.transit
    name = f"genovault.{fresh()}.sites"
    root.secrets.transit.create_key(name, key_type="aes256-gcm96")
    forbidden(t.rotate_key, name)  # a "*" inside a path is literal, not a glob
    t.read_key(name)  # "+" matches the one segment <name> ...
    forbidden(t.update_key_configuration, name, min_decryption_version=1)  # ... not <name>/config


def test_acl_globs__plus_rules_cover_every_key_of_the_mount(role_client, root):
    """Documented limit: "+" cannot be restricted to genovault.* names, so admins can rotate
    any key of the transit mount (use a mount of GenoVault's own)."""
    root.secrets.transit.create_key("not-genovault-admin-probe", key_type="aes256-gcm96")
    role_client("admin").secrets.transit.rotate_key("not-genovault-admin-probe")


# --- ingest refuses keys GenoVault did not create -----------------------------------------------


def _vcf(tmp_path):
    path = tmp_path / "in.vcf"
    path.write_bytes(VCF)
    return path


def test_ingest__refuses_an_imported_key_and_writes_nothing(root, ingest_client, store, tmp_path):
    """The attack: key material chosen by an admin (here root, as admins no longer may) under
    a new dataset's name. Ingest must refuse before encrypting or registering anything."""
    ds = fresh("byok")
    known = os.urandom(32)
    import_key(root, f"genovault.{ds}.genotypes", known, wrap_with=root)
    info = root.secrets.transit.read_key(f"genovault.{ds}.genotypes")["data"]
    assert info["imported_key"] is True and info["type"] == "aes256-gcm96"
    with pytest.raises(KeyNotTrusted, match="imported key material"):
        ingest(_vcf(tmp_path), ds, client=ingest_client, store=store,
               options=IngestOptions(progress=False))
    assert not store.exists(ds)
    assert not (store.root / ds).exists() or not any((store.root / ds).rglob("*.parquet"))
    # nothing registered: the registry mount has no entry for the dataset
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.adapter.list(f"/v1/genovault-registry/{ds}")


@pytest.mark.parametrize(
    ("data_class", "create"),
    [
        pytest.param("sites", {"key_type": "aes256-gcm96", "exportable": True}, id="exportable"),
        pytest.param("footer", {"key_type": "aes256-gcm96", "allow_plaintext_backup": True},
                     id="plaintext-backup"),
        pytest.param("samples", {"key_type": "chacha20-poly1305"}, id="other-type"),
        pytest.param("genotypes", {"key_type": "aes256-gcm96", "derived": True}, id="derived"),
        pytest.param("genotypes", {"key_type": "aes256-gcm96", "derived": True,
                                   "convergent_encryption": True}, id="convergent"),
        pytest.param("pseudonym", {"key_type": "hmac"}, id="hmac-type-pseudonym"),
    ],
)
def test_keyring_ensure_keys__refuses_foreign_keys(root, ingest_client, data_class, create):
    ds = fresh("foreign")
    name = f"genovault.{ds}.{data_class}"
    if create["key_type"] == "hmac":
        root.adapter.post(f"/v1/transit/keys/{name}", json={"type": "hmac", "key_size": 32})
    else:
        root.secrets.transit.create_key(name, **create)
    with pytest.raises(KeyNotTrusted, match=name.replace(".", r"\.")):
        Keyring(ingest_client, ds).ensure_keys()


def test_keyring_ensure_keys__accepts_its_own_keys_twice(root, ingest_client):
    ds = fresh("own")
    Keyring(ingest_client, ds).ensure_keys()
    Keyring(ingest_client, ds).ensure_keys()  # existing keys pass the check
    for cls in ("genotypes", "sites", "samples", "footer", "pseudonym"):
        info = root.secrets.transit.read_key(f"genovault.{ds}.{cls}")["data"]
        assert info["type"] == "aes256-gcm96" and info["imported_key"] is False
