"""Signed, versioned manifests: nobody without the Transit signing right can forge or roll back one.

* Every committed manifest carries ``version`` (+1 per commit) and a Transit **ed25519**
  signature (key ``genovault.manifest``, created by bootstrap; the ingest and admin policies
  may ``transit/sign`` with it, nobody may export it) over :meth:`Manifest.signed_bytes`.
* After the manifest is in place its ``(version, sha256 of the signed bytes)`` is anchored in
  Vault KV v2 (``genovault-anchors/manifest/<dataset>``) as KV version ``version``, with
  check-and-set, so no GenoVault role can rewind it (vault/keys/anchor.py). The anchor is
  written *after* the commit, so a crash between the two leaves the anchor one version
  behind (still accepted), never ahead (which would make the dataset unreadable). A
  dataset's first commit with no anchor at all is accepted as one behind nothing, alike.
* Readers verify locally with ``cryptography``: the key's public keys are read from Vault once
  per process and pinned on first use in ``<store>/.trust/manifest-signing.json``; a later
  disagreement between Vault and the pin is refused (someone replaced one of them). The
  anchor is read once per manifest version seen by the process. Reads of a manifest already
  verified cost no Vault round trip.

Any failed check raises :class:`~vault.errors.IntegrityError` with what failed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vault import faults
from vault.errors import IntegrityError, VaultDown, VaultForbidden
from vault.keys.anchor import CasEntry, read_legacy
from vault.keys.errors import map_error
from vault.keys.names import ANCHOR_MOUNT, LIFECYCLE_MOUNT, SIGNING_KEY, TRANSIT_MOUNT
from vault.store.manifest import Manifest, Signature

PIN_DIR = ".trust"
PIN_FILE = "manifest-signing.json"

_lock = threading.Lock()
#: process-wide: Vault url -> {version: public key (base64)} checked against Vault this process
_vault_keys: dict[str, dict[int, str]] = {}
#: process-wide: (url, dataset, uid) -> (highest version verified, its digest)
_seen: dict[tuple[str, str, str], tuple[int, str]] = {}


class AnchorUnreachable(VaultDown):
    """The signature is good but Vault (the version anchor) could not be reached."""


def digest(manifest: Manifest) -> str:
    return hashlib.sha256(manifest.signed_bytes()).hexdigest()


# --- writing ----------------------------------------------------------------------------------


def sign(client: hvac.Client, manifest: Manifest) -> Manifest:
    """``manifest`` with a fresh Transit signature (needs transit/sign/genovault.manifest)."""
    unsigned = manifest.model_copy(update={"signature": None})
    data = base64.b64encode(unsigned.signed_bytes()).decode("ascii")
    try:
        resp = client.adapter.post(f"/v1/{TRANSIT_MOUNT}/sign/{SIGNING_KEY}",
                                   json={"input": data})
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"signing the manifest of {manifest.dataset!r} (Transit sign with "
                        f"{SIGNING_KEY!r})", addr=client.url,
                        advice=f"the token needs transit/sign/{SIGNING_KEY} (ingest and admin "
                               "roles; run `genovault vault bootstrap` if the key is "
                               "missing)") from e
    value = str(resp["data"]["signature"])
    return unsigned.model_copy(update={"signature": Signature(
        key=SIGNING_KEY, key_version=int(resp["data"]["key_version"]), value=value)})


def anchor_path(dataset: str) -> str:
    return f"manifest/{dataset}"


def anchor_entry(client: hvac.Client, dataset: str) -> CasEntry:
    """The dataset's version anchor: KV v2 ``genovault-anchors/manifest/<dataset>``, whose
    KV version is the manifest version (see vault/keys/anchor.py)."""
    return CasEntry(client, anchor_path(dataset), "version",
                    what=f"the manifest anchor of {dataset!r}",
                    advice_read=f"the token needs read on {ANCHOR_MOUNT}/data/manifest/"
                                f"{dataset} (query, service, ingest and admin roles)",
                    advice_write=f"the token needs create/update on {ANCHOR_MOUNT}/data/"
                                 f"manifest/{dataset}")


def _legacy_anchor(client: hvac.Client, dataset: str) -> tuple[int, str] | None:
    """The KV v1 anchor of a dataset committed before anchors moved to KV v2 (frozen)."""
    data = read_legacy(client, LIFECYCLE_MOUNT, anchor_path(dataset),
                       f"the legacy manifest anchor of {dataset!r}",
                       f"the token needs read on {LIFECYCLE_MOUNT}/manifest/{dataset}")
    if data is None:
        return None
    try:
        return int(data["version"]), str(data["sha256"])
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(f"the manifest anchor {LIFECYCLE_MOUNT}/manifest/{dataset} is "
                             "malformed: it was written outside GenoVault") from None


def read_anchor(client: hvac.Client, dataset: str) -> tuple[int, str] | None:
    """``(version, sha256)`` anchored for ``dataset``: the higher of the KV v2 anchor and a
    legacy KV v1 one (neither can be rewound by a GenoVault role)."""
    cur = anchor_entry(client, dataset).read()
    head = None
    if cur is not None:
        sha = cur[1].get("sha256")
        if not isinstance(sha, str):
            raise IntegrityError(f"the manifest anchor {ANCHOR_MOUNT}/manifest/{dataset} is "
                                 "malformed: it was written outside GenoVault")
        head = (cur[0], sha)
    old = _legacy_anchor(client, dataset)
    if old is None or (head is not None and head[0] > old[0]):
        return head
    if head is not None and head[0] == old[0] and head[1] != old[1]:
        raise IntegrityError(f"dataset {dataset!r}: the manifest anchors in {ANCHOR_MOUNT} "
                             f"and {LIFECYCLE_MOUNT} disagree about version {old[0]}: one "
                             "was written outside GenoVault")
    return old


def write_anchor(client: hvac.Client, manifest: Manifest) -> None:
    """Anchor ``manifest`` as KV version ``manifest.version`` (check-and-set). Versions
    missing below it (a dataset anchored the old way, or a commit whose anchor write was
    lost) are filled first with placeholders; the legacy version keeps its digest."""
    entry = anchor_entry(client, manifest.dataset)
    old = _legacy_anchor(client, manifest.dataset)

    def placeholder(v: int) -> dict[str, Any]:
        sha = old[1] if old is not None and v == old[0] else "0" * 64
        return {"version": v, "sha256": sha, "uid": manifest.uid, "placeholder": True}

    entry.fill(manifest.version - 1, placeholder)
    entry.write(manifest.version, {"version": manifest.version, "sha256": digest(manifest),
                                   "uid": manifest.uid})


def commit_signed(store: Any, dataset: str, manifest: Manifest, client: hvac.Client,
                  previous: Manifest | None) -> Manifest:
    """Number (previous + 1), sign, atomically commit, then anchor ``manifest``; returns it.

    The caller holds the dataset's lock. A dataset new to this store continues the counter
    Vault holds for its id (another store's, or an earlier incarnation's): version numbers of
    a dataset id never repeat, so the anchor never has to go back.
    """
    if previous is None:
        anchored = read_anchor(client, dataset)
        version = (anchored[0] if anchored else 0) + 1
    else:
        version = previous.version + 1
    signed = sign(client, manifest.model_copy(update={"version": version}))
    faults.point("manifest.signed")
    store.commit(dataset, signed)
    faults.point("manifest.written")
    write_anchor(client, signed)
    faults.point("manifest.anchored")
    with _lock:
        _seen[(client.url, dataset, signed.uid)] = (signed.version, digest(signed))
    return signed


# --- verifying --------------------------------------------------------------------------------


def _fetch_public_keys(client: hvac.Client) -> dict[int, str] | None:
    """Public keys of the signing key from Vault, or None if this token may not read them."""
    try:
        resp = client.adapter.get(f"/v1/{TRANSIT_MOUNT}/keys/{SIGNING_KEY}")
    except hvac.exceptions.Forbidden:
        return None
    except hvac.exceptions.InvalidPath:
        raise IntegrityError(f"the manifest signing key {SIGNING_KEY!r} does not exist in "
                             f"Vault at {client.url}: run `genovault vault bootstrap`") from None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        err = map_error(e, f"reading the manifest signing key {SIGNING_KEY!r}",
                        addr=client.url)
        if isinstance(err, VaultDown):
            _unreachable.add(client.url)
            return None  # the pin answers; anything else fails later on its own Vault calls
        raise err from e
    data = resp["data"]
    if data.get("type") != "ed25519" or data.get("exportable") or data.get("imported_key"):
        raise IntegrityError(f"the manifest signing key {SIGNING_KEY!r} is not a GenoVault "
                             "key (type, exportable or imported): refusing to trust it")
    return {int(v): str(k["public_key"]) for v, k in (data.get("keys") or {}).items()}


def _pin_path(store_root: Path) -> Path:
    return Path(store_root) / PIN_DIR / PIN_FILE


def _read_pins(store_root: Path) -> dict[int, str]:
    path = _pin_path(store_root)
    if path.is_symlink():
        raise IntegrityError(f"{path} is a symbolic link: refusing the signing-key pin")
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(v): str(k) for v, k in raw["keys"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError(f"{path}: the signing-key pin is unreadable; it was damaged or "
                             "edited (remove it only if you know why)") from None


def _write_pins(store_root: Path, pins: dict[int, str]) -> None:
    path = _pin_path(store_root)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"key": SIGNING_KEY,
                       "keys": {str(v): k for v, k in sorted(pins.items())}}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written pin left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


#: Vault addresses whose last signing-key read failed for being unreachable
_unreachable: set[str] = set()


def fetched_now(known: dict[int, str]) -> bool:
    """True when no key is known: the read just failed rather than answered without it."""
    return not known


def public_key(client: hvac.Client, store_root: Path, version: int) -> Ed25519PublicKey:
    """The pinned public key of signing-key ``version`` (Vault read at most once a process)."""
    with _lock:
        known = _vault_keys.get(client.url)
    pins = _read_pins(store_root)
    if known is None or version not in known:
        _unreachable.discard(client.url)
        fetched = _fetch_public_keys(client)
        if fetched is not None:
            with _lock:
                _vault_keys[client.url] = known = fetched
        else:
            known = {}
    for v, k in known.items():
        if v in pins and pins[v] != k:
            raise IntegrityError(
                f"the pinned public key of {SIGNING_KEY!r} v{v} ({_pin_path(store_root)}) "
                "differs from the one in Vault: one of them was replaced; refusing every "
                "manifest until an operator finds out which")
    new = {v: k for v, k in known.items() if v not in pins}
    if new:
        pins.update(new)
        _write_pins(store_root, pins)
    if version not in pins:
        if client.url in _unreachable and fetched_now(known):
            raise VaultDown(f"Vault at {client.url} cannot be reached to read the manifest "
                            f"signing key {SIGNING_KEY!r} v{version}, and it is not pinned in "
                            f"{_pin_path(store_root)} yet: retry when Vault is back")
        raise IntegrityError(f"the manifest is signed with {SIGNING_KEY!r} v{version}, which "
                             "is neither pinned nor known to Vault: forged or foreign manifest")
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(pins[version]))


def verify(client: hvac.Client, store_root: Path, manifest: Manifest,
           *, check_anchor: bool = True) -> None:
    """Raise IntegrityError unless ``manifest`` is signed by GenoVault's key and not older than
    Vault's anchor (nor than any version this process verified before)."""
    ds = manifest.dataset
    sig = manifest.signature
    if sig is None:
        raise IntegrityError(f"the manifest of dataset {ds!r} is not signed: it was written "
                             "or edited outside GenoVault; refusing to read it")
    if sig.key != SIGNING_KEY:
        raise IntegrityError(f"the manifest of dataset {ds!r} is signed with {sig.key!r}, "
                             f"not GenoVault's {SIGNING_KEY!r}; refusing to read it")
    parts = sig.value.split(":", 2)
    if len(parts) != 3 or parts[1] != f"v{sig.key_version}":
        raise IntegrityError(f"the manifest signature of dataset {ds!r} is malformed")
    try:
        raw = base64.b64decode(parts[2], validate=True)
        public_key(client, store_root, sig.key_version).verify(raw, manifest.signed_bytes())
    except (InvalidSignature, ValueError):
        raise IntegrityError(f"the manifest of dataset {ds!r} fails its signature check: it "
                             "was edited after signing, or signed by someone else; refusing "
                             "to read it (restore manifest.json from a backup)") from None
    me = digest(manifest)
    key = (client.url, ds, manifest.uid)
    with _lock:
        seen = _seen.get(key)
    if seen is not None:
        if manifest.version < seen[0] or (manifest.version == seen[0] and me != seen[1]):
            raise IntegrityError(_rollback(ds, manifest.version, seen[0]))
        if manifest.version == seen[0]:
            return
    if check_anchor:
        try:
            anchored = read_anchor(client, ds)
        except VaultDown as e:
            raise AnchorUnreachable(str(e)) from e
        except VaultForbidden:
            raise  # a token without rights on this dataset reads nothing of it
        if anchored is None and manifest.version != 1:
            raise IntegrityError(f"dataset {ds!r}: Vault holds no anchor for its manifest "
                                 "(version counter): it was not committed by GenoVault here")
        # no anchor and version 1: a first commit whose anchor write failed or was killed,
        # one behind nothing (no role can delete an anchor, so no later manifest is in this
        # state); the next commit fills the missing version
        av, ah = anchored or (0, "")
        if manifest.version < av or (manifest.version == av and me != ah):
            raise IntegrityError(_rollback(ds, manifest.version, av))
    with _lock:
        _seen[key] = (manifest.version, me)


def _rollback(ds: str, have: int, want: int) -> str:
    return (f"the manifest of dataset {ds!r} is version {have}, but version {want} was "
            "committed (Vault anchor): the manifest was rolled back or replaced; refusing to "
            "read it (restore the current manifest.json)")


def forget() -> None:
    """Drop the process-wide caches (tests; after re-pinning)."""
    with _lock:
        _vault_keys.clear()
        _seen.clear()
