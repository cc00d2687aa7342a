"""The budget ledger: durable, atomic under threads and processes, periods, reuse."""

from __future__ import annotations

import multiprocessing as mp
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from vault.privacy.ledger import BudgetExhausted, Ledger, period_bounds


def _release(ledger: Ledger, who: str, keys: list[str], budget: float = 1.0,
             eps: float = 0.1):
    return ledger.release(who, "v1", keys, lambda idx: np.ones((len(idx), 4), np.int64),
                          lambda x: x + 1, lambda idx: eps * len(idx), budget, 30,
                          role="r", query_id="q")


def test_ledger__file_is_0600_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "privacy" / "ledger.db"
    led = Ledger(path)
    r = _release(led, "alice", ["a|overall", "b|overall"])
    assert r.epsilon == pytest.approx(0.2) and r.new_cells == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Ledger(path)  # a restart
    assert again.spent("alice", 30) == pytest.approx(0.2)
    r2 = _release(again, "alice", ["a|overall", "c|overall"])
    assert r2.new_cells == 1 and r2.epsilon == pytest.approx(0.1)
    assert r2.counts["a|overall"].tolist() == r.counts["a|overall"].tolist()


def test_ledger__exhausted_budget_refuses_and_charges_nothing(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.db")
    _release(led, "bob", [f"k{i}|overall" for i in range(9)])
    with pytest.raises(BudgetExhausted) as exc:
        _release(led, "bob", ["x|overall", "y|overall"])
    assert exc.value.spent == pytest.approx(0.9) and exc.value.cost == pytest.approx(0.2)
    assert led.spent("bob", 30) == pytest.approx(0.9)
    _release(led, "bob", ["x|overall"])  # exactly reaches the budget
    with pytest.raises(BudgetExhausted):
        _release(led, "bob", ["z|overall"])
    # reuse is always free, even when exhausted
    assert _release(led, "bob", ["k1|overall"]).epsilon == 0.0
    assert led.spent("carol", 30) == 0.0


def test_ledger__period_resets(tmp_path: Path) -> None:
    now = [1_000_000_000.0]
    led = Ledger(tmp_path / "l.db", clock=lambda: now[0])
    for i in range(10):
        _release(led, "dan", [f"k{i}|overall"])
    with pytest.raises(BudgetExhausted) as exc:
        _release(led, "dan", ["next|overall"])
    start, end = period_bounds(now[0], 30)
    assert exc.value.resets_at == end and end - start == 30 * 86400
    now[0] = end + 1
    assert led.spent("dan", 30) == 0.0
    assert _release(led, "dan", ["next|overall"]).epsilon == pytest.approx(0.1)
    (row,) = led.usage(30)
    assert row["epsilon_period"] == pytest.approx(0.1) and row["epsilon_total"] == \
        pytest.approx(1.1) and row["charges"] == 11


def test_ledger__threads_never_overspend(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.db")
    ok, refused = [], []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(10):
            try:
                _release(led, "eve", [f"t{t}-{i}|overall"], budget=2.0)
                with lock:
                    ok.append(1)
            except BudgetExhausted:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(ok) == 20 and len(refused) == 140
    assert led.spent("eve", 30) == pytest.approx(2.0)


def _proc(path: str, tag: str, n: int, q: mp.Queue[int]) -> None:
    led = Ledger(Path(path))
    got = 0
    for i in range(n):
        try:
            _release(led, "mallory", [f"{tag}-{i}|overall"], budget=3.0)
            got += 1
        except BudgetExhausted:
            pass
    q.put(got)


def test_ledger__two_processes_share_one_store_without_overspending(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger(path)
    ctx = mp.get_context("spawn")
    q: mp.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_proc, args=(str(path), tag, 40, q)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = [q.get(timeout=5), q.get(timeout=5)]
    assert sum(got) == 30
    assert Ledger(path).spent("mallory", 30) == pytest.approx(3.0)


def test_ledger__same_cells_in_parallel_are_noised_once(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.db")
    results = []

    def worker() -> None:
        results.append(led.release("zoe", "v1", ["s|overall"],
                                   lambda idx: np.zeros((len(idx), 4), np.int64),
                                   lambda x: x + np.random.default_rng().integers(0, 10**9,
                                                                                   x.shape),
                                   lambda idx: 0.1, 5.0, 30))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({tuple(r.counts["s|overall"].tolist()) for r in results}) == 1
    assert sum(r.new_cells for r in results) == 1
    assert led.spent("zoe", 30) == pytest.approx(0.1)
