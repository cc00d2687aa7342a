"""Per-principal rate limits (the policy's ``rate_limit`` obligation), in memory.

A sliding window per (principal, role): at most ``requests`` answers per ``per_seconds``.
Per process: with several server processes each enforces its own window (documented).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    def __init__(self) -> None:
        self._hits: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, who: str, role: str, requests: int, per_seconds: float) -> float | None:
        """None if allowed (and counted); else seconds until the next request may pass."""
        now = time.monotonic()
        with self._lock:
            q = self._hits[(who, role)]
            while q and q[0] <= now - per_seconds:
                q.popleft()
            if len(q) >= requests:
                return max(0.0, q[0] + per_seconds - now)
            q.append(now)
            return None
