"""The audit chain head (last seq and hash) kept in a Vault KV version 1 entry.

The audit log (vault/audit) writes the head after every record, under its lock; ``genovault
audit verify`` reads it back. Someone who can rewrite the log file but not this entry cannot
truncate or extend the log unnoticed. Least privilege (policies written by the bootstrap):
the query service needs ``create``/``update`` on ``genovault-audit/chain/head``, an auditor
only ``read``.
"""

from __future__ import annotations

import re

import hvac
import hvac.exceptions
import requests

from vault.errors import IntegrityError
from vault.keys.errors import map_error

AUDIT_MOUNT = "genovault-audit"
AUDIT_HEAD_PATH = "chain/head"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class VaultKvAnchor:
    """An :class:`vault.audit.anchor.Anchor` over ``<mount>/<path>`` in a KV v1 mount."""

    def __init__(self, client: hvac.Client, mount: str = AUDIT_MOUNT,
                 path: str = AUDIT_HEAD_PATH) -> None:
        if not _PATH.match(mount) or "/" in mount or not _PATH.match(path):
            raise ValueError("anchor mount and path are made of [A-Za-z0-9_-] parts")
        self.client = client
        self.mount = mount
        self.path = path

    def __repr__(self) -> str:
        return f"VaultKvAnchor({self.mount}/{self.path} at {self.client.url})"

    def read(self) -> tuple[int, str] | None:
        """The anchored ``(seq, hash)``, or None if nothing was anchored yet."""
        try:
            resp = self.client.secrets.kv.v1.read_secret(path=self.path,
                                                         mount_point=self.mount)
        except hvac.exceptions.InvalidPath:
            return None
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"reading the audit chain anchor {self.mount}/{self.path}",
                            addr=self.client.url,
                            advice="the token needs read on the audit anchor (an auditor or "
                                   "the query service token)") from e
        data = (resp or {}).get("data") or {}
        seq, digest = data.get("seq"), data.get("hash")
        try:
            seq = int(seq) if isinstance(seq, int | str) and not isinstance(seq, bool) else -1
        except ValueError:
            seq = -1
        if seq < 1 or not isinstance(digest, str) or not _HEX64.match(digest):
            raise IntegrityError(f"the audit chain anchor {self.mount}/{self.path} is "
                                 "malformed (no valid seq and hash): it was written outside "
                                 "GenoVault")
        return seq, digest

    def write(self, seq: int, hash: str) -> None:
        """Anchor ``(seq, hash)`` as the chain head."""
        if seq < 1 or not _HEX64.match(hash):
            raise ValueError("an anchor is a seq >= 1 and a sha256 hex digest")
        try:
            self.client.secrets.kv.v1.create_or_update_secret(
                path=self.path, secret={"seq": seq, "hash": hash}, mount_point=self.mount)
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"writing the audit chain anchor {self.mount}/{self.path}",
                            addr=self.client.url,
                            advice="the token needs create/update on the audit anchor (the "
                                   "query service token)") from e
