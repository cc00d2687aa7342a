"""The in-memory rate limiter: the window, and a table that does not grow without bound."""

from __future__ import annotations

import pytest

from vault.api import ratelimit
from vault.api.ratelimit import RateLimiter


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    return now


def test_ratelimit__window_is_enforced(clock: list[float]) -> None:
    r = RateLimiter()
    assert r.allow("alice", "researcher", 2, 10.0) is None
    assert r.allow("alice", "researcher", 2, 10.0) is None
    assert r.allow("alice", "researcher", 2, 10.0) == pytest.approx(10.0)
    assert r.allow("bob", "researcher", 2, 10.0) is None  # per principal
    clock[0] += 10.0
    assert r.allow("alice", "researcher", 2, 10.0) is None


def test_ratelimit__callers_that_came_once_do_not_grow_the_table(clock: list[float]) -> None:
    """Anonymous callers are keyed per address: one hit each from many addresses kept a
    key each forever (an unbounded table, a memory exhaustion from outside)."""
    r = RateLimiter()
    assert r.allow("busy", "public", 1, 1e6) is None  # still inside its window throughout
    for i in range(20 * ratelimit.SWEEP_AT):
        assert r.allow(f"anonymous:{i}", "public", 5, 1.0) is None
        clock[0] += 0.01
    assert len(r._hits) <= 2 * ratelimit.SWEEP_AT + 1
    # a swept table still limits: the key inside its window kept its hit
    assert r.allow("busy", "public", 1, 1e6) is not None
