"""Who is calling: the bearer credential becomes a Principal.

Two kinds of credential (told apart by :func:`vault.passport.credential.is_jwt`):

* a **Vault token** (``hvs.…``, ``s.…`` …): looked up in Vault (below);
* a **GA4GH passport or visa** (a JWT): verified against the policy's trusted issuers
  (``passports:`` in the policy, read on each request so a policy reload applies at once)
  by vault.passport; a refusal raises ``CredentialRefused`` with its reason code.

The Vault token is used for one ``auth/token/lookup-self`` and then forgotten: it is never stored,
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
from dataclasses import dataclass
from typing import Any

from vault.passport.credential import is_jwt, passport_principal
from vault.policy.model import Principal
from vault.policy.spec import PassportSpec

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


@dataclass(frozen=True)
class Authenticated:
    """The caller, and what the audit record says of a passport credential (issuer,
    subject, jti, refused visas; never the JWT)."""

    principal: Principal
    credential: dict[str, Any] | None = None


class Credentials:
    """Bearer credential -> Authenticated: Vault tokens to Vault, JWTs to vault.passport."""

    def __init__(self, vault_tokens: Callable[[str], Principal],
                 passports: Callable[[], PassportSpec]) -> None:
        self._vault = vault_tokens
        self._passports = passports

    def __call__(self, token: str) -> Authenticated:
        if is_jwt(token):
            principal, info = passport_principal(token, self._passports())
            return Authenticated(principal, info.summary())
        return Authenticated(self._vault(token))
