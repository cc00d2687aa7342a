"""The sample registry: which pseudonyms a dataset holds, known to Vault and to nobody else.

Duplicate samples must be refused at ingest, but the pipeline must not be able to *read* the
list of pseudonyms (with its HMAC right it could link guessed ids to them offline). So the
list lives in a KV version 1 mount, ``genovault-registry/<dataset>/<uid>/<pseudonym>`` (``uid``
names one incarnation of the dataset, see the manifest), where the
dataset's ingest policy grants ``create`` and ``delete`` but neither ``read`` nor ``list``:

* creating an entry that does not exist succeeds; creating one that exists needs ``update``
  and is refused with 403 — that refusal *is* the duplicate check, done by Vault;
* the pipeline learns only about the ids of its own input, one audited request each;
* ``delete`` lets a failed ingest release what it registered (deleting a missing entry is a
  silent no-op, so it tells nothing either).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import hvac
import hvac.exceptions
import requests

from vault.ids import check_dataset_id
from vault.keys.errors import map_error

REGISTRY_MOUNT = "genovault-registry"


def _hex(text: str) -> str:
    if not text or not all(c in "0123456789abcdef" for c in text):
        raise ValueError("registry paths are made of lowercase hex ids")
    return text


def _path(dataset: str, uid: str, pseudonym: str) -> str:
    return f"/v1/{REGISTRY_MOUNT}/{check_dataset_id(dataset)}/{_hex(uid)}/{_hex(pseudonym)}"


#: concurrent requests to Vault (one KV request per sample: 5,000 samples one after the
#: other cost seconds of round trips)
PARALLEL = 8


def _each(client: hvac.Client, items: Sequence[str], what: str,
          call: Callable[[hvac.Client, str], bool]) -> list[int]:
    """Run ``call(worker_client, item)`` for every item on PARALLEL threads (one hvac client
    per thread, same token); return the indices for which it returned True, in order."""
    if not items:
        return []
    local = threading.local()

    def worker_client() -> hvac.Client:
        if not hasattr(local, "client"):
            local.client = hvac.Client(url=client.url, token=client.token, timeout=10)
        return local.client

    def one(i: int) -> bool:
        try:
            return call(worker_client(), items[i])
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, what, addr=client.url) from e

    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(items)),
                            thread_name_prefix="genovault-registry") as pool:
        hits = list(pool.map(one, range(len(items))))
    return [i for i, hit in enumerate(hits) if hit]


def register(client: hvac.Client, dataset: str, uid: str,
             pseudonyms: Sequence[str]) -> list[int]:
    """Create an entry per pseudonym; return the indices that were already registered."""
    paths = [_path(dataset, uid, p) for p in pseudonyms]

    def create(c: hvac.Client, path: str) -> bool:
        try:
            c.adapter.post(path, json={"registered": "1"})
        except hvac.exceptions.Forbidden:
            return True
        return False

    return _each(client, paths, f"registering samples of dataset {dataset!r}", create)


def release(client: hvac.Client, dataset: str, uid: str, pseudonyms: Sequence[str]) -> None:
    """Delete the entries of ``pseudonyms`` (after a failed ingest; missing ones are fine)."""
    paths = [_path(dataset, uid, p) for p in pseudonyms]

    def delete(c: hvac.Client, path: str) -> bool:
        c.adapter.delete(path)
        return False

    _each(client, paths, f"releasing samples of dataset {dataset!r}", delete)
