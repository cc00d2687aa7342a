"""The audit log's writer: record format, payload guard, two phases, fail-closed, concurrency.

Pure unit tests with an in-memory anchor (the Vault anchor is tested in test_audit_vault.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import vault.audit.log as audit_log
from vault.audit import (
    AuditError,
    AuditLog,
    AuditTamperError,
    AuditUnanchored,
    MemoryAnchor,
    audit_log_path,
    read,
    verify,
)
from vault.audit.record import GENESIS, canonical, record_hash
from vault.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def request_payload(who: str = "alice", action: str = "allele_frequency") -> dict[str, Any]:
    return {
        "principal": {"entity_id": f"ent-{who}", "display_name": who, "role": "researcher"},
        "request": {"method": "POST", "path": "/v1/query", "action": action,
                    "dataset": "demo", "params": {"region": "chr1:1-1000", "group": "sex"}},
        "decision": {"allowed": True, "reasons": ["researcher may query demo"],
                     "rules": ["r-demo-1"], "policy_version": "p-3f2a"},
        "client": {"remote_addr_hash": "hmac-sha256:ab12"},
    }


OUTCOME = {"disclosure": ["small_cells_suppressed"],
           "budget": {"epsilon_spent": 0.1, "epsilon_remaining": 0.9},
           "result": {"status": 200, "rows": 12}}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_audit_log__record_format_and_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    anchor = MemoryAnchor()
    log = AuditLog(path, anchor)
    entry = log.begin(request_payload())
    done = log.finish(entry, OUTCOME)
    denial = log.append({**request_payload("bob"),
                         "decision": {"allowed": False, "reasons": ["no consent"],
                                      "rules": [], "policy_version": "p-3f2a"},
                         "result": {"status": 403, "rows": 0}})
    recs = lines(path)
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert [r["type"] for r in recs] == ["request", "response", "complete"]
    assert recs[0]["query_id"] == recs[1]["query_id"] == entry.query_id == done.query_id
    assert len(entry.query_id) == 32 and int(entry.query_id, 16) >= 0
    assert denial.query_id != entry.query_id
    assert recs[0]["prev"] == GENESIS
    for before, rec in itertools.pairwise(recs):
        assert rec["prev"] == before["hash"]
    for rec in recs:
        assert rec["hash"] == record_hash(rec)
        body = {k: v for k, v in rec.items() if k != "hash"}
        assert rec["hash"] == hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        t = datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
        assert t.utcoffset() is not None and rec["time"].endswith("Z")
        assert len(rec["time"].split(".")[1]) == len("123456Z")
    # the response repeats principal/request/decision and adds the outcome
    assert recs[1]["principal"] == recs[0]["principal"]
    assert recs[1]["result"] == {"status": 200, "rows": 12}
    assert "result" not in recs[0]
    # header fields first, hash last: readable with tail
    first = path.read_text().splitlines()[0]
    assert first.startswith('{"seq":1,"time":') and '"hash":' in first.rsplit(",", 1)[1]
    assert anchor.read() == (3, recs[2]["hash"])
    assert verify(path, anchor).ok


def test_audit_log__modes(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    AuditLog(path, MemoryAnchor()).append(request_payload())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((path.parent / "audit.jsonl.lock").stat().st_mode) == 0o600


def test_audit_log__path_from_settings(tmp_path: Path) -> None:
    settings = load_settings(home_dir=tmp_path / "home")
    assert audit_log_path(settings) == (tmp_path / "home").resolve() / "audit" / "audit.jsonl"


@pytest.mark.parametrize("bad", [
    {"token": "x"},
    {"request": {"params": {"sample_id": "NA12878"}}},
    {"request": {"params": {"Sample-ID": "NA12878"}}},
    {"result": {"genotypes": [0, 1, 2]}},
    {"result": {"rows": 1, "cells": [{"pseudonym": "ab12"}]}},
    {"principal": {"client_token": "x"}},
    {"request": {"params": {"q": "hvs.CAESIJ1aaaaaaaaaaaaaaaaaaaaaaaa"}}},
    {"seq": 5},
    {"hash": "0" * 64},
    {"query_id": "mine"},
    {"result": {"rows": float("nan")}},
    {"result": {"when": datetime(2026, 1, 1)}},
])
def test_audit_log__refuses_forbidden_payloads(tmp_path: Path, bad: dict[str, Any]) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, MemoryAnchor())
    with pytest.raises(ValueError):
        log.append(bad)
    entry = log.begin(request_payload())
    with pytest.raises(ValueError):
        log.finish(entry, bad)
    assert len(lines(path)) == 1  # only the begin record


def test_audit_log__finish_once_and_payload_copied(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, MemoryAnchor())
    payload = request_payload()
    entry = log.begin(payload)
    payload["principal"]["display_name"] = "mallory"  # the caller changes its dict later
    log.finish(entry, OUTCOME)
    with pytest.raises(ValueError, match="already"):
        log.finish(entry, OUTCOME)
    with pytest.raises(ValueError):
        log.finish(log.append(request_payload()), OUTCOME)
    recs = lines(path)
    assert recs[1]["principal"]["display_name"] == "alice"
    assert verify(path, None).ok


class FailingAnchor(MemoryAnchor):
    def __init__(self, lose_reply: bool = False) -> None:
        super().__init__()
        self.fail = False
        self.lose_reply = lose_reply

    def write(self, seq: int, hash: str) -> None:
        if self.fail:
            if self.lose_reply:  # the write reached the store but the reply was lost
                super().write(seq, hash)
            raise ConnectionError("anchor unreachable")
        super().write(seq, hash)


def test_audit_log__anchor_failure_raises_and_the_next_append_anchors_it(
        tmp_path: Path) -> None:
    """An unconfirmed anchor update may still reach Vault later: the line is not rolled
    back (that could leave the anchor ahead of the log for good); the caller withholds the
    answer, and the next append anchors the record and names it."""
    path = tmp_path / "audit.jsonl"
    anchor = FailingAnchor()
    log = AuditLog(path, anchor)
    log.append(request_payload())
    anchor.fail = True
    with pytest.raises(AuditUnanchored, match="must not be answered"):
        log.append(request_payload())
    withheld = lines(path)[-1]["query_id"]
    assert [r["seq"] for r in lines(path)] == [1, 2] and anchor.read()[0] == 1
    with pytest.raises(AuditError):  # still failing: nothing more is written
        log.append(request_payload())
    assert [r["seq"] for r in lines(path)] == [1, 2]
    anchor.fail = False
    log.append(request_payload())
    recs = lines(path)
    assert [r["seq"] for r in recs] == [1, 2, 3] and anchor.read()[0] == 3
    assert recs[2]["recovered"]["unanchored_seq"] == 2
    assert recs[2]["recovered"]["query_id"] == withheld
    report = verify(path, anchor)
    assert report.ok and report.unanswered == [withheld]


class SlowAnchor(MemoryAnchor):
    """An anchor write that takes ``delay`` seconds (the turn is held meanwhile)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def write(self, seq: int, hash: str) -> None:
        threading.Event().wait(self.delay)
        super().write(seq, hash)


