"""The key layer: Parquet Modular Encryption with key-encryption keys in Vault Transit.

Envelope encryption, per ../docs/format.md:

* pyarrow generates a fresh data key per column (class) and file; with double wrapping it
  wraps each data key with a local key-encryption key (KEK), and wraps the KEK with the
  dataset's **master key**, a Transit key that never leaves Vault (``transit/encrypt``).
* Key material is *external*: the wrapped keys live in ``_KEY_MATERIAL_FOR_<file>.json``
  beside each Parquet file, so keys can be rotated (re-wrapped) without rewriting data.
* The footer is encrypted; every column is listed in the encryption configuration
  (pyarrow stores unlisted columns in plaintext, so :func:`column_keys` refuses to build a
  configuration that leaves a column out).

Nothing here ever logs, prints, pickles or puts into an exception a key, a wrapped key or a
token. Only key *names* travel.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import hvac
import hvac.exceptions
import pyarrow.parquet.encryption as pe
import requests

from vault.errors import VaultError
from vault.keys.errors import is_retryable, map_error
from vault.keys.names import (
    DATA_CLASSES,
    PARQUET_CLASSES,
    PSEUDONYM_KEY_VERSION,
    TRANSIT_MOUNT,
    transit_key_name,
)
from vault.keys.pipelined import raise_for_status, send_all
from vault.keys.transit import check_trusted, create_transit_key, read_transit_key

_RETRIES = 3
_T = TypeVar("_T")


@dataclass(frozen=True)
class DatasetKeys:
    """Names (never material) of one dataset's Transit keys."""

    genotypes: str
    sites: str
    samples: str
    footer: str
    pseudonym: str

    @classmethod
    def for_dataset(cls, dataset: str) -> DatasetKeys:
        return cls(**{c: transit_key_name(dataset, c) for c in DATA_CLASSES})

    def by_class(self, data_class: str) -> str:
        if data_class not in DATA_CLASSES:
            raise ValueError(f"unknown data class {data_class!r}")
        return str(getattr(self, data_class))

    def as_dict(self) -> dict[str, str]:
        return {c: self.by_class(c) for c in DATA_CLASSES}


def _retrying(fn: Callable[[], _T], operation: str, key: str) -> _T:
    """Call ``fn``; retry only what is retryable (connection errors, 5xx, 429), never 403."""
    what = f"Vault Transit {operation} with key '{key}'"
    advice = (f"the token's Vault policy does not allow transit/{operation}/{key}. Use a token "
              "of the right GenoVault role (ingest: encrypt; query: decrypt; admin: key "
              "management)")
    delay = 0.2
    for attempt in range(_RETRIES):
        try:
            return fn()
        except Exception as exc:
            if is_retryable(exc) and attempt < _RETRIES - 1:
                time.sleep(delay)
                delay *= 4
                continue
            raise map_error(exc, what, advice=advice,
                            decrypting=operation == "decrypt") from exc
    raise AssertionError("unreachable")  # pragma: no cover


class _NoPickle:
    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds Vault credentials and cannot be pickled; "
                        "send key names and let the receiver authenticate to Vault itself")


#: the KmsConnectionConfig token of files that are not bound to a place (pyarrow requires one)
UNBOUND_TOKEN = "unused"  # noqa: S105
#: prefix of a bound file's Transit derivation context (see Keyring, "Files bound to their place")
PLACE_CONTEXT_PREFIX = "genovault-file/v1/"
FILE_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def b64_text(text: str) -> str:
    """``text`` (UTF-8) in base64, as Transit takes a ``context``, an ``input`` and so on."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def place_context(dataset: str, file_id: str) -> str:
    """The Transit ``context`` that binds one file's wrapped keys to its manifest entry."""
    if not FILE_ID_RE.fullmatch(file_id):
        raise ValueError("a file id is 32 lowercase hex digits")
    return f"{PLACE_CONTEXT_PREFIX}{dataset}/{file_id}"


