"""load_policy, lint, policy_version, PolicyStore, shipped examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vault.policy import PolicyLoadError, PolicyStore, lint, load_policy

ROOT = Path(__file__).parent.parent
ACCESS = ROOT / "policies" / "access"

BASE = """\
version: 1
datasets:
  demo:
    consent: {permission: GRU}
    tier: controlled
    group_columns: {population: [pop1, pop2]}
roles:
  r:
    datasets: [demo]
    statistics: [frequency]
    actions: [describe_dataset]
    use: GRU
    group_by: [population]
principals:
  - match: {vault_policy: p}
    role: r
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def patched(**role: object) -> str:
    data = yaml.safe_load(BASE)
    data["roles"]["r"].update(role)
    return yaml.safe_dump(data, sort_keys=False)


def codes(findings: list) -> set[str]:
    return {f.code for f in findings}


def test_load__base_is_clean(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, BASE))
    assert lint(p) == []
    assert re.fullmatch(r"[0-9a-f]{64}", p.version)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(BASE.replace("tier: controlled", "tier: secret"), r"p\.yaml:5: "
                     r"\$\.datasets\.demo\.tier: 'secret' is not one of", id="bad-enum"),
        pytest.param(BASE.replace("    statistics: [frequency]", "    statistics: [genotypes]"),
                     r"p\.yaml:10: \$\.roles\.r\.statistics", id="unknown-statistic"),
        pytest.param(BASE + "extra: 1\n", r"p\.yaml:1: \$: Additional properties", id="extra-top"),
        pytest.param(BASE.replace("role: r", "rol: r"), r"\$\.principals\[0\]",
                     id="principal-typo"),
        pytest.param(BASE + "roles: {}\n", r"p\.yaml:17: \$\.roles: key 'roles' is given twice",
                     id="duplicate-key"),
        pytest.param(BASE.replace("{permission: GRU}", "{permission: NCU}"),
                     r"\$\.datasets\.demo\.consent: .*modifier", id="modifier-as-permission"),
        pytest.param(BASE.replace("{permission: GRU}", "{permission: DS}"),
                     r"needs a disease", id="ds-without-disease"),
        pytest.param("datasets: [\n", r"cannot read policy file", id="yaml-syntax"),
    ],
)
def test_load__schema_errors_name_file_line_and_path(tmp_path: Path, text: str,
                                                     expected: str) -> None:
    with pytest.raises(PolicyLoadError) as exc:
        load_policy(write(tmp_path, text))
    assert re.search(expected, str(exc.value)), str(exc.value)


@pytest.mark.parametrize(
    ("role", "code", "severity"),
    [
        pytest.param({"k": 4}, "k_below_floor", "error", id="k-below-floor"),
        pytest.param({"k": 5, "min_group_size": 20}, "k_below_default", "warning", id="k-5"),
        pytest.param({"k": 10}, "k_below_default", "warning", id="k-10"),
        pytest.param({"rare_variant": {"mode": "suppress", "max_ac": -1}},
                     "rare_max_ac_negative", "error", id="rare-negative"),
        pytest.param({"tier": "registered"}, "dp_required", "error", id="registered-no-dp"),
        pytest.param({"dp": {"epsilon_per_query": 2, "budget": 1, "period_days": 1}},
                     "dp_epsilon_over_budget", "error", id="dp-over-budget"),
        pytest.param({"use": None}, "use_required", "error", id="statistics-without-use"),
        pytest.param({"actions": ["describe_dataset", "audit_read"]}, "separation_of_duties",
                     "error", id="auditor-with-statistics"),
        pytest.param({"datasets": ["demo", "ghost"]}, "unknown_dataset", "error",
                     id="unknown-dataset-in-role"),
        pytest.param({"actions": []}, "datasets_not_listed", "warning", id="no-describe"),
        pytest.param({"use": "POA", "datasets": ["demo"]}, "no_visible_dataset", "warning",
                     id="no-dataset-visible") ,
        pytest.param({"group_by": ["sex"]}, "column_not_declared", "warning",
                     id="column-not-declared"),
        pytest.param({"filters": ["VQSLOD"]}, "filter_field_not_a_column", "warning",
                     id="filter-field-not-a-column"),
        pytest.param({"min_group_size": 5}, "min_group_below_k", "warning", id="min-group"),
        # the cohort's own AC/AF/AN as a site filter: an exact oracle (AC = 1)
        pytest.param({"filters": ["AC_gnomad", "AC"]}, "cohort_info_filter", "error",
                     id="cohort-ac-filter"),
        pytest.param({"filters": ["AF"]}, "cohort_info_filter", "error", id="cohort-af-filter"),
        pytest.param({"filters": ["ExcHet"]}, "cohort_info_filter", "error",
                     id="cohort-exchet-filter"),
    ],
)
def test_lint__role_findings(tmp_path: Path, role: dict, code: str, severity: str) -> None:
    if role.get("use", "x") is None:
        data = yaml.safe_load(BASE)
        del data["roles"]["r"]["use"]
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = patched(**role)
    if role.get("use") == "POA":
        text = text.replace("{permission: GRU}", "{permission: HMB}").replace(
            "permission: GRU", "permission: HMB")
    p = load_policy(write(tmp_path, text), strict=False)
    found = [f for f in lint(p) if f.code == code]
    assert found and found[0].severity == severity, lint(p)
    assert "p.yaml:" in found[0].where and "$.roles.r" in found[0].where
    if severity == "error":
        with pytest.raises(PolicyLoadError, match=code):
            load_policy(tmp_path / "p.yaml")


