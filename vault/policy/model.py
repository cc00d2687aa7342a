"""The values that cross the policy boundary: who asks, what they ask, what was decided.

All are frozen dataclasses; sequences become tuples and mappings read-only views, so a
Decision handed to the query layer or the audit log cannot be changed after the fact.
``Principal`` never holds a token: the API builds it from Vault's token lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

STATISTICS: tuple[str, ...] = (
    "frequency", "genotype_counts", "hardy_weinberg", "missingness", "association",
    "ld", "sfs", "presence", "sql",
)
#: Actions on one dataset (``QueryRequest.dataset`` required).
DATASET_ACTIONS: tuple[str, ...] = (*STATISTICS, "describe_dataset", "report", "representation")
#: Actions on the service itself (``QueryRequest.dataset`` must be None).
SERVICE_ACTIONS: tuple[str, ...] = ("list_datasets", "audit_read", "budget_read")
#: Actions that read research data, so the dataset's consent must permit the use.
CONSENT_ACTIONS: tuple[str, ...] = (*STATISTICS, "describe_dataset", "representation")
#: Actions whose ``group_by`` the role's and the dataset's group columns restrict.
GROUPED_ACTIONS: tuple[str, ...] = (*STATISTICS, "representation")
#: Actions answered with exact counts only: refused to a role whose obligations carry DP
#: (and ``representation`` to any registered-tier role), reason ``dp_unsupported:<action>``.
EXACT_ACTIONS: tuple[str, ...] = ("report", "representation")
ACTIONS: tuple[str, ...] = (*DATASET_ACTIONS, *SERVICE_ACTIONS)
OPERATIONS: tuple[str, ...] = tuple(a for a in ACTIONS if a not in STATISTICS)

Tier = Literal["controlled", "registered"]
RareMode = Literal["none", "suppress", "flag"]


def _tuple(obj: object, name: str, value: Any) -> None:
    if isinstance(value, str):
        raise TypeError(f"{name} must be a sequence of strings, not a string")
    object.__setattr__(obj, name, tuple(value))


#: how a caller authenticated: a Vault token, a GA4GH passport (or visa), or not at all
AUTH_KINDS = ("vault-token", "passport", "anonymous")


@dataclass(frozen=True)
class VisaAssertion:
    """A GA4GH visa whose signature, issuer, times and audience were verified (by
    vault.passport): what it asserts, about whom, by whose authority. Never the JWT."""

    iss: str
    sub: str
    type: str
    value: str
    source: str
    by: str | None = None
    asserted: int = 0
    exp: int = 0
    jti: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VisaAssertion:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown visa field(s): {', '.join(sorted(unknown))}")
        return cls(iss=str(data["iss"]), sub=str(data.get("sub", "")), type=str(data["type"]),
                   value=str(data.get("value", "")), source=str(data.get("source", "")),
                   by=None if data.get("by") is None else str(data["by"]),
                   asserted=int(data.get("asserted", 0)), exp=int(data.get("exp", 0)),
                   jti=None if data.get("jti") is None else str(data["jti"]))

    def summary(self) -> dict[str, Any]:
        """For audit records and explanations (no signature, no token)."""
        return {"iss": self.iss, "sub": self.sub, "type": self.type, "value": self.value,
                "source": self.source, "by": self.by, "jti": self.jti}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: as Vault knows it (entity, policies, groups, metadata), or
    as its verified GA4GH visas say (``auth="passport"``, ``visas``), or anonymous."""

    entity_id: str
    display_name: str
    vault_policies: tuple[str, ...]
    groups: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    auth: str = "vault-token"
    visas: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        for name in ("vault_policies", "groups", "visas"):
            _tuple(self, name, getattr(self, name))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if self.auth not in AUTH_KINDS:
            raise ValueError(f"auth must be one of {', '.join(AUTH_KINDS)}")
        if any(not isinstance(v, VisaAssertion) for v in self.visas):
            raise TypeError("visas must be VisaAssertion objects (verified visas)")
        if self.visas and self.auth != "passport":
            raise ValueError("only a passport principal carries visas")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Principal:
        """A Principal from JSON-like data (CLI, tests); unknown keys are refused."""
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown principal field(s): {', '.join(sorted(unknown))}")
        return cls(
            entity_id=str(data.get("entity_id", "")),
            display_name=str(data.get("display_name", data.get("entity_id", ""))),
            vault_policies=tuple(data.get("vault_policies", ())),
            groups=tuple(data.get("groups", ())),
            metadata=dict(data.get("metadata", {})),
            auth=str(data.get("auth", "vault-token")),
            visas=tuple(v if isinstance(v, VisaAssertion) else VisaAssertion.from_dict(v)
                        for v in data.get("visas", ())),
        )

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(entity_id="", display_name="anonymous", vault_policies=(),
                   auth="anonymous")


