"""Per-principal rate limits (the policy's ``rate_limit`` obligation), in memory.

A sliding window per (principal, role): at most ``requests`` answers per ``per_seconds``.
Per process: with several server processes each enforces its own window (documented).
Keys whose window holds no hit any more are swept once the table has doubled since the last
sweep, so callers that come once (anonymous callers are keyed per address) do not grow the
table without bound.
"""

from __future__ import annotations

import threading
import time
from collections import deque

#: the table is swept of idle keys once it holds this many (and then twice what it kept)
SWEEP_AT = 1024


class RateLimiter:
    def __init__(self) -> None:
        #: (who, role) -> (hit times, the window they were counted in)
        self._hits: dict[tuple[str, str], tuple[deque[float], float]] = {}
        self._lock = threading.Lock()
        self._sweep_at = SWEEP_AT

    def allow(self, who: str, role: str, requests: int, per_seconds: float) -> float | None:
        """None if allowed (and counted); else seconds until the next request may pass."""
        now = time.monotonic()
        with self._lock:
            entry = self._hits.get((who, role))
            if entry is None:
                if len(self._hits) >= self._sweep_at:
                    self._sweep(now)
                entry = self._hits[(who, role)] = (deque(), per_seconds)
            elif entry[1] != per_seconds:
                entry = self._hits[(who, role)] = (entry[0], max(entry[1], per_seconds))
            q = entry[0]
            while q and q[0] <= now - per_seconds:
                q.popleft()
            if len(q) >= requests:
                return max(0.0, q[0] + per_seconds - now)
            q.append(now)
            return None

    def _sweep(self, now: float) -> None:
        """Drop the keys whose last hit left their (longest) window; hold the lock."""
        idle = [k for k, (q, per) in self._hits.items() if not q or q[-1] <= now - per]
        for k in idle:
            del self._hits[k]
        self._sweep_at = max(SWEEP_AT, 2 * len(self._hits))
