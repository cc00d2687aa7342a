"""decide() and visible_datasets(): one row per combination (CONVENTIONS: Policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.policy import (
    STATISTICS,
    Decision,
    Policy,
    Principal,
    QueryRequest,
    decide,
    load_policy,
    visible_datasets,
)

POLICY = """
version: 1
datasets:
  demo:
    consent: {permission: DUO:0000042}
    tier: controlled
    group_columns: {population: [pop1, pop2, pop3], sex: null}
  cancer:
    consent: {permission: DS, disease: "MONDO:0004992", disease_label: cancer}
    tier: controlled
  hmb:
    consent: {permission: HMB}
    tier: controlled
  poa:
    consent: {permission: POA}
    tier: controlled
  open:
    consent: {permission: NRES}
    tier: controlled
  ncu:
    consent: {permission: GRU, modifiers: [NCU]}
    tier: controlled
  npoa:
    consent: {permission: GRU, modifiers: [NPOA]}
    tier: controlled
roles:
  grouped:
    tier: controlled
    datasets: "*"
    statistics: "*"
    actions: [list_datasets, describe_dataset]
    use: GRU
    group_by: [population, sex]
    filters: [population, qual]
    min_group_size: 20
    max_variants: 1000
    max_region_bp: 1000000
  hmb-user:
    datasets: "*"
    statistics: [frequency]
    actions: [describe_dataset]
    use: {code: HMB, attests: [NCU]}
  cancer-user:
    datasets: "*"
    statistics: [frequency]
    actions: [describe_dataset]
    use: "DS@MONDO:0004992"
  poa-user:
    datasets: "*"
    statistics: [frequency]
    actions: [describe_dataset]
    use: POA
  overall:
    tier: registered
    datasets: [demo]
    statistics: [frequency, hardy_weinberg]
    actions: [describe_dataset]
    use: GRU
    k: 15
    dp: {epsilon_per_query: 0.1, budget: 10, period_days: 30}
  auditor:
    actions: [audit_read]
  admin:
    datasets: [demo]
    actions: [report, budget_read]
principals:
  - match: {vault_policy: researcher-a}
    role: grouped
  - match: {vault_policy: researcher-hmb}
    role: hmb-user
  - match: {vault_policy: researcher-cancer}
    role: cancer-user
  - match: {vault_policy: researcher-poa}
    role: poa-user
  - match: {vault_policy: researcher-b}
    role: overall
  - match: {group: consortium}
    role: overall
  - match: {vault_policy: auditor}
    role: auditor
  - match: {entity_id: ent-admin}
    role: admin
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    d = tmp_path_factory.mktemp("policy")
    (d / "test.yaml").write_text(POLICY)
    return load_policy(d)


def who(*policies: str, groups: tuple[str, ...] = (), entity: str = "ent-1") -> Principal:
    return Principal(entity, entity, policies, groups)


A = who("researcher-a")
B = who("researcher-b")

