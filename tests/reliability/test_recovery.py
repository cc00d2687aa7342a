"""Crash recovery, unit level (no OpenBao): the pieces the kill -9 test exercises end to end.

* the audit log after a writer died between a line's fsync and its anchor update;
* the ledger's refund of charges whose answers never left, and the recovery that finds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vault.audit import AuditLog
from vault.audit.anchor import MemoryAnchor
from vault.audit.errors import AuditError, AuditTamperError
from vault.audit.record import line_of, record_hash
from vault.audit.verify import verify
from vault.privacy.ledger import Ledger
from vault.privacy.recovery import audited_ids_since, refund_unanswered, sole_server_lock


def payload(n: int = 0) -> dict[str, Any]:
    return {"principal": {"entity_id": "ent-a", "display_name": "a", "role": "r"},
            "request": {"method": "GET", "path": f"/v1/x/{n}"}, "result": {"status": 200}}


class DroppingAnchor(MemoryAnchor):
    """Loses every write after the first ``keep`` (the process 'died' before them)."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def write(self, seq: int, hash: str) -> None:
        if self.writes >= self.keep:
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after this line runs
        super().write(seq, hash)


def crashed_log(tmp_path: Path) -> tuple[Path, MemoryAnchor]:
    """A log of 3 records whose last anchor update never happened (the writer died)."""
    path = tmp_path / "audit.jsonl"
    dying = DroppingAnchor(keep=2)
    log = AuditLog(path, dying)
    log.append(payload(1))
    log.append(payload(2))
    with pytest.raises(KeyboardInterrupt):
        log.append(payload(3))  # line on disk and fsynced, anchor not updated
    anchor = MemoryAnchor()
    anchor.write(*dying.read())  # what Vault holds: seq 2
    return path, anchor


def test_audit_log__a_record_left_unanchored_by_a_crash_is_anchored_and_named(
        tmp_path: Path) -> None:
    path, anchor = crashed_log(tmp_path)
    assert anchor.read()[0] == 2 and len(path.read_text().splitlines()) == 3
    assert not verify(path, anchor).ok  # before recovery: the head is unanchored
    entry = AuditLog(path, anchor).append(payload(4))  # a restarted writer
    assert entry.seq == 4
    report = verify(path, anchor)
    assert report.ok, report.problems
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert records[3]["recovered"]["unanchored_seq"] == 3
    assert records[3]["recovered"]["query_id"] == records[2]["query_id"]
    assert "recovered" not in records[2] and "recovered" not in records[1]
    AuditLog(path, anchor).append(payload(5))  # and only once
    assert "recovered" not in json.loads(path.read_text().splitlines()[-1])


def test_audit_log__more_than_one_unanchored_record_is_still_refused(tmp_path: Path) -> None:
    path, anchor = crashed_log(tmp_path)
    last = json.loads(path.read_text().splitlines()[-1])
    forged = {**last, "seq": 4, "prev": last["hash"], "query_id": "f" * 32}
    forged["hash"] = record_hash(forged)
    with path.open("a") as f:
        f.write(line_of(forged) + "\n")
    with pytest.raises(AuditTamperError, match="ends at seq 4 but the anchor holds seq 2"):
        AuditLog(path, anchor).append(payload())


def test_audit_log__an_unchained_extra_record_is_still_refused(tmp_path: Path) -> None:
    path, anchor = crashed_log(tmp_path)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[-1])
    rec["prev"] = "0" * 64  # does not chain to the anchored head
    rec["hash"] = record_hash(rec)
    path.write_text("\n".join([*lines[:-1], line_of(rec)]) + "\n")
    with pytest.raises(AuditTamperError):
        AuditLog(path, anchor).append(payload())


