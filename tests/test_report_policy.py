"""The ``representation`` action of the access policy: decisions and lint (no Vault needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.policy import Policy, Principal, QueryRequest, decide, lint, load_policy

POLICY = """
version: 1
datasets:
  demo:
    consent: {permission: GRU}
    tier: controlled
    group_columns: {population: [pop1, pop2, pop3], sex: [F, M], phenotype: null}
  hmb:
    consent: {permission: HMB}
    tier: controlled
  noisy-ds:
    consent: {permission: GRU}
    tier: registered
roles:
  researcher:
    tier: controlled
    datasets: [demo, hmb]
    statistics: [frequency]
    actions: [describe_dataset, representation]
    use: POA
    group_by: [population, sex, ancestry]
  steward:
    datasets: [demo]
    actions: [representation]
    use: GRU
    group_by: [population]
  plain:
    tier: controlled
    datasets: [demo]
    statistics: [frequency]
    actions: [describe_dataset]
    use: GRU
    group_by: [population]
  dp-role:
    tier: registered
    datasets: [demo]
    statistics: [frequency]
    actions: [describe_dataset, representation]
    use: GRU
    dp: {epsilon_per_query: 0.1, budget: 10, period_days: 30}
  by-dataset-tier:
    datasets: [noisy-ds]
    actions: [representation]
    use: GRU
  admin:
    datasets: [demo]
    actions: [report]
  dp-admin:
    datasets: [demo]
    actions: [report]
    dp: {epsilon_per_query: 0.1, budget: 10, period_days: 30}
principals:
  - {match: {vault_policy: p-researcher}, role: researcher}
  - {match: {vault_policy: p-steward}, role: steward}
  - {match: {vault_policy: p-plain}, role: plain}
  - {match: {vault_policy: p-dp}, role: dp-role}
  - {match: {vault_policy: p-dsdp}, role: by-dataset-tier}
  - {match: {vault_policy: p-admin}, role: admin}
  - {match: {vault_policy: p-dp-admin}, role: dp-admin}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("pol") / "p.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def _who(policy_name: str) -> Principal:
    return Principal(entity_id=policy_name, display_name=policy_name,
                     vault_policies=(policy_name,))


@pytest.mark.parametrize(("who", "dataset", "group_by", "allowed", "reason"), [
    pytest.param("p-researcher", "demo", (), True, "allowed_by:researcher:datasets",
                 id="granted"),
    pytest.param("p-researcher", "demo", ("population",), True, None, id="granted-column"),
    pytest.param("p-researcher", "demo", ("phenotype",), False,
                 "group_by_not_allowed:phenotype", id="column-not-of-role"),
    pytest.param("p-researcher", "demo", ("ancestry",), False, "group_by_not_allowed",
                 id="column-not-of-dataset"),
    pytest.param("p-researcher", "hmb", (), False, "consent_mismatch:HMB",
                 id="consent-checked"),
    pytest.param("p-steward", "demo", (), True, None, id="representation-only-role"),
    pytest.param("p-plain", "demo", (), False, "action_not_allowed", id="not-granted"),
    pytest.param("p-dp", "demo", (), False, "dp_unsupported:representation",
                 id="dp-role-fails-closed"),
    pytest.param("p-dsdp", "noisy-ds", (), False, "dp_unsupported:representation",
                 id="registered-dataset-fails-closed"),
    pytest.param("p-admin", "demo", (), False, "action_not_allowed",
                 id="admin-has-the-whole-report-instead"),
])
def test_representation__decision(policy: Policy, who: str, dataset: str,
                                  group_by: tuple[str, ...], allowed: bool,
                                  reason: str | None) -> None:
    d = decide(_who(who), QueryRequest("representation", dataset, group_by=group_by), policy)
    assert d.allowed is allowed, d.reasons
    if reason is not None:
        assert any(r.startswith(reason) for r in d.reasons), d.reasons
    if allowed:
        assert d.obligations is not None and d.obligations.dp is None
        assert "allowed" not in d.reasons
    else:
        assert "allowed" not in d.reasons  # a permit is never given as a reason of a denial


def test_representation__obligations_carry_the_role_columns_the_dataset_declares(
        policy: Policy) -> None:
    d = decide(_who("p-researcher"), QueryRequest("representation", "demo"), policy)
    assert d.obligations is not None
    assert d.obligations.allowed_group_by == ("population", "sex")  # not "ancestry"


def test_report__dp_obligations_fail_closed(policy: Policy) -> None:
    assert decide(_who("p-admin"), QueryRequest("report", "demo"), policy).allowed
    d = decide(_who("p-dp-admin"), QueryRequest("report", "demo"), policy)
    assert not d.allowed and d.reasons == ("dp_unsupported:report",)


def test_representation__lint(policy: Policy, tmp_path: Path) -> None:
    codes = {(f.code, f.where.split("$.")[-1].split(".")[1]) for f in lint(policy)}
    assert ("representation_refused_dp", "dp-role") in codes
    assert ("representation_refused_dp", "by-dataset-tier") in codes
    assert ("representation_refused_dp", "researcher") not in codes
    # a representation-only role uses its group_by: not an unused setting
    assert ("unused_setting", "steward") not in codes
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
version: 1
datasets:
  demo: {consent: {permission: GRU}, tier: controlled}
roles:
  nouse: {datasets: [demo], actions: [representation]}
  both: {datasets: [demo], actions: [audit_read, representation], use: GRU}
principals:
  - {match: {vault_policy: a}, role: nouse}
  - {match: {vault_policy: b}, role: both}
""")
    found = {(f.severity, f.code) for f in lint(load_policy(bad, strict=False))}
    assert ("error", "use_required") in found
    assert ("error", "separation_of_duties") in found


def test_representation__cedar_rules_name_the_action(policy: Policy) -> None:
    text = policy.cedar_text
    assert 'GenoVault::Action::"representation"' in text
    # group_by restrictions cover the representation as they cover the statistics
    rule = text.split('@id("researcher:group_by")')[1].split(";")[0]
    assert '"representation"' in rule