def test_load__k_below_floor_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match=r"k=3 is below the floor of 5"):
        load_policy(write(tmp_path, patched(k=3)))


def test_lint__principal_findings(tmp_path: Path) -> None:
    text = BASE + """\
  - match: {vault_policy: p}
    role: r
  - match: {vault_policy: p, group: g}
    role: other
  - match: {group: g}
    role: ghost
"""
    text = text.replace("roles:\n", "roles:\n  other:\n    actions: [budget_read]\n"
                        "  lonely:\n    actions: [budget_read]\n")
    p = load_policy(write(tmp_path, text), strict=False)
    found = codes(lint(p))
    assert {"duplicate_principal_rule", "overlapping_principals", "unknown_role",
            "unreachable_role"} <= found
    unreachable = [f for f in lint(p) if f.code == "unreachable_role"]
    assert [f.message for f in unreachable] == ["no principal rule maps to role 'lonely'"]
    with pytest.raises(PolicyLoadError, match="unknown_role"):
        load_policy(tmp_path / "p.yaml")


def test_lint__known_datasets_and_columns(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, BASE))
    assert lint(p, known_datasets=["demo"],
                known_columns={"demo": ["population", "sex", "phenotype"]}) == []
    found = lint(p, known_datasets=["other"], known_columns={"demo": ["sex"]})
    assert codes(found) == {"unknown_dataset", "unknown_column"}
    assert all(f.severity == "error" for f in found)


def test_load__directory_merges_files_in_name_order(tmp_path: Path) -> None:
    data = yaml.safe_load(BASE)
    write(tmp_path, yaml.safe_dump({"datasets": data["datasets"]}), "10-datasets.yaml")
    write(tmp_path, yaml.safe_dump({"roles": data["roles"],
                                    "principals": data["principals"]}), "20-roles.yml")
    write(tmp_path, "not: policy", "notes.txt")
    p = load_policy(tmp_path)
    assert list(p.datasets) == ["demo"] and list(p.roles) == ["r"]
    assert [Path(f).name for f in p.files] == ["10-datasets.yaml", "20-roles.yml"]


def test_load__id_defined_twice_across_files(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, BASE.split("roles:")[0], "b.yaml")
    with pytest.raises(PolicyLoadError, match=r"b\.yaml.*dataset 'demo' is already defined"):
        load_policy(tmp_path)


def test_load__empty_dir_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match=r"no \*\.yaml policy files"):
        load_policy(tmp_path)
    with pytest.raises(PolicyLoadError, match="no such policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_version__canonical_content(tmp_path: Path) -> None:
    a = load_policy(write(tmp_path, BASE)).version
    b = load_policy(write(tmp_path, "# a comment\n" + BASE)).version
    c = load_policy(write(tmp_path, patched(k=12))).version
    assert a == b  # comments and layout do not change the version
    assert a != c


def test_policy__is_immutable(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, BASE))
    with pytest.raises(TypeError):
        p.roles["x"] = p.roles["r"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        p.version = "x"  # type: ignore[misc]


def test_store__reload_swaps_or_keeps_old(tmp_path: Path) -> None:
    f = write(tmp_path, BASE)
    store = PolicyStore(f)
    first = store.current()
    f.write_text(patched(k=2))
    err = store.reload()
    assert isinstance(err, PolicyLoadError) and "k_below_floor" in str(err)
    assert store.current() is first
    f.write_text(patched(k=12))
    assert store.reload() is None
    assert store.current() is not first
    assert store.current().roles["r"].k == 12


def test_store__initial_load_failure_raises(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError):
        PolicyStore(write(tmp_path, "roles: 3\n"))


def test_cedar__every_rule_has_an_id_and_the_schema_validates() -> None:
    import cedarpy

    from vault.policy import cedar

    p = load_policy(ACCESS)
    assert cedarpy.validate_policies(p.cedar_text, cedar.schema_text()).validation_passed
    ids = re.findall(r'@id\("([^"]+)"\)', p.cedar_text)
    assert len(ids) == len(set(ids)) == len(p.rules)
    assert "grouped-researcher:statistics" in ids and "overall-researcher:group_by" in ids


def test_shipped__demo_policy_is_clean() -> None:
    p = load_policy(ACCESS)
    assert lint(p, known_datasets=["demo"],
                known_columns={"demo": ["population", "sex", "phenotype"]}) == []
    assert list(p.roles) == ["grouped-researcher", "overall-researcher", "auditor", "admin"]


@pytest.mark.parametrize("example", sorted((ACCESS / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped__examples_load(example: Path) -> None:
    p = load_policy(example)
    assert not [f for f in lint(p) if f.severity == "error"]