def test_audit_log__append_gives_up_after_its_lock_timeout(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", MemoryAnchor(), lock_timeout_s=0.2)
    log._mutex.acquire()  # another request holds the turn (a slow anchor write)
    try:
        with pytest.raises(AuditError, match=r"busy for more than 0\.2 s"):
            log.append(payload())
    finally:
        log._mutex.release()
    log.append(payload())
    assert (tmp_path / "audit.jsonl").read_text().count("\n") == 1


# -- the ledger ------------------------------------------------------------------------------
def charge(ledger: Ledger, qid: str, cell: str, eps: float = 0.5) -> None:
    ledger.release("p1", "v1", [cell], lambda idx: np.ones((len(idx), 4), np.int64),
                   lambda x: x + 1, lambda idx: eps, 100.0, 30, query_id=qid)


def test_ledger__refund_deletes_the_charge_and_its_cells(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    charge(ledger, "q" * 32, "c1")
    charge(ledger, "r" * 32, "c2")
    assert ledger.spent("p1", 30) == pytest.approx(1.0)
    assert ledger.refund("q" * 32) == pytest.approx(0.5)
    assert ledger.spent("p1", 30) == pytest.approx(0.5)
    # the refunded cell is drawn (and charged) anew, never reused for free
    charge(ledger, "s" * 32, "c1")
    assert ledger.spent("p1", 30) == pytest.approx(1.0)


def test_ledger__refund_keeps_cells_another_answer_reused(tmp_path: Path) -> None:
    """Answer A draws c1; a parallel answer B of the same principal reuses it (free) and
    leaves; then A is withheld (its audit append timed out) and refunded. Deleting c1 would
    let a later answer draw it again: two noisy values of one cell (averaging), the first
    of them released without any charge. The refund must keep A's cells and charge."""
    ledger = Ledger(tmp_path / "ledger.db")
    draws = iter(range(1, 100))

    def release(qid: str) -> np.ndarray:
        r = ledger.release("p1", "v1", ["c1"], lambda idx: np.zeros((len(idx), 4), np.int64),
                           lambda x: x + next(draws), lambda idx: 0.5, 100.0, 30,
                           query_id=qid)
        return r.counts["c1"]

    first = release("a" * 32)
    assert release("b" * 32).tolist() == first.tolist()  # B reused A's noisy cell
    assert ledger.refund("a" * 32) == 0.0  # A's cell left with B: nothing to give back
    assert ledger.spent("p1", 30) == pytest.approx(0.5)
    assert release("c" * 32).tolist() == first.tolist()  # never noised a second time
    assert ledger.spent("p1", 30) == pytest.approx(0.5)
    # a cell nobody reused is still refunded and drawn anew
    ledger.release("p1", "v1", ["c2"], lambda idx: np.zeros((len(idx), 4), np.int64),
                   lambda x: x + 1, lambda idx: 0.5, 100.0, 30, query_id="d" * 32)
    assert ledger.refund("d" * 32) == pytest.approx(0.5)


def test_recovery__refunds_charges_without_an_audit_record_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    log = AuditLog(tmp_path / "audit.jsonl", MemoryAnchor())
    answered = log.append(payload()).query_id
    charge(ledger, answered, "c1")
    charge(ledger, "d" * 32, "c2")  # computed, then the process died before its record
    refunds = refund_unanswered(ledger, log.path)
    assert refunds == [("d" * 32, pytest.approx(0.5))]
    assert ledger.spent("p1", 30) == pytest.approx(0.5)
    assert refund_unanswered(ledger, log.path) == []  # checked charges are not looked at again
    charge(ledger, "e" * 32, "c3")
    assert [q for q, _ in refund_unanswered(ledger, log.path)] == ["e" * 32]


def test_recovery__reads_the_log_backwards_only_as_far_as_needed(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", None)
    ids = [log.append(payload(i)).query_id for i in range(5)]
    assert audited_ids_since(log.path, 0.0) == set(ids)
    assert audited_ids_since(log.path, 4e9) == {ids[-1]}  # stops at the first older record
    assert audited_ids_since(tmp_path / "none.jsonl", 0.0) == set()


def test_recovery__only_one_process_may_recover(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    first = sole_server_lock(ledger)
    assert first is not None
    assert sole_server_lock(ledger) is None  # a second server of the same home
    first.close()
    again = sole_server_lock(ledger)
    assert again is not None
    again.close()


class LateAnchor(MemoryAnchor):
    """Fails to confirm one update that still reaches the store later (a slow Vault)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False
        self.late: tuple[int, str] | None = None

    def write(self, seq: int, hash: str) -> None:
        if self.fail_next:
            self.fail_next = False
            self.late = (seq, hash)
            raise TimeoutError("no answer in time")
        super().write(seq, hash)

    def read(self) -> tuple[int, str] | None:
        if self.late is not None:  # the read-back does not see it yet either
            raise TimeoutError("no answer in time")
        return super().read()


def test_audit_log__an_unconfirmed_update_that_lands_late_is_still_named(
        tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = LateAnchor()
    log = AuditLog(path, anchor)
    log.append(payload(1))
    anchor.fail_next = True
    with pytest.raises(AuditError, match="must not be answered"):
        log.append(payload(2))
    withheld = json.loads(path.read_text().splitlines()[-1])["query_id"]
    late, anchor.late = anchor.late, None
    assert late is not None
    MemoryAnchor.write(anchor, *late)  # the delayed update reaches Vault: anchor == log
    log.append(payload(3))
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[2]["recovered"]["query_id"] == withheld  # the record says it was withheld
    report = verify(path, anchor)
    assert report.ok and report.unanswered == [withheld]
