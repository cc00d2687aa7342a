"""Check an audit log against its chain and its anchor."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.audit.anchor import Anchor
from vault.audit.record import (
    GENESIS,
    RECORD_TYPES,
    is_hex32,
    is_hex64,
    line_of,
    record_hash,
)
from vault.errors import IntegrityError


@dataclass
class AuditVerifyReport:
    """``ok`` if no problem was found. ``records`` counts the lines that parsed as records;
    ``head`` is the last record's ``(seq, hash)``, ``anchored`` what the anchor holds;
    ``unanswered`` lists query ids whose request has no response record (in flight, crashed,
    or withheld because the response record could not be written), and those of records a
    later record names as ``recovered`` (written, anchor update not confirmed, answer
    withheld) -- not a problem."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head: tuple[int, str] | None = None
    anchored: tuple[int, str] | None = None
    unanswered: list[str] = field(default_factory=list)


def verify(path: Path, anchor: Anchor | None) -> AuditVerifyReport:
    """Verify every line of the log at ``path`` and its head against ``anchor``.

    Detects a malformed line, an edited record (hash mismatch), deleted, inserted or
    reordered records (seq or prev mismatch), truncation of the tail and records appended
    after the anchored head (log and anchor disagree), an anchor that breaks its version
    invariant, records replaced since they were anchored (against the earlier heads the
    anchor still keeps, if it has a ``history()``), responses without a request and
    duplicate ids. With ``anchor=None`` the tail cannot be checked (a problem says so only if
    the caller passes ``anchor``; see docs/audit.md).
    """
    path = Path(path)
    problems: list[str] = []
    hashes: dict[int, str] = {}
    requests: dict[str, dict[str, Any]] = {}
    answered: set[str] = set()
    completes: set[str] = set()
    withheld: list[str] = []  # records named by a later record's ``recovered``
    records = 0
    exp_seq, last_hash = 1, GENESIS
    resync = False  # after a malformed line, take the next record's seq and prev as given
    head: tuple[int, str] | None = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(f"line {len(lines)}: incomplete last line (no newline): a torn "
                        "write or an edit")
    for lineno, raw in enumerate(lines, start=1):
        rec, why = _parse(raw)
        if rec is None:
            problems.append(f"line {lineno}: malformed record ({why})")
            resync = True
            continue
        records += 1
        seq, digest = rec["seq"], rec["hash"]
        where = f"line {lineno} (seq {seq})"
        if record_hash(rec) != digest:
            problems.append(f"{where}: hash mismatch: the record was edited")
        elif line_of(rec) != raw.decode("ascii", "replace"):
            problems.append(f"{where}: not in the form the log writes: the line was rewritten")
        if resync:
            resync = False
        elif seq != exp_seq:
            problems.append(f"{where}: expected seq {exp_seq}: records were deleted, "
                            "inserted or reordered")
        elif rec["prev"] != last_hash:
            problems.append(f"{where}: prev does not match the hash of seq {seq - 1}: a "
                            "record before it was replaced or the chain was rewritten")
        if seq in hashes:
            problems.append(f"{where}: seq {seq} appears twice")
        hashes[seq] = digest
        exp_seq, last_hash = seq + 1, digest
        head = (seq, digest)
        _pair(rec, where, requests, answered, completes, problems)
        recovered = rec.get("recovered")
        if isinstance(recovered, dict) and isinstance(recovered.get("query_id"), str):
            withheld.append(recovered["query_id"])
    anchored = None
    if anchor is not None:
        try:
            anchored = anchor.read()
        except IntegrityError as exc:
            problems.append(f"the anchor cannot be trusted: {exc}")
        else:
            problems.extend(_check_anchor(head, anchored, hashes))
            problems.extend(_check_history(anchor, hashes))
    unanswered = [q for q in requests if q not in answered] + withheld
    return AuditVerifyReport(ok=not problems, records=records, problems=problems, head=head,
                             anchored=anchored, unanswered=unanswered)


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        rec = json.loads(raw)
    except ValueError:
        return None, "not JSON"
    if not isinstance(rec, dict):
        return None, "not a JSON object"
    seq = rec.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None, "no valid seq"
    for name, check in (("hash", is_hex64), ("prev", is_hex64), ("query_id", is_hex32)):
        if not check(rec.get(name)):
            return None, f"no valid {name}"
    if rec.get("type") not in RECORD_TYPES:
        return None, "no valid type"
    if not isinstance(rec.get("time"), str):
        return None, "no valid time"
    return rec, ""


def _pair(rec: dict[str, Any], where: str, requests: dict[str, dict[str, Any]],
          answered: set[str], completes: set[str], problems: list[str]) -> None:
    qid, rtype = rec["query_id"], rec["type"]
    if rtype == "response":
        req = requests.get(qid)
        if req is None:
            problems.append(f"{where}: response to query {qid} has no request record before it")
        elif qid in answered:
            problems.append(f"{where}: second response to query {qid}")
        elif any(req.get(k) != rec.get(k) for k in ("principal", "request")):
            problems.append(f"{where}: response to query {qid} names another principal or "
                            "request than its request record")
        answered.add(qid)
    elif qid in requests or qid in completes:
        problems.append(f"{where}: query id {qid} is used twice")
    elif rtype == "request":
        requests[qid] = rec
    else:
        completes.add(qid)


def _check_anchor(head: tuple[int, str] | None, anchored: tuple[int, str] | None,
                  hashes: dict[int, str]) -> list[str]:
    last = head[0] if head else 0
    if anchored is None:
        return ([f"the anchor holds no chain head but the log has records up to seq {last}: "
                 "the anchor was deleted or the records were written outside GenoVault"]
                if head else [])
    a_seq, a_hash = anchored
    top = max(hashes, default=0)
    if a_seq > top:
        return [f"the log ends at seq {last} but the anchor records seq {a_seq}: "
                f"records after seq {last} were removed (truncated)"]
    if a_seq not in hashes:
        return [f"the anchored head seq {a_seq} is missing from the log (deleted)"]
    if hashes[a_seq] != a_hash:
        return [f"seq {a_seq} does not match the anchored hash: the anchored record was "
                "replaced (or the log is not the one this anchor belongs to)"]
    if a_seq < top:
        return [f"records seq {a_seq + 1}..{top} come after the anchored head seq {a_seq}: "
                "appended outside GenoVault (forged), or an anchor update was lost"]
    if last != a_seq:
        return [f"the anchored head seq {a_seq} is not the last line of the log (the last "
                f"line holds seq {last}): records were reordered"]
    return []


def _check_history(anchor: Anchor, hashes: dict[int, str]) -> list[str]:
    """Each earlier head the anchor still keeps must be the log's record of that seq."""
    history = getattr(anchor, "history", None)
    if not callable(history):
        return []
    try:
        heads: list[tuple[int, str]] = history()
    except IntegrityError as exc:
        return [f"the anchor's earlier versions cannot be trusted: {exc}"]
    bad = [s for s, h in heads if s in hashes and hashes[s] != h]
    if not bad:
        return []
    first = min(bad)
    return [f"seq {first} does not match the hash anchored when it was written (anchor "
            f"version {first}): the records from seq {first} on were replaced, even though "
            "the log has as many records as the anchor counts"]
