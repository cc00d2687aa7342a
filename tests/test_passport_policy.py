"""Visa rules in the access policy: which verified visas give which role, on which datasets,
for which use (DUO), through the same decide() and Cedar set; loading, lint and explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.passport import Issuer
from vault.cli.policy import policy_group
from vault.policy import Principal, QueryRequest, decide, load_policy, visible_datasets
from vault.policy.lint import lint
from vault.policy.loader import PolicyLoadError
from vault.policy.model import VisaAssertion

DAC = "https://dac.example.org"
BROKER = "https://broker.example.org"
BONA_FIDE = "https://doi.org/10.1038/s41431-018-0219-y"
URL = "https://genovault.example/datasets/"

POLICY = f"""
version: 1
datasets:
  cancer:
    consent: {{permission: DS, disease: MONDO:0004992, disease_label: cancer}}
    tier: controlled
    group_columns: {{population: [pop1, pop2]}}
  general:
    consent: {{permission: GRU}}
    tier: controlled
    group_columns: {{population: [pop1, pop2]}}
roles:
  controlled:
    datasets: [cancer, general]
    statistics: [frequency, presence]
    actions: [list_datasets, describe_dataset]
    use: GRU
    group_by: [population]
  registered:
    tier: registered
    datasets: [general]
    statistics: [frequency, presence]
    actions: [list_datasets, describe_dataset]
    use: GRU
    dp: {{epsilon_per_query: 0.5, budget: 10, period_days: 30}}
  public:
    datasets: [general]
    statistics: [presence]
    actions: [list_datasets, describe_dataset]
    use: GRU
principals:
  - match: {{vault_policy: genovault-researcher-a}}
    role: controlled
  - match: {{anonymous: true}}
    role: public
passports:
  issuers:
    dac: {{iss: "{DAC}", jwks: dac.jwks.json}}
    broker: {{iss: "{BROKER}", jwks: dac.jwks.json, signs: [passports, visas]}}
  visas:
    - require: [{{type: ControlledAccessGrants, issuer: dac, value: "{URL}cancer"}}]
      role: controlled
      datasets: [cancer]
      use: DS@MONDO:0004992
    - require: [{{type: ControlledAccessGrants, issuer: dac, value: "{URL}cancer-gru"}}]
      role: controlled
      datasets: [cancer]
    - require: [{{type: ControlledAccessGrants, issuer: dac, value: "{URL}general"}}]
      role: controlled
      datasets: [general]
    - require:
        - {{type: ResearcherStatus, issuer: broker, value: "{BONA_FIDE}", by: [so, system]}}
      role: registered
