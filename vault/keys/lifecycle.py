"""Key and data lifecycle: rotation without rewriting data, participant withdrawal,
crypto-shredding, adopting an unsigned (schema v2) dataset. docs/lifecycle.md explains it.

* **Rotation** (admin): ``transit/keys/<k>/rotate``, then every file's key material is re-wrapped
  with ``transit/rewrap`` (the admin never sees a plaintext key; Parquet files are never
  touched). A marker ``.rotation.json`` (the target key versions) makes a killed rotation
  resumable: every key material file is either old or new, both readable until ``--retire``
  raises ``min_decryption_version`` — which is done only once every file is re-wrapped.
* **Withdrawal** (admin): sample ids -> pseudonyms (Transit hmac, key version 1), checked against
  the sample registry, recorded in the signed manifest as sha256 of the pseudonym. Readers
  leave those samples out of everything (vault.store.reader).
* **Destruction** (two admins + the shredder role): one admin files a request in Vault KV, a
  *different* identity approves it; then a tombstone manifest is committed, the dataset's
  Transit keys are made deletable and deleted, and its files removed.

Every command reports to an optional ``audit`` callable (who, what, outcome; never key
material, ids or pseudonyms).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault import faults
from vault.errors import ConfigError, GenoVaultError, IntegrityError, StoreError, VaultError
from vault.keys import signing
from vault.keys.client import token_identity
from vault.keys.errors import map_error
from vault.keys.kms import (
    Keyring,
    b64_text,
    key_material_path,
    parse_key_material,
    place_context,
    vault_wrapped_field,
)
from vault.keys.names import (
    DATA_CLASSES,
    LIFECYCLE_MOUNT,
    PARQUET_CLASSES,
    TRANSIT_MOUNT,
    batch_genotype_key,
    transit_key_name,
)
from vault.keys.registry import REGISTRY_MOUNT
from vault.store import format as fmt
from vault.store.dataset import Store, utcnow
from vault.store.fsutil import atomic_write_text, fsync_path
from vault.store.manifest import Consent, Identity, Manifest, Tombstone, Withdrawal

Audit = Callable[[dict[str, Any]], None]
ROTATION_MARKER = ".rotation.json"
#: a compaction's removed pseudonyms, encrypted, from just before its commit until their
#: registry entries are released (``v<commit version>.parquet``)
RELEASE_DIR = ".release"
#: names of the old genotypes keys of compacted batches not yet deleted (vault/keys/lifecycle
#: ``compact``): the next ``compact --shred-old-keys`` deletes them
RETIRED_KEYS = fmt.RETIRED_KEYS
CLASS_CHOICES = (*PARQUET_CLASSES, "all")


def identity(client: hvac.Client) -> Identity:
    """Who runs a command: the person behind a minted role token, else the token's owner."""
    ident = token_identity(client)
    return Identity(display_name=ident.get("on_behalf_of") or ident["display_name"],
                    entity_id=ident.get("on_behalf_of_entity") or ident["entity_id"])


def _vault(client: hvac.Client, method: str, path: str, what: str,
           json_body: dict[str, Any] | None = None, advice: str | None = None) -> Any:
    try:
        if method == "get":
            return client.adapter.get(f"/v1/{path}")
        if method == "delete":
            return client.adapter.delete(f"/v1/{path}")
        if method == "list":
            return client.adapter.list(f"/v1/{path}")
        return client.adapter.post(f"/v1/{path}", json=json_body or {})
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, what, addr=client.url, advice=advice) from e


def _verified(store: Store, dataset: str, client: hvac.Client) -> Manifest:
    m = store.manifest(dataset)
    signing.verify(client, store.root, m)
    if m.tombstone is not None:
        raise StoreError(f"dataset {dataset!r} was destroyed on {m.tombstone.destroyed_at}")
    return m


def _version_of(ciphertext: str) -> int:
    parts = ciphertext.split(":", 2)
    if len(parts) != 3 or parts[0] != "vault" or not parts[1].startswith("v"):
        raise IntegrityError("key material holds a wrapped key that is not a Transit "
                             "ciphertext")
    return int(parts[1][1:])


def _read_key(client: hvac.Client, name: str) -> dict[str, Any]:
    resp = _vault(client, "get", f"{TRANSIT_MOUNT}/keys/{name}", f"reading Transit key {name!r}",
                  advice=f"the token needs read on transit/keys/{name} (admin role)")
    data: dict[str, Any] = resp["data"]
    return data


def _classes(data_class: str) -> tuple[str, ...]:
    if data_class == "all":
        return PARQUET_CLASSES
    if data_class not in PARQUET_CLASSES:
        raise ConfigError(f"unknown key class {data_class!r}: use one of "
                          f"{', '.join(CLASS_CHOICES)} (the pseudonym key is never rotated "
                          "here: pseudonyms are pinned to its version 1)")
    return (data_class,)


def key_material_files(store: Store, dataset: str, manifest: Manifest) -> list[tuple[str, Path]]:
    folder = store.dataset_dir(dataset)
    return [(f.path, Path(key_material_path(str(folder / f.path)))) for f in manifest.files()]


