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

from collections.abc import Sequence

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


def register(client: hvac.Client, dataset: str, uid: str,
             pseudonyms: Sequence[str]) -> list[int]:
    """Create an entry per pseudonym; return the indices that were already registered."""
    present: list[int] = []
    for i, p in enumerate(pseudonyms):
        try:
            client.adapter.post(_path(dataset, uid, p), json={"registered": "1"})
        except hvac.exceptions.Forbidden:
            present.append(i)
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"registering samples of dataset {dataset!r}",
                            addr=client.url) from e
    return present


def release(client: hvac.Client, dataset: str, uid: str, pseudonyms: Sequence[str]) -> None:
    """Delete the entries of ``pseudonyms`` (after a failed ingest; missing ones are fine)."""
    for p in pseudonyms:
        try:
            client.adapter.delete(_path(dataset, uid, p))
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"releasing samples of dataset {dataset!r}",
                            addr=client.url) from e
