"""Budget charges of answers that never left: found after a crash and given back.

The guard debits ε in the ledger while it computes an answer and writes the answer's audit
record afterwards; the answer is sent only after its record is on disk (vault.api.guard).
A charge whose query id has no audit record therefore belongs to an answer that was never
sent — the process was killed between the debit and the record. Nothing drawn for it was
released, so :func:`refund_unanswered` (run by the API at start, as the only API process
serving its home) deletes those charges and their noisy cells: the ledger again equals the
ε the audit trail shows, and no budget is lost to a crash. (A withheld answer whose record
could not be written is refunded by the guard at once.)

Only charges the last recovery has not checked are looked at, and the audit log is read
backwards only as far as the oldest of them (records are appended in time order).
"""

from __future__ import annotations

import fcntl
import json
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

from vault.audit.record import parse_time
from vault.privacy.ledger import Ledger

#: how much older than the oldest unchecked charge the scanned records reach (clock steps)
MARGIN_S = 300.0


def refund_unanswered(ledger: Ledger, audit_path: Path) -> list[tuple[str, float]]:
    """Refund the unchecked charges whose query id has no audit record; ``(query id, ε)``
    of each refund. Call only while no other process answers with this ledger."""
    charges = ledger.charges_after(ledger.checked_upto())
    if not charges:
        return []
    cutoff = min(at for _, _, at in charges) - MARGIN_S
    seen = audited_ids_since(Path(audit_path), cutoff)
    refunds = [(q, ledger.refund(q)) for q in dict.fromkeys(q for _, q, _ in charges)
               if q not in seen]
    ledger.checked_upto(max(i for i, _, _ in charges))
    return refunds


def audited_ids_since(path: Path, cutoff: float) -> set[str]:
    """Query ids of the records written at or after ``cutoff`` (Unix time)."""
    ids: set[str] = set()
    for raw in _lines_backwards(path):
        try:
            rec = json.loads(raw)
            qid, when = rec["query_id"], parse_time(rec["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line: audit verify reports it
        ids.add(str(qid))
        if when < cutoff:
            break
    return ids


def _lines_backwards(path: Path, block: int = 1 << 16) -> Iterator[bytes]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a missing log has no records
    except FileNotFoundError:
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            parts = (f.read(step) + rest).split(b"\n")
            rest = parts[0]
            for line in reversed(parts[1:]):
                if line:
                    yield line
        if rest:
            yield rest


class ServingLock:
    """An exclusive ``flock`` on ``<ledger>.serving``, held until :meth:`close` (or until
    its owner is garbage-collected, or the process ends)."""

    def __init__(self, fd: int) -> None:
        self._finalizer = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._finalizer()


def sole_server_lock(ledger: Ledger) -> ServingLock | None:
    """The lock that says "this process is the only API of this home", or None if another
    process holds it (that process may have answers in flight: no recovery)."""
    fd = os.open(ledger.path.with_name(ledger.path.name + ".serving"),
                 os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return ServingLock(fd)