ROWS = [
    # (principal, request, allowed, role, expected reasons (subset, in order))
    pytest.param(who("nobody"), QueryRequest("frequency", "demo"), False, None, ["no_role"],
                 id="no-matching-principal"),
    pytest.param(who(), QueryRequest("list_datasets"), False, None, ["no_role"],
                 id="no-policies-at-all"),
    pytest.param(A, QueryRequest("frequency", "demo", ("population",)), True, "grouped",
                 ["allowed_by:grouped:statistics"], id="grouped-frequency-by-population"),
    pytest.param(A, QueryRequest("frequency", "nosuch"), False, None, ["dataset_not_visible"],
                 id="unknown-dataset"),
    pytest.param(B, QueryRequest("frequency", "hmb"), False, None, ["dataset_not_visible"],
                 id="wrong-dataset"),
    pytest.param(who("researcher-hmb"), QueryRequest("frequency", "poa"), False, None,
                 ["consent_mismatch:POA"], id="hidden-dataset-consent-mismatch"),
    pytest.param(who("researcher-hmb"), QueryRequest("frequency", "cancer"), False, None,
                 ["consent_mismatch:DS-CANCER"], id="hmb-use-on-ds-cancer"),
    pytest.param(who("researcher-cancer"), QueryRequest("frequency", "cancer"), True,
                 "cancer-user", [], id="ds-cancer-use-on-ds-cancer"),
    pytest.param(who("researcher-cancer"), QueryRequest("frequency", "hmb"), True,
                 "cancer-user", [], id="ds-use-on-hmb"),
    pytest.param(A, QueryRequest("frequency", "hmb"), False, None, ["consent_mismatch:HMB"],
                 id="gru-use-on-hmb"),
    pytest.param(who("researcher-poa"), QueryRequest("frequency", "hmb"), False, None,
                 ["consent_mismatch:HMB"], id="poa-use-on-hmb"),
    pytest.param(who("researcher-poa"), QueryRequest("frequency", "open"), True, "poa-user",
                 [], id="poa-use-on-nres"),
    pytest.param(A, QueryRequest("frequency", "ncu"), False, None,
                 ["consent_modifier_unmet:NCU"], id="ncu-modifier-not-attested"),
    pytest.param(who("researcher-hmb"), QueryRequest("frequency", "ncu"), True, "hmb-user",
                 [], id="ncu-modifier-attested"),
    # NPOA: a GRU use includes ancestry research (DUO:0000042), HMB and DS exclude it
    pytest.param(A, QueryRequest("frequency", "npoa"), False, None,
                 ["consent_modifier_unmet:NPOA"], id="npoa-gru-use-not-attested"),
    pytest.param(A, QueryRequest("frequency", "npoa", use="HMB"), True, "grouped", [],
                 id="npoa-gru-role-asking-hmb"),
    pytest.param(who("researcher-hmb"), QueryRequest("frequency", "npoa"), True, "hmb-user",
                 [], id="npoa-hmb-use"),
    pytest.param(who("researcher-cancer"), QueryRequest("frequency", "npoa"), True,
                 "cancer-user", [], id="npoa-ds-use"),
    pytest.param(who("researcher-poa"), QueryRequest("frequency", "npoa"), False, None,
                 ["consent_modifier_unmet:NPOA"], id="npoa-poa-use"),
    pytest.param(B, QueryRequest("ld", "demo"), False, None, ["statistic_not_allowed"],
                 id="statistic-not-allowed"),
    pytest.param(B, QueryRequest("frequency", "demo", ("population",)), False, None,
                 ["group_by_not_allowed:population"], id="group-by-not-allowed"),
    pytest.param(A, QueryRequest("frequency", "demo", ("cohort",)), False, None,
                 ["group_by_not_allowed:cohort"], id="group-by-column-not-in-role"),
    pytest.param(A, QueryRequest("frequency", "demo", filters=("sex=F",)), False, None,
                 ["filter_not_allowed:sex"], id="filter-field-not-allowed"),
    pytest.param(A, QueryRequest("frequency", "demo", filters=("population=pop9",)), False,
                 None, ["filter_not_allowed:population=pop9"], id="filter-value-not-declared"),
    pytest.param(A, QueryRequest("frequency", "demo", filters=("population=pop2", "qual>=30")),
                 True, "grouped", [], id="filters-allowed"),
    pytest.param(A, QueryRequest("frequency", "demo", filters=("; DROP",)), False, None,
                 ["filter_not_allowed:; DROP"], id="filter-malformed"),
    pytest.param(who("auditor"), QueryRequest("frequency", "demo"), False, None,
                 ["statistic_not_allowed"], id="auditor-asks-statistic"),
    pytest.param(who("auditor"), QueryRequest("audit_read"), True, "auditor", [],
                 id="auditor-reads-audit"),
    pytest.param(who(entity="ent-admin"), QueryRequest("frequency", "demo"), False, None,
                 ["statistic_not_allowed"], id="admin-asks-statistic"),
    pytest.param(who(entity="ent-admin"), QueryRequest("report", "demo"), True, "admin", [],
                 id="admin-report"),
    pytest.param(who(entity="ent-admin"), QueryRequest("audit_read"), False, None,
                 ["action_not_allowed"], id="admin-asks-audit"),
    pytest.param(A, QueryRequest("audit_read"), False, None, ["action_not_allowed"],
                 id="researcher-asks-audit"),
    pytest.param(A, QueryRequest("frequency"), False, None, ["dataset_required"],
                 id="statistic-without-dataset"),
    pytest.param(A, QueryRequest("list_datasets", "demo"), False, None,
                 ["dataset_not_applicable"], id="list-with-dataset"),
    pytest.param(A, QueryRequest("frequency", "demo", variant_count=1001), False, None,
                 ["too_many_variants"], id="too-many-variants"),
    pytest.param(A, QueryRequest("frequency", "demo", variant_count=1000), True, "grouped",
                 [], id="max-variants-exactly"),
    pytest.param(A, QueryRequest("frequency", "demo", region_bp=2_000_000), False, None,
                 ["region_too_large"], id="region-too-large"),
    pytest.param(A, QueryRequest("frequency", "demo", variant_count=-1), False, None,
                 ["invalid_request"], id="negative-size"),
    pytest.param(A, QueryRequest("frequency", "demo", use="HMB"), True, "grouped", [],
                 id="narrower-request-use"),
    pytest.param(who("researcher-hmb"), QueryRequest("frequency", "demo", use="GRU"), False,
                 None, ["use_not_permitted:GRU"], id="wider-request-use"),
    pytest.param(A, QueryRequest("frequency", "demo", use="NOPE"), False, None,
                 ["use_unknown:NOPE"], id="unknown-request-use"),
    pytest.param(A, QueryRequest("frequency", "poa", use="HMB"), False, None,
                 ["consent_mismatch:POA"], id="request-use-vs-consent"),
    pytest.param(who("researcher-b", groups=("consortium",)), QueryRequest("frequency", "demo"),
                 True, "overall", [], id="two-rules-same-role"),
    pytest.param(who("researcher-a", "researcher-b"), QueryRequest("frequency", "demo"), True,
                 "grouped", [], id="two-roles-first-in-file-order"),
    pytest.param(who("researcher-b", "researcher-a"), QueryRequest("ld", "demo"), True,
                 "grouped", [], id="two-roles-only-second-allows"),
    pytest.param(who("researcher-b", "auditor"),
                 QueryRequest("frequency", "demo", ("population",)), False, None,
                 ["group_by_not_allowed:population", "statistic_not_allowed"],
                 id="two-roles-both-deny-reasons-of-both"),
]