class TransitKmsClient(_NoPickle, pe.KmsClient):
    """pyarrow KmsClient whose master keys are Vault Transit keys (wrap = encrypt).

    With ``context`` (a bound file: its keys are derived Transit keys), every encrypt and
    decrypt sends it, so the wrapped keys of one file unwrap only as that file's."""

    def __init__(self, client: hvac.Client, mount: str = TRANSIT_MOUNT,
                 checked: dict[str, set[str]] | None = None,
                 lock: threading.Lock | None = None, context: str | None = None,
                 unwrapped: dict[tuple[str, str, str], bytes] | None = None) -> None:
        super().__init__()  # without this pyarrow says "No KMS client available"
        self._client = client
        self._mount = mount
        self._context = None if context is None else b64_text(context)
        #: (master key, wrapped key, context) -> key Vault already unwrapped in one batch call
        #: (Keyring.prefetch), each taken once
        self._unwrapped = unwrapped if unwrapped is not None else {}
        # pyarrow may call wrap/unwrap from several threads (the query service decrypts
        # partitions on worker threads); one hvac client's session serves them one at a time
        # (pyarrow makes a KmsClient per file: the lock is the keyring's, shared by them)
        self._lock = lock or threading.Lock()
        #: master key -> wrapped keys Vault unwrapped for us (see Keyring.decryption_properties)
        self._checked = checked if checked is not None else {}

    def __repr__(self) -> str:
        return f"<TransitKmsClient mount={self._mount!r} token=<redacted>>"

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        plaintext = base64.b64encode(key_bytes).decode("ascii")

        def call() -> str:
            resp = self._client.secrets.transit.encrypt_data(
                name=master_key_identifier, plaintext=plaintext, mount_point=self._mount,
                context=self._context)
            return str(resp["data"]["ciphertext"])

        with self._lock:
            return _retrying(call, "encrypt", master_key_identifier)

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        def call() -> bytes:
            resp = self._client.secrets.transit.decrypt_data(
                name=master_key_identifier, ciphertext=wrapped_key, mount_point=self._mount,
                context=self._context)
            return base64.b64decode(resp["data"]["plaintext"])

        with self._lock:
            if self._context is not None:
                hit = self._unwrapped.pop((master_key_identifier, wrapped_key, self._context),
                                          None)
                if hit is not None:
                    return hit
            out = _retrying(call, "decrypt", master_key_identifier)
            self._checked.setdefault(master_key_identifier, set()).add(wrapped_key)
        return out


def key_material_path(path: str) -> str:
    """The external key material file beside a Parquet file."""
    import os.path

    folder, name = os.path.split(path)
    return os.path.join(folder, f"_KEY_MATERIAL_FOR_{name}.json")


def parse_key_material(text: str) -> dict[str, dict[str, Any]]:
    """key id -> key material (dict) of one ``_KEY_MATERIAL_FOR_*.json`` file."""
    import json

    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("key material file is not a JSON object")
    return {k: json.loads(v) if isinstance(v, str) else v for k, v in raw.items()}


def vault_wrapped_field(material: dict[str, Any]) -> str | None:
    """Which field of a key material holds the Transit ciphertext (None: not a master-key
    wrapped entry, e.g. pyarrow's KEK entries)."""
    if "masterKeyID" not in material:
        return None
    return "wrappedKEK" if material.get("doubleWrapping") else "wrappedDEK"


def wrapped_keys(km_path: str) -> list[tuple[str, str]]:
    """(master key, Transit ciphertext) of every master-key wrapped entry of a key material."""
    with open(km_path, encoding="utf-8") as fh:
        materials = parse_key_material(fh.read())
    out = []
    for m in materials.values():
        f = vault_wrapped_field(m)
        if f and isinstance(m.get(f), str):
            out.append((str(m["masterKeyID"]), str(m[f])))
    return out


def column_keys(keys: DatasetKeys, column_classes: Mapping[str, str]) -> dict[str, list[str]]:
    """Map master key name -> columns, from column -> data class. Every column must be listed."""
    out: dict[str, list[str]] = {}
    for column, data_class in column_classes.items():
        if data_class not in PARQUET_CLASSES or data_class == "footer":
            raise ValueError(f"column {column!r}: no column key for data class {data_class!r}")
        out.setdefault(keys.by_class(data_class), []).append(column)
    return out