# --- status ---------------------------------------------------------------------------------


def status(store: Store, dataset: str, client: hvac.Client) -> dict[str, Any]:
    """Key names and versions, the versions each file's key material uses, and the oldest
    version still needed per key (the lowest a ``--retire`` may not go above)."""
    m = _verified(store, dataset, client)
    by_name = {name: c for c in PARQUET_CLASSES for name in m.transit_keys(c)}
    keys: dict[str, Any] = {}
    for name, c in by_name.items():
        info = _read_key(client, name)
        keys[name] = {"class": c, "latest_version": int(info["latest_version"]),
                      "min_decryption_version": int(info["min_decryption_version"])}
    files: dict[str, dict[str, list[int]]] = {}
    oldest: dict[str, int] = {}
    for rel, km in key_material_files(store, dataset, m):
        used: dict[str, set[int]] = {}
        for mat in parse_key_material(km.read_text(encoding="utf-8")).values():
            f = vault_wrapped_field(mat)
            if f is None:
                continue
            c = by_name.get(str(mat["masterKeyID"]), str(mat["masterKeyID"]))
            used.setdefault(c, set()).add(_version_of(str(mat[f])))
        files[rel] = {c: sorted(v) for c, v in sorted(used.items())}
        for c, v in used.items():
            oldest[c] = min(oldest.get(c, min(v)), min(v))
    # per key too (a batch's own genotypes key)
    oldest_key: dict[str, int] = {}
    for _rel, km in key_material_files(store, dataset, m):
        for mat in parse_key_material(km.read_text(encoding="utf-8")).values():
            f = vault_wrapped_field(mat)
            if f is not None:
                n = str(mat["masterKeyID"])
                oldest_key[n] = min(oldest_key.get(n, 1 << 30), _version_of(str(mat[f])))
    for name, info in keys.items():
        info["oldest_version_in_use"] = oldest_key.get(name)
    return {"dataset": dataset, "manifest_version": m.version, "keys": keys, "files": files,
            "oldest_version_needed": oldest,
            "rotation_in_progress": (store.dataset_dir(dataset) / ROTATION_MARKER).exists()}


# --- rotation -------------------------------------------------------------------------------


@dataclass
class RotateReport:
    dataset: str
    targets: dict[str, int] = field(default_factory=dict)
    files: int = 0
    rewrapped_files: int = 0
    vault_rewraps: int = 0
    retired: bool = False
    resumed: bool = False


def rotate(store: Store, dataset: str, client: hvac.Client, *, data_class: str = "all",
           retire: bool = False, audit: Audit | None = None) -> RotateReport:
    """Rotate the dataset's Transit keys of ``data_class`` and re-wrap every file's key
    material (never a Parquet file). ``retire``: then raise ``min_decryption_version`` to the
    new version, so older key material (backups) no longer opens anything. Resumes a rotation
    that was killed (``.rotation.json``)."""
    classes = _classes(data_class)
    who = identity(client)
    with store.lock(dataset) as folder:
        m = _verified(store, dataset, client)
        marker = folder / ROTATION_MARKER
        report = RotateReport(dataset)
        if marker.exists():
            state = json.loads(marker.read_text(encoding="utf-8"))
            targets = {str(k): int(v) for k, v in state["targets"].items()}
            retire = retire or bool(state.get("retire"))
            report.resumed = True
        else:
            targets = {}
            for name in [n for c in classes for n in m.transit_keys(c)]:
                _vault(client, "post", f"{TRANSIT_MOUNT}/keys/{name}/rotate",
                       f"rotating Transit key {name!r}",
                       advice=f"rotation needs the admin role (transit/keys/{name}/rotate)")
                targets[name] = int(_read_key(client, name)["latest_version"])
                faults.point("rotate.key_rotated")
            atomic_write_text(marker, json.dumps({"targets": targets, "retire": retire,
                                                  "started_at": utcnow(),
                                                  "by": who.display_name}))
            faults.point("rotate.marker_written")
        report.targets = dict(targets)
        contexts = place_contexts(m)
        # the manifest's files, and a stopped compaction's release file (else --retire would
        # make it unreadable and its registry entries could never be released)
        files = key_material_files(store, dataset, m) + _release_key_materials(folder, m,
                                                                               contexts)
        # every old wrapped key first, in Transit batch calls (nothing on disk changes yet)
        cache = _rewrap_all(client, files, targets, contexts)
        for rel, km in files:
            report.files += 1
            if _rewrap_file(client, km, targets, cache, contexts.get(rel)):
                report.rewrapped_files += 1
        report.vault_rewraps = len(cache)
        if retire:
            left = [rel for rel, km in files if _needs_rewrap(km, targets)]
            if left:
                raise IntegrityError(f"refusing to retire: {len(left)} file(s) still hold old "
                                     f"key material (first: {left[0]})")
            for name, version in targets.items():
                _vault(client, "post", f"{TRANSIT_MOUNT}/keys/{name}/config",
                       f"retiring old versions of Transit key {name!r}",
                       {"min_decryption_version": version})
                faults.point("rotate.retired")
            report.retired = True
        # a new manifest version: query services reload and drop their cached KEKs
        signing.commit_signed(store, dataset, m.model_copy(update={"updated_at": utcnow()}),
                              client, m)
        marker.unlink()
        fsync_path(folder)
    if audit:
        audit({"event": "lifecycle", "command": "keys rotate", "dataset": dataset,
               "who": who.display_name, "who_entity": who.entity_id, "outcome": "ok",
               "classes": list(classes), "retire": report.retired,
               "target_versions": report.targets, "files": report.files,
               "resumed": report.resumed})
    return report


