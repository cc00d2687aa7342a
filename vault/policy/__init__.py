"""Access decisions: ``decide(principal, request, policy) -> Decision``, a pure function.

No I/O, no Vault, no disk: it reads policy objects that the caller loaded, and never raises on a
denial. Routes and commands never decide access themselves; they call this package.

Policy files (YAML, ``policies/access/``) are validated against ``policy.schema.json``,
rendered to Cedar (``genovault.cedarschema``) and evaluated by cedarpy; see docs/policy.md.
"""

from vault.policy.decide import decide, visible_datasets
from vault.policy.lint import lint
from vault.policy.loader import PolicyLoadError, PolicyStore, load_policy
from vault.policy.model import (
    ACTIONS,
    STATISTICS,
    Decision,
    DPParams,
    Obligations,
    Principal,
    QueryRequest,
    RareVariant,
    RateLimit,
)
from vault.policy.spec import Finding, Policy

__all__ = [
    "ACTIONS",
    "STATISTICS",
    "DPParams",
    "Decision",
    "Finding",
    "Obligations",
    "Policy",
    "PolicyLoadError",
    "PolicyStore",
    "Principal",
    "QueryRequest",
    "RareVariant",
    "RateLimit",
    "decide",
    "lint",
    "load_policy",
    "visible_datasets",
]
