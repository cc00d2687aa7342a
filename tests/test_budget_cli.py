"""``genovault budget show`` goes the report's way: the access policy decides (``budget_read``),
a count of 1 … k−1 excluded members is suppressed, one audit record per call, allowed or
refused. Real OpenBao (tokens via env), a ledger file written here."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.baodev import DevServer
from vault.cli import main
from vault.keys import auth as vauth
from vault.keys.anchor import VaultKvAnchor
from vault.keys.bootstrap import mint_role_token
from vault.privacy.ledger import Ledger, ledger_path

pytestmark = pytest.mark.integration
K = 11  # the shipped policy's k for the admin role


def _ledger(home: Path) -> Path:
    """A ledger with two principals: alice's presence answers excluded 3 members (under k),
    bob's 15."""
    path = ledger_path(home)
    Ledger(path)  # creates the file and its tables
    now = time.time()
    con = sqlite3.connect(path)
    with con:
        for who, members in (("alice", 3), ("bob", 15)):
            con.execute("INSERT INTO charges (principal, display_name, role, epsilon, cells, "
                        "dataset, query_id, at) VALUES (?, ?, 'registered', 0.5, 2, 'demo', "
                        "?, ?)", (who, who, f"q-{who}", now))
            con.executemany("INSERT INTO member_loss (principal, dataset_version, member, "
                            "loss, excluded) VALUES (?, 'v1', ?, 0.4, 1)",
                            [(who, m) for m in range(members)])
    con.close()
    return path


def _records(home: Path) -> list[dict]:
    log = home / "audit" / "audit.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def env(tmp_path: Path, bao_server: DevServer, bootstrapped: object) -> dict[str, str]:
    root = bao_server.client()
    # the audit chain head is shared by the whole test server: this test's log starts empty
    VaultKvAnchor(root).reset()  # root only
    role_id, secret_id = vauth.approle_credentials(root, "service")
    _ledger(tmp_path / "home")
    return {"VAULT_ADDR": bao_server.addr, "GENOVAULT_HOME": str(tmp_path / "home"),
            "GENOVAULT_STORE": str(tmp_path / "store"), "GENOVAULT_SERVICE_ROLE_ID": role_id,
            "GENOVAULT_SERVICE_SECRET_ID": secret_id}


def test_budget_show__admin_gets_one_audit_record_and_small_counts_suppressed(
        env: dict[str, str], bao_server: DevServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    admin = {**env, "VAULT_TOKEN": mint_role_token(bao_server.client(), "admin", ttl="5m")}
    r = CliRunner().invoke(main, ["budget", "show", "--json"], env=admin)
    assert r.exit_code == 0, r.output
    rows = {x["principal"]: x for x in map(json.loads, r.stdout.splitlines())}
    assert rows["alice"]["members_excluded"] is None  # 3 members: under k, never shown
    assert rows["bob"]["members_excluded"] == 15
    recs = _records(home)
    assert len(recs) == 1
    rec = recs[0]
    assert rec["request"]["action"] == "budget_read" and rec["decision"]["allowed"] is True
    assert rec["principal"]["role"] == "admin"
    assert rec["result"]["status"] == 200 and rec["result"]["rows"] == 2
    assert rec["result"]["disclosure"] == {"k": K, "suppressed_cells": 1}
    r = CliRunner().invoke(main, ["budget", "show"], env=admin)
    assert r.exit_code == 0, r.output
    alice = next(line for line in r.stdout.splitlines() if line.startswith("alice"))
    assert f"<{K}" in alice.split() and "3" not in alice.split()
    assert f"audit record {_records(home)[-1]['query_id']}" in r.stdout
    assert len(_records(home)) == 2  # one record per call


@pytest.mark.parametrize("role", ["query", "ingest"])
def test_budget_show__caller_without_budget_read_is_refused_and_audited(
        env: dict[str, str], bao_server: DevServer, tmp_path: Path, role: str) -> None:
    home = tmp_path / "home"
    caller = {**env, "VAULT_TOKEN": mint_role_token(bao_server.client(), role, ttl="5m",
                                                    **({"dataset": "demo"}
                                                       if role == "ingest" else {}))}
    r = CliRunner().invoke(main, ["budget", "show", "--json"], env=caller)
    assert r.exit_code == 3, r.output
    assert "does not allow this caller" in r.output and "no_role" in r.output
    assert "alice" not in r.output and "bob" not in r.output and "epsilon" not in r.output
    recs = _records(home)
    assert len(recs) == 1
    assert recs[0]["decision"]["allowed"] is False
    assert recs[0]["result"] == {"status": 403, "reasons": ["no_role"]}
    assert f"audit record {recs[0]['query_id']}" in r.output