def _release_key_materials(folder: Path, m: Manifest,
                           contexts: dict[str, str]) -> list[tuple[str, Path]]:
    """The key material of ``.release/v<version>.parquet`` files (compactions stopped before
    they released their registry entries), adding their contexts to ``contexts``."""
    out = []
    for path in sorted((folder / RELEASE_DIR).glob("v*.parquet")):
        km = Path(key_material_path(str(path)))
        version = path.stem[1:]
        if not km.is_file() or not version.isdigit():
            continue
        rel = f"{RELEASE_DIR}/{path.name}"
        if m.binding is not None:
            contexts[rel] = place_context(m.dataset, _release_file_id(version))
        out.append((rel, km))
    return out


def _needs_rewrap(km: Path, targets: dict[str, int]) -> bool:
    for mat in parse_key_material(km.read_text(encoding="utf-8")).values():
        f = vault_wrapped_field(mat)
        if f and str(mat["masterKeyID"]) in targets and \
                _version_of(str(mat[f])) < targets[str(mat["masterKeyID"])]:
            return True
    return False


def place_contexts(m: Manifest) -> dict[str, str]:
    """Manifest path -> the Transit derivation context of that file (bound datasets; empty for
    datasets written before)."""
    if m.binding is None:
        return {}
    return {f.path: place_context(m.dataset, f.file_id) for f in m.files()
            if f.file_id is not None}


#: wrapped keys per Transit rewrap batch call (OpenBao refuses JSON bodies of ~1000+ strings)
REWRAP_CHUNK = 200


def _rewrap_all(client: hvac.Client, files: list[tuple[str, Path]], targets: dict[str, int],
                contexts: dict[str, str]) -> dict[tuple[str, str], str]:
    """(old ciphertext, context or "") -> new ciphertext for every wrapped key of ``files``
    below its target version, in one ``transit/rewrap`` batch call per key and
    REWRAP_CHUNK keys: a bound dataset's files share no KEK, so one call per file and key
    would make rotation cost a round trip per file. A batch Vault refuses is redone key by
    key by :func:`_rewrap_file`, which reports the error."""
    todo: dict[str, dict[tuple[str, str], None]] = {}
    for rel, km in files:
        context = contexts.get(rel, "")
        for mat in parse_key_material(km.read_text(encoding="utf-8")).values():
            f = vault_wrapped_field(mat)
            name = str(mat.get("masterKeyID", ""))
            if f and name in targets and _version_of(str(mat[f])) < targets[name]:
                todo.setdefault(name, {})[(str(mat[f]), context)] = None
    out: dict[tuple[str, str], str] = {}
    for name, items in todo.items():
        keys = list(items)
        for start in range(0, len(keys), REWRAP_CHUNK):
            chunk = keys[start:start + REWRAP_CHUNK]
            batch = [{"ciphertext": old, **({"context": b64_text(c)} if c else {})}
                     for old, c in chunk]
            try:
                resp = _vault(client, "post", f"{TRANSIT_MOUNT}/rewrap/{name}",
                              f"Transit rewrap with key {name!r}", {"batch_input": batch},
                              advice=f"rotation needs the admin role (transit/rewrap/{name})")
                results = resp["data"]["batch_results"]
            except (VaultError, KeyError, TypeError):
                continue  # one by one below, which reports what Vault says
            if not isinstance(results, list) or len(results) != len(chunk):
                continue
            for item, r in zip(chunk, results, strict=True):
                if isinstance(r, dict) and isinstance(r.get("ciphertext"), str) and \
                        not r.get("error"):
                    out[item] = r["ciphertext"]
        faults.point("rotate.rewrapped_batch")
    return out


def _rewrap_file(client: hvac.Client, km: Path, targets: dict[str, int],
                 cache: dict[tuple[str, str], str], context: str | None = None) -> bool:
    """Re-wrap the entries of ``km`` under an old version of a target key; True if it changed.

    ``cache`` maps (old ciphertext, context or "") -> new (:func:`_rewrap_all`; the KEK shared
    by an unbound batch's files is re-wrapped once). ``context``: the file's derivation
    context (a bound dataset), sent with the rewrap as Transit requires for derived keys.
    """
    raw = json.loads(km.read_text(encoding="utf-8"))
    changed = False
    for key_id, text in raw.items():
        mat = json.loads(text) if isinstance(text, str) else text
        f = vault_wrapped_field(mat)
        if f is None:
            continue
        name = str(mat["masterKeyID"])
        old = str(mat[f])
        if name not in targets or _version_of(old) >= targets[name]:
            continue
        new = cache.get((old, context or ""))
        if new is None:
            body = {"ciphertext": old}
            if context is not None:
                body["context"] = b64_text(context)
            resp = _vault(client, "post", f"{TRANSIT_MOUNT}/rewrap/{name}",
                          f"Transit rewrap with key {name!r}", body,
                          advice=f"rotation needs the admin role (transit/rewrap/{name})")
            new = cache[(old, context or "")] = str(resp["data"]["ciphertext"])
        mat[f] = new
        raw[key_id] = json.dumps(mat, separators=(",", ":"))
        changed = True
    if changed:
        _write_key_material(km, json.dumps(raw, separators=(",", ":")))
        faults.point("rotate.rewrap_file")
    return changed