def test_audit_log__timing_counts_the_turn_held_and_waited_for(tmp_path: Path) -> None:
    """``timing`` (exported as metrics) measures the serial step: two threads appending
    through an anchor that takes 50 ms each hold the turn >= 50 ms per append, and the
    later of the two waits for the earlier; failed appends count as turns too."""
    log = AuditLog(tmp_path / "audit.jsonl", SlowAnchor(0.05))
    assert log.timing.turns == 0 and log.timing.hold_s == 0 and log.timing.wait_s == 0
    go = threading.Barrier(2)

    def one() -> None:
        go.wait()
        log.append(request_payload())

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t = log.timing
    assert t.turns == 2
    assert t.hold_s >= 2 * 0.05
    assert t.wait_s >= 0.04  # the second waited (about) the first one's hold
    failing = FailingAnchor()
    log2 = AuditLog(tmp_path / "audit2.jsonl", failing)
    failing.fail = True
    with pytest.raises(AuditUnanchored):
        log2.append(request_payload())
    assert log2.timing.turns == 1


def test_audit_log__anchor_reply_lost_but_written_counts(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = FailingAnchor(lose_reply=True)
    log = AuditLog(path, anchor)
    anchor.fail = True
    log.append(request_payload())  # the anchor holds the new head: no error
    assert verify(path, anchor).ok


def test_audit_log__disk_write_failure_raises(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = MemoryAnchor()
    log = AuditLog(path, anchor)
    log.append(request_payload())
    before = path.read_bytes()

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_log.os, "write", full)
    with pytest.raises(AuditError, match="cannot write"):
        log.begin(request_payload())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert anchor.read() is not None and anchor.read()[0] == 1
    log.append(request_payload())
    assert verify(path, anchor).ok


def test_audit_log__refuses_to_continue_a_truncated_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = MemoryAnchor()
    AuditLog(path, anchor).append(request_payload())
    AuditLog(path, anchor).append(request_payload())
    text = path.read_text().splitlines(keepends=True)
    path.write_text(text[0])  # an attacker drops the last record
    with pytest.raises(AuditTamperError, match="ends at seq 1 but the anchor holds seq 2"):
        AuditLog(path, anchor).append(request_payload())
    path.unlink()  # or deletes the whole log
    with pytest.raises(AuditTamperError, match="is empty but the anchor holds seq 2"):
        AuditLog(path, anchor).append(request_payload())


def test_audit_log__refuses_an_incomplete_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, None).append(request_payload())
    with path.open("a") as f:
        f.write('{"seq":2,"ti')
    with pytest.raises(AuditTamperError, match="incomplete line"):
        AuditLog(path, None).append(request_payload())


