"""``explain``: a decision with the reasoning behind it, for ``genovault policy explain``.

Same evaluation as :func:`vault.policy.decide` (it calls :func:`evaluate`), plus which
principal rules (or, for a passport, which visa rules and visas) matched, and per role the
grant (its rule, datasets, use), the DUO match and the Cedar context sent.
"""

from __future__ import annotations

from typing import Any

from vault.policy.decide import evaluate
from vault.policy.grants import meets, rule_match
from vault.policy.model import Principal, QueryRequest
from vault.policy.spec import Policy


def explain(principal: Principal, request: QueryRequest, policy: Policy) -> dict[str, Any]:
    decision, checks = evaluate(principal, request, policy)
    rules = [
        {"rule": r.json_path, "source": r.source, "match": dict(r.match), "role": r.role}
        for r in policy.principals
        if (r.anonymous if principal.auth == "anonymous" else
            principal.auth == "vault-token" and r.matches(
                tuple(principal.vault_policies), tuple(principal.groups), principal.entity_id))
    ]
    visa_rules = []
    if principal.auth == "passport":
        for vr in policy.passports.rules:
            used = rule_match(vr, tuple(principal.visas), policy)
            visa_rules.append({
                "rule": vr.json_path, "source": vr.source, "role": vr.role,
                "matched": used is not None,
                "datasets": None if vr.datasets is None else list(vr.datasets),
                "use": vr.use.label() if vr.use else None,
                "require": [{"type": n.type, "issuer": n.issuer, "value": n.value,
                             "met_by": [v.summary() for v in principal.visas
                                        if meets(v, n, policy)]} for n in vr.require]})
    ds = policy.datasets.get(request.dataset) if request.dataset else None
    roles = []
    for c in checks:
        g = c.grant
        roles.append({
            "role": c.role,
            "grant": None if g is None else {
                "via": g.via, "datasets": None if g.datasets is None else list(g.datasets),
                "use": g.use.label() if g.use else None},
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
        **({"visa_rules": visa_rules} if principal.auth == "passport" else {}),
        "dataset_consent": None if ds is None else {
            "label": ds.consent.label(), "permission": ds.consent.permission,
            "disease": ds.consent.disease, "modifiers": list(ds.consent.modifiers)},
        "roles": roles,
    }
