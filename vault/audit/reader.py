"""Reading the audit log for ``genovault audit show``."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.audit.record import parse_time


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """``(line number, record)`` for every line; ``record`` is None for a malformed line."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a missing log reads as empty
    except FileNotFoundError:
        return
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = None
            yield lineno, rec if isinstance(rec, dict) else None


def read(path: Path, principal: str | None = None, since: datetime | str | None = None,
         action: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of the log at ``path``, oldest first, that match every filter given:
    ``principal`` (entity id or display name), ``since`` (records at or after this time; a
    naive time is UTC), ``action`` (``request.action``). ``limit`` keeps the *last* N matches.
    Malformed lines are skipped (``genovault audit verify`` reports them)."""
    since_t = parse_time(since) if isinstance(since, str) else since
    if since_t is not None and since_t.tzinfo is None:
        since_t = since_t.replace(tzinfo=UTC)
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    out: deque[dict[str, Any]] = deque(maxlen=limit)
    for _, rec in iter_records(path):
        if rec is None or not _matches(rec, principal, since_t, action):
            continue
        out.append(rec)
    return list(out)


def _matches(rec: dict[str, Any], principal: str | None, since: datetime | None,
             action: str | None) -> bool:
    if principal is not None:
        who = rec.get("principal")
        if not isinstance(who, dict) or principal not in (who.get("entity_id"),
                                                          who.get("display_name")):
            return False
    if action is not None:
        req = rec.get("request")
        if not isinstance(req, dict) or req.get("action") != action:
            return False
    if since is not None:
        try:
            if parse_time(str(rec.get("time"))) < since:
                return False
        except ValueError:
            return False
    return True