"""


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("passport-policy")
    Issuer(DAC).write_jwks(d / "dac.jwks.json")
    (d / "policy.yaml").write_text(POLICY)
    return d


@pytest.fixture(scope="module")
def policy(policy_dir: Path):  # type: ignore[no-untyped-def]
    return load_policy(policy_dir)


def visa(vtype: str, value: str, iss: str = DAC, by: str | None = "dac") -> VisaAssertion:
    return VisaAssertion(iss=iss, sub="r1@example.org", type=vtype, value=value,
                         source=iss, by=by)


def passport(*visas: VisaAssertion) -> Principal:
    return Principal("ga4gh:r1", "r1", (), auth="passport", visas=visas)


CAG_CANCER = visa("ControlledAccessGrants", URL + "cancer")
CAG_GENERAL = visa("ControlledAccessGrants", URL + "general")
BONA = visa("ResearcherStatus", BONA_FIDE, BROKER, "so")


@pytest.mark.parametrize("who,action,dataset,allowed,want", [
    pytest.param(passport(CAG_CANCER), "frequency", "cancer", True, "controlled",
                 id="cag-grants-its-dataset-controlled"),
    pytest.param(passport(CAG_CANCER), "frequency", "general", False, "dataset_not_visible",
                 id="cag-grants-no-other-dataset-of-the-role"),
    pytest.param(passport(CAG_GENERAL), "frequency", "general", True, "controlled",
                 id="cag-general"),
    pytest.param(passport(BONA), "frequency", "general", True, "registered",
                 id="researcher-status-registered"),
    pytest.param(passport(BONA), "frequency", "cancer", False, "no_role_on_dataset",
                 id="researcher-status-not-controlled"),
    pytest.param(passport(visa("ControlledAccessGrants", URL + "cancer-gru")), "frequency",
                 "cancer", False, "consent_mismatch:DS-CANCER",
                 id="duo-ds-cancer-refuses-a-general-use-grant"),
    pytest.param(passport(visa("ControlledAccessGrants", URL + "cancer", by="self")),
                 "frequency", "cancer", False, "no_role", id="self-asserted-grant"),
    pytest.param(passport(visa("ControlledAccessGrants", URL + "cancer", by=None)),
                 "frequency", "cancer", False, "no_role", id="grant-without-by"),
    pytest.param(passport(visa("ControlledAccessGrants", URL + "cancer", iss=BROKER)),
                 "frequency", "cancer", False, "no_role", id="grant-of-another-issuer"),
    pytest.param(passport(visa("ControlledAccessGrants", URL + "Cancer")), "frequency",
                 "cancer", False, "no_role", id="value-is-a-whole-string-match"),
    pytest.param(passport(visa("AffiliationAndRole", "faculty@example.org")), "frequency",
                 "general", False, "no_role", id="unmapped-visa-type"),
    pytest.param(Principal("x", "x", ("genovault-researcher-a",), auth="passport"),
                 "frequency", "cancer", False, "no_role",
                 id="a-passport-never-matches-vault-rules"),
    pytest.param(Principal.anonymous(), "presence", "general", True, "public",
                 id="anonymous-public-role"),
    pytest.param(Principal.anonymous(), "frequency", "general", False,
                 "statistic_not_allowed", id="anonymous-presence-only"),
    pytest.param(Principal("e", "e", ("some-policy",)), "presence", "general", False,
                 "no_role", id="a-vault-token-never-gets-the-anonymous-role"),
])
def test_visa_rules__decide(policy, who: Principal, action: str, dataset: str,  # type: ignore[no-untyped-def]
                            allowed: bool, want: str) -> None:
    d = decide(who, QueryRequest(action, dataset), policy)
    assert d.allowed is allowed, d.reasons
    if allowed:
        assert d.role == want
        assert d.obligations is not None
        assert d.obligations.tier == ("registered" if want == "registered" else "controlled")
    elif want == "no_role_on_dataset":
        assert d.reasons == ("dataset_not_visible",)
    else:
        assert want in d.reasons, d.reasons


def test_visa_rules__the_use_of_a_grant_and_the_visible_datasets(policy) -> None:  # type: ignore[no-untyped-def]
    both = passport(CAG_CANCER, CAG_GENERAL)
    assert visible_datasets(both, policy) == ["cancer", "general"]
    assert visible_datasets(passport(CAG_CANCER), policy) == ["cancer"]
    # the cancer grant's use is DS(cancer): a request for another use is refused there
    d = decide(passport(CAG_CANCER), QueryRequest("frequency", "cancer", use="GRU"), policy)
    assert not d.allowed and "use_not_permitted:GRU" in d.reasons
    # a grant limited to one dataset never widens to the role's other datasets, even with
    # another visa giving the same role on another dataset
    gru_cancer = passport(visa("ControlledAccessGrants", URL + "cancer-gru"), CAG_GENERAL)
    assert visible_datasets(gru_cancer, policy) == ["general"]
    # the same role through a Vault token: every dataset of the role, with the role's use
    token = Principal("e1", "e1", ("genovault-researcher-a",))
    assert visible_datasets(token, policy) == ["general"]  # cancer: DS vs GRU (DUO)


def _load_error(tmp_path: Path, text: str, jwks: dict | None = None) -> str:
    if jwks is not None:
        (tmp_path / "dac.jwks.json").write_text(json.dumps(jwks))
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(PolicyLoadError) as info:
        load_policy(tmp_path)
    return str(info.value)


BASE = """
version: 1
datasets: {d: {consent: {permission: GRU}}}
roles: {r: {datasets: [d], statistics: [presence], use: GRU, tier: controlled,
            actions: [describe_dataset]}}
