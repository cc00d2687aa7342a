"""The lifecycle commands end to end through the CLI, against a real OpenBao (tokens via env):
keys status/rotate, samples withdraw, datasets destroy with two userpass admins; every
command is in the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import hvac
import pytest
from click.testing import CliRunner

from tests.support.baodev import DevServer
from tests.support.vcfgen import cohort_vcf
from vault.cli import main
from vault.cli.datasets import datasets_group
from vault.cli.keys import keys_group
from vault.cli.samples import samples_group
from vault.keys import signing
from vault.keys.anchor import VaultKvAnchor
from vault.keys.auth import create_user
from vault.keys.bootstrap import mint_role_token

for _group in (keys_group, samples_group):  # main.py registers them (the CLI owner's change)
    if _group.name not in main.commands:
        main.add_command(_group)


def _login(bao_server: DevServer, name: str, policies: list[str]) -> str:
    create_user(bao_server.client(), name, "pw-" + name, policies)
    c = hvac.Client(url=bao_server.addr)
    return str(c.auth.userpass.login(name, "pw-" + name)["auth"]["client_token"])


@pytest.mark.integration
def test_cli__rotate_status_withdraw_destroy(tmp_path: Path, bao_server: DevServer,
                                             bootstrapped: object) -> None:
    assert "destroy" in datasets_group.commands
    base = {"VAULT_ADDR": bao_server.addr, "GENOVAULT_STORE": str(tmp_path / "store"),
            "GENOVAULT_HOME": str(tmp_path / "home"), "GENOVAULT_NO_PROGRESS": "1"}

    def env(token: str) -> dict[str, str]:
        return {**base, "VAULT_TOKEN": token}

    root = bao_server.client()
    # the audit chain head is shared by the whole test server: this test's log starts empty
    VaultKvAnchor(root).reset()  # root only
    runner = CliRunner()
    samples = [f"C{i}" for i in range(12)]
    vcf, _ = cohort_vcf(tmp_path / "c.vcf", samples, 120)
    r = runner.invoke(main, ["ingest", str(vcf), "-d", "clids"],
                      env=env(mint_role_token(root, "ingest")))
    assert r.exit_code == 0, r.output
    admin = env(mint_role_token(root, "admin"))
    signing.forget()
    r = runner.invoke(main, ["keys", "status", "clids"], env=admin)
    assert r.exit_code == 0, r.output
    assert "genovault.clids.genotypes" in r.output and "oldest in use v1" in r.output
    r = runner.invoke(main, ["keys", "rotate", "clids", "--class", "genotypes", "--retire"],
                      env=admin)
    assert r.exit_code == 0, r.output
    assert "genovault.clids.genotypes -> v2" in r.output and "retired" in r.output
    r = runner.invoke(main, ["keys", "status", "clids", "--json"], env=admin)
    st = json.loads(r.output)
    geno = [k for k in st["keys"].values() if k["class"] == "genotypes"]
    assert len(geno) == 2 and all(k["min_decryption_version"] == 2 for k in geno)
    assert st["oldest_version_needed"]["genotypes"] == 2
    r = runner.invoke(main, ["keys", "rotate", "clids"],
                      env=env(mint_role_token(root, "query")))
    assert r.exit_code != 0 and "403" in r.output
    r = runner.invoke(main, ["samples", "withdraw", "clids", "C3", "C5", "--reason",
                             "consent withdrawn"], env=admin)
    assert r.exit_code == 0, r.output
    assert "2 sample(s) withdrawn" in r.output
    r = runner.invoke(main, ["datasets", "verify", "clids"],
                      env=env(mint_role_token(root, "query")))
    assert r.exit_code == 0, r.output
    # destruction: alice (admin + shred-request) requests and marks the keys deletable; alice
    # cannot approve; bob (admin + shred-approve) approves and deletes them
    alice = env(_login(bao_server, "alice-cli", ["genovault-admin", "genovault-shred-request"]))
    bob = env(_login(bao_server, "bob-cli", ["genovault-admin", "genovault-shred-approve"]))
    r = runner.invoke(main, ["datasets", "destroy", "clids", "--request"], env=alice)
    assert r.exit_code == 0, r.output
    rid = r.output.split("id ", 1)[1].split(".", 1)[0].strip()
    r = runner.invoke(main, ["datasets", "destroy", "clids", "--approve", rid], env=alice)
    assert r.exit_code != 0 and "different admin" in r.output
    r = runner.invoke(main, ["datasets", "destroy", "clids", "--approve", rid], env=bob)
    assert r.exit_code == 0, r.output
    assert "destroyed" in r.output
    # the audit log has every lifecycle command, with who and outcome, no ids
    log = (tmp_path / "home" / "audit" / "audit.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in log]
    cmds = [(x.get("command"), x.get("outcome")) for x in records if x.get("event") ==
            "lifecycle"]
    assert ("keys rotate", "ok") in cmds and ("samples withdraw", "ok") in cmds
    assert ("datasets destroy --request", "ok") in cmds
    assert ("datasets destroy --approve", "error") in cmds
    assert ("datasets destroy --approve", "ok") in cmds
    text = "\n".join(log)
    assert all(f'"{s}"' not in text for s in samples)
    assert "vault:v" not in text
