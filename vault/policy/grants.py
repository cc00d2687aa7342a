"""Which roles a principal holds, and on what: Vault identities, GA4GH visas, or none.

* A Vault-token principal gets the roles of the ``principals:`` rules that match its Vault
  policies, groups or entity id (never an ``anonymous`` rule).
* A passport principal (``auth="passport"``) gets the roles of the ``passports.visas``
  rules whose every requirement one of its verified visas meets: same type, the visa's
  ``iss`` is the named trusted issuer's, ``value``/``source`` equal as whole strings when
  the rule gives them, and ``by`` one of the rule's (a visa without ``by`` meets none). Such
  a role may be limited to the rule's ``datasets`` (a ControlledAccessGrants visa for
  dataset X grants X, not every dataset of the role) and carry the rule's ``use``.
  ``principals:`` rules never apply to a passport: a visa cannot claim a Vault policy.
* An anonymous principal gets the roles of ``match: {anonymous: true}`` rules.

Pure, like :func:`vault.policy.decide`: the visas were verified by vault.passport before.
"""

from __future__ import annotations

from dataclasses import dataclass

from vault.policy.duo import Use
from vault.policy.model import Principal, VisaAssertion
from vault.policy.spec import Policy, VisaRequirement, VisaRule


@dataclass(frozen=True)
class Grant:
    """One role a principal holds: on every dataset of the role (``datasets`` None) or only
    on ``datasets``; with the role's declared use or ``use``; ``via`` names the rule."""

    role: str
    via: str
    datasets: tuple[str, ...] | None = None
    use: Use | None = None
    visas: tuple[VisaAssertion, ...] = ()

    def covers(self, dataset: str | None) -> bool:
        return self.datasets is None or dataset is None or dataset in self.datasets


def meets(visa: VisaAssertion, need: VisaRequirement, policy: Policy) -> bool:
    """Does this verified visa meet the requirement?"""
    issuer = policy.passports.issuers.get(need.issuer)
    return (issuer is not None and visa.iss == issuer.iss and visa.type == need.type
            and (need.value is None or visa.value == need.value)
            and (need.source is None or visa.source == need.source)
            and visa.by is not None and visa.by in need.by)


def rule_match(rule: VisaRule, visas: tuple[VisaAssertion, ...], policy: Policy
               ) -> tuple[VisaAssertion, ...] | None:
    """The visas that meet each of the rule's requirements (in order), or None."""
    used = []
    for need in rule.require:
        hit = next((v for v in visas if meets(v, need, policy)), None)
        if hit is None:
            return None
        used.append(hit)
    return tuple(used)


def grants_of(principal: Principal, policy: Policy) -> tuple[Grant, ...]:
    """The principal's grants, in the file order of ``roles:`` (then rule order)."""
    found: list[Grant] = []
    if principal.auth == "vault-token":
        for r in policy.principals:
            if r.matches(tuple(principal.vault_policies), tuple(principal.groups),
                         principal.entity_id):
                found.append(Grant(r.role, f"principals[{r.index}]"))
    elif principal.auth == "anonymous":
        found += [Grant(r.role, f"principals[{r.index}]") for r in policy.principals
                  if r.anonymous]
    elif principal.auth == "passport":
        for rule in policy.passports.rules:
            used = rule_match(rule, tuple(principal.visas), policy)
            if used is not None:
                found.append(Grant(rule.role, f"passports.visas[{rule.index}]",
                                   rule.datasets, rule.use, used))
    order = {role: i for i, role in enumerate(policy.roles)}
    found = [g for g in found if g.role in order]  # unknown roles: lint reports them
    # a role held without limits makes its limited grants redundant; repeats are dropped
    whole = {g.role for g in found if g.datasets is None and g.use is None}
    out: list[Grant] = []
    seen: set[tuple[object, ...]] = set()
    for g in sorted(found, key=lambda g: order[g.role]):
        key = (g.role, g.datasets, g.use)
        if key in seen or (g.role in whole and (g.datasets is not None or g.use is not None)):
            continue
        seen.add(key)
        out.append(g)
    return tuple(out)
