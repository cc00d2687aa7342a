"""The append-only, hash-chained audit log (JSON Lines).

Design (see docs/audit.md):

* One record per request: :meth:`AuditLog.append` writes a ``complete`` record (principal,
  request, decision, outcome) under the ``query_id`` the answer carries, *before* the answer
  is sent — what the API does for every request. The two-phase form is there too:
  :meth:`AuditLog.begin` writes a ``request`` record before any work runs and
  :meth:`AuditLog.finish` its ``response`` record (same ``query_id``) before the answer is
  sent. Each call returns only once the line is on disk
  (fsync) and the chain head is anchored; any failure raises :class:`AuditError` and the caller
  must not answer (HTTP 503). That is fail-closed: no answer leaves without its record.
* Every record carries ``seq`` (1, 2, …), ``prev`` (the ``hash`` of the record before it, 64
  zeros for the first) and ``hash`` (sha256 of its own canonical JSON -- sorted keys,
  compact -- without ``hash``). The line holds the same JSON with the log's fields first
  and ``hash`` last (:func:`~vault.audit.record.line_of`), so ``prev`` covers the whole
  previous line.
* Threads and processes append to the same file: a ``threading.Lock`` and ``fcntl.flock`` on
  ``<log>.lock`` cover "read tail, write line, fsync, write anchor". The tail (seq, hash) is
  cached with the file's inode, size and mtime; if another writer changed the file, the last
  line is read again (never the whole file) and checked against the anchor: a log that was
  truncated or extended behind the writer's back is never silently continued
  (:class:`AuditTamperError`).
* The payload is checked and serialised (canonical JSON per field) before the lock is
  taken; under the lock only the header (seq, time, prev) is added, the hash taken and the
  line assembled from those parts (:func:`~vault.audit.record.encode_record`). The log file
  stays open between appends (``O_APPEND``) and is reopened when the path's inode is not the
  open file's (replaced or deleted). It is opened ``O_SYNC``: the write returns once the line
  and the file's metadata are on disk, as write + fsync would, in one system call. So an
  append costs a stat, the lock, one synchronous write and the anchor write: every system
  call inside the serialised section is one more wait for the interpreter lock when the
  process is busy.
* A failed write rolls the file back to its size before the append (under the lock, so
  nobody else has written since), then raises.
* An anchor update refused for certain (the anchor's own checks, Vault's check-and-set, a
  permission Vault denies) takes the line back like a failed write. One that is not
  confirmed (timed out, connection lost, Vault unavailable) leaves the
  line in place and raises :class:`AuditUnanchored`: the caller withholds the answer. The
  update may still reach Vault later, so rolling the line back could leave the anchor
  *ahead* of the log for good (a slow Vault did exactly that). A process killed between a
  line's fsync and its anchor update leaves the same state. Either way the log holds one
  record after the anchored head, chained to it, or the anchor caught up. The next writer
  (it holds the lock, so no other writer is in that window) anchors that record and names it
  in the ``recovered`` field of the record it writes next, instead of refusing every append
  from then on. Anything else that disagrees with the anchor is still refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import threading
import time as _time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.audit.anchor import Anchor
from vault.audit.errors import AuditError, AuditTamperError, AuditUnanchored
from vault.audit.record import (
    GENESIS,
    canonical,
    check_payload,
    encode_payload,
    encode_record,
    is_hex64,
    record_hash,
    utc_now,
)
from vault.errors import IntegrityError, VaultForbidden, VaultUnauthenticated

_FILE_MODE = 0o600
_DIR_MODE = 0o700


@dataclass
class AuditEntry:
    """A written record: its ``query_id`` (returned to the caller), ``seq`` and ``time``.
    ``begin()`` entries also keep their payload, which ``finish()`` repeats in the response
    record so each line stands on its own (Vault's response lines repeat auth and request)."""

    query_id: str
    seq: int
    time: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict, repr=False)
    finished: bool = False


@dataclass(frozen=True)
class AppendTiming:
    """What the appends of one :class:`AuditLog` have cost in wall time so far (monotonic,
    this process only): ``turns`` appends that took the turn (failed ones too), ``wait_s``
    spent waiting for it (the process's mutex and the file lock), ``hold_s`` spent holding
    it (chain, synchronous write, anchor). ``hold_s`` over elapsed time is how busy the one
    serial step is; ``wait_s`` over ``turns`` is what it adds to each request's latency."""

    turns: int = 0
    wait_s: float = 0.0
    hold_s: float = 0.0