def test_audit_log__tail_cached_and_reread_only_after_another_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = MemoryAnchor()
    calls: list[int] = []
    real = audit_log.last_line

    def counting(p: Path, size: int) -> bytes:
        calls.append(size)
        return real(p, size)

    monkeypatch.setattr(audit_log, "last_line", counting)
    a, b = AuditLog(path, anchor), AuditLog(path, anchor)
    a.append(request_payload())  # empty file: nothing to read
    for _ in range(5):
        a.append(request_payload())
    assert calls == []  # the tail comes from the cache
    b.append(request_payload())  # b never saw the file: reads the last line once
    assert len(calls) == 1
    a.append(request_payload())  # a notices b's append (size/mtime changed)
    assert len(calls) == 2
    assert [r["seq"] for r in lines(path)] == list(range(1, 9))
    assert verify(path, anchor).ok


@pytest.mark.parametrize("shared", [True, False], ids=["one-log-object", "log-per-thread"])
def test_audit_log__threads_8x50(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = MemoryAnchor()
    one = AuditLog(path, anchor)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        log = one if shared else AuditLog(path, anchor)
        start.wait()
        try:
            for j in range(25):
                entry = log.begin(request_payload(f"user{i}", f"a{j}"))
                log.finish(entry, OUTCOME)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    recs = lines(path)
    assert sorted(r["seq"] for r in recs) == list(range(1, 401))
    assert [r["seq"] for r in recs] == list(range(1, 401))  # and in file order
    report = verify(path, anchor)
    assert report.ok, report.problems
    assert report.records == 400 and report.unanswered == []


WORKER = """
import sys
from pathlib import Path
from vault.audit import AuditLog
log = AuditLog(Path(sys.argv[1]), None)
for j in range(int(sys.argv[2])):
    log.append({"principal": {"entity_id": "proc" + sys.argv[3]}, "request": {"action": "a"}})
"""


def test_audit_log__two_processes_x100(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), "100", str(i)],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
             for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    recs = lines(path)
    assert [r["seq"] for r in recs] == list(range(1, 201))
    assert sorted(r["principal"]["entity_id"] for r in recs) == ["proc0"] * 100 + ["proc1"] * 100
    report = verify(path, None)
    assert report.ok, report.problems


def test_audit_read__filters(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, MemoryAnchor())
    e = log.begin(request_payload("alice", "allele_frequency"))
    log.finish(e, OUTCOME)
    log.append(request_payload("bob", "hwe"))
    log.append(request_payload("alice", "hwe"))
    assert len(read(path)) == 4
    assert [r["seq"] for r in read(path, principal="alice")] == [1, 2, 4]
    assert [r["seq"] for r in read(path, principal="ent-bob")] == [3]
    assert [r["seq"] for r in read(path, action="hwe")] == [3, 4]
    assert [r["seq"] for r in read(path, principal="alice", limit=2)] == [2, 4]
    t3 = read(path)[2]["time"]
    assert [r["seq"] for r in read(path, since=t3)] == [3, 4]
    assert [r["seq"] for r in read(path, since=datetime.fromisoformat("2000-01-01"))] == [
        1, 2, 3, 4]
    assert read(path, since="2999-01-01") == []
    assert read(tmp_path / "missing.jsonl") == []
    with path.open("a") as f:
        f.write("not json\n")
    assert len(read(path)) == 4  # malformed lines are skipped (verify reports them)


def test_audit_record__canonical_is_sorted_compact_ascii() -> None:
    assert canonical({"b": 1, "a": "é\x1b"}) == '{"a":"\\u00e9\\u001b","b":1}'