@pytest.mark.parametrize(("principal", "request_", "allowed", "role", "reasons"), ROWS)
def test_decide__table(policy: Policy, principal: Principal, request_: QueryRequest,
                       allowed: bool, role: str | None, reasons: list[str]) -> None:
    d = decide(principal, request_, policy)
    assert isinstance(d, Decision)
    assert d.allowed is allowed, d.reasons
    assert d.role == role
    assert d.policy_version == policy.version
    it = iter(d.reasons)
    assert all(r in it for r in reasons), d.reasons  # subsequence, in order
    if allowed:
        assert d.obligations is not None
        assert d.reasons and all(r.startswith("allowed_by:") for r in d.reasons)
        assert all(r.startswith(f"{role}:") for r in d.matched_rules)
    else:
        assert d.obligations is None
        assert not any(r.startswith("allowed_by:") for r in d.reasons)


def test_decide__obligations_of_controlled_role(policy: Policy) -> None:
    ob = decide(A, QueryRequest("frequency", "demo", ("population",)), policy).obligations
    assert ob is not None
    assert (ob.tier, ob.k, ob.min_group_size, ob.max_variants) == ("controlled", 11, 20, 1000)
    assert ob.allowed_group_by == ("population", "sex")
    assert ob.dp is None
    assert (ob.rare_variant.mode, ob.rare_variant.max_ac) == ("suppress", 10)


def test_decide__obligations_of_first_allowing_role(policy: Policy) -> None:
    both = who("researcher-b", "researcher-a")  # principal order does not matter
    ob = decide(both, QueryRequest("frequency", "demo"), policy).obligations
    assert ob is not None and ob.tier == "controlled" and ob.k == 11  # grouped is first in file


def test_decide__registered_role_gets_dp(policy: Policy) -> None:
    d = decide(B, QueryRequest("hardy_weinberg", "demo"), policy)
    assert d.obligations is not None and d.obligations.tier == "registered"
    assert d.obligations.dp is not None and d.obligations.dp.epsilon_per_query == 0.1
    assert d.obligations.k == 15 and d.obligations.allowed_group_by == ()


@pytest.mark.parametrize("stat", STATISTICS)
def test_decide__every_statistic_for_grouped(policy: Policy, stat: str) -> None:
    assert decide(A, QueryRequest(stat, "demo"), policy).allowed


def test_decide__unknown_action_is_a_programmer_error(policy: Policy) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        QueryRequest("download_genotypes", "demo")


def test_decide__is_deterministic(policy: Policy) -> None:
    req = QueryRequest("frequency", "demo", ("population", "cohort"), ("sex=F", "bad"))
    assert len({decide(A, req, policy) for _ in range(5)}) == 1


