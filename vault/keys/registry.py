"""The sample registry: which pseudonyms a dataset holds, known to Vault and to nobody else.

Duplicate samples must be refused at ingest, but the pipeline must not be able to *read* the
list of pseudonyms (with its HMAC right it could link guessed ids to them offline). So the
list lives in a KV version 1 mount, ``genovault-registry/<dataset>/<uid>/<pseudonym>`` (``uid``
names one incarnation of the dataset, see the manifest), where the
dataset's ingest policy grants ``create`` and ``delete`` but neither ``read`` nor ``list``:

* creating an entry that does not exist succeeds; creating one that exists needs ``update``
  and is refused with 403 — that refusal *is* the duplicate check, done by Vault;
* the pipeline learns only about the ids of its own input, one audited request each
  (sent pipelined over two keep-alive connections, vault.keys.pipelined: the requests and the
  policy are the same, only the client's cost per request is lower);
* ``delete`` lets a failed ingest release what it registered (deleting a missing entry is a
  silent no-op, so it tells nothing either).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import hvac

from vault.errors import GenoVaultError
from vault.ids import check_dataset_id
from vault.keys import pipelined
from vault.keys.errors import map_error

REGISTRY_MOUNT = "genovault-registry"


def _hex(text: str) -> str:
    if not text or not all(c in "0123456789abcdef" for c in text):
        raise ValueError("registry paths are made of lowercase hex ids")
    return text


def _path(dataset: str, uid: str, pseudonym: str) -> str:
    return f"/v1/{REGISTRY_MOUNT}/{check_dataset_id(dataset)}/{_hex(uid)}/{_hex(pseudonym)}"


#: the body of an entry (its path is what counts)
_ENTRY = b'{"registered":"1"}'


def _each(client: hvac.Client, method: str, paths: Sequence[str], what: str,
          answer: Callable[[int, bytes], bool],
          stop: threading.Event | None = None) -> tuple[list[bool | None], GenoVaultError | None]:
    """Send ``method`` to every path (pipelined, vault.keys.pipelined) and turn each response
    status into an answer with ``answer(status, body)`` (which raises for a failed request).

    Returns each path's answer and the first Vault failure: after a failure, or once ``stop``
    is set, the requests not yet sent are skipped. An answer is None when its request was
    skipped or failed (then nobody knows whether Vault did it)."""
    body = _ENTRY if method == "POST" else b""
    answers, exc = pipelined.send_all(client, [(method, p, body) for p in paths],
                                      lambda _i, status, data: answer(status, data), stop)
    if exc is None:
        return answers, None
    err = map_error(exc, what, addr=client.url)
    err.__cause__ = exc
    return answers, err


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

    def created_or_present(status: int, body: bytes) -> bool:
        if status == 403:  # creating an existing entry needs ``update``: a duplicate
            return True
        pipelined.raise_for_status("POST", "registry entry", status, body)
        return False

    answers, error = _each(client, "POST", paths,
                           f"registering samples of dataset {dataset!r}", created_or_present,
                           stop)
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

    def deleted(status: int, body: bytes) -> bool:
        pipelined.raise_for_status("DELETE", "registry entry", status, body)
        return False

    _, error = _each(client, "DELETE", paths, f"releasing samples of dataset {dataset!r}",
                     deleted)
    if error is not None:
        raise error