@dataclass(frozen=True)
class _Tail:
    seq: int
    hash: str
    ino: int
    size: int
    mtime_ns: int


class AuditLog:
    """The audit log at ``path``, its chain head anchored in ``anchor``.

    ``anchor=None`` keeps only the in-file chain (edits, deletions and reordering are still
    detected; truncation of the tail is not): for unit tests, never for a served vault.
    """

    def __init__(self, path: Path, anchor: Anchor | None,
                 lock_timeout_s: float | None = None) -> None:
        self.path = Path(path)
        self.anchor = anchor
        #: how long an append waits for its turn (None: as long as it takes); then AuditError
        self.lock_timeout_s = lock_timeout_s
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._mutex = threading.Lock()
        self._tail: _Tail | None = None
        #: a record found unanchored after a crash and anchored: named in the next record
        self._recovered: dict[str, Any] | None = None
        self._last_query_id: str | None = None
        #: the log file, kept open between appends (O_APPEND), and its inode
        self._fd: int | None = None
        self._fd_ino = -1
        self._folder_ready = False
        self._timing = AppendTiming()

    @property
    def timing(self) -> AppendTiming:
        """Wall time spent waiting for and holding the append's turn (metrics)."""
        return self._timing

    def close(self) -> None:
        """Close the log file kept open between appends (the next append opens it again)."""
        with self._mutex:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._fd_ino = None, -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close_fd()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, anchor={type(self.anchor).__name__})"

    # --- the public API -----------------------------------------------------------------

    def begin(self, payload: dict[str, Any]) -> AuditEntry:
        """Write the ``request`` record before the work runs. Raises AuditError (do not run
        the request, answer 503) or ValueError (forbidden payload)."""
        check_payload(payload)
        payload = _copy(payload)
        query_id = new_query_id()
        seq, time = self._write("request", query_id, encode_payload(payload))
        return AuditEntry(query_id, seq, time, "request", payload)

    def finish(self, entry: AuditEntry, outcome: dict[str, Any]) -> AuditEntry:
        """Write the ``response`` record of ``entry`` before the answer is sent: the request's
        payload updated with ``outcome`` (disclosure, budget, result, error …). Raises
        AuditError (withhold the answer, answer 503) or ValueError."""
        if entry.type != "request":
            raise ValueError("finish() takes the entry returned by begin()")
        if entry.finished:
            raise ValueError(f"query {entry.query_id} already has its response record")
        check_payload(outcome)
        payload = {**entry.payload, **_copy(outcome)}
        seq, time = self._write("response", entry.query_id, encode_payload(payload))
        entry.finished = True
        return AuditEntry(entry.query_id, seq, time, "response")

    def append(self, payload: dict[str, Any], query_id: str | None = None) -> AuditEntry:
        """Write one ``complete`` record: a request's principal, request, decision and
        outcome in one line (the API writes one per request, before the answer leaves).
        ``query_id``: the id the request was computed under (:func:`new_query_id`), else a
        new one."""
        # checked and serialised here, before the lock: later changes by the caller cannot
        # alter the record, and the lock is held only to chain, write and anchor it
        fields = encode_payload(payload)
        if query_id is None:
            query_id = new_query_id()
        elif not (isinstance(query_id, str) and len(query_id) == 32
                  and all(c in "0123456789abcdef" for c in query_id)):
            raise ValueError("a query id is 32 lowercase hex digits (new_query_id())")
        seq, time = self._write("complete", query_id, fields)
        return AuditEntry(query_id, seq, time, "complete")

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record (``(0, 64 zeros)`` for an empty log), checked
        against the anchor like an append would."""
        with self._mutex, self._locked():
            tail = self._current_tail(self._stat())
            return tail.seq, tail.hash

    # --- internals ----------------------------------------------------------------------

    def _prepare_folder(self) -> None:
        folder = self.path.parent
        folder.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) & 0o077:
            folder.chmod(_DIR_MODE)
        self._folder_ready = True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            if not self._folder_ready:
                self._prepare_folder()
            try:
                fd = os.open(self.lock_path, flags, _FILE_MODE)
            except FileNotFoundError:  # the folder went away since: make it again
                self._prepare_folder()
                fd = os.open(self.lock_path, flags, _FILE_MODE)
        except OSError as exc:
            raise AuditError(f"cannot open the audit log lock {self.lock_path}: "
                             f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        timeout = -1 if self.lock_timeout_s is None else self.lock_timeout_s
        if not self._mutex.acquire(timeout=timeout):
            raise AuditError(f"the audit log {self.path} was busy for more than "
                             f"{self.lock_timeout_s:g} s (a slow anchor write?): nothing was "
                             "written")
        try:
            yield
        finally:
            self._mutex.release()

    def _log_fd(self, st: os.stat_result | None) -> tuple[int, int]:
        """The open log file (reopened if ``st``, the path's stat taken under the lock, shows
        another file or none) and its size before this append."""
        if self._fd is not None and st is not None and st.st_ino == self._fd_ino:
            return self._fd, st.st_size
        self._close_fd()
        try:
            self._prepare_folder()  # the folder's mode is checked whenever the file is opened
            # O_SYNC: each write returns once the line and the file's metadata are on disk
            # (POSIX synchronized I/O file integrity completion: what write + fsync give, in
            # one system call)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | os.O_SYNC, _FILE_MODE)
        except OSError as exc:
            raise AuditError(f"cannot open the audit log {self.path}: "
                             f"{exc.strerror or exc}") from exc
        try:
            fst = os.fstat(fd)
            if stat.S_IMODE(fst.st_mode) != _FILE_MODE:
                os.fchmod(fd, _FILE_MODE)
        except OSError as exc:
            os.close(fd)
            raise AuditError(f"cannot open the audit log {self.path}: "
                             f"{exc.strerror or exc}") from exc
        self._fd, self._fd_ino = fd, fst.st_ino
        return fd, fst.st_size

    def _write(self, rtype: str, query_id: str, fields: dict[str, str]) -> tuple[int, str]:
        """Chain, write, fsync and anchor one record of the serialised payload ``fields``
        (:func:`~vault.audit.record.encode_payload`)."""
        t_ask = _time.perf_counter()
        with self._turn(), self._locked():
            t_got = _time.perf_counter()
            try:
                return self._write_locked(rtype, query_id, fields)
            finally:
                t = self._timing  # replaced, never mutated: a reader sees one consistent value
                self._timing = AppendTiming(t.turns + 1, t.wait_s + (t_got - t_ask),
                                            t.hold_s + (_time.perf_counter() - t_got))

    def _write_locked(self, rtype: str, query_id: str,
                      fields: dict[str, str]) -> tuple[int, str]:
        st = self._stat()
        tail = self._current_tail(st)
        seq = tail.seq + 1
        time = utc_now()
        header = {"seq": seq, "time": time, "type": rtype, "query_id": query_id,
                  "prev": tail.hash}
        if self._recovered is not None:
            fields = {**fields, "recovered": canonical(self._recovered)}
        self._last_query_id = query_id
        digest, text = encode_record(header, fields)
        line = (text + "\n").encode("ascii")
        fd, size_before = self._log_fd(st)
        try:
            written = os.write(fd, line)  # durable when it returns (O_SYNC)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
        except OSError as exc:
            self._roll_back(fd, size_before)
            raise AuditError(f"cannot write the audit log {self.path}: {exc}") from exc
        if size_before == 0:
            _fsync_dir(self.path.parent)
        self._anchor(fd, size_before, seq, digest)
        self._recovered = None
        try:
            after = os.fstat(fd)
        except OSError:  # the record is written and anchored; the next append re-reads
            self._tail = None
        else:
            self._tail = _Tail(seq, digest, after.st_ino, after.st_size, after.st_mtime_ns)
        return seq, time

    def _anchor(self, fd: int, size_before: int, seq: int, digest: str) -> None:
        if self.anchor is None:
            return
        try:
            self.anchor.write(seq, digest)
            return
        except (IntegrityError, ValueError, VaultForbidden, VaultUnauthenticated) as exc:
            # Refused for certain (a check before the write, Vault's check-and-set or its
            # answer): the update can never land later, so the line is taken back.
            self._roll_back(fd, size_before)
            raise AuditError(f"cannot anchor the audit chain head (seq {seq}): {exc}; the "
                             "record was taken back and the request must not be "
                             "answered") from exc
        except Exception as exc:
            # The write may have reached Vault even though the answer was lost: look.
            try:
                if self.anchor.read() == (seq, digest):
                    return
            except Exception:  # noqa: S110 - the original failure is what gets reported
                pass
            self._tail = None  # the next append reads the tail again and checks the anchor
            # named by the next record even if the delayed update reaches Vault meanwhile
            self._recovered = _withheld(seq, self._last_query_id)
            raise AuditUnanchored(f"cannot anchor the audit chain head (seq {seq}): {exc}; "
                                  "the record stays unanchored (the next append anchors it) "
                                  "and the request must not be answered") from exc

    def _roll_back(self, fd: int, size_before: int) -> None:
        self._tail = None
        try:
            os.ftruncate(fd, size_before)
            os.fsync(fd)
        except OSError as exc:
            raise AuditError(f"cannot roll back a failed append to {self.path} ({exc}): the "
                             "log may end with an unanchored record; run "
                             "`genovault audit verify`") from exc
        finally:
            self._close_fd()  # the next append opens the file afresh

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"cannot stat the audit log {self.path}: {exc}") from exc

    def _current_tail(self, st: os.stat_result | None) -> _Tail:
        """The tail for the path's stat ``st`` (taken under the lock)."""
        cached = self._tail
        if (cached is not None and st is not None and cached.ino == st.st_ino
                and cached.size == st.st_size and cached.mtime_ns == st.st_mtime_ns):
            return cached
        if st is None or st.st_size == 0:
            seq, digest, prev, qid = 0, GENESIS, None, None
        else:
            seq, digest, prev, qid = self._read_last(st.st_size)
        self._check_anchor(seq, digest, prev, qid)
        tail = _Tail(seq, digest, st.st_ino if st else 0, st.st_size if st else 0,
                     st.st_mtime_ns if st else 0)
        self._tail = tail
        return tail

    def _read_last(self, size: int) -> tuple[int, str, str | None, str | None]:
        try:
            line = last_line(self.path, size)
        except OSError as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc}") from exc
        if not line.endswith(b"\n"):
            raise AuditTamperError(
                f"the audit log {self.path} ends with an incomplete line (a crashed write or "
                "tampering): appending stops; run `genovault audit verify`")
        try:
            rec = json.loads(line)
            seq, digest, prev, qid = rec["seq"], rec["hash"], rec.get("prev"), rec.get("query_id")
            ok = (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1
                  and is_hex64(digest) and record_hash(rec) == digest)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise AuditTamperError(
                f"the last record of the audit log {self.path} is malformed or does not match "
                "its hash: appending stops; run `genovault audit verify`")
        return seq, digest, prev if is_hex64(prev) else None, qid if isinstance(qid, str) \
            else None

    def _check_anchor(self, seq: int, digest: str, prev: str | None = None,
                      query_id: str | None = None) -> None:
        if self.anchor is None:
            return
        try:
            anchored = self.anchor.read()
        except Exception as exc:
            raise AuditError(f"cannot read the audit chain anchor: {exc}") from exc
        a_seq, a_hash = anchored or (0, GENESIS)
        if (a_seq, a_hash) == (seq, digest):
            return
        if seq == a_seq + 1 and prev == a_hash:
            # one well-chained record after the anchored head: a writer died between the
            # line's fsync and the anchor update (we hold the lock: nobody is in that window
            # now). Its answer was never sent. Anchor it, and name it in the next record.
            try:
                self.anchor.write(seq, digest)
            except Exception as exc:
                raise AuditError(f"cannot anchor the record a crash left unanchored (seq "
                                 f"{seq}): {exc}") from exc
            self._recovered = _withheld(seq, query_id)
            return
        have = f"ends at seq {seq}" if seq else "is empty"
        want = (f"the anchor holds seq {anchored[0]}" if anchored
                else "the anchor holds no chain head")
        raise AuditTamperError(
            f"the audit log {self.path} {have} but {want}: it was truncated, replaced or "
            "extended outside GenoVault. Appending stops; run `genovault audit verify`")


def _withheld(seq: int, query_id: str | None) -> dict[str, Any]:
    return {"unanchored_seq": seq, "query_id": query_id,
            "why": "its anchor update was not confirmed (the service stopped, or Vault refused "
                   "it or did not answer in time), so its answer was withheld"}


def new_query_id() -> str:
    """A fresh query id (uuid4 hex): what an answer carries and its audit record names."""
    return uuid.uuid4().hex


def last_line(path: Path, size: int) -> bytes:
    """The last line of ``path`` (with its newline, if any), reading backwards from ``size``."""
    with open(path, "rb") as f:
        pos, buf = size, b""
        while pos > 0:
            step = min(8192, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            cut = buf.rfind(b"\n", 0, len(buf) - 1)
            if cut >= 0:
                return buf[cut + 1:]
        return buf


def _copy(payload: dict[str, Any]) -> dict[str, Any]:
    """A deep copy through JSON, so later changes by the caller cannot alter the record."""
    copied: dict[str, Any] = json.loads(canonical(payload))
    return copied


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