#: the ``region_bp`` of a request without a region or with an open end (the whole dataset or
#: the rest of a contig): larger than any ``max_region_bp``
WHOLE_BP = 2**53


@dataclass(frozen=True)
class QueryRequest:
    """What is asked: an action, on which dataset, grouped and filtered how, for which use.

    ``filters`` are ``<field><op><value>`` strings (op one of ``= != < <= > >=``), e.g.
    ``population=pop1`` or ``qual>=30``. ``filter_fields`` are the columns a site filter
    expression references (vault.query.sitefilter); both are checked against the role's
    ``filters``. ``use`` is a DUO code or shorthand (``HMB``), with a
    disease for DS as ``DS@MONDO:0004992``; None means the role's declared use.
    """

    action: str
    dataset: str | None = None
    group_by: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    use: str | None = None
    variant_count: int | None = None
    region_bp: int | None = None
    filter_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; known: {', '.join(ACTIONS)}")
        _tuple(self, "group_by", self.group_by)
        _tuple(self, "filters", self.filters)
        _tuple(self, "filter_fields", self.filter_fields)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryRequest:
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown request field(s): {', '.join(sorted(unknown))}")
        return cls(
            action=data["action"],
            dataset=data.get("dataset"),
            group_by=tuple(data.get("group_by", ())),
            filters=tuple(data.get("filters", ())),
            use=data.get("use"),
            variant_count=data.get("variant_count"),
            region_bp=data.get("region_bp"),
            filter_fields=tuple(data.get("filter_fields", ())),
        )


@dataclass(frozen=True)
class RareVariant:
    """Variants with an allele count 1..max_ac are suppressed, flagged, or (mode none) shown."""

    mode: RareMode = "suppress"
    max_ac: int = 10


@dataclass(frozen=True)
class RateLimit:
    requests: int = 60
    per_seconds: int = 60


@dataclass(frozen=True)
class PresenceControl:
    """``dp.presence``: presence answers paid from a per-member information budget
    (vault.privacy.presence) instead of ε cells."""

    control: Literal["member_information"] = "member_information"
    member_budget_nats: float = 0.693
    noise_scale: float = 4.0
    margin_sd: float = 2.0
    #: what the noisy count counts: alt alleles (hom-alt = 2) or carriers (every carrier 1)
    count: Literal["alleles", "carriers"] = "alleles"


@dataclass(frozen=True)
class DPParams:
    """Differential privacy for registered-tier answers: cost per query, budget per period;
    ``presence``: the member-information budget for presence answers (None: presence
    costs one ε cell like any variant)."""

    epsilon_per_query: float
    budget: float
    period_days: int
    mechanism: Literal["discrete_laplace"] = "discrete_laplace"
    presence: PresenceControl | None = None


@dataclass(frozen=True)
class Obligations:
    """Disclosure controls the query layer must apply to an allowed request."""

    tier: Tier
    k: int
    min_group_size: int
    rare_variant: RareVariant
    rate_limit: RateLimit
    max_variants: int
    dp: DPParams | None
    allowed_group_by: tuple[str, ...]
    allowed_filters: tuple[str, ...] = ()
    max_region_bp: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`vault.policy.decide`: allowed or not, why, and what to apply.

    ``reasons`` are machine-readable codes (``no_role``, ``group_by_not_allowed:population``,
    ``allowed_by:<rule id>``). A denied Decision has ``obligations`` None.
    """

    allowed: bool
    reasons: tuple[str, ...]
    obligations: Obligations | None
    role: str | None
    policy_version: str
    matched_rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.allowed and self.obligations is not None:
            raise ValueError("a denied Decision carries no obligations")
        if self.allowed and self.obligations is None:
            raise ValueError("an allowed Decision must carry obligations")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
