"""Who is calling: the caller's Vault token, looked up in Vault, becomes a Principal.

The token is used for one ``auth/token/lookup-self`` and then forgotten: it is never stored,
logged or passed on (the service unwraps keys with its own identity). Lookups are cached
for a few seconds under a hash of the token, so a revoked or expired token stops working
within ``ttl_s``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from vault.policy.model import Principal

#: how long a lookup is trusted (a revoked token keeps working at most this long)
TOKEN_CACHE_TTL_S = 5.0
TOKEN_CACHE_SIZE = 4096


class TokenAuthenticator:
    """Bearer token -> Principal, with a bounded, short-lived cache."""

    def __init__(self, lookup: Callable[[str], dict[str, Any]],
                 ttl_s: float = TOKEN_CACHE_TTL_S, size: int = TOKEN_CACHE_SIZE) -> None:
        self._lookup = lookup
        self._ttl = ttl_s
        self._size = size
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def principal(self, token: str) -> Principal:
        """The caller behind ``token``; raises VaultUnauthenticated / VaultDown."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1]
        info = self._lookup(token)
        principal = principal_from_lookup(info)
        ttl = min(self._ttl, float(info.get("ttl") or self._ttl) or self._ttl)
        with self._lock:
            self._cache[key] = (now + ttl, principal)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return principal

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


def principal_from_lookup(info: dict[str, Any]) -> Principal:
    policies = sorted({*(info.get("policies") or []), *(info.get("identity_policies") or [])})
    meta = {str(k): str(v) for k, v in (info.get("meta") or {}).items()}
    return Principal(
        entity_id=str(info.get("entity_id") or ""),
        display_name=str(info.get("display_name") or ""),
        vault_policies=tuple(policies),
        groups=tuple(sorted(str(g) for g in (info.get("groups") or []))),
        metadata=meta,
    )