"""


@pytest.mark.parametrize("extra,needle", [
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: missing.json}}}",
                 "cannot read the JWKS file", id="jwks-file-missing"),
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: 'http://dac.example.org/j'}}}",
                 "must be https://", id="jwks-plain-http"),
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: 'https://dac.example.org/j'}},"
                 " visas: [{require: [{type: ControlledAccessGrants, issuer: dac}], role: r,"
                 " datasets: [d]}]}", "'value' is a required property", id="cag-needs-value"),
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: 'https://dac.example.org/j'}},"
                 " visas: [{require: [{type: ControlledAccessGrants, issuer: dac, value: v}],"
                 " role: r}]}", "'datasets' is a required property", id="cag-needs-datasets"),
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: 'https://dac.example.org/j'}},"
                 " visas: [{require: [{type: LinkedIdentities, issuer: dac}], role: r}]}",
                 "LinkedIdentities", id="linked-identities-grant-nothing"),
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: 'https://dac.example.org/j'}},"
                 " visas: [{require: [{type: ResearcherStatus, issuer: other}], role: r}]}",
                 "unknown_issuer", id="unknown-issuer"),
    pytest.param("passports: {issuers: {dac: {iss: x, jwks: 'https://dac.example.org/j'}},"
                 " visas: [{require: [{type: ResearcherStatus, issuer: dac}], role: nobody}]}",
                 "unknown_role", id="unknown-role"),
    pytest.param("principals: [{match: {anonymous: true, group: g}, role: r}]",
                 "has too many properties", id="anonymous-alone"),
    pytest.param("principals: [{match: {anonymous: true}, role: r}]\n"
                 "roles2: {}", "Additional properties", id="schema-still-closed"),
])
def test_visa_rules__bad_policies_do_not_load(tmp_path: Path, extra: str, needle: str) -> None:
    assert needle in _load_error(tmp_path, BASE + extra)


def test_visa_rules__a_jwks_with_private_key_material_is_refused(tmp_path: Path) -> None:
    issuer = Issuer(DAC)
    from jwt.algorithms import RSAAlgorithm
    private = json.loads(RSAAlgorithm.to_jwk(issuer.key))
    text = BASE + "passports: {issuers: {dac: {iss: x, jwks: dac.jwks.json}}}"
    assert "public keys only" in _load_error(tmp_path, text, {"keys": [private]})
    assert "not a JWKS" in _load_error(tmp_path, text, {"keys": []})
    # the public half loads; its content is part of the policy version
    (tmp_path / "dac.jwks.json").write_text(json.dumps(issuer.jwks()))
    v1 = load_policy(tmp_path).version
    Issuer(DAC).write_jwks(tmp_path / "dac.jwks.json")
    assert load_policy(tmp_path).version != v1


def test_visa_rules__a_public_role_is_presence_only(tmp_path: Path) -> None:
    text = BASE.replace("statistics: [presence]", "statistics: [presence, sfs]") + \
        "principals: [{match: {anonymous: true}, role: r}]"
    (tmp_path / "p.yaml").write_text(text)
    codes = [f.code for f in lint(load_policy(tmp_path, strict=False))]
    assert "public_role_too_wide" in codes


def test_policy_explain__names_the_visa_rule_and_the_duo_match(policy_dir: Path) -> None:
    run = CliRunner().invoke
    cag = json.dumps({"iss": DAC, "type": "ControlledAccessGrants", "value": URL + "cancer-gru",
                      "source": DAC, "by": "dac"})
    out = run(policy_group, ["explain", "--policy", str(policy_dir), "--visa", cag,
                    "--request", '{"action": "frequency", "dataset": "cancer"}'])
    assert out.exit_code == 3, out.output
    assert "visa rule $.passports.visas[1] -> controlled on cancer: matched" in out.output
    assert "DUO: no match: dataset consent DS permits uses DS; the use is GRU" in out.output
    ok = cag.replace("cancer-gru", "cancer")
    out = run(policy_group, ["explain", "--policy", str(policy_dir), "--visa", ok,
                    "--request", '{"action": "frequency", "dataset": "cancer"}', "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    (role,) = body["roles"]
    assert role["grant"] == {"via": "passports.visas[0]", "datasets": ["cancer"],
                             "use": "DS(MONDO:0004992)"}
    assert role["duo"]["ok"] is True
    assert [r["matched"] for r in body["visa_rules"]] == [True, False, False, False]
