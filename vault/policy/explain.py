"""``explain``: a decision with the reasoning behind it, for ``genovault policy explain``.

Same evaluation as :func:`vault.policy.decide` (it calls :func:`evaluate`), plus which
principal rules matched, and per role the DUO match and the Cedar context sent.
"""

from __future__ import annotations

from typing import Any

from vault.policy.decide import evaluate
from vault.policy.model import Principal, QueryRequest
from vault.policy.spec import Policy


def explain(principal: Principal, request: QueryRequest, policy: Policy) -> dict[str, Any]:
    decision, checks = evaluate(principal, request, policy)
    rules = [
        {"rule": r.json_path, "source": r.source, "match": dict(r.match), "role": r.role}
        for r in policy.principals
        if r.matches(tuple(principal.vault_policies), tuple(principal.groups),
                     principal.entity_id)
    ]
    ds = policy.datasets.get(request.dataset) if request.dataset else None
    roles = []
    for c in checks:
        roles.append({
            "role": c.role,
            "allowed": c.allowed,
            "cedar_rules": list(c.rules),
            "cedar_errors": list(c.errors),
            "use": c.use.label() if c.use else None,
            "use_check": None if c.use_match is None else {
                "ok": c.use_match.ok, "reason": c.use_match.reason,
                "explanation": c.use_match.explanation},
            "duo": None if c.consent_match is None else {
                "ok": c.consent_match.ok, "reason": c.consent_match.reason,
                "explanation": c.consent_match.explanation},
            "context": c.context,
        })
    return {
        "decision": decision.to_dict(),
        "principal_rules": rules,
        "dataset_consent": None if ds is None else {
            "label": ds.consent.label(), "permission": ds.consent.permission,
            "disease": ds.consent.disease, "modifiers": list(ds.consent.modifiers)},
        "roles": roles,
    }
