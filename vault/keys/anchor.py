"""Counters anchored in Vault KV version 2, whose version number is the counter itself.

Two things are anchored outside what they protect: the audit log's chain head (vault/audit,
``<ANCHOR_MOUNT>/audit/<path>``) and each dataset's manifest version
(vault/keys/signing.py, ``<ANCHOR_MOUNT>/manifest/<dataset>``). Both are entries of the KV v2
mount ``genovault-anchors`` with one invariant (:class:`CasEntry`):

* **the entry's KV version equals the counter it holds** (the audit record's ``seq``, the
  manifest's ``version``): record *n* is anchored by a write with ``options.cas = n - 1``,
  which Vault accepts only if the entry is at version *n - 1*; the mount requires ``cas`` on
  every write (``cas_required``);
* KV v2 version numbers only grow. Every identity that writes anchors (query service,
  admin, ingest) has ``create``/``update``/``read`` on ``<mount>/data/...`` and **nothing**
  on ``metadata/``, ``delete/``, ``destroy/``, ``undelete/`` or the mount's ``config``, and no
  ``delete``/``patch`` on ``data/``: so nobody but root can rewind the counter, delete the
  current version, or change ``max_versions``. A writer who truncates the log and writes
  the shorter head either fails the CAS, or writes version *v + 1* that claims another seq
  (:meth:`CasEntry.read` refuses it), or anchors seq *v + 1* at version *v + 1*, which a log
  of fewer records does not reach (``audit verify`` reports the truncation).
* Old versions may be pruned (``max_versions``); only the current one is needed. The ones
  still kept let ``audit verify`` check recent records against what was anchored when they
  were written (a tail replaced by forged records of the same length is caught within that
  window).

Entries written before (KV v1: ``genovault-audit/<path>``, ``genovault-lifecycle/manifest/
<dataset>``) are *legacy*: bootstrap takes every write right on them away, so they are frozen,
and they are still read: an anchor is the higher of the two. See docs/audit.md (adoption of
an old log: ``genovault audit adopt-anchor``) and docs/lifecycle.md.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import IntegrityError
from vault.keys.errors import map_error
from vault.keys.names import ANCHOR_MOUNT, AUDIT_MOUNT
from vault.keys.pipelined import proxied, ssl_context

__all__ = ["ANCHOR_MAX_VERSIONS", "ANCHOR_MOUNT", "AUDIT_HEAD_PATH", "AUDIT_MOUNT",
           "AUDIT_PREFIX", "AnchorConflict", "CasEntry", "VaultKvAnchor"]

#: Path of the query service's chain head below ``<ANCHOR_MOUNT>/audit/`` (and, legacy, in
#: the KV v1 mount ``genovault-audit``).
AUDIT_HEAD_PATH = "chain/head"
#: Audit chain heads live below this prefix of the anchor mount.
AUDIT_PREFIX = "audit"
#: Versions the anchor mount keeps per entry (older ones are pruned by Vault).
ANCHOR_MAX_VERSIONS = 32

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_CAS_MISMATCH = "check-and-set parameter did not match"


class AnchorConflict(IntegrityError):
    """The anchor is not at the version this write expects (check-and-set refused): another
    writer anchored concurrently, or the entry was moved outside GenoVault."""


class _KeepAlivePut:
    """Writes over one kept-alive ``http.client`` connection, with the hvac client's
    address, token, namespace and TLS settings (those of vault.keys.pipelined, which does the
    same for the registry). The anchor is written once per audited
    request; through hvac + requests + urllib3 that costs about 1.5 ms on loopback, through
    this about 0.6 ms (Vault's own work included). Any failure returns None and the caller
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

    def put(self, api_path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON answer of a successful PUT (``{}`` for 204), else None."""
        token = self.client.token
        if not token or not self._direct:
            return None
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
                    raw = resp.read()
                    if resp.status not in (200, 204):
                        return None
                    try:
                        answer = json.loads(raw) if raw else {}
                    except ValueError:
                        return None
                    return answer if isinstance(answer, dict) else None
                except (OSError, http.client.HTTPException):
                    self.close_locked()
            return None

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


def _is_cas_mismatch(exc: BaseException) -> bool:
    return isinstance(exc, hvac.exceptions.InvalidRequest) and _CAS_MISMATCH in str(exc)


class CasEntry:
    """One KV v2 entry ``<mount>/data/<key>`` whose KV version equals ``data[field]``.

    ``what`` names the entry in errors; ``advice_read``/``advice_write`` say which token
    rights are needed.
    """

    def __init__(self, client: hvac.Client, key: str, field: str, *, what: str,
                 mount: str = ANCHOR_MOUNT, advice_read: str = "",
                 advice_write: str = "") -> None:
        if not _PATH.match(mount) or "/" in mount or not _PATH.match(key):
            raise ValueError("anchor mount and path are made of [A-Za-z0-9_-] parts")
        self.client = client
        self.mount = mount
        self.key = key
        self.field = field
        self.what = what
        self.advice_read = advice_read
        self.advice_write = advice_write
        self._fast = _KeepAlivePut(client)

    @property
    def where(self) -> str:
        return f"{self.mount}/{self.key}"

    def close(self) -> None:
        self._fast.close()

    def _get(self, version: int | None = None) -> dict[str, Any] | None:
        url = f"/v1/{self.mount}/data/{self.key}"
        try:
            resp = self.client.adapter.get(url, params={"version": version} if version else None)
        except hvac.exceptions.InvalidPath:
            return None
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"reading {self.what} {self.where}", addr=self.client.url,
                            advice=self.advice_read) from e
        body = (resp or {}).get("data") if isinstance(resp, dict) else None
        return body if isinstance(body, dict) else None

    def _checked(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data, meta = body.get("data"), body.get("metadata") or {}
        version = meta.get("version")
        value = data.get(self.field) if isinstance(data, dict) else None
        if (not isinstance(data, dict) or not isinstance(version, int)
                or not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise IntegrityError(f"{self.what} {self.where} is malformed (no valid "
                                 f"{self.field}): it was written outside GenoVault")
        if value != version:
            raise IntegrityError(
                f"{self.what} {self.where} is at KV version {version} but claims "
                f"{self.field} {value}: it was rewritten outside GenoVault (an anchor's "
                "version number is its counter, which only grows)")
        return value, data

    def read(self) -> tuple[int, dict[str, Any]] | None:
        """``(counter, data)`` of the current version, or None if nothing was anchored yet.
        Raises IntegrityError if the entry breaks the invariant."""
        body = self._get()
        return None if body is None else self._checked(body)

    def history(self, current: int, limit: int = ANCHOR_MAX_VERSIONS
                ) -> list[tuple[int, dict[str, Any]]]:
        """The versions before ``current`` that Vault still keeps, newest first (at most
        ``limit``; the first pruned or deleted one ends the list)."""
        out: list[tuple[int, dict[str, Any]]] = []
        for version in range(current - 1, max(0, current - 1 - limit), -1):
            body = self._get(version)
            if body is None or body.get("data") is None:
                break
            out.append(self._checked(body))
        return out

    def write(self, value: int, data: dict[str, Any]) -> None:
        """Anchor ``data`` (whose ``field`` is ``value``) as version ``value``: check-and-set
        on version ``value - 1``. Raises AnchorConflict if the entry is elsewhere."""
        if data.get(self.field) != value or value < 1:
            raise ValueError(f"an anchor's {self.field} is its KV version (>= 1)")
        body = {"options": {"cas": value - 1}, "data": data}
        answer = self._fast.put(f"{self.mount}/data/{self.key}", body)
        if answer is None:
            try:
                # the same write through hvac, which maps the error
                answer = self.client.adapter.post(f"/v1/{self.mount}/data/{self.key}",
                                                  json=body)
            except hvac.exceptions.InvalidRequest as e:
                if _is_cas_mismatch(e):
                    raise AnchorConflict(
                        f"{self.what} {self.where} is not at version {value - 1}: another "
                        f"writer anchored {self.field} {value - 1} or later meanwhile, or the "
                        "entry was moved outside GenoVault; refusing to anchor "
                        f"{self.field} {value}") from None
                raise map_error(e, f"writing {self.what} {self.where}", addr=self.client.url,
                                advice=self.advice_write) from e
            except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
                raise map_error(e, f"writing {self.what} {self.where}", addr=self.client.url,
                                advice=self.advice_write) from e
        got = ((answer or {}).get("data") or {}).get("version") if isinstance(answer, dict) \
            else None
        if got != value:
            raise IntegrityError(f"{self.what} {self.where}: Vault stored version {got}, "
                                 f"not {value}: is the mount KV version 2?")

    def fill(self, upto: int, data_of: Callable[[int], dict[str, Any]]) -> int:
        """Write versions ``current + 1 .. upto`` (``data_of(n)`` each): adopting a counter
        that was anchored the old way. Resumable; returns how many versions were written."""
        cur = self.read()
        n = 0
        for version in range((cur[0] if cur else 0) + 1, upto + 1):
            self.write(version, data_of(version))
            n += 1
        return n

    def reset(self) -> None:
        """Delete the entry and all its versions (``metadata`` delete: **root only**; no
        GenoVault policy allows it). The counter restarts at 1: recovery and tests."""
        try:
            self.client.adapter.delete(f"/v1/{self.mount}/metadata/{self.key}")
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise map_error(e, f"deleting {self.what} {self.where}", addr=self.client.url,
                            advice="only root (or a bootstrap operator) may delete an "
                                   "anchor's history") from e


def read_legacy(client: hvac.Client, mount: str, path: str, what: str, advice: str
                ) -> dict[str, Any] | None:
    """A KV v1 entry written before anchors moved to KV v2 (None if absent)."""
    try:
        resp = client.secrets.kv.v1.read_secret(path=path, mount_point=mount)
    except hvac.exceptions.InvalidPath:
        return None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"reading {what} {mount}/{path}", addr=client.url,
                        advice=advice) from e
    data = (resp or {}).get("data")
    return data if isinstance(data, dict) else {}


def _head_of(data: dict[str, Any], where: str) -> tuple[int, str]:
    seq, digest = data.get("seq"), data.get("hash")
    try:
        seq = int(seq) if isinstance(seq, int | str) and not isinstance(seq, bool) else -1
    except ValueError:
        seq = -1
    if seq < 1 or not isinstance(digest, str) or not _HEX64.match(digest):
        raise IntegrityError(f"the audit chain anchor {where} is malformed (no valid seq and "
                             "hash): it was written outside GenoVault")
    return seq, digest


class VaultKvAnchor:
    """An :class:`vault.audit.anchor.Anchor`: the chain head in ``<mount>/audit/<path>`` (KV
    v2, version = seq), also honouring a legacy KV v1 head at ``genovault-audit/<path>``.

    While the legacy head is ahead of the KV v2 entry (an old log not adopted yet) reads
    return the legacy head and writes are refused: `genovault audit adopt-anchor` first.
    """

    def __init__(self, client: hvac.Client, mount: str = ANCHOR_MOUNT,
                 path: str = AUDIT_HEAD_PATH, legacy_mount: str = AUDIT_MOUNT) -> None:
        if not _PATH.match(path) or not _PATH.match(legacy_mount) or "/" in legacy_mount:
            raise ValueError("anchor mount and path are made of [A-Za-z0-9_-] parts")
        self.client = client
        self.mount = mount
        self.path = path
        self.legacy_mount = legacy_mount
        self.entry = CasEntry(
            client, f"{AUDIT_PREFIX}/{path}", "seq", what="the audit chain anchor",
            mount=mount,
            advice_read="the token needs read on the audit anchor (an auditor or the query "
                        "service token)",
            advice_write="the token needs create/update on the audit anchor (the query "
                         "service token)")
        self._legacy: tuple[int, str] | bool | None = False  # False: not read yet
        self.legacy_ahead = False

    def __repr__(self) -> str:
        return f"VaultKvAnchor({self.mount}/{self.entry.key} at {self.client.url})"

    @property
    def where(self) -> str:
        return self.entry.where

    def close(self) -> None:
        """Close the kept-alive connection (a later write opens a new one)."""
        self.entry.close()

    def legacy(self) -> tuple[int, str] | None:
        """The old KV v1 head (read once: nobody may write it any more), or None."""
        if self._legacy is False:
            data = read_legacy(self.client, self.legacy_mount, self.path,
                               "the legacy audit chain anchor",
                               "the token needs read on the audit anchor (an auditor or the "
                               "query service token)")
            self._legacy = None if data is None else _head_of(
                data, f"{self.legacy_mount}/{self.path}")
        return self._legacy if isinstance(self._legacy, tuple) else None

    def read(self) -> tuple[int, str] | None:
        """The anchored ``(seq, hash)``, or None if nothing was anchored yet."""
        cur = self.entry.read()
        head = None if cur is None else _head_of(cur[1], self.where)
        old = self.legacy()
        self.legacy_ahead = old is not None and (head is None or head[0] < old[0])
        if old is not None and head is not None and head[0] == old[0] and head != old:
            raise IntegrityError(f"the audit chain anchor {self.where} and the legacy anchor "
                                 f"{self.legacy_mount}/{self.path} disagree about seq "
                                 f"{old[0]}: one was written outside GenoVault")
        return old if self.legacy_ahead else head

    def history(self, limit: int = ANCHOR_MAX_VERSIONS) -> list[tuple[int, str]]:
        """Heads anchored before the current one that Vault still keeps, newest first."""
        cur = self.entry.read()
        if cur is None:
            return []
        return [_head_of(d, self.where) for _v, d in self.entry.history(cur[0], limit)]

    def write(self, seq: int, hash: str) -> None:
        """Anchor ``(seq, hash)`` as the chain head (KV version ``seq``)."""
        if seq < 1 or not _HEX64.match(hash):
            raise ValueError("an anchor is a seq >= 1 and a sha256 hex digest")
        old = self.legacy()
        if old is not None and (seq <= old[0] or self.legacy_ahead):
            raise IntegrityError(
                f"this audit log is anchored the old way ({self.legacy_mount}/{self.path}, "
                f"KV v1, head seq {old[0]}): an admin adopts it with `genovault audit "
                "adopt-anchor` before anything more is appended")
        self.entry.write(seq, {"seq": seq, "hash": hash})

    def adopt(self, hashes: list[str]) -> int:
        """Anchor ``hashes`` (the verified log's record hashes, seq 1..n) as versions 1..n,
        resuming after the current version. Returns how many versions were written."""
        cur = self.entry.read()
        if cur is not None:
            seq, digest = _head_of(cur[1], self.where)
            if seq > len(hashes) or hashes[seq - 1] != digest:
                raise IntegrityError(
                    f"{self.where} already anchors seq {seq} with a hash this log does not "
                    "have there: it was written outside GenoVault; root removes it "
                    "(`bao kv metadata delete`) before the log is adopted")
        return self.entry.fill(len(hashes), lambda s: {"seq": s, "hash": hashes[s - 1]})

    def reset(self) -> None:
        """Root only: delete the head and its history (a new chain starts at seq 1)."""
        self.entry.reset()
