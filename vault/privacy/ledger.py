"""The privacy-budget ledger: per-principal ε charges and the noisy cells already released.

One SQLite file (``<home>/privacy/ledger.db``, mode 0600, WAL). Every change runs in a
``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock before reading, so the
check "does the budget cover this cost?" and the debit are one atomic step across threads
*and* processes sharing the file: two parallel queries can never overspend.

Tables:

* ``charges``: one row per debit (principal, role, ε, query id, dataset, cells, time);
  what a principal spent in the current period is the sum of its rows since the period
  started. Periods are fixed windows of ``period_days`` counted from the Unix epoch, so a
  reset needs no job: old rows simply stop counting (they stay, for the admins).
* ``cells``: the noisy genotype counts released to a principal, keyed by (principal,
  dataset version, cell). A cell is noised once; every later answer that needs it reuses
  the stored noisy counts and costs nothing, so repeating or overlapping queries cannot
  average the noise away.
* ``reused``: the query ids whose stored cells another answer has reused; such an answer's
  cells have left with that other answer, so :meth:`Ledger.refund` keeps them (and the
  charge that paid for them) rather than let them be drawn a second time.
* ``presence_answers`` and ``member_loss`` (the policy option ``dp.presence``,
  vault.privacy.presence): the presence answers given to a principal per dataset version
  and variant (with the AC they counted and the noise drawn, for the admins' checks), and
  per (principal, dataset version, member) the accumulated realized loss in nats and
  whether the member is excluded from that principal's presence answers. Never shown to
  a caller; ``usage`` gives admins aggregates only.

A debit is written *before* noise is drawn and committed with the drawn cells; there is no
refund once noise was drawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vault.errors import GenoVaultError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL,
    display_name TEXT,
    role TEXT,
    epsilon REAL NOT NULL,
    cells INTEGER NOT NULL,
    dataset TEXT,
    query_id TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_principal_at ON charges (principal, at);
CREATE TABLE IF NOT EXISTS cells (
    principal TEXT NOT NULL,
    dataset_version TEXT NOT NULL,
    cell TEXT NOT NULL,
    counts TEXT NOT NULL,
    query_id TEXT,
    PRIMARY KEY (principal, dataset_version, cell)
);
CREATE TABLE IF NOT EXISTS reused (
    query_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS presence_answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL,
    display_name TEXT,
    role TEXT,
    dataset_version TEXT NOT NULL,
    variant TEXT NOT NULL,
    answer INTEGER NOT NULL,
    ac_eff INTEGER NOT NULL,
    noise INTEGER NOT NULL,
    newly_excluded INTEGER NOT NULL,
    dataset TEXT,
    query_id TEXT,
    at REAL NOT NULL,
    UNIQUE (principal, dataset_version, variant)
);
CREATE TABLE IF NOT EXISTS member_loss (
    principal TEXT NOT NULL,
    dataset_version TEXT NOT NULL,
    member INTEGER NOT NULL,
    loss REAL NOT NULL,
    excluded INTEGER NOT NULL,
    PRIMARY KEY (principal, dataset_version, member)
);
"""

#: tolerance for float sums of ε
_EPS_TOL = 1e-9


class BudgetExhausted(GenoVaultError):
    """The answer would cost more ε than the principal has left in this period."""

    def __init__(self, spent: float, budget: float, cost: float, resets_at: float) -> None:
        self.spent, self.budget, self.cost, self.resets_at = spent, budget, cost, resets_at
        super().__init__(f"privacy budget exhausted: {spent:.4g} of {budget:g} ε spent in "
                         f"this period, this answer needs {cost:.4g}")


@dataclass(frozen=True)
class Release:
    """What one ``release`` did: the noisy counts of every asked cell, and its cost."""

    counts: dict[str, np.ndarray]
    new_cells: int
    epsilon: float
    spent: float  # in the period, after this release
    budget: float
    resets_at: float

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget - self.spent)


@dataclass(frozen=True)
class PresenceRelease:
    """A presence answer under the member budget: the answer, and whether it was stored."""

    exists: bool
    reused: bool


