"""The loaded policy: datasets, roles, principal rules, the rendered Cedar set; immutable.

Built only by :func:`vault.policy.loader.load_policy`. Every mapping is a read-only view and
every sequence a tuple, so a ``Policy`` can be shared by concurrent requests and swapped as
a whole by :class:`vault.policy.loader.PolicyStore`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vault.policy.duo import Consent, Use
from vault.policy.model import DPParams, RareVariant, RateLimit, Tier

DEFAULT_K = 11
K_FLOOR = 5
DEFAULT_MIN_GROUP_SIZE = 20
DEFAULT_MAX_VARIANTS = 10_000


@dataclass(frozen=True)
class DatasetSpec:
    id: str
    consent: Consent
    description: str = ""
    tier: Tier | None = None
    #: column -> allowed values (None: any value); None: the dataset declares no columns.
    group_columns: Mapping[str, tuple[str, ...] | None] | None = None
    source: str = ""


@dataclass(frozen=True)
class RoleSpec:
    id: str
    datasets: tuple[str, ...]
    all_datasets: bool
    statistics: tuple[str, ...]
    actions: tuple[str, ...]
    use: Use | None
    group_by: tuple[str, ...]
    filters: tuple[str, ...]
    k: int
    min_group_size: int
    rare_variant: RareVariant
    rate_limit: RateLimit
    max_variants: int
    max_region_bp: int | None
    dp: DPParams | None
    tier: Tier | None = None
    description: str = ""
    source: str = ""
    json_path: str = ""

    def grants(self, action: str) -> bool:
        return action in self.statistics or action in self.actions


@dataclass(frozen=True)
class PrincipalRule:
    """``match`` keys (vault_policy, group, entity_id) must all hold for ``role`` to apply."""

    index: int
    match: Mapping[str, str]
    role: str
    source: str = ""
    json_path: str = ""

    @property
    def anonymous(self) -> bool:
        """A rule for callers without a credential (Beacon's PUBLIC level)."""
        return bool(self.match.get("anonymous"))

    def matches(self, vault_policies: tuple[str, ...], groups: tuple[str, ...],
                entity_id: str) -> bool:
        """For a Vault-token principal (an anonymous rule never matches one)."""
        if self.anonymous:
            return False
        for key, want in self.match.items():
            if key == "vault_policy" and want not in vault_policies:
                return False
            if key == "group" and want not in groups:
                return False
            if key == "entity_id" and want != entity_id:
                return False
        return True


@dataclass(frozen=True)
class IssuerSpec:
    """A trusted visa (or passport) issuer: its ``iss``, its keys (a JWKS read from a file at
    load, or an https URL read when a visa needs it), the ``jku`` values its visas may name
    (never fetched), and whether it may sign passports (brokers) and/or visas."""

    id: str
    iss: str
    jwks: Mapping[str, Any] | None
    jwks_url: str | None
    jku: tuple[str, ...] = ()
    signs: tuple[str, ...] = ("visas",)
    source: str = ""


@dataclass(frozen=True)
class VisaRequirement:
    """One visa a rule needs: type and issuer, and whole-string ``value``/``source`` when
    given; ``by`` must be one of ``by`` (a visa without ``by`` never satisfies a rule)."""

    type: str
    issuer: str
    value: str | None = None
    source: str | None = None
    by: tuple[str, ...] = ("dac", "so", "system")


@dataclass(frozen=True)
class VisaRule:
    """When a passport holds a visa for every requirement, ``role`` applies — on
    ``datasets`` only when given, with ``use`` (the use the grant approved) when given."""

    index: int
    require: tuple[VisaRequirement, ...]
    role: str
    datasets: tuple[str, ...] | None = None
    use: Use | None = None
    description: str = ""
    source: str = ""
    json_path: str = ""


@dataclass(frozen=True)
class PassportSpec:
    """The ``passports:`` section: trusted issuers, the audience a bearer visa or passport
    must name (None: it must name none), and the visa rules."""

    issuers: Mapping[str, IssuerSpec]
    rules: tuple[VisaRule, ...] = ()
    audience: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.issuers)


NO_PASSPORTS = PassportSpec(issuers={})


@dataclass(frozen=True)
class RuleInfo:
    """What one rendered Cedar policy stands for: its role (None for dataset or request
    rules), the reason code it gives when it fires, and the values it allows."""

    id: str
    effect: Literal["permit", "forbid"]
    reason: str
    role: str | None = None
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One result of :func:`vault.policy.lint.lint`."""

    severity: Literal["error", "warning"]
    code: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        loc = f"{self.where}: " if self.where else ""
        return f"{self.severity}: {loc}{self.message} [{self.code}]"

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "where": self.where}


@dataclass(frozen=True)
class Policy:
    datasets: Mapping[str, DatasetSpec]
    roles: Mapping[str, RoleSpec]
    principals: tuple[PrincipalRule, ...]
    version: str
    files: tuple[str, ...]
    cedar_text: str
    cedar_policies: Any  # cedarpy.PolicySet (immutable handle)
    cedar_schema: Any  # cedarpy.Schema
    rules: Mapping[str, RuleInfo]
    passports: PassportSpec = NO_PASSPORTS

    @property
    def public_roles(self) -> tuple[str, ...]:
        """Roles of callers without a credential (``match: {anonymous: true}``)."""
        hit = {r.role for r in self.principals if r.anonymous}
        return tuple(role for role in self.roles if role in hit)

    def roles_of(self, vault_policies: tuple[str, ...], groups: tuple[str, ...],
                 entity_id: str) -> tuple[str, ...]:
        """Roles the principal maps to, in the file order of ``roles:`` (unknown roles
        dropped: lint reports them)."""
        hit = {r.role for r in self.principals if r.matches(vault_policies, groups, entity_id)}
        return tuple(role for role in self.roles if role in hit)
