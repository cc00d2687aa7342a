"""Remembered decisions: :func:`~vault.policy.decide` is pure, so its answer for the same
(principal, request, policy) is the same every time; the API asks it once per distinct
triple and reuses the (immutable) Decision.

The key holds everything ``decide`` reads of its inputs: the principal's entity, name, Vault
policies, groups, metadata and kind, the whole (frozen) QueryRequest, and the Policy object
itself. A policy reload makes a new Policy object, so every decision remembered under the old
one is dropped at the first request that sees the new one. Passport principals (visas with
their own expiry times) are never remembered: they are decided afresh every time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from vault.policy.decide import decide
from vault.policy.model import Decision, Principal, QueryRequest
from vault.policy.spec import Policy

#: distinct (principal, request) pairs remembered per policy
MEMO_SIZE = 4096


def principal_key(principal: Principal) -> tuple[Any, ...] | None:
    """What ``decide`` reads of a principal, hashable; None if it is not to be remembered."""
    if principal.visas:
        return None
    return (principal.entity_id, principal.display_name, principal.vault_policies,
            principal.groups, tuple(sorted(principal.metadata.items())), principal.auth)


class DecisionMemo:
    """``decide`` with a bounded memory of its answers under the current policy."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self._size = size
        self._policy: Policy | None = None
        self._memo: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def decide(self, principal: Principal, request: QueryRequest, policy: Policy) -> Decision:
        who = principal_key(principal)
        if who is None or not isinstance(request, QueryRequest):
            return decide(principal, request, policy)
        key = (who, request)
        with self._lock:
            if self._policy is not policy:
                self._policy = policy  # held, so its identity cannot be reused by another
                self._memo.clear()
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                self.hits += 1
                return hit
        decision = decide(principal, request, policy)
        with self._lock:
            if self._policy is policy:
                self.misses += 1
                self._memo[key] = decision
                while len(self._memo) > self._size:
                    self._memo.popitem(last=False)
        return decision