def period_bounds(now: float, period_days: int) -> tuple[float, float]:
    length = float(period_days) * 86400.0
    start = (now // length) * length
    return start, start + length


class Ledger:
    """Durable, atomic per-principal ε accounting (thread- and process-safe)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        os.chmod(self.path, 0o600)
        with self._connect() as con:
            con.executescript(_SCHEMA)
        #: one connection per thread for release(), kept open: opening one per call and
        #: closing it (the last close of a WAL database checkpoints it) cost more than the
        #: transaction itself
        self._local = threading.local()

    def _thread_connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            con = self._connect()
            self._local.con, self._local.pid = con, os.getpid()
        return con

    def _drop_thread_connection(self) -> None:
        con = getattr(self._local, "con", None)
        self._local.con = None
        if con is not None:
            with contextlib.suppress(sqlite3.Error):
                con.close()

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=60000")
        con.execute("PRAGMA synchronous=FULL")
        return con

    # -- reading ---------------------------------------------------------------------------
    def spent(self, principal: str, period_days: int) -> float:
        start, _ = period_bounds(self.clock(), period_days)
        con = self._connect()
        try:
            return _spent(con, principal, start)
        finally:
            con.close()

    def usage(self, period_days: int | None = None) -> list[dict[str, Any]]:
        """Per principal: ε in the current period (of ``period_days``, default 30), ε ever,
        charges, released cells, last charge time; and the presence answers given under the
        member information budget and how many members it excluded (aggregates only)."""
        start, end = period_bounds(self.clock(), period_days or 30)
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT principal, MAX(display_name), GROUP_CONCAT(DISTINCT role), "
                "SUM(CASE WHEN at >= ? THEN epsilon ELSE 0 END), SUM(epsilon), COUNT(*), "
                "SUM(cells), MAX(at) FROM charges GROUP BY principal ORDER BY principal",
                (start,)).fetchall()
            cells = dict(con.execute("SELECT principal, COUNT(*) FROM cells GROUP BY "
                                     "principal").fetchall())
            pres = {p: (dn, roles, int(n), float(last)) for p, dn, roles, n, last in
                    con.execute("SELECT principal, MAX(display_name), GROUP_CONCAT(DISTINCT "
                                "role), COUNT(*), MAX(at) FROM presence_answers GROUP BY "
                                "principal")}
            excluded = dict(con.execute("SELECT principal, SUM(excluded) FROM member_loss "
                                        "GROUP BY principal").fetchall())
        finally:
            con.close()
        out = [{"principal": p, "display_name": dn, "roles": sorted((roles or "").split(",")),
                "epsilon_period": round(float(ep or 0), 9), "epsilon_total": round(float(et),
                                                                                   9),
                "charges": int(n), "cells_charged": int(nc or 0),
                "cells_stored": int(cells.get(p, 0)), "last_charge": float(last),
                "period_start": start, "period_end": end}
               for p, dn, roles, ep, et, n, nc, last in rows]
        seen = {r["principal"] for r in out}
        for p, (dn, roles, _, last) in pres.items():  # presence answers only, no ε charged
            if p not in seen:
                out.append({"principal": p, "display_name": dn,
                            "roles": sorted((roles or "").split(",")), "epsilon_period": 0.0,
                            "epsilon_total": 0.0, "charges": 0, "cells_charged": 0,
                            "cells_stored": 0, "last_charge": last, "period_start": start,
                            "period_end": end})
        for r in out:  # the member information budget: aggregates only
            r["presence_answers"] = pres[r["principal"]][2] if r["principal"] in pres else 0
            r["members_excluded"] = int(excluded.get(r["principal"]) or 0)
        return sorted(out, key=lambda r: r["principal"])

    # -- the one writing path --------------------------------------------------------------
    def release(self, principal: str, dataset_version: str, cells: Sequence[str],
                true_counts: Callable[[list[int]], np.ndarray],
                sample: Callable[[np.ndarray], np.ndarray],
                cost: Callable[[list[int]], float], budget: float, period_days: int, *,
                role: str | None = None, display_name: str | None = None,
                dataset: str | None = None, query_id: str | None = None) -> Release:
        """Noisy counts for ``cells``: stored ones are reused; the others cost
        ``cost(new_indices)`` ε, are debited (refused with BudgetExhausted if the budget
        of the period does not cover them), then noised with ``sample`` and stored — all in
        one transaction. ``true_counts(new_indices)`` gives their exact counts (n, 4)."""
        now = self.clock()
        start, end = period_bounds(now, period_days)
        con = self._thread_connection()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                have: dict[str, np.ndarray] = {}
                sources: set[str] = set()  # other answers whose stored cells this reuses
                uniq = list(dict.fromkeys(cells))
                for i in range(0, len(uniq), 500):
                    chunk = uniq[i:i + 500]
                    q = ",".join("?" * len(chunk))  # placeholders only, never values
                    sql = ("SELECT cell, counts, query_id FROM cells WHERE "  # noqa: S608
                           f"principal = ? AND dataset_version = ? AND cell IN ({q})")
                    for cell, counts, src in con.execute(sql, (principal, dataset_version,
                                                               *chunk)):
                        have[cell] = np.asarray(json.loads(counts), np.int64)
                        if src is not None and src != query_id:
                            sources.add(src)
                if sources:  # those answers' cells are out now: never refunded (refund)
                    con.executemany("INSERT OR IGNORE INTO reused (query_id) VALUES (?)",
                                    [(src,) for src in sorted(sources)])
                new: list[int] = []
                seen: set[str] = set()
                for i, c in enumerate(cells):
                    if c not in have and c not in seen:
                        seen.add(c)
                        new.append(i)
                spent = _spent(con, principal, start)
                eps = float(cost(new)) if new else 0.0
                if eps > 0:
                    if spent + eps > budget + _EPS_TOL:
                        raise BudgetExhausted(spent, budget, eps, end)
                    # debit first, then draw: the charge is in the same transaction as the
                    # noisy cells and nothing is released unless both commit
                    con.execute("INSERT INTO charges (principal, display_name, role, epsilon, "
                                "cells, dataset, query_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (principal, display_name, role, eps, len(new), dataset,
                                 query_id, now))
                    noisy = np.asarray(sample(np.asarray(true_counts(new), np.int64)),
                                       np.int64).reshape(len(new), -1)
                    con.executemany(
                        "INSERT INTO cells (principal, dataset_version, cell, counts, "
                        "query_id) VALUES (?, ?, ?, ?, ?)",
                        [(principal, dataset_version, cells[i], json.dumps(noisy[j].tolist()),
                          query_id) for j, i in enumerate(new)])
                    for j, i in enumerate(new):
                        have[cells[i]] = noisy[j]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            self._drop_thread_connection()  # the next call starts on a fresh connection
            raise
        return Release({c: have[c] for c in cells}, len(new), eps, spent + eps, budget, end)

    def presence(self, principal: str, dataset_version: str, variant: str,
                 members: np.ndarray, copies: np.ndarray, params: Any, threshold: int,
                 draw: Callable[[], int], *, role: str | None = None,
                 display_name: str | None = None, dataset: str | None = None,
                 query_id: str | None = None) -> PresenceRelease:
        """The presence answer for ``variant`` under the per-member information budget
        (vault.privacy.presence.answer): a stored answer is reused at no cost; otherwise the
        carriers' (``members``, ``copies``) losses are read, the over-budget ones excluded,
        the noise drawn, the included carriers charged and the answer stored -- all in one
        ``BEGIN IMMEDIATE`` transaction, so parallel answers cannot overspend a member."""
        from vault.privacy.presence import answer

        members = np.asarray(members, np.int64)
        now = self.clock()
        con = self._thread_connection()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT answer FROM presence_answers WHERE principal = ? "
                                  "AND dataset_version = ? AND variant = ?",
                                  (principal, dataset_version, variant)).fetchone()
                if row is not None:
                    con.execute("COMMIT")
                    return PresenceRelease(bool(row[0]), True)
                loss = np.zeros(members.size, np.float64)
                excluded = np.zeros(members.size, np.bool_)
                at = {int(m): i for i, m in enumerate(members.tolist())}
                ids = list(at)
                for i in range(0, len(ids), 500):
                    chunk = ids[i:i + 500]
                    q = ",".join("?" * len(chunk))  # placeholders only, never values
                    sql = ("SELECT member, loss, excluded FROM member_loss WHERE "  # noqa: S608
                           f"principal = ? AND dataset_version = ? AND member IN ({q})")
                    for m, lo, ex in con.execute(sql, (principal, dataset_version, *chunk)):
                        loss[at[int(m)]] = float(lo)
                        excluded[at[int(m)]] = bool(ex)
                st = answer(copies, loss, excluded, params, threshold, draw)
                touched = st.included | st.newly_excluded
                con.executemany(
                    "INSERT INTO member_loss (principal, dataset_version, member, loss, "
                    "excluded) VALUES (?, ?, ?, ?, ?) ON CONFLICT (principal, dataset_version, "
                    "member) DO UPDATE SET loss = excluded.loss, excluded = excluded.excluded",
                    [(principal, dataset_version, int(members[j]),
                      float(loss[j] + st.charge[j]), int(bool(excluded[j]
                                                              or st.newly_excluded[j])))
                     for j in np.flatnonzero(touched).tolist()])
                con.execute(
                    "INSERT INTO presence_answers (principal, display_name, role, "
                    "dataset_version, variant, answer, ac_eff, noise, newly_excluded, dataset, "
                    "query_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (principal, display_name, role, dataset_version, variant, int(st.exists),
                     st.ac_eff, st.noise, int(st.newly_excluded.sum()), dataset, query_id, now))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            self._drop_thread_connection()
            raise
        return PresenceRelease(st.exists, False)

    def presence_usage(self) -> dict[str, dict[str, Any]]:
        """Per principal (admins): presence answers given and members excluded, summed
        over dataset versions -- aggregates only."""
        con = self._connect()
        try:
            answers = dict(con.execute("SELECT principal, COUNT(*) FROM presence_answers "
                                       "GROUP BY principal").fetchall())
            excluded = dict(con.execute("SELECT principal, SUM(excluded) FROM member_loss "
                                        "GROUP BY principal").fetchall())
            names = dict(con.execute("SELECT principal, MAX(display_name) FROM "
                                     "presence_answers GROUP BY principal").fetchall())
        finally:
            con.close()
        return {p: {"presence_answers": int(n), "members_excluded": int(excluded.get(p) or 0),
                    "display_name": names.get(p)} for p, n in answers.items()}

    def refund(self, query_id: str) -> float:
        """Undo the charges of an answer that never left (its audit record could not be
        written, or the service stopped before it): its charge rows and the noisy cells it
        stored are deleted in one transaction, so nothing drawn for it is ever released or
        reused. Returns the ε given back. Only for answers that certainly were not sent:
        the guard calls it when the answer is withheld, recovery (:func:`unanswered_charges`)
        for charges whose query id has no audit record.

        An answer whose stored cells another answer already reused (released them, free) is
        not refunded (0.0): deleting its cells would let them be drawn again -- a second
        noisy value of a released cell -- and the ε they cost was spent."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                if con.execute("SELECT 1 FROM reused WHERE query_id = ?",
                               (query_id,)).fetchone() is not None:
                    con.execute("COMMIT")
                    return 0.0
                row = con.execute("SELECT COALESCE(SUM(epsilon), 0) FROM charges WHERE "
                                  "query_id = ?", (query_id,)).fetchone()
                con.execute("DELETE FROM charges WHERE query_id = ?", (query_id,))
                con.execute("DELETE FROM cells WHERE query_id = ?", (query_id,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
        return float(row[0])

    def charges_after(self, charge_id: int) -> list[tuple[int, str, float]]:
        """``(id, query id, time)`` of the charges with an id above ``charge_id``."""
        con = self._connect()
        try:
            return [(int(i), str(q), float(at)) for i, q, at in con.execute(
                "SELECT id, query_id, at FROM charges WHERE id > ? AND query_id IS NOT NULL "
                "ORDER BY id", (charge_id,))]
        finally:
            con.close()

    def checked_upto(self, charge_id: int | None = None) -> int:
        """The last charge id recovery has checked (and, with ``charge_id``, set it)."""
        con = self._connect()
        try:
            con.execute("CREATE TABLE IF NOT EXISTS recovery (id INTEGER PRIMARY KEY CHECK "
                        "(id = 1), checked_upto INTEGER NOT NULL)")
            if charge_id is not None:
                con.execute("INSERT INTO recovery (id, checked_upto) VALUES (1, ?) ON CONFLICT "
                            "(id) DO UPDATE SET checked_upto = excluded.checked_upto",
                            (charge_id,))
            row = con.execute("SELECT checked_upto FROM recovery WHERE id = 1").fetchone()
            return int(row[0]) if row else 0
        finally:
            con.close()

    def charge(self, principal: str, epsilon: float, budget: float, period_days: int,
               **meta: Any) -> Release:
        """A plain debit (no cells): check and decrement in one transaction."""
        return self.release(principal, "-", [f"charge:{time.time_ns()}:{os.getpid()}"],
                            lambda idx: np.zeros((len(idx), 1), np.int64),
                            lambda x: x, lambda idx: epsilon, budget, period_days, **meta)


def _spent(con: sqlite3.Connection, principal: str, start: float) -> float:
    row = con.execute("SELECT COALESCE(SUM(epsilon), 0) FROM charges WHERE principal = ? "
                      "AND at >= ?", (principal, start)).fetchone()
    return float(row[0])


def ledger_path(home: Path) -> Path:
    """``<home>/privacy/ledger.db``."""
    return Path(home) / "privacy" / "ledger.db"
