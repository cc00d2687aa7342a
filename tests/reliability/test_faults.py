"""Faults under load, against a real ``genovault serve`` subprocess and a real, persistent
OpenBao: the API killed with SIGKILL, Vault sealed, Vault restarted, Vault slow.

What must hold in every case: an answer (200) always has its audit record; the audit chain
verifies against its anchor afterwards; the ε in the ledger equals the ε the audit records
say was charged; a failure is a clear 503 (or 504) within a bounded time, never a hang; and
the service recovers by itself once the fault is gone.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from benchmarks.load import Result, run_load
from tests.reliability.conftest import VAULT_TIMEOUT_S
from tests.support.served import Served, count_ids, ledger_matches_audit

pytestmark = pytest.mark.integration


@contextmanager
def background_load(s: Served, clients: int, seconds: float, timeout: float = 30.0
                    ) -> Iterator[list[Result]]:
    """Load in a thread while the block runs; the list fills as answers come; joined at exit."""
    out: list[Result] = []
    t = threading.Thread(target=run_load, args=(s, clients, seconds),
                         kwargs={"timeout": timeout, "out": out, "pause_on_failure": 0.05},
                         daemon=True)
    t.start()
    try:
        yield out
    finally:
        t.join(seconds + timeout + 30)
        assert not t.is_alive(), "the load did not end: a request hangs"


def wait_answers(out: list[Result], n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(r.status == 200 for r in out) < n:
        assert time.monotonic() < deadline, f"fewer than {n} answers in {timeout} s"
        time.sleep(0.05)


def assert_answers_audited(s: Served, results: list[Result]) -> None:
    counts = count_ids(s.audit_records())
    answered = [r for r in results if r.status == 200]
    assert answered
    missing = [(r.req.kind, q) for r in answered for q in r.ids if counts.get(q) != 1]
    assert not missing, f"answers without exactly one audit record: {missing[:5]}"
    for r in results:  # whatever was answered, refusals too, names a record of its own
        for q in r.ids:
            assert counts.get(q, 0) <= 1, q


def assert_consistent(s: Served) -> None:
    report = s.verify_audit()
    assert report.ok, report.problems
    ok, why = ledger_matches_audit(s)
    assert ok, why


def get(s: Served, user: str = "researcher-a", timeout: float = 30) -> httpx.Response:
    return httpx.get(f"{s.url}/v1/datasets/demo/frequency", timeout=timeout,
                     params={"region": "20:1-20000", "group_by": "population"},
                     headers=s.headers(user))


def wait_recovered(s: Served, within: float) -> float:
    """Seconds until a query is answered again (fails after ``within``)."""
    t0 = time.monotonic()
    while True:
        try:
            if get(s, timeout=10).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        assert time.monotonic() - t0 < within, f"not recovered within {within} s"
        time.sleep(0.2)


def test_kill9__answers_audited_chain_verifies_budget_intact(healthy: Served) -> None:
    s = healthy
    with background_load(s, clients=6, seconds=6, timeout=10) as out:
        wait_answers(out, 20)
        s.kill_api(signal.SIGKILL)
        killed_at = time.monotonic()
    before_kill = [r for r in out if r.t_end < killed_at]
    assert_answers_audited(s, before_kill)
    # after the kill nothing was answered
    assert not [r for r in out if r.status is not None and r.t_start > killed_at + 0.5]
    s.start_api()
    assert wait_recovered(s, 60) < 60
    assert_answers_audited(s, out)
    assert_consistent(s)


def test_vault_sealed__503_fast_readyz_says_why_resumes_after_unseal(healthy: Served) -> None:
    s = healthy
    ready: list[tuple[float, int, dict]] = []
    with background_load(s, clients=4, seconds=9, timeout=15) as out:
        wait_answers(out, 10)
        s.seal()
        sealed_at = time.monotonic()
        time.sleep(4)
        r = httpx.get(f"{s.url}/readyz", timeout=10)
        ready.append((time.monotonic(), r.status_code, r.json()))
        s.unseal()
        unsealed_at = time.monotonic()
    during = [r for r in out if r.t_start > sealed_at + 0.1 and r.t_end < unsealed_at]
    assert during, "no request while sealed"
    wrong = [(r.req.kind, r.status, round(r.ms)) for r in during
             if r.status is None or r.status not in (200, *r.req.expect, 503)]
    assert not wrong, wrong
    unavailable = [r for r in during if r.status == 503]
    assert unavailable, "sealed Vault, yet no 503"
    slow = [(r.req.kind, round(r.ms)) for r in unavailable if r.ms > 2000]
    assert not slow, f"503s slower than 2 s: {slow[:5]}"
    _, status, body = ready[0]
    assert status == 503 and body["checks"]["vault"]["ok"] is False, body
    assert "sealed" in body["checks"]["vault"]["why"], body
    assert wait_recovered(s, 20) < 20  # the same API process, no restart
    assert s.proc is not None and s.proc.poll() is None
    assert_answers_audited(s, out)
    assert_consistent(s)


def test_vault_restarted__503_while_down_resumes_after(healthy: Served) -> None:
    s = healthy
    with background_load(s, clients=4, seconds=8, timeout=15) as out:
        wait_answers(out, 10)
        t0 = time.monotonic()
        s.restart_vault()
        restarted_at = time.monotonic()
    during = [r for r in out if r.t_start > t0 and r.t_end < restarted_at]
    wrong = [(r.req.kind, r.status, r.error) for r in during
             if r.status is None or r.status not in (200, *r.req.expect, 503)]
    assert not wrong, wrong
    assert wait_recovered(s, 30) < 30
    later = [r for r in out if r.t_start > restarted_at + 3]
    assert later and all(r.error is None for r in later), [r.error for r in later][:5]
    assert_answers_audited(s, out)
    assert_consistent(s)


def test_vault_slow__bounded_503_no_hang_recovers(healthy: Served) -> None:
    """Vault answering after 6 s (3 x the API's Vault timeout) for 18 s: every request ends
    within a bound (the timeout of each Vault call plus the bounded wait for the audit
    trail), as an answer or a 503/504, and none is answered without its audit record."""
    s = healthy
    assert s.proxy is not None
    with background_load(s, clients=4, seconds=22, timeout=60) as out:
        wait_answers(out, 10)
        s.proxy.delay_s = 1.5 * VAULT_TIMEOUT_S  # a Vault round trip: >= 3 x the timeout
        slow_from = time.monotonic()
        time.sleep(6)
        t0 = time.monotonic()
        r = httpx.get(f"{s.url}/readyz", timeout=30)
        assert r.status_code == 503 and time.monotonic() - t0 < 5, r.text
        time.sleep(12)
        s.proxy.delay_s = 0.0
        s.proxy.drop()
        fast_from = time.monotonic()
    affected = [r for r in out if r.t_end > slow_from + 0.5 and r.t_start < fast_from]
    wrong = [(r.req.kind, r.status, r.error) for r in affected
             if r.status is None or r.status not in (200, *r.req.expect, 503, 504)]
    assert not wrong, wrong
    assert [r for r in affected if r.status == 503], "a slow Vault, yet no 503"
    # the token lookup, or the audit turn (3 timeouts) + the anchor write + its read-back;
    # and the computation. Without the bounds they lasted as long as Vault was slow (18 s).
    bound_ms = (5 * VAULT_TIMEOUT_S + 3) * 1000
    slow = [(r.req.kind, r.status, round(r.ms)) for r in affected if r.ms > bound_ms]
    assert not slow, f"requests slower than {bound_ms:.0f} ms: {slow[:5]}"
    assert wait_recovered(s, 30) < 30
    assert_answers_audited(s, out)
    assert_consistent(s)
