"""genovault policy check|explain, through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vault.cli.policy import policy_group

ACCESS = str(Path(__file__).parent.parent / "policies" / "access")
FREQ_BY_POP = json.dumps({"action": "frequency", "dataset": "demo", "group_by": ["population"]})


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(policy_group, list(args))
    return res.exit_code, res.output


def test_cli_check__shipped_policy_ok() -> None:
    code, out = run("check", ACCESS, "--dataset", "demo", "--columns",
                    "demo:population,sex,phenotype")
    assert code == 0, out
    assert "0 error(s), 0 warning(s)" in out


def test_cli_check__unknown_dataset_and_column_exit_1() -> None:
    code, out = run("check", ACCESS, "--dataset", "other", "--columns", "demo:population")
    assert code == 1
    assert "[unknown_dataset]" in out and "[unknown_column]" in out
    assert "genovault.yaml:" in out


def test_cli_check__schema_error_json(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("roles:\n  r:\n    k: 3\n    tier: gold\n")
    code, out = run("check", str(f), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False and data["loaded"] is False
    assert any("bad.yaml:4: $.roles.r.tier" in f["message"] for f in data["findings"])


def test_cli_check__k_floor_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text("roles:\n  r:\n    k: 3\n    actions: [budget_read]\n"
                 "principals:\n  - match: {vault_policy: x}\n    role: r\n")
    code, out = run("check", str(f), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["loaded"] is True
    assert [x["code"] for x in data["findings"] if x["severity"] == "error"] == ["k_below_floor"]


def test_cli_check__bad_columns_option() -> None:
    code, out = run("check", ACCESS, "--columns", "nocolon")
    assert code == 2 and "DATASET:col1,col2" in out


def test_cli_explain__allowed_text() -> None:
    code, out = run("explain", "--policy", ACCESS, "--vault-policy", "genovault-researcher-a",
                    "--request", FREQ_BY_POP)
    assert code == 0, out
    assert out.startswith("ALLOWED (role grouped-researcher)")
    assert "allowed_by:grouped-researcher:statistics" in out
    assert "DUO: match: dataset consent GRU permits use GRU" in out
    assert "tier controlled, k 11, min group size 20" in out


def test_cli_explain__denied_json_with_principal() -> None:
    principal = json.dumps({"entity_id": "e-b", "vault_policies": ["genovault-researcher-b"]})
    code, out = run("explain", "--policy", ACCESS, "--principal", principal,
                    "--request", FREQ_BY_POP, "--json")
    assert code == 3
    data = json.loads(out)
    d = data["decision"]
    assert d["allowed"] is False and d["obligations"] is None
    assert d["reasons"] == ["group_by_not_allowed:population"]
    assert d["matched_rules"] == ["overall-researcher:group_by"]
    assert len(d["policy_version"]) == 64
    assert data["roles"][0]["duo"]["ok"] is True


def test_cli_explain__default_policy_obligations() -> None:
    req = json.dumps({"action": "frequency", "dataset": "demo"})
    code, out = run("explain", "--vault-policy", "genovault-researcher-b", "--request", req,
                    "--json")
    assert code == 0
    ob = json.loads(out)["decision"]["obligations"]
    assert (ob["tier"], ob["k"]) == ("registered", 11)
    assert ob["dp"] == {"epsilon_per_query": 0.25, "budget": 100, "period_days": 30,
                        "mechanism": "discrete_laplace",
                        "presence": {"control": "member_information", "margin_sd": 2.0,
                                     "member_budget_nats": 0.35, "noise_scale": 4,
                                     "count": "carriers"}}
    code, text = run("explain", "--vault-policy", "genovault-researcher-b", "--request", req)
    assert code == 0 and "member information budget 0.35 nats" in text \
        and "counting carriers" in text
    code, out = run("explain", "--vault-policy", "genovault-researcher-a", "--request", req,
                    "--json")
    ob = json.loads(out)["decision"]["obligations"]
    assert (ob["tier"], ob["dp"]) == ("controlled", None)


def test_cli_explain__registered_obligations() -> None:
    req = json.dumps({"action": "frequency", "dataset": "demo"})
    policy = Path(__file__).parent / "api" / "policy.yaml"
    code, out = run("explain", "--policy", str(policy), "--vault-policy", "genovault-noisy",
                    "--request", req, "--json")
    assert code == 0
    ob = json.loads(out)["decision"]["obligations"]
    assert ob["tier"] == "registered"
    assert ob["dp"] == {"epsilon_per_query": 0.1, "budget": 10, "period_days": 30,
                        "mechanism": "discrete_laplace", "presence": None}


def test_cli_explain__no_role() -> None:
    code, out = run("explain", "--policy", ACCESS, "--vault-policy", "default",
                    "--request", FREQ_BY_POP)
    assert code == 3
    assert "reasons: no_role" in out and "none matched" in out


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--request", '{"action": "download"}'], id="unknown-action"),
        pytest.param(["--request", "[1]"], id="not-an-object"),
        pytest.param(["--request", "{"], id="not-json"),
        pytest.param(["--request", FREQ_BY_POP, "--principal", '{"token": "s.x"}'],
                     id="unknown-principal-field"),
        pytest.param(["--request", FREQ_BY_POP, "--principal", "{}", "--vault-policy", "a"],
                     id="principal-and-vault-policy"),
    ],
)
def test_cli_explain__bad_input_is_a_usage_error(args: list[str]) -> None:
    code, _ = run("explain", "--policy", ACCESS, *args)
    assert code == 2
