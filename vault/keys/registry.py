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
from dataclasses import dataclass, field

import hvac
import hvac.exceptions
import requests

from vault.errors import GenoVaultError
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
          call: Callable[[hvac.Client, str], bool],
          stop: threading.Event | None = None) -> tuple[list[bool | None], GenoVaultError | None]:
    """Run ``call(worker_client, item)`` for every item on PARALLEL threads (one hvac client
    per thread, same token). Returns each item's answer and the first Vault failure: after a
    failure, or once ``stop`` is set, the remaining items are skipped. An item's answer is
    None when it was skipped or its request failed (then nobody knows whether Vault did it)."""
    answers: list[bool | None] = [None] * len(items)
    if not items:
        return answers, None
    local = threading.local()
    failures: list[GenoVaultError] = []
    failed = threading.Event()

    def worker_client() -> hvac.Client:
        if not hasattr(local, "client"):
            local.client = hvac.Client(url=client.url, token=client.token, timeout=10)
        return local.client

    def one(i: int) -> None:
        if failed.is_set() or (stop is not None and stop.is_set()):
            return
        try:
            answers[i] = call(worker_client(), items[i])
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            err = map_error(e, what, addr=client.url)
            err.__cause__ = e
            failures.append(err)
            failed.set()

    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(items)),
                            thread_name_prefix="genovault-registry") as pool:
        list(pool.map(one, range(len(items))))
    return answers, (failures[0] if failures else None)


@dataclass
class Outcome:
    """What a registration did, entry by entry (see :func:`create_entries`)."""

    n: int
    #: indices this call created
    created: list[int] = field(default_factory=list)
    #: indices Vault refused because they were registered already (duplicates)
    present: list[int] = field(default_factory=list)
    #: the first failed request; the items after it were skipped
    error: GenoVaultError | None = None

    @property
    def complete(self) -> bool:
        """Every item answered (none skipped, none failed)."""
        return len(self.created) + len(self.present) == self.n


def create_entries(client: hvac.Client, dataset: str, uid: str, pseudonyms: Sequence[str],
                   stop: threading.Event | None = None) -> Outcome:
    """Create an entry per pseudonym and say, per index, whether it was created or was there.

    Never raises for Vault trouble (it is in ``error``): the caller needs the indices it did
    create to release them. ``stop`` set by another thread skips the items not yet sent."""
    paths = [_path(dataset, uid, p) for p in pseudonyms]

    def create(c: hvac.Client, path: str) -> bool:
        try:
            c.adapter.post(path, json={"registered": "1"})
        except hvac.exceptions.Forbidden:
            return True
        return False

    answers, error = _each(client, paths, f"registering samples of dataset {dataset!r}",
                           create, stop)
    out = Outcome(len(paths), error=error)
    for i, present in enumerate(answers):
        if present is not None:
            (out.present if present else out.created).append(i)
    return out


def register(client: hvac.Client, dataset: str, uid: str,
             pseudonyms: Sequence[str]) -> list[int]:
    """Create an entry per pseudonym; return the indices that were already registered."""
    out = create_entries(client, dataset, uid, pseudonyms)
    if out.error is not None:
        raise out.error
    return out.present


def release(client: hvac.Client, dataset: str, uid: str, pseudonyms: Sequence[str]) -> None:
    """Delete the entries of ``pseudonyms`` (after a failed ingest; missing ones are fine)."""
    paths = [_path(dataset, uid, p) for p in pseudonyms]

    def delete(c: hvac.Client, path: str) -> bool:
        c.adapter.delete(path)
        return False

    _, error = _each(client, paths, f"releasing samples of dataset {dataset!r}", delete)
    if error is not None:
        raise error