def _write_key_material(km: Path, text: str) -> None:
    """Atomic replacement: a file's key material is always wholly old or wholly new."""
    atomic_write_text(km, text)


# --- withdrawal -----------------------------------------------------------------------------


def _hash(pseudonym: str) -> str:
    return hashlib.sha256(pseudonym.encode("utf-8")).hexdigest()


def _registered(client: hvac.Client, dataset: str, uid: str, pseudonym: str) -> bool:
    try:
        client.adapter.get(f"/v1/{REGISTRY_MOUNT}/{dataset}/{uid}/{pseudonym}")
        return True
    except hvac.exceptions.InvalidPath:
        return False
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"looking a sample up in the registry of {dataset!r}",
                        addr=client.url, advice="withdrawal needs the admin role (read on "
                        "genovault-registry)") from e


@dataclass
class WithdrawReport:
    dataset: str
    withdrawn: int = 0
    already: int = 0
    manifest_version: int = 0


def withdraw(store: Store, dataset: str, client: hvac.Client, sample_ids: Sequence[str], *,
             reason: str | None = None, audit: Audit | None = None) -> WithdrawReport:
    """Withdraw participants: from the next query on they are in no aggregate at all."""
    if not sample_ids:
        raise ConfigError("name at least one sample id to withdraw")
    who = identity(client)
    pseudonyms = Keyring(client, dataset).pseudonymise(list(sample_ids))
    report = WithdrawReport(dataset)
    with store.lock(dataset):
        m = _verified(store, dataset, client)
        unknown = [i for i, p in enumerate(pseudonyms)
                   if not _registered(client, dataset, m.uid, p)]
        if unknown:
            raise ConfigError(f"{len(unknown)} of the {len(sample_ids)} sample id(s) are not "
                              f"in dataset {dataset!r} (argument position(s) "
                              f"{', '.join(str(i + 1) for i in unknown[:10])}); nothing was "
                              "withdrawn. Check the ids")
        faults.point("withdraw.checked")
        current = m.withdrawn_hashes()
        now = utcnow()
        new = []
        for p in dict.fromkeys(pseudonyms):
            h = _hash(p)
            if h in current:
                report.already += 1
                continue
            new.append(Withdrawal(pseudonym_sha256=h, at=now, by=who))
        report.withdrawn = len(new)
        if new:
            m2 = signing.commit_signed(store, dataset, m.model_copy(update={
                "withdrawn": [*m.withdrawn, *new], "updated_at": now}), client, m)
            report.manifest_version = m2.version
        else:
            report.manifest_version = m.version
    if audit:
        audit({"event": "lifecycle", "command": "samples withdraw", "dataset": dataset,
               "who": who.display_name, "who_entity": who.entity_id, "outcome": "ok",
               "withdrawn": report.withdrawn, "already_withdrawn": report.already,
               "reason": reason or "", "manifest_version": report.manifest_version})
    return report


def record_consent(store: Store, dataset: str, client: hvac.Client,
                   sample_ids: Sequence[str], *, audit: Audit | None = None) -> int:
    """Record renewed consent of withdrawn participants: their data counts again (and the
    re-ingest refusal for them is lifted). Returns how many were re-consented."""
    who = identity(client)
    pseudonyms = Keyring(client, dataset).pseudonymise(list(sample_ids))
    with store.lock(dataset):
        m = _verified(store, dataset, client)
        current = m.withdrawn_hashes()
        now = utcnow()
        new = [Consent(pseudonym_sha256=_hash(p), at=now, by=who)
               for p in dict.fromkeys(pseudonyms) if _hash(p) in current]
        if len(new) != len(set(pseudonyms)):
            raise ConfigError("renewed consent can be recorded only for withdrawn samples; "
                              f"{len(set(pseudonyms)) - len(new)} of them are not withdrawn")
        signing.commit_signed(store, dataset, m.model_copy(update={
            "consents": [*m.consents, *new], "updated_at": now}), client, m)
    if audit:
        audit({"event": "lifecycle", "command": "samples consent", "dataset": dataset,
               "who": who.display_name, "who_entity": who.entity_id, "outcome": "ok",
               "reconsented": len(new)})
    return len(new)


# --- destruction ----------------------------------------------------------------------------


