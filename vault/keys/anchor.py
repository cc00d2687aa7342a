"""The audit chain head (last seq and hash) kept in a Vault KV version 1 entry.

The audit log (vault/audit) writes the head after every record, under its lock; ``genovault
audit verify`` reads it back. Someone who can rewrite the log file but not this entry cannot
truncate or extend the log unnoticed. Least privilege (policies written by the bootstrap):
the query service needs ``create``/``update`` on ``genovault-audit/chain/head``, an auditor
only ``read``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import urllib.parse
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import IntegrityError
from vault.keys.errors import map_error
from vault.keys.pipelined import proxied, ssl_context

AUDIT_MOUNT = "genovault-audit"
AUDIT_HEAD_PATH = "chain/head"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class _KeepAlivePut:
    """PUT requests over one kept-alive ``http.client`` connection, with the hvac client's
    address, token, namespace and TLS settings (those of vault.keys.pipelined, which does the
    same for the registry). The anchor is written once per audited
    request; through hvac + requests + urllib3 that costs about 1.5 ms on loopback, through
    this about 0.6 ms (Vault's own work included). Any failure returns False and the caller
    takes the hvac path, whose errors are the ones reported."""

    def __init__(self, client: hvac.Client) -> None:
        self.client = client
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._direct = not proxied(client)  # through a proxy: hvac's path only

    def _connect(self) -> http.client.HTTPConnection:
        url = urllib.parse.urlsplit(self.client.url)
        kw: dict[str, Any] = getattr(self.client.adapter, "_kwargs", {}) or {}
        timeout = float(kw.get("timeout") or 10)
        if url.scheme == "https":
            return http.client.HTTPSConnection(url.hostname or "", url.port or 443,
                                               timeout=timeout,
                                               context=ssl_context(self.client))
        return http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=timeout)

    def put(self, api_path: str, data: dict[str, Any]) -> bool:
        token = self.client.token
        if not token or not self._direct:
            return False
        headers = {"X-Vault-Token": token, "Content-Type": "application/json",
                   "X-Vault-Request": "true"}
        namespace = getattr(self.client.adapter, "namespace", None)
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        body = json.dumps(data).encode()
        base = urllib.parse.urlsplit(self.client.url).path.rstrip("/")
        with self._lock:
            for _attempt in range(2):  # a kept-alive connection the server closed: once more
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    self._conn.request("PUT", f"{base}/v1/{api_path}", body=body,
                                       headers=headers)
                    resp = self._conn.getresponse()
                    resp.read()
                    return resp.status in (200, 204)
                except (OSError, http.client.HTTPException):
                    self.close_locked()
            return False

    def close_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()

    def __del__(self) -> None:  # an anchor dropped with its log closes its socket
        self.close_locked()


class VaultKvAnchor:
    """An :class:`vault.audit.anchor.Anchor` over ``<mount>/<path>`` in a KV v1 mount."""

    def __init__(self, client: hvac.Client, mount: str = AUDIT_MOUNT,
                 path: str = AUDIT_HEAD_PATH) -> None:
        if not _PATH.match(mount) or "/" in mount or not _PATH.match(path):
            raise ValueError("anchor mount and path are made of [A-Za-z0-9_-] parts")
        self.client = client
        self.mount = mount
        self.path = path
        self._fast = _KeepAlivePut(client)

    def __repr__(self) -> str:
        return f"VaultKvAnchor({self.mount}/{self.path} at {self.client.url})"

    def close(self) -> None:
        """Close the kept-alive connection (a later write opens a new one)."""
        self._fast.close()

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
        # the same idempotent PUT, first over a kept-alive connection; on any failure
        # (refused, sealed, unreachable) through hvac, which maps the error
        if self._fast.put(f"{self.mount}/{self.path}", {"seq": seq, "hash": hash}):
            return
        try:
            # method="PUT": without it hvac first reads the entry to choose between POST and
            # PUT (a second round trip on every audit record)
            self.client.secrets.kv.v1.create_or_update_secret(
                path=self.path, secret={"seq": seq, "hash": hash}, method="PUT",
                mount_point=self.mount)
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"writing the audit chain anchor {self.mount}/{self.path}",
                            addr=self.client.url,
                            advice="the token needs create/update on the audit anchor (the "
                                   "query service token)") from e