def test_audit_log__one_record_under_a_given_query_id(tmp_path: Path) -> None:
    """The API's form: the query id is chosen before the work, the one record written after."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, MemoryAnchor())
    qid = audit_log.new_query_id()
    entry = log.append({**request_payload(), **OUTCOME}, query_id=qid)
    assert entry.query_id == qid and entry.type == "complete"
    (rec,) = lines(path)
    assert rec["query_id"] == qid and rec["result"] == OUTCOME["result"]
    report = verify(path, log.anchor)
    assert report.ok and report.records == 1 and not report.unanswered
    # a reused id is caught by verify; a malformed one is refused before anything is written
    log.append(request_payload(), query_id=qid)
    assert any("used twice" in p for p in verify(path, log.anchor).problems)
    for bad in ("x" * 32, qid.upper(), qid[:-1], 123):
        with pytest.raises(ValueError, match="32 lowercase hex"):
            log.append(request_payload(), query_id=bad)  # type: ignore[arg-type]
    assert len(lines(path)) == 2


_VALUES = [None, True, False, 0, -1, 2**70, 0.1, -0.0, 1e-300, 1.5e300, "", "plain",
           "é ünïcode \u2028 \x00 \x1f \"quoted\" \\ back", ["a", 1, [2.5, {"z": 1, "a": 2}]],
           {"b": {"é": 1, "a": [None, {"y": "x"}]}, "a": ()}, {"": 0, "A": 1, "a": 2, "_": 3}]


@pytest.mark.parametrize("value", [pytest.param(v, id=f"value{i}") for i, v in
                                   enumerate(_VALUES)])
def test_encode_record__same_hash_and_line_as_the_whole_record(value: Any) -> None:
    from vault.audit.record import encode_payload, encode_record, line_of

    payload = {"zeta": value, "alpha": {"nested": value}, "recovered": value,
               "Upper": [value, value], "seqx": value}
    header = {"seq": 7, "time": "2026-05-01T12:00:00.123456Z", "type": "complete",
              "query_id": "ab" * 16, "prev": "cd" * 32}
    digest, line = encode_record(header, encode_payload(payload))
    record = {**header, **payload}
    assert digest == record_hash(record)
    assert line == line_of({**record, "hash": digest})


def test_encode_payload__refuses_what_check_payload_refuses() -> None:
    from vault.audit.record import encode_payload

    for bad in ({"x": float("nan")}, {"x": {"token": "a"}}, {"seq": 1}, {"x": object()},
                {"x": "hvs.AAAAAAAAAAAAAAAAAAAAAAAA"}, {1: "x"}):
        with pytest.raises(ValueError):
            encode_payload(bad)  # type: ignore[arg-type]


def test_audit_log__payload_changed_after_append_does_not_change_the_record(
        tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = MemoryAnchor()
    log = AuditLog(path, anchor)
    payload = request_payload()
    log.append(payload)
    payload["principal"]["display_name"] = "mallory"
    log.append({"x": 1})
    assert lines(path)[0]["principal"]["display_name"] == "alice"
    assert verify(path, anchor).ok


def test_audit_log__open_file_replaced_or_deleted_between_appends(tmp_path: Path) -> None:
    """The log file stays open between appends; a file replaced behind its back (new inode)
    is seen by the next append like before: refused, never written to the old inode."""
    path = tmp_path / "audit.jsonl"
    anchor = MemoryAnchor()
    log = AuditLog(path, anchor)
    log.append(request_payload())
    log.append(request_payload())
    text = path.read_text()
    path.unlink()
    path.write_text(text.splitlines(keepends=True)[0])  # a new file holding one record
    with pytest.raises(AuditTamperError, match="ends at seq 1 but the anchor holds seq 2"):
        log.append(request_payload())
    path.unlink()
    with pytest.raises(AuditTamperError, match="is empty but the anchor holds seq 2"):
        log.append(request_payload())
    path.write_text(text)  # the real log put back (a new inode): appending resumes there
    log.append(request_payload())
    assert [r["seq"] for r in lines(path)] == [1, 2, 3]
    assert verify(path, anchor).ok
    log.close()
    log.append(request_payload())  # a closed log opens its file again
    assert verify(path, anchor).ok and len(lines(path)) == 4


def test_audit_log__file_written_synchronously(tmp_path: Path) -> None:
    """The log file is open O_SYNC (each write durable when it returns, instead of a write
    and an fsync): the flag is checked on the descriptor the log really writes through."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, MemoryAnchor())
    log.append(request_payload())
    assert log._fd is not None
    info = Path(f"/proc/self/fdinfo/{log._fd}").read_text()
    flags = int(next(x for x in info.splitlines() if x.startswith("flags:")).split()[1], 8)
    assert flags & os.O_SYNC == os.O_SYNC and flags & os.O_APPEND
    log.close()