def _request_path(dataset: str) -> str:
    return f"{LIFECYCLE_MOUNT}/destroy/{dataset}"


def _dataset_keys(m: Manifest, lister: hvac.Client | None = None) -> list[str]:
    """Every Transit key of the dataset: those its manifest names, and any other
    ``genovault.<dataset>.*`` key Vault holds (``lister``: a token that may list
    transit/keys, the admin's; None: the named ones only). A batch's genotypes key is no
    longer named once the batch was compacted without ``--shred-old-keys`` (or by a
    compaction killed before its commit), yet a backup of the old files is still wrapped
    under it: crypto-shredding must delete it too. Vault refusing the list refuses the
    destruction (nothing is done)."""
    named = {*[m.keys[c] for c in DATA_CLASSES], *m.transit_keys("genotypes")}
    if lister is None:
        return sorted(named)
    prefix = transit_key_name(m.dataset, "genotypes").rsplit(".", 1)[0] + "."
    resp = _vault(lister, "list", f"{TRANSIT_MOUNT}/keys", "listing Transit keys to find "
                  f"every key of {m.dataset!r}", advice="destruction needs the admin role "
                  "(list on transit/keys): without it a retired batch key would survive")
    listed = (resp or {}).get("data", {}).get("keys", []) if isinstance(resp, dict) else []
    return sorted(named | {str(k) for k in listed if str(k).startswith(prefix)})


def request_destroy(store: Store, dataset: str, client: hvac.Client, *,
                    marker: hvac.Client | None = None, audit: Audit | None = None) -> str:
    """File a destruction request (admin); returns its id, which a *different* admin approves.

    ``marker`` (a genovault-shred-request token) first marks every key of the dataset
    deletable: with it, Vault itself needs a second identity (genovault-shred-approve) to
    delete them. Without it the approver's token must mark them too (genovault-shredder)."""
    who = identity(client)
    m = _verified(store, dataset, client)
    if marker is not None:
        for name in _dataset_keys(m, client):
            _mark_deletable(marker, name)
    request_id = uuid.uuid4().hex[:16]
    _vault(client, "post", _request_path(dataset), f"filing a destruction request for "
           f"{dataset!r}", {"request_id": request_id, "dataset": dataset, "uid": m.uid,
                            "requested_by": who.display_name,
                            "requested_by_entity": who.entity_id, "requested_at": utcnow(),
                            "state": "requested"})
    if audit:
        audit({"event": "lifecycle", "command": "datasets destroy --request",
               "dataset": dataset, "who": who.display_name, "who_entity": who.entity_id,
               "outcome": "ok", "request_id": request_id})
    return request_id


def approve_destroy(store: Store, dataset: str, request_id: str, approver: hvac.Client,
                    shredder: hvac.Client, *, audit: Audit | None = None) -> Manifest:
    """Approve another admin's request and crypto-shred the dataset (resumable)."""
    who = identity(approver)
    try:
        resp = approver.adapter.get(f"/v1/{_request_path(dataset)}")
    except hvac.exceptions.InvalidPath:
        raise ConfigError(f"there is no destruction request for {dataset!r}") from None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"reading the destruction request of {dataset!r}",
                        addr=approver.url) from e
    req = resp["data"]
    if req.get("request_id") != request_id:
        raise ConfigError(f"destruction request {request_id!r} is not the open request for "
                          f"{dataset!r}")
    same = (req.get("requested_by") == who.display_name or
            (bool(who.entity_id) and req.get("requested_by_entity") == who.entity_id))
    if same:
        raise ConfigError(f"{who.display_name or 'you'} filed this destruction request: a "
                          "different admin must approve it")
    requester = Identity(display_name=str(req.get("requested_by") or ""),
                         entity_id=str(req.get("requested_by_entity") or ""))
    with store.lock(dataset) as folder:
        m = store.manifest(dataset)
        signing.verify(approver, store.root, m)
        if m.uid != req.get("uid"):
            raise ConfigError("the destruction request was filed for an earlier incarnation "
                              "of this dataset")
        if m.tombstone is None:
            all_keys = _dataset_keys(m, approver)
            for name in all_keys:  # before anything is committed: refused here, nothing done
                _mark_deletable(shredder, name)
            now = utcnow()
            m = signing.commit_signed(store, dataset, m.model_copy(update={
                "batches": [], "sample_count": 0, "contigs": [], "withdrawn": [],
                "consents": [], "updated_at": now,
                "tombstone": Tombstone(destroyed_at=now, requested_by=requester,
                                       approved_by=who, request_id=request_id,
                                       keys=all_keys)}), approver, m)
        assert m.tombstone is not None
        for name in m.tombstone.keys:
            _shred_key(shredder, name)
        for name in ("batches", ".staging", ".pending", RELEASE_DIR):
            shutil.rmtree(folder / name, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (folder / ROTATION_MARKER).unlink()
        fsync_path(folder)
    _vault(approver, "post", _request_path(dataset), "closing the destruction request",
           {**req, "state": "done", "approved_by": who.display_name})
    if audit:
        audit({"event": "lifecycle", "command": "datasets destroy --approve",
               "dataset": dataset, "who": who.display_name, "who_entity": who.entity_id,
               "requested_by": requester.display_name, "outcome": "ok",
               "request_id": request_id,
               "keys_deleted": m.tombstone.keys if m.tombstone else []})
    return m


_SHRED_ADVICE = ("crypto-shredding needs two people: the requester's token marks the keys "
                 "deletable (genovault-shred-request, at `datasets destroy --request`), the "
                 "approver's deletes them (genovault-shred-approve); root mints both in the "
                 "embedded vault")


def _mark_deletable(client: hvac.Client, name: str) -> bool:
    """Make sure Transit key ``name`` has deletion_allowed; False if it is already gone."""
    try:
        info = client.adapter.get(f"/v1/{TRANSIT_MOUNT}/keys/{name}")["data"]
    except hvac.exceptions.InvalidPath:
        return False  # already deleted (a resumed destruction)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"reading Transit key {name!r}", addr=client.url,
                        advice=_SHRED_ADVICE) from e
    if not info.get("deletion_allowed"):
        _vault(client, "post", f"{TRANSIT_MOUNT}/keys/{name}/config",
               f"marking Transit key {name!r} deletable", {"deletion_allowed": "true"},
               advice=_SHRED_ADVICE)
    return True