class Keyring(_NoPickle):
    """One dataset's keys, bound to one Vault client (one role). Builds pyarrow properties.

    ``bound`` (datasets created since schema 6): the dataset's Parquet keys are *derived*
    Transit keys and every file is bound to its manifest entry. Each file gets a random file
    id, recorded in its (signed) manifest entry; its wrapped keys are made with the Transit
    derivation context ``genovault-file/v1/<dataset>/<file id>`` and unwrap only with it. The
    context reaches the KmsClient as the file's ``key_access_token``, by which pyarrow keys
    its KmsClient and KEK caches, so no KEK is shared between two files either. A file moved
    or copied to another entry (with its key material) is decrypted with that entry's context
    and fails in Vault.
    """

    CACHE_LIFETIME = timedelta(minutes=10)

    def __init__(self, client: hvac.Client, dataset: str,
                 keys: DatasetKeys | None = None, *, bound: bool = False) -> None:
        self.dataset = dataset
        self.keys = keys or DatasetKeys.for_dataset(dataset)
        self.bound = bound
        self._client = client
        self._checked: dict[str, set[str]] = {}
        self._vault_lock = threading.Lock()
        #: held around every use of this keyring's Parquet properties by a reader: pyarrow
        #: may call back into Python (KmsClient.unwrap_key, needing the GIL) while holding
        #: its key-cache mutex, and some of its metadata accessors take that mutex while
        #: holding the GIL -- two threads on one keyring can deadlock. One at a time, they
        #: cannot (a Python lock is waited for without the GIL).
        self.io_lock = threading.RLock()
        #: bound files' keys unwrapped ahead by :meth:`prefetch`, until pyarrow takes them
        self._unwrapped: dict[tuple[str, str, str], bytes] = {}
        #: when the oldest of them was unwrapped: none is kept longer than CACHE_LIFETIME
        self._unwrapped_at = 0.0
        self._factory = pe.CryptoFactory(self._kms_client)

    def _kms_client(self, cfg: Any) -> TransitKmsClient:
        token = str(cfg.key_access_token)
        return TransitKmsClient(self._client, checked=self._checked, lock=self._vault_lock,
                                context=None if token == UNBOUND_TOKEN else token,
                                unwrapped=self._unwrapped)

    @staticmethod
    def _kms(context: str | None) -> Any:
        # The access token field carries no credential: the hvac client holds the real token,
        # so no token ever enters pyarrow's key material or caches. A bound file's token is
        # its derivation context (not secret: the file id is in the plaintext manifest).
        return pe.KmsConnectionConfig(kms_instance_id="genovault",
                                      kms_instance_url="vault-transit",
                                      key_access_token=context or UNBOUND_TOKEN)

    def new_file_id(self) -> str | None:
        """A fresh random id for a file about to be written (None: the dataset is not bound)."""
        return secrets.token_hex(16) if self.bound else None

    def _context(self, file_id: str | None, writing: bool) -> str | None:
        if file_id is None:
            if writing and self.bound:
                raise ValueError(f"dataset {self.dataset!r} binds files to their place: "
                                 "a file id is required")
            return None
        if writing and not self.bound:
            raise ValueError(f"dataset {self.dataset!r} is not bound: no file id")
        return place_context(self.dataset, file_id)

    def __repr__(self) -> str:
        return f"<Keyring dataset={self.dataset!r} token=<redacted>>"

    # -- key lifecycle -------------------------------------------------------------------
    def ensure_keys(self, classes: Iterable[str] = DATA_CLASSES) -> None:
        """Make sure the dataset's Transit keys exist and are GenoVault's own (idempotent).

        Each key is read first (metadata only); a missing one is created through Transit's
        encrypt-upsert, which the ingest role may do and which only ever makes non-exportable
        aes256-gcm96 keys (see vault/keys/bootstrap.py), and read again. Raises KeyNotTrusted
        — before anything is encrypted or pseudonymised — if any key is not of type
        aes256-gcm96, holds imported key material, is exportable, allows plaintext backup, or
        is derived/convergent: such a key was made by someone else (e.g. an admin who imported
        key material it knows) and data under it would decrypt offline.
        """
        for data_class in classes:
            name = self.keys.by_class(data_class)
            # a bound dataset's Parquet keys are derived (the pseudonym key never: HMAC)
            derived = self.bound and data_class in PARQUET_CLASSES
            info = read_transit_key(self._client, name)
            if info is None:
                create_transit_key(self._client, name, derived=derived)
                info = read_transit_key(self._client, name)
                if info is None:
                    raise VaultError(f"Transit key {name!r} is missing right after creating it")
            check_trusted(info, name, derived=derived)

    # -- Parquet properties --------------------------------------------------------------
    def encryption_properties(self, path: str, column_classes: Mapping[str, str],
                              file_id: str | None = None) -> Any:
        """File encryption properties for a new file at ``path`` (external key material);
        ``file_id`` (from :meth:`new_file_id`, required exactly when the dataset is bound)
        binds it to its manifest entry."""
        config = pe.EncryptionConfiguration(
            footer_key=self.keys.footer,
            column_keys=column_keys(self.keys, column_classes),
            plaintext_footer=False,
            double_wrapping=True,
            internal_key_material=False,
            cache_lifetime=self.CACHE_LIFETIME,
            data_key_length_bits=256,
        )
        return self._factory.file_encryption_properties(
            self._kms(self._context(file_id, writing=True)), config, path)

    def for_genotypes(self, name: str) -> Keyring:
        """A keyring of the same client whose genotypes key is ``name`` (a batch's own key)."""
        import dataclasses

        return Keyring(self._client, self.dataset, dataclasses.replace(self.keys, genotypes=name),
                       bound=self.bound)

    @property
    def client(self) -> hvac.Client:
        return self._client

    def decryption_properties(self, path: str, file_id: str | None = None) -> Any:
        """Decryption properties for ``path``: ``file_id`` is the file id its signed manifest
        entry records (bound datasets), None for files written before. A cached KEK is used only
        for wrapped keys that Vault itself unwrapped in this process: if the file's key material
        holds a wrapped KEK of a master key we hold a cached KEK for but that Vault never
        unwrapped for us (e.g. old key material of a retired key version), the cache is dropped
        so that Vault checks this file's own wrapped key."""
        if self._checked and not self._all_checked(path):
            self.clear_caches()
        config = pe.DecryptionConfiguration(cache_lifetime=self.CACHE_LIFETIME)
        return self._factory.file_decryption_properties(
            self._kms(self._context(file_id, writing=False)), config, path)

    def clear_caches(self) -> None:
        """Forget cached KEKs (after rotation or revocation; pyarrow never expires them)."""
        self._factory.remove_cache_entries_for_all_tokens()
        with self._vault_lock:
            self._checked.clear()
            self._unwrapped.clear()

    #: wrapped keys per Transit batch call (OpenBao refuses JSON bodies of ~1000+ strings)
    PREFETCH_CHUNK = 200

    def prefetch(self, files: Iterable[tuple[str, str]]) -> int:
        """Unwrap the wrapped keys of bound files about to be read, ``(path, file id)``, in
        one Transit batch call per master key (each item with its file's own context), so
        that opening each file costs no Vault round trip of its own. Whatever Vault refuses
        or cannot answer here is left to the file's own unwrap, which reports it. The
        number of keys unwrapped. Keys unwrapped ahead but never used (files not read after
        all) are forgotten after CACHE_LIFETIME, as pyarrow forgets its cached KEKs."""
        with self._vault_lock:
            if self._unwrapped and \
                    time.monotonic() - self._unwrapped_at > self.CACHE_LIFETIME.total_seconds():
                self._unwrapped.clear()
        wanted: dict[str, dict[tuple[str, str], None]] = {}
        for path, file_id in files:
            context = b64_text(place_context(self.dataset, file_id))
            try:
                pairs = wrapped_keys(key_material_path(path))
            except (OSError, ValueError):
                continue  # reported when the file itself is opened
            for master, wrapped in pairs:
                if (master, wrapped, context) not in self._unwrapped:
                    wanted.setdefault(master, {})[(wrapped, context)] = None
        got = 0
        for master, items in wanted.items():
            todo = list(items)
            for start in range(0, len(todo), self.PREFETCH_CHUNK):
                chunk = todo[start:start + self.PREFETCH_CHUNK]
                with self._vault_lock:
                    try:
                        resp = self._client.secrets.transit.decrypt_data(
                            name=master, mount_point=TRANSIT_MOUNT,
                            batch_input=[{"ciphertext": w, "context": c} for w, c in chunk])
                        results = resp["data"]["batch_results"]
                    except (hvac.exceptions.VaultError, requests.exceptions.RequestException,
                            KeyError, TypeError):  # each file's own unwrap reports it
                        continue
                    if not isinstance(results, list) or len(results) != len(chunk):
                        continue
                    if not self._unwrapped:
                        self._unwrapped_at = time.monotonic()
                    for (w, c), r in zip(chunk, results, strict=True):
                        if isinstance(r, dict) and r.get("plaintext") and not r.get("error"):
                            self._unwrapped[(master, w, c)] = base64.b64decode(r["plaintext"])
                            self._checked.setdefault(master, set()).add(w)
                            got += 1
        return got

    def _all_checked(self, path: str) -> bool:
        try:
            wrapped = wrapped_keys(key_material_path(path))
        except (OSError, ValueError):
            return False  # pyarrow reports the damage when it reads the file
        return all(w in self._checked.get(m, ()) for m, w in wrapped if m in self._checked)

    # -- pseudonyms ----------------------------------------------------------------------
    def pseudonymise(self, ids: Sequence[str]) -> list[str]:
        """Keyed HMAC-SHA256 (Transit ``hmac``, key version 1) of each sample id, as hex.

        The key never leaves Vault. The version is pinned so that rotating the pseudonym key
        does not change pseudonyms; never raise that key's ``min_encryption_version``.
        """
        if not ids:
            return []
        name = self.keys.pseudonym
        path = f"/v1/{TRANSIT_MOUNT}/hmac/{name}/sha2-256"
        step = 200  # OpenBao refuses JSON bodies with more than ~1000 strings
        bodies = [json.dumps({"batch_input": [
            {"input": b64_text(i)}
            for i in ids[start:start + step]], "key_version": PSEUDONYM_KEY_VERSION}).encode()
            for start in range(0, len(ids), step)]

        def digests(answer: dict[str, Any]) -> list[str]:
            results = answer["data"]["batch_results"]
            if any("error" in r for r in results):
                raise VaultError(f"Vault Transit hmac with key '{name}' failed for "
                                 "some inputs")
            # "vault:v1:<base64>" -> the digest as lowercase hex (always key version 1)
            return [base64.b64decode(r["hmac"].split(":", 2)[2]).hex() for r in results]

        def answer(i: int, status: int, body: bytes) -> list[str]:
            raise_for_status("POST", path, status, body)
            try:
                return digests(json.loads(body))
            except (ValueError, KeyError, TypeError, IndexError, VaultError) as e:
                # reported the way a pipelined call reports a failure (an hvac exception)
                raise hvac.exceptions.UnexpectedError(
                    f"Vault Transit hmac with key '{name}': unexpected answer ({e})") from None

        def call() -> list[str]:
            # HMAC is a pure function of key and input: a retry sends every chunk again
            if len(bodies) == 1:
                return digests(self._client.adapter.post(path, json=json.loads(bodies[0])))
            answers, failure = send_all(self._client, [("POST", path, b) for b in bodies],
                                        answer, window=4)
            if failure is not None:
                raise failure
            return [d for chunk in answers for d in (chunk or [])]

        out = _retrying(call, "hmac", name)
        if len(out) != len(ids):
            raise VaultError(f"Vault Transit hmac with key '{name}' answered {len(out)} "
                             f"digests for {len(ids)} inputs")
        return out
