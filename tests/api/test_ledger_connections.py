"""The privacy ledger keeps one SQLite connection per thread for ``release`` (the API's DP
path): reused call after call, dropped after an SQLite error, and every charge is visible to
another Ledger on the same file at once (committed, not cached)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from vault.privacy.ledger import BudgetExhausted, Ledger


def _release(ledger: Ledger, who: str, keys: list[str], budget: float = 1.0) -> object:
    return ledger.release(who, "v1", keys, lambda idx: np.ones((len(idx), 4), np.int64),
                          lambda c: c + 1, lambda idx: 0.1 * len(idx), budget, 30)


def test_ledger_connection__reused_and_every_charge_visible_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.db"
    led = Ledger(path)
    opened: list[int] = []
    real = Ledger._connect

    def counting(self: Ledger) -> sqlite3.Connection:
        opened.append(1)
        return real(self)

    monkeypatch.setattr(Ledger, "_connect", counting)
    other = Ledger(path)  # another writer (process) on the same file
    opened.clear()
    for i in range(4):
        _release(led, "alice", [f"k{i}|overall"])
        assert other.spent("alice", 30) == pytest.approx(0.1 * (i + 1))
    with pytest.raises(BudgetExhausted):
        _release(led, "alice", [f"x{i}|overall" for i in range(7)])
    _release(led, "alice", ["k0|overall"])  # reused cell: free
    release_opens = len(opened) - 4  # other.spent() opens its own each time
    assert release_opens == 1


def test_ledger_connection__dropped_after_an_sqlite_error(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.db")
    _release(led, "bob", ["a|overall"])
    led._local.con.close()  # the kept connection breaks behind the ledger's back
    with pytest.raises(sqlite3.Error):
        _release(led, "bob", ["b|overall"])
    _release(led, "bob", ["c|overall"])  # a fresh connection
    assert led.spent("bob", 30) == pytest.approx(0.2)