def _shred_key(client: hvac.Client, name: str) -> None:
    if _mark_deletable(client, name):
        _vault(client, "delete", f"{TRANSIT_MOUNT}/keys/{name}",
               f"deleting Transit key {name!r}", advice=_SHRED_ADVICE)


# --- compaction ---------------------------------------------------------------------------


@dataclass
class CompactReport:
    dataset: str
    batches: list[str] = field(default_factory=list)
    removed_samples: int = 0
    genotypes_read: int = 0
    seconds: float = 0.0
    shredded_keys: list[str] = field(default_factory=list)
    #: rewritten batches whose old genotypes were under the dataset's shared genotypes key
    #: (batches written before per-batch keys): ``--shred-old-keys`` cannot delete it, so a
    #: backup of their old files still yields the withdrawn samples' genotypes
    unshreddable: list[str] = field(default_factory=list)

    @property
    def genotypes_per_s(self) -> float:
        return self.genotypes_read / self.seconds if self.seconds else 0.0


def compact(store: Store, dataset: str, reader_client: hvac.Client,
            writer_client: hvac.Client, *, shredder: hvac.Client | None = None,
            audit: Audit | None = None) -> CompactReport:
    """Rewrite every batch that holds withdrawn samples without them (new files, new data
    keys, a folder of its own), commit, then delete the old files and release the removed
    samples' registry entries (so renewed consent allows a re-ingest).

    ``reader_client`` decrypts (query role), ``writer_client`` encrypts, signs and releases
    registry entries (the dataset's ingest role). Killed midway, the dataset is as before;
    the next writer removes the half-written folder.

    The rewritten batch gets a genotypes key of its own. With ``shredder`` (a
    genovault-shredder token) the old batch's own genotypes key is then deleted, so no copy
    of the old files (a backup) yields the withdrawn samples' genotypes again.
    """
    import time

    import numpy as np
    import pyarrow as pa

    from vault.keys import registry
    from vault.store.reader import DatasetReader, packed_from_column, select_samples
    from vault.store.writer import BatchWriter

    t0 = time.perf_counter()
    who = identity(writer_client)
    report = CompactReport(dataset)
    with store.lock(dataset) as folder:
        m = _verified(store, dataset, writer_client)
        reader = DatasetReader(store, dataset, Keyring(reader_client, dataset))
        wkeys = Keyring(writer_client, dataset, bound=m.binding is not None)
        wkeys.ensure_keys()
        store.remove_debris(dataset, m)
        _finish_releases(folder, m, Keyring(reader_client, dataset), writer_client)
        new_batches = []
        released: list[str] = []
        old_dirs: list[Path] = []
        old_keys: list[str] = []
        offset = 0
        for i, b in enumerate(m.batches):
            keep = reader._keep[i]
            if keep is None:
                new_batches.append(b.model_copy(update={"sample_offset": offset}))
                offset += b.n_samples
                continue
            n_live = int(keep.sum())
            samples = reader._read(b.samples_file.path, None)
            released += [p for p, k in zip(samples.column("pseudonym").to_pylist(),
                                           keep.tolist(), strict=True) if not k]
            name = f"{b.batch}.c{m.version + 1}"
            staging = folder / ".staging" / uuid.uuid4().hex
            staging.mkdir(mode=0o700, parents=True)
            bkeys = wkeys.for_genotypes(batch_genotype_key(dataset, name))
            bkeys.ensure_keys(["genotypes"])
            writer = BatchWriter(staging, bkeys, n_live, m.partition.bin_size)
            try:
                entry_s = writer.write_samples(samples.filter(pa.array(keep)))
                info = reader.batch_info(b)
                info["compacted"] = {"at": utcnow(), "removed_samples": int((~keep).sum())}
                for f in sorted(b.variant_files, key=lambda f: (f.contig, f.bin)):
                    t = reader._read(f.path, None)
                    packed = packed_from_column(t.column(fmt.GENOTYPE_COLUMN), t.num_rows,
                                                b.n_samples)
                    report.genotypes_read += t.num_rows * b.n_samples
                    # every site column, the batch's INFO columns too
                    cols = {c: t.column(c).combine_chunks() for c in t.column_names
                            if c != fmt.GENOTYPE_COLUMN}
                    writer.add(f.contig, cols, np.ascontiguousarray(
                        select_samples(packed, b.n_samples, keep)))
                files = writer.close()
                entry_i = writer.write_info(info)
            except BaseException:
                writer.abort()
                shutil.rmtree(staging, ignore_errors=True)
                raise
            final = folder / "batches" / name
            fsync_path(staging)
            os.rename(staging, final)
            fsync_path(final.parent)
            faults.point("compact.batch_renamed")
            prefix = f"batches/{name}/"

            def placed(e: dict[str, Any], prefix: str = prefix) -> dict[str, Any]:
                return {**e, "path": prefix + e["path"]}

            from vault.store.manifest import FileEntry, VariantFile

            new_batches.append(b.model_copy(update={
                "sample_offset": offset, "n_samples": n_live,
                "samples_file": FileEntry(**placed(entry_s)),
                "info_file": FileEntry(**placed(entry_i)),
                "variant_files": [VariantFile(**placed(f)) for f in files],
                # the compacted info holds the parts' QC too (batch_info merged it)
                "parts": [p.model_copy(update={"info_file": None}) for p in b.parts],
                "genotype_key": bkeys.keys.genotypes}))
            if b.genotype_key and b.genotype_key != m.keys["genotypes"]:
                old_keys.append(b.genotype_key)
            else:
                report.unshreddable.append(b.batch)
            offset += n_live
            # the batch's folder and those of parts added to it later
            old_dirs += list(dict.fromkeys(folder.joinpath(*Path(f.path).parts[:2])
                                           for f in [b.samples_file, *b.variant_files]))
            report.batches.append(b.batch)
            report.removed_samples += int((~keep).sum())
        committed = m
        if report.batches:
            # kept (encrypted) until released: a kill after the commit leaves the rerun the
            # pseudonyms it must release (the old samples table is gone by then)
            release = _write_release(folder, wkeys, m.version + 1, released)
            # the old batches' keys, before the commit: a kill (or a Vault refusal) after
            # it leaves the next --shred-old-keys their names
            _record_retired(folder, dataset, old_keys)
            committed = m.model_copy(update={
                "batches": new_batches, "sample_count": offset, "updated_at": utcnow()})
            signing.commit_signed(store, dataset, committed, writer_client, m)
            for d in old_dirs:
                shutil.rmtree(d, ignore_errors=True)
                faults.point("compact.old_removed")
            fsync_path(folder / "batches")
            registry.release(writer_client, dataset, m.uid, released)
            faults.point("compact.released")
            _remove_release(release)
        if shredder is not None:
            report.shredded_keys = _shred_retired(folder, store.manifest(dataset), shredder)
    report.seconds = time.perf_counter() - t0
    if audit:
        audit({"event": "lifecycle", "command": "datasets compact", "dataset": dataset,
               "who": who.display_name, "who_entity": who.entity_id, "outcome": "ok",
               "batches": report.batches, "removed": report.removed_samples,
               "keys_deleted": report.shredded_keys,
               "not_shreddable": report.unshreddable})
    return report


