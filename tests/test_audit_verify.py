"""verify(): each kind of tampering with a copy of a real log is reported, exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from vault.audit import AuditLog, MemoryAnchor, verify
from vault.audit.record import line_of, record_hash

TRUNCATED = "the log ends at seq {0} but the anchor records seq {1}: records after seq {0} " \
            "were removed (truncated)"


def _payload(who: str, allowed: bool = True) -> dict[str, Any]:
    return {"principal": {"entity_id": f"ent-{who}", "display_name": who, "role": "researcher"},
            "request": {"method": "POST", "path": "/v1/query", "action": "allele_frequency",
                        "dataset": "demo", "params": {"region": "chr2:5-50"}},
            "decision": {"allowed": allowed, "reasons": ["r"], "rules": ["r1"],
                         "policy_version": "p1"}}


@pytest.fixture
def real_log(tmp_path: Path) -> tuple[Path, MemoryAnchor]:
    """A log written by AuditLog: 1 request, 2 response, 3 complete (denial), 4 request,
    5 response, 6 complete."""
    path = tmp_path / "real" / "audit.jsonl"
    anchor = MemoryAnchor()
    log = AuditLog(path, anchor)
    e = log.begin(_payload("alice"))
    log.finish(e, {"result": {"status": 200, "rows": 7}})
    log.append(_payload("bob", allowed=False))
    e = log.begin(_payload("carol"))
    log.finish(e, {"result": {"status": 200, "rows": 3}})
    log.append(_payload("dave", allowed=False))
    return path, anchor


@pytest.fixture
def copy(real_log: tuple[Path, MemoryAnchor], tmp_path: Path) -> Path:
    dst = tmp_path / "copy.jsonl"
    shutil.copyfile(real_log[0], dst)
    return dst


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(x + "\n" for x in lines))


def _rechain(lines: list[str], start: int) -> list[str]:
    """What an attacker with disk write (but no anchor) does: fix hashes from ``start`` on."""
    out = lines[:start]
    prev = json.loads(out[-1])["hash"] if out else "0" * 64
    for raw in lines[start:]:
        rec = json.loads(raw)
        rec["prev"] = prev
        rec["hash"] = record_hash(rec)
        prev = rec["hash"]
        out.append(line_of(rec))
    return out


def test_verify__untampered_log_is_ok(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    report = verify(copy, real_log[1])
    assert report.ok and report.problems == []
    assert report.records == 6
    assert report.head == real_log[1].read() == report.anchored
    assert report.unanswered == []


def test_verify__edited_record(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    lines = _lines(copy)
    lines[1] = lines[1].replace('"rows":7', '"rows":70')
    _write(copy, lines)
    assert verify(copy, real_log[1]).problems == [
        "line 2 (seq 2): hash mismatch: the record was edited"]


def test_verify__edited_and_rehashed_record(real_log: tuple[Path, MemoryAnchor],
                                            copy: Path) -> None:
    lines = _lines(copy)
    rec = json.loads(lines[2])
    rec["principal"]["display_name"] = "someone-else"
    rec["hash"] = record_hash(rec)
    lines[2] = line_of(rec)
    _write(copy, lines)
    assert verify(copy, real_log[1]).problems == [
        "line 4 (seq 4): prev does not match the hash of seq 3: a record before it was "
        "replaced or the chain was rewritten"]


def test_verify__whole_chain_rewritten_is_caught_by_the_anchor(
        real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    lines = _lines(copy)
    rec = json.loads(lines[2])
    rec["decision"]["allowed"] = True
    lines[2] = line_of(rec)
    _write(copy, _rechain(lines, 2))
    assert verify(copy, None).ok  # the chain alone cannot tell
    assert verify(copy, real_log[1]).problems == [
        "seq 6 does not match the anchored hash: the anchored record was replaced (or the "
        "log is not the one this anchor belongs to)"]


def test_verify__deleted_record(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    lines = _lines(copy)
    del lines[2]  # the denial of bob
    _write(copy, lines)
    assert verify(copy, real_log[1]).problems == [
        "line 3 (seq 4): expected seq 3: records were deleted, inserted or reordered"]


def test_verify__deleted_and_renumbered(real_log: tuple[Path, MemoryAnchor],
                                        copy: Path) -> None:
    lines = _lines(copy)
    del lines[2]
    recs = [json.loads(x) for x in lines]
    for i, rec in enumerate(recs[2:], start=3):
        rec["seq"] = i
    _write(copy, _rechain([line_of(r) for r in recs], 2))
    assert verify(copy, None).ok
    assert verify(copy, real_log[1]).problems == [TRUNCATED.format(5, 6)]


def test_verify__reordered_records(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    lines = _lines(copy)
    lines[2], lines[5] = lines[5], lines[2]  # two denials swap places
    _write(copy, lines)
    assert verify(copy, real_log[1]).problems == [
        "line 3 (seq 6): expected seq 3: records were deleted, inserted or reordered",
        "line 4 (seq 4): expected seq 7: records were deleted, inserted or reordered",
        "line 6 (seq 3): expected seq 6: records were deleted, inserted or reordered",
        "the anchored head seq 6 is not the last line of the log (the last line holds seq "
        "3): records were reordered",
    ]


def test_verify__truncated_tail(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    _write(copy, _lines(copy)[:4])
    report = verify(copy, real_log[1])
    assert report.problems == [TRUNCATED.format(4, 6)]
    assert report.unanswered == [json.loads(_lines(copy)[3])["query_id"]]


def test_verify__log_deleted(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    copy.unlink()
    assert verify(copy, real_log[1]).problems == [TRUNCATED.format(0, 6)]
    assert verify(copy, None).ok and verify(copy, MemoryAnchor()).ok  # nothing was written


def test_verify__forged_append(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    lines = _lines(copy)
    last = json.loads(lines[-1])
    forged = {**json.loads(lines[2]), "seq": 7, "prev": last["hash"],
              "query_id": "f" * 32, "time": "2099-01-01T00:00:00.000000Z"}
    forged["hash"] = record_hash(forged)
    _write(copy, [*lines, line_of(forged)])
    assert verify(copy, None).ok  # a well-made forgery fits the chain...
    assert verify(copy, real_log[1]).problems == [  # ...but not the anchor
        "records seq 7..7 come after the anchored head seq 6: appended outside GenoVault "
        "(forged), or an anchor update was lost"]


def test_verify__forged_replacement_of_the_tail(real_log: tuple[Path, MemoryAnchor],
                                                copy: Path) -> None:
    lines = _lines(copy)
    rec = json.loads(lines[-1])
    rec["decision"]["allowed"] = True
    rec["hash"] = record_hash(rec)
    _write(copy, [*lines[:-1], line_of(rec)])
    assert verify(copy, real_log[1]).problems == [
        "seq 6 does not match the anchored hash: the anchored record was replaced (or the "
        "log is not the one this anchor belongs to)"]


@pytest.mark.parametrize(("garbage", "why"), [
    ("this is not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"seq": "2"}', "no valid seq"),
    ('{"seq": 2, "hash": "xyz"}', "no valid hash"),
])
def test_verify__malformed_line(real_log: tuple[Path, MemoryAnchor], copy: Path,
                                garbage: str, why: str) -> None:
    lines = _lines(copy)
    lines[2] = garbage
    _write(copy, lines)
    report = verify(copy, real_log[1])
    assert report.problems == [f"line 3: malformed record ({why})"]
    assert report.records == 5


def test_verify__torn_last_line(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    copy.write_text(copy.read_text()[:-40])
    assert verify(copy, real_log[1]).problems == [
        "line 6: incomplete last line (no newline): a torn write or an edit",
        "line 6: malformed record (not JSON)",
        TRUNCATED.format(5, 6),
    ]


def test_verify__reformatted_line(real_log: tuple[Path, MemoryAnchor], copy: Path) -> None:
    lines = _lines(copy)
    lines[0] = json.dumps(json.loads(lines[0]), indent=None)  # same content, spaces added
    _write(copy, lines)
    assert verify(copy, real_log[1]).problems == [
        "line 1 (seq 1): not in the form the log writes: the line was rewritten"]


def test_verify__response_without_request(real_log: tuple[Path, MemoryAnchor],
                                          copy: Path) -> None:
    lines = _lines(copy)
    del lines[3]  # carol's request; her response stays
    recs = [json.loads(x) for x in lines]
    for i, rec in enumerate(recs[3:], start=4):
        rec["seq"] = i
    _write(copy, _rechain([line_of(r) for r in recs], 3))
    qid = recs[3]["query_id"]
    assert verify(copy, None).problems == [
        f"line 4 (seq 4): response to query {qid} has no request record before it"]


def test_verify__empty_anchor_with_records(copy: Path) -> None:
    assert verify(copy, MemoryAnchor()).problems == [
        "the anchor holds no chain head but the log has records up to seq 6: the anchor was "
        "deleted or the records were written outside GenoVault"]
