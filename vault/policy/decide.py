"""``decide(principal, request, policy) -> Decision``: pure, deny by default.

1. The principal's grants (vault.policy.grants): the roles of every principal rule that
   matches (Vault policy, identity group, entity id), or of every visa rule its verified
   visas meet (possibly limited to some datasets, with the use the grant approved), in the
   file order of ``roles:``. None: denied, ``no_role``.
2. Per role, Python computes what Cedar cannot: whether the dataset's DUO consent permits
   the effective use (the request's ``use`` or else the role's), whether the role may declare
   that use, and the parsed filters. These go to Cedar as context.
3. Cedar decides, one request per role, schema always passed. A role allows iff Cedar says
   Allow with no diagnostics errors. NoDecision or any error anywhere: denied,
   ``policy_error`` (a broken policy never lets a request through).
4. Allowed if ANY role allows; the obligations and ``role`` are those of the first allowing
   role in file order. Denied: the reasons of every role, in role order, without repeats.

Never raises on a denial; raises ValueError for programmer errors (an unknown action).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vault.policy import cedar
from vault.policy.duo import DuoError, DuoMatch, Use, match_consent, parse_use, permits
from vault.policy.grants import Grant, grants_of
from vault.policy.model import (
    ACTIONS,
    CONSENT_ACTIONS,
    EXACT_ACTIONS,
    STATISTICS,
    Decision,
    Obligations,
    Principal,
    QueryRequest,
)
from vault.policy.spec import Policy, RoleSpec, RuleInfo

#: Reasons that say the request is outside a role's scope, and those that then add nothing.
_SCOPE_REASONS = frozenset({"statistic_not_allowed", "action_not_allowed", "dataset_not_visible",
                            "dataset_required", "dataset_not_applicable"})
_DERIVED_REASONS = frozenset({"consent_mismatch", "use_not_permitted"})
_FILTER = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,62})\s*(<=|>=|!=|=|<|>)\s*([^\s<>=!]+)")


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str

    def term(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_filter(text: str) -> Filter | None:
    """``population=pop1`` -> Filter; None if the text is not ``<field><op><value>``."""
    m = _FILTER.fullmatch(text.strip()) if isinstance(text, str) else None
    return Filter(m.group(1), m.group(2), m.group(3)) if m else None


@dataclass(frozen=True)
class RoleCheck:
    """What decide computed for one role: DUO matches, the Cedar context and result."""

    role: str
    use: Use | None
    use_match: DuoMatch | None
    consent_match: DuoMatch | None
    context: dict[str, Any]
    allowed: bool
    rules: tuple[str, ...]
    errors: tuple[str, ...]
    grant: Grant | None = None


def decide(principal: Principal, request: QueryRequest, policy: Policy) -> Decision:
    """The decision for ``request`` by ``principal`` under ``policy``."""
    decision, _ = evaluate(principal, request, policy)
    return decision


def evaluate(principal: Principal, request: QueryRequest, policy: Policy
             ) -> tuple[Decision, tuple[RoleCheck, ...]]:
    """:func:`decide`, with what it computed per role (for ``policy explain``)."""
    if not isinstance(request, QueryRequest) or request.action not in ACTIONS:
        raise ValueError(f"not a QueryRequest with a known action: {request!r}")
    if not isinstance(principal, Principal):
        raise ValueError(f"not a Principal: {principal!r}")
    version = policy.version
    grants = grants_of(principal, policy)
    if not grants:
        return Decision(False, ("no_role",), None, None, version), ()
    roles = [g.role for g in grants]
    filters = [parse_filter(f) for f in request.filters]
    prepared = [_prepare(policy.roles[g.role], g, request, policy, filters) for g in grants]
    requests = [cedar.request(r, request.action, request.dataset, ctx)
                for r, (_, _, _, ctx) in zip(roles, prepared, strict=True)]
    try:
        results = cedar.authorize(requests, policy.cedar_policies, policy.cedar_schema)
    except Exception as exc:  # any engine failure is a denial, never an allow
        return Decision(False, (f"policy_error:{type(exc).__name__}",), None, None,
                        version), ()
    checks = []
    for grant, (use, use_m, consent_m, ctx), res in zip(grants, prepared, results,
                                                        strict=True):
        errors = tuple(str(e) for e in (res.diagnostics.errors or ()))
        decided = str(res.decision)
        allowed = bool(res.allowed) and decided.endswith("Allow") and not errors
        checks.append(RoleCheck(grant.role, use, use_m, consent_m, ctx, allowed,
                                tuple(res.diagnostics.reasons or ()), errors, grant))
    checks_t = tuple(checks)
    if any(c.errors or not (str(r.decision).endswith(("Allow", "Deny")))
           for c, r in zip(checks, results, strict=True)):
        bad = [c.role for c in checks if c.errors] or list(roles)
        return Decision(False, tuple(f"policy_error:{r}" for r in bad), None, None, version,
                        tuple(x for c in checks for x in c.rules)), checks_t
    exact_refused = False
    for c in checks:
        if c.allowed:
            spec = policy.roles[c.role]
            obligations = _obligations(spec, request, policy)
            if obligations.tier == "registered" and obligations.dp is None \
                    and request.action in STATISTICS:
                continue  # refused at strict load; never answer without noise
            if request.action in EXACT_ACTIONS and (
                    obligations.dp is not None
                    or (obligations.tier == "registered" and request.action in CONSENT_ACTIONS)):
                exact_refused = True  # exact counts only: never for a role that needs noise
                continue
            return Decision(True, tuple(f"allowed_by:{r}" for r in c.rules), obligations,
                            c.role, version, c.rules), checks_t
    reasons: list[str] = []
    matched: list[str] = []
    order = {rule_id: i for i, rule_id in enumerate(policy.rules)}
    for c in checks:
        fired = sorted(c.rules, key=lambda r: order.get(r, len(order)))
        infos = [policy.rules.get(r) for r in fired]
        scope_denied = any(i is not None and i.reason in _SCOPE_REASONS for i in infos)
        for rule_id, info in zip(fired, infos, strict=True):
            matched.append(rule_id)
            if info is not None and info.effect == "permit":
                continue  # a role Cedar allowed but refused after (dp): its permit is no reason
            if scope_denied and info is not None and info.reason in _DERIVED_REASONS:
                continue  # "not your dataset" says it; its consent is beside the point
            reasons += _reason_codes(info, request, filters, c)
        if not c.rules:
            reasons.append("not_permitted")
    if exact_refused:  # allowed by Cedar, but this answer has no noisy version
        reasons.append(f"dp_unsupported:{request.action}")
    elif any(c.allowed for c in checks):  # allowed by Cedar but no DP settings
        reasons.append("dp_required")
    return Decision(False, tuple(dict.fromkeys(reasons)), None, None, version,
                    tuple(dict.fromkeys(matched))), checks_t


def _effective_use(role: RoleSpec, grant: Grant, request: QueryRequest
                   ) -> tuple[Use | None, DuoMatch | None]:
    declared = grant.use or role.use
    whose = f"the use granted by {grant.via}" if grant.use is not None else "role use"
    if request.use is None:
        if declared is None:
            return None, DuoMatch(False, "use_not_declared",
                                  f"role {role.id} declares no use")
        return declared, DuoMatch(True, "use_ok", f"{whose} {declared.label()}")
    try:
        asked = parse_use(request.use)
    except DuoError as exc:
        return None, DuoMatch(False, f"use_unknown:{request.use}", str(exc))
    if declared is None or not permits(declared.code, declared.disease, asked):
        have = declared.label() if declared else "none"
        return None, DuoMatch(False, f"use_not_permitted:{asked.label()}",
                              f"role {role.id} may declare use {have}, not {asked.label()}")
    use = Use(asked.code, asked.disease, declared.attests)
    return use, DuoMatch(True, "use_ok",
                         f"requested use {asked.label()} is within {whose} {declared.label()}")


def _prepare(role: RoleSpec, grant: Grant, request: QueryRequest, policy: Policy,
             filters: list[Any]) -> tuple[Use | None, DuoMatch | None, DuoMatch | None,
                                          dict[str, Any]]:
    use, use_match = _effective_use(role, grant, request)
    consent_match = None
    ds = policy.datasets.get(request.dataset) if request.dataset is not None else None
    if request.action in CONSENT_ACTIONS and request.dataset is not None:
        if ds is None:
            consent_match = DuoMatch(False, "dataset_not_visible", "no such dataset in policy")
        elif use is None:
            consent_match = DuoMatch(False, f"consent_mismatch:{ds.consent.label()}",
                                     "no use to match the dataset's consent against")
        else:
            consent_match = match_consent(ds.consent, use)
    valued = {} if ds is None or ds.group_columns is None else {
        c: v for c, v in ds.group_columns.items() if v}
    ctx: dict[str, Any] = {
        "consent_ok": bool(consent_match is None or consent_match.ok),
        "use_ok": bool(use_match is not None and use_match.ok)
        or request.action not in CONSENT_ACTIONS,
        "group_by": sorted(set(map(str, request.group_by))),
        # the fields of ``field<op>value`` filters and those a site filter expression names
        "filter_fields": sorted({f.field for f in filters if f is not None}
                                | set(map(str, request.filter_fields))),
        "group_filter_terms": sorted({f.term() for f in filters
                                      if f is not None and f.field in valued}),
        "filters_well_formed": all(f is not None for f in filters),
        # a grant limited to some datasets (a ControlledAccessGrants visa) covers this one
        "dataset_granted": grant.covers(request.dataset),
    }
    if request.variant_count is not None:
        ctx["variant_count"] = int(request.variant_count)
    if request.region_bp is not None:
        ctx["region_bp"] = int(request.region_bp)
    return use, use_match, consent_match, ctx


def _reason_codes(info: RuleInfo | None, request: QueryRequest, filters: list[Any],
                  check: RoleCheck) -> list[str]:
    if info is None:
        return ["policy_error:unknown_rule"]
    code = info.reason
    allowed = set(info.allowed)
    if code == "group_by_not_allowed":
        return [f"{code}:{c}" for c in request.group_by if c not in allowed] or [code]
    if code == "filter_not_allowed":
        if info.id == "request:filters_malformed":
            return [f"{code}:{raw}" for raw, f in zip(request.filters, filters, strict=True)
                    if f is None]
        if info.id.endswith(":filter_values"):
            return [f"{code}:{t}" for t in check.context["group_filter_terms"]
                    if t not in allowed] or [code]
        fields = dict.fromkeys([*(f.field for f in filters if f is not None),
                                *map(str, request.filter_fields)])
        return [f"{code}:{name}" for name in fields if name not in allowed] or [code]
    if code == "consent_mismatch" and check.consent_match is not None:
        return [check.consent_match.reason]
    if code == "use_not_permitted" and check.use_match is not None:
        return [check.use_match.reason]
    return [code]


def _obligations(role: RoleSpec, request: QueryRequest, policy: Policy) -> Obligations:
    ds = policy.datasets.get(request.dataset) if request.dataset else None
    tier = role.tier or (ds.tier if ds else None) or "registered"
    group_by = role.group_by
    if ds is not None and ds.group_columns is not None:
        group_by = tuple(c for c in group_by if c in ds.group_columns)
    return Obligations(
        tier=tier,
        k=role.k,
        min_group_size=role.min_group_size,
        rare_variant=role.rare_variant,
        rate_limit=role.rate_limit,
        max_variants=role.max_variants,
        dp=role.dp,
        allowed_group_by=group_by,
        allowed_filters=role.filters,
        max_region_bp=role.max_region_bp,
    )


def visible_datasets(principal: Principal, policy: Policy, use: str | None = None
                     ) -> list[str]:
    """The datasets this principal may see (``describe_dataset`` allowed), for ``use`` or
    its roles' declared uses; in policy order."""
    return [ds for ds in policy.datasets
            if decide(principal, QueryRequest("describe_dataset", ds, use=use), policy).allowed]