def test_decide__decision_is_frozen(policy: Policy) -> None:
    d = decide(A, QueryRequest("frequency", "demo"), policy)
    with pytest.raises(AttributeError):
        d.allowed = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("principal", "use", "expected"),
    [
        pytest.param(A, None, ["demo", "open"], id="gru"),
        pytest.param(A, "POA", ["demo", "poa", "open"], id="gru-asking-poa"),
        pytest.param(A, "HMB", ["demo", "hmb", "open", "npoa"], id="gru-asking-hmb"),
        pytest.param(who("researcher-hmb"), None, ["demo", "hmb", "open", "ncu", "npoa"],
                     id="hmb"),
        pytest.param(who("researcher-cancer"), None, ["demo", "cancer", "hmb", "open", "npoa"],
                     id="ds-cancer"),
        pytest.param(who("researcher-poa"), None, ["demo", "poa", "open"], id="poa"),
        pytest.param(B, None, ["demo"], id="overall"),
        pytest.param(who("auditor"), None, [], id="auditor"),
        pytest.param(who("nobody"), None, [], id="nobody"),
    ],
)
def test_visible_datasets(policy: Policy, principal: Principal, use: str | None,
                          expected: list[str]) -> None:
    assert visible_datasets(principal, policy, use=use) == expected


def test_decide__shipped_demo_policy() -> None:
    policy = load_policy(Path(__file__).parent.parent / "policies" / "access")
    a, b = who("genovault-researcher-a"), who("genovault-researcher-b")
    by_pop = QueryRequest("frequency", "demo", ("population",))
    assert decide(a, by_pop, policy).allowed
    assert decide(a, QueryRequest("presence", "demo"), policy).allowed
    assert decide(a, QueryRequest("sql", "demo"), policy).allowed
    assert decide(b, by_pop, policy).reasons == ("group_by_not_allowed:population",)
    # researcher-b: the registered tier, overall statistics with DP noise and a budget
    ob = decide(b, QueryRequest("frequency", "demo"), policy).obligations
    assert ob is not None and ob.dp is not None
    assert (ob.tier, ob.k, ob.min_group_size) == ("registered", 11, 20)
    assert (ob.dp.epsilon_per_query, ob.dp.budget, ob.dp.period_days) == (0.25, 100, 30)
    assert decide(b, QueryRequest("presence", "demo"), policy).allowed
    assert not decide(b, QueryRequest("sfs", "demo"), policy).allowed  # no noisy SFS yet
    assert not decide(who("genovault-auditor"), by_pop, policy).allowed
    assert decide(who("genovault-auditor"), QueryRequest("audit_read"), policy).allowed
    assert not decide(who("genovault-admin"), by_pop, policy).allowed
    assert decide(who("genovault-admin"), QueryRequest("budget_read"), policy).allowed
    ob = decide(a, by_pop, policy).obligations
    assert ob is not None
    assert (ob.k, ob.min_group_size, ob.rate_limit.requests, ob.rate_limit.per_seconds) == (
        11, 20, 60, 60)
    assert visible_datasets(a, policy) == ["demo"]


class _Diag:
    def __init__(self, reasons: list[str], errors: list[str]) -> None:
        self.reasons, self.errors = reasons, errors


class _Result:
    def __init__(self, decision: str, allowed: bool, errors: list[str]) -> None:
        self.decision, self.allowed = decision, allowed
        self.diagnostics = _Diag(["grouped:statistics"], errors)


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(_Result("Decision.Allow", True, ["evaluation error"]), id="allow-with-error"),
        pytest.param(_Result("Decision.NoDecision", False, []), id="no-decision"),
    ],
)
def test_decide__engine_trouble_denies(policy: Policy, monkeypatch: pytest.MonkeyPatch,
                                      result: _Result) -> None:
    from vault.policy import cedar

    monkeypatch.setattr(cedar, "authorize", lambda reqs, p, s: [result for _ in reqs])
    d = decide(A, QueryRequest("frequency", "demo"), policy)
    assert not d.allowed and d.obligations is None
    assert d.reasons == ("policy_error:grouped",) or d.reasons[0].startswith("policy_error")


def test_decide__engine_exception_denies(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    from vault.policy import cedar

    def boom(*args: object) -> list[object]:
        raise RuntimeError("engine down")

    monkeypatch.setattr(cedar, "authorize", boom)
    d = decide(A, QueryRequest("frequency", "demo"), policy)
    assert (d.allowed, d.reasons) == (False, ("policy_error:RuntimeError",))


def test_decide__bad_context_is_no_decision_and_denied(policy: Policy) -> None:
    """The schema is passed: a context Cedar cannot type is NoDecision, never Allow."""
    import cedarpy

    from vault.policy import cedar

    req = cedar.request("grouped", "frequency", "demo", {"consent_ok": True})
    res = cedar.authorize([req], policy.cedar_policies, policy.cedar_schema)[0]
    assert res.decision == cedarpy.Decision.NoDecision and res.diagnostics.errors