def _retired_prefix(dataset: str) -> str:
    return transit_key_name(dataset, "genotypes") + "."


def _record_retired(folder: Path, dataset: str, keys: list[str], *,
                    replace: bool = False) -> None:
    """Add ``keys`` (the old genotypes keys of batches being compacted) to the dataset's
    record of retired keys (``RETIRED_KEYS``: names only, no key material), durably
    (``replace``: the record becomes ``keys``). A compaction without ``--shred-old-keys``,
    or one whose shred failed or was killed after its commit, leaves them there for the next
    ``compact --shred-old-keys``."""
    if not keys and not replace:
        return
    assert all(k.startswith(_retired_prefix(dataset)) for k in keys), keys
    path = folder / RETIRED_KEYS
    names = sorted(set(keys) if replace else set(_read_retired(folder)) | set(keys))
    if not names:
        path.unlink(missing_ok=True)
        fsync_path(folder)
        return
    atomic_write_text(path, json.dumps({"retired_genotypes_keys": names}), encoding="ascii")


def _read_retired(folder: Path) -> list[str]:
    path = folder / RETIRED_KEYS
    if not path.is_file():
        return []
    try:
        names = json.loads(path.read_text(encoding="ascii"))["retired_genotypes_keys"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not a record of retired keys ({exc}); restore it "
                             "from a backup, or remove it after checking transit/keys by "
                             "hand") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise IntegrityError(f"{path}: not a record of retired keys")
    return names


