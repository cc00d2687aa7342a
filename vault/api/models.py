"""Response models: what the API may send. Separate from internal models, aggregates only.

Every model forbids extra fields, so nothing but these aggregates can leave through a route
(a per-sample value, an id or a pseudonym has no field to travel in).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Check(_Out):
    """One readiness check: ``ok``, and why not (never a secret)."""

    ok: bool
    why: str | None = None
    seconds: float | None = None
    datasets: int | None = None


class Readiness(_Out):
    ready: bool
    checks: dict[str, Check]


class PolicyInfo(_Out):
    role: str | None
    policy_version: str
    rules: list[str]


class SuppressedCell(_Out):
    cell: str
    reason: str


class SiteFilterInfo(_Out):
    """A site filter as it ran (DuckDB's rendering) and the site columns it reads. How many
    variants it saw and dropped is in the audit record only: over one position those counts
    would say whether the cohort holds a variant no answer lists."""

    expression: str
    fields: list[str]


class Disclosure(_Out):
    tier: str
    k: int
    min_group_size: int | None = None
    kind: str | None = None
    suppressed_cells: int | None = None
    complementary_cells: int | None = None
    rare_variant_cells: int | None = None
    refused_groups: int | None = None  # groups refused for their size (not named)
    # registered tier (differential privacy); absent for the controlled tier
    noise: str | None = None
    epsilon_per_query: float | None = None
    noise_scale: float | None = None
    epsilon_spent: float | None = None
    epsilon_remaining: float | None = None
    epsilon_budget: float | None = None
    budget_period_days: int | None = None
    new_cells: int | None = None
    reused_cells: int | None = None
    presence_threshold: int | None = None
    # presence under the per-member information budget (policy dp.presence)
    presence_control: str | None = None
    presence_noise: str | None = None
    presence_noise_scale: float | None = None
    presence_count: str | None = None
    member_budget_nats: float | None = None
    presence_epsilon: float | None = None
    site_filter: SiteFilterInfo | None = None
    rules: list[str]


class Cell(_Out):
    n: int
    n_called: int | None = None
    an: int | None = None
    ac: int | None = None
    af: float | None = None
    missing: int | None = None
    hom_ref: int | None = None
    het: int | None = None
    hom_alt: int | None = None
    hwe_p: float | None = None
    hwe_midp: float | None = None
    exc_het: float | None = None
    inbreeding_f: float | None = None
    call_rate: float | None = None
    f_missing: float | None = None
    status: str | None = None


class VariantRow(_Out):
    chrom: str
    pos: int
    ref: str
    alt: str
    id: str | None = None
    overall: Cell
    groups: dict[str, Cell] | None = None
    suppressed: list[SuppressedCell]


class _Answer(_Out):
    query_id: str
    dataset: str
    dataset_version: str
    policy: PolicyInfo


class StatisticAnswer(_Answer):
    statistic: str
    group_by: str | None
    variants: list[VariantRow]
    count: int
    truncated: bool
    next_cursor: int | None
    disclosure: Disclosure


class CaseControlCell(_Out):
    n: int
    hom_ref: int | None
    het: int | None
    hom_alt: int | None
    missing: int | None


class TestResult(_Out):
    allelic_chi2: float | None
    allelic_p: float | None
    fisher_p: float | None
    trend_p: float | None
    odds_ratio: float | None
    or_ci_low: float | None
    or_ci_high: float | None


class AssociationRow(_Out):
    chrom: str
    pos: int
    ref: str
    alt: str
    groups: dict[str, CaseControlCell]
    test: TestResult
    suppressed: list[SuppressedCell]


class AssociationAnswer(_Answer):
    statistic: str
    group_by: str
    case: str
    control: str
    variants: list[AssociationRow]
    count: int
    truncated: bool
    next_cursor: int | None
    disclosure: Disclosure


class Site(_Out):
    chrom: str
    pos: int
    ref: str
    alt: str


class LdPair(_Out):
    a: Site
    b: Site
    r: float | None
    r2: float | None
    n_obs: int | None
    status: str


class LdAnswer(_Answer):
    statistic: str
    pairs: list[LdPair]
    count: int
    truncated: bool
    next_cursor: int | None
    disclosure: Disclosure


class Spectrum(_Out):
    counts: list[int]
    variants_used: int
    variants_excluded: int


class SfsAnswer(_Answer):
    statistic: str
    folded: bool
    group_by: str | None
    spectra: dict[str, Spectrum]
    disclosure: Disclosure


class PresenceAnswer(_Answer):
    statistic: str
    variant: Site
    exists: bool | None
    disclosure: Disclosure


class GroupInfo(_Out):
    name: str
    size: int | None
    queryable: bool


class DatasetSummary(_Out):
    id: str
    description: str | None
    consent: list[str]
    tier: str | None


class DatasetList(_Out):
    query_id: str
    datasets: list[DatasetSummary]


class DatasetDetail(_Out):
    query_id: str
    id: str
    description: str | None
    consent: list[str]
    tier: str | None
    sample_count: int
    contigs: list[str]
    variant_rows: int
    group_columns: dict[str, list[GroupInfo]]
    groups_below_minimum: dict[str, int]
    dataset_version: str
    policy: PolicyInfo


class Problem(_Out):
    """An error: what went wrong and what to do (never a stack trace or internal detail)."""

    error: str
    detail: str
    query_id: str | None = None
    reasons: list[str] = []


class SqlAnswer(_Answer):
    columns: list[str]
    rows: list[list[str | int | float | bool | None]]
    count: int
    truncated: bool
    views: list[str]
    disclosure: Disclosure


class BudgetUse(_Out):
    role: str | None
    mechanism: str | None
    epsilon_per_query: float | None
    epsilon_budget: float | None
    budget_period_days: int | None
    epsilon_spent: float
    epsilon_remaining: float | None
    period_resets_at: str | None


class BudgetAnswer(_Out):
    query_id: str
    policy: PolicyInfo
    principal: str
    budget: BudgetUse