def _shred_retired(folder: Path, m: Manifest, shredder: hvac.Client) -> list[str]:
    """Delete every recorded retired genotypes key that the committed manifest ``m`` no
    longer names (a key still named -- a compaction that never committed -- is in use and
    stays), then drop them from the record; returns the deleted names. Only this dataset's
    per-batch genotypes keys are acted on, whatever the file says."""
    prefix = _retired_prefix(m.dataset)
    in_use = {*m.keys.values(), *m.transit_keys("genotypes")}
    recorded = [k for k in _read_retired(folder) if k.startswith(prefix)]
    done = []
    try:
        for k in recorded:
            if k not in in_use:
                _shred_key(shredder, k)
                done.append(k)
    finally:  # what was deleted leaves the record, even if a later delete fails
        _record_retired(folder, m.dataset, [k for k in recorded if k not in done],
                        replace=True)
    return done


def _write_release(folder: Path, keyring: Keyring, version: int, pseudonyms: list[str]) -> Path:
    import pyarrow as pa

    from vault.store.writer import write_encrypted

    d = folder / RELEASE_DIR
    d.mkdir(mode=0o700, exist_ok=True)
    path = d / f"v{version}.parquet"
    _remove_release(path)  # a stale one of a compaction killed before its commit
    write_encrypted(path, pa.table({"pseudonym": pa.array(pseudonyms, pa.string())}), keyring,
                    "samples", _release_file_id(version) if keyring.bound else None)
    fsync_path(d)
    return path


def _release_file_id(version: int | str) -> str:
    """The file id a bound dataset's release file of compaction ``version`` is bound to (it is
    no manifest entry: its name says which it is)."""
    return hashlib.sha256(f"compaction-release/v{version}".encode()).hexdigest()[:32]


def _remove_release(path: Path) -> None:
    for p in (path, Path(key_material_path(str(path)))):
        p.unlink(missing_ok=True)
    fsync_path(path.parent)


def _finish_releases(folder: Path, m: Manifest, reader_keys: Keyring,
                     writer_client: hvac.Client) -> None:
    """Release the registry entries of a committed compaction that was stopped before it
    released them; drop the record of one that never committed (it is redone)."""
    import pyarrow.parquet as pq

    from vault.keys import registry

    d = folder / RELEASE_DIR
    if not d.is_dir():
        return
    for path in sorted(d.glob("v*.parquet")):
        version = path.stem[1:]
        committed = version.isdigit() and any(
            f"/{b.batch}.c{version}/" in b.samples_file.path for b in m.batches)
        if committed:
            try:
                fid = _release_file_id(version) if m.binding is not None else None
                table = pq.read_table(str(path), decryption_properties=
                                      reader_keys.decryption_properties(str(path), fid))
            except (OSError, ValueError) as exc:
                raise IntegrityError(f"{path}: the removed samples of an interrupted compaction "
                                     f"cannot be read ({exc}); their registry entries are not "
                                     "released") from exc
            registry.release(writer_client, m.dataset, m.uid,
                             table.column("pseudonym").to_pylist())
        _remove_release(path)


# --- adopting a schema-v2 (unsigned) dataset ------------------------------------------------


def adopt(store: Store, dataset: str, client: hvac.Client, *,
          audit: Audit | None = None) -> Manifest:
    """Sign an unsigned schema-v2 manifest as schema v3 (trust on first use: run it only on a
    store you trust). File checksums are checked first."""
    from vault.store.fsutil import sha256_file

    who = identity(client)
    with store.lock(dataset) as folder:
        path = folder / fmt.MANIFEST
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("schema_version") != 2:
            raise ConfigError(f"dataset {dataset!r} is schema v{raw.get('schema_version')}; "
                              "only v2 datasets are adopted")
        raw["schema_version"] = fmt.SCHEMA_VERSION
        m = Manifest.model_validate(raw)
        for f in m.files():
            p = folder / f.path
            if not p.is_file() or sha256_file(p) != f.sha256:
                raise IntegrityError(f"{p}: missing or modified; refusing to adopt")
        anchored = signing.read_anchor(client, dataset)
        prev = m.model_copy(update={"version": anchored[0] if anchored else 0})
        m = signing.commit_signed(store, dataset, m, client, prev)
    if audit:
        audit({"event": "lifecycle", "command": "keys adopt", "dataset": dataset,
               "who": who.display_name, "who_entity": who.entity_id, "outcome": "ok",
               "manifest_version": m.version})
    return m


def audited_failure(audit: Audit | None, command: str, dataset: str, client: hvac.Client | None,
                    exc: BaseException) -> None:
    """Record a failed lifecycle command (best effort: the original error is what counts)."""
    if audit is None:
        return
    who = ""
    if client is not None:
        with contextlib.suppress(GenoVaultError):
            who = identity(client).display_name
    with contextlib.suppress(Exception):
        audit({"event": "lifecycle", "command": command, "dataset": dataset, "who": who,
               "outcome": "error", "error": type(exc).__name__})


__all__ = [
    "CLASS_CHOICES",
    "RotateReport",
    "VaultError",
    "WithdrawReport",
    "adopt",
    "approve_destroy",
    "audited_failure",
    "record_consent",
    "request_destroy",
    "rotate",
    "status",
    "withdraw",
]
