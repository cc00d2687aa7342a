"""The audit chain anchored in a real OpenBao (KV v2, version = seq), and ``genovault audit
verify|show``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
from click.testing import CliRunner

from tests.support.baodev import DevServer, free_port
from vault.audit import AuditLog, AuditTamperError, verify
from vault.cli.audit import audit_group
from vault.errors import IntegrityError, VaultDown, VaultForbidden
from vault.keys.anchor import (
    ANCHOR_MOUNT,
    AUDIT_HEAD_PATH,
    AUDIT_MOUNT,
    AUDIT_PREFIX,
    AnchorConflict,
    VaultKvAnchor,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
AUDITOR_HCL = (
    f'path "{ANCHOR_MOUNT}/data/{AUDIT_PREFIX}/{AUDIT_HEAD_PATH}" {{ capabilities = ["read"] }}\n'
    f'path "{AUDIT_MOUNT}/{AUDIT_HEAD_PATH}" {{ capabilities = ["read"] }}\n')


@pytest.fixture(scope="module")
def root(bao_server: DevServer, bootstrapped: object) -> hvac.Client:
    """A root client of a bootstrapped server (the anchor mount is in place)."""
    return bao_server.client()


@pytest.fixture
def anchor(root: hvac.Client) -> VaultKvAnchor:
    """An anchor at a path of its own, so tests never share a chain head."""
    return VaultKvAnchor(root, path=f"test-{uuid.uuid4().hex}/head")


def _payload(who: str, action: str = "allele_frequency", **extra: Any) -> dict[str, Any]:
    return {"principal": {"entity_id": f"ent-{who}", "display_name": who, "role": "researcher"},
            "request": {"method": "POST", "path": "/v1/query", "action": action,
                        "dataset": "demo", "params": {}},
            "decision": {"allowed": True, "reasons": [], "rules": [], "policy_version": "p1"},
            **extra}


def test_vault_anchor__roundtrip(anchor: VaultKvAnchor, root: hvac.Client) -> None:
    assert anchor.read() is None
    with pytest.raises(AnchorConflict, match="not at version 2"):
        anchor.write(3, "a" * 64)  # the KV version is the seq: 1 comes first
    anchor.write(1, "a" * 64)
    assert anchor.read() == (1, "a" * 64)
    anchor.write(2, "b" * 64)
    assert anchor.read() == (2, "b" * 64)
    with pytest.raises(AnchorConflict):
        anchor.write(2, "c" * 64)  # a second writer of seq 2 loses the check-and-set
    assert anchor.read() == (2, "b" * 64)
    with pytest.raises(ValueError):
        anchor.write(0, "b" * 64)
    with pytest.raises(ValueError):
        anchor.write(5, "not hex")
    root.adapter.post(f"/v1/{anchor.mount}/data/{anchor.entry.key}",
                      json={"options": {"cas": 2}, "data": {"seq": "x"}})
    with pytest.raises(IntegrityError, match="malformed"):
        anchor.read()
    with pytest.raises(ValueError):
        VaultKvAnchor(root, path="../sys/mounts")


def test_vault_anchor__errors_are_mapped(bao_server: DevServer, root: hvac.Client) -> None:
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    weak = VaultKvAnchor(bao_server.client(token))
    with pytest.raises(VaultForbidden, match="audit chain anchor"):
        weak.write(1, "c" * 64)
    with pytest.raises(VaultForbidden):
        weak.read()
    down = VaultKvAnchor(hvac.Client(url=f"http://127.0.0.1:{free_port()}", token="x",
                                     timeout=2))
    with pytest.raises(VaultDown):
        down.read()


def test_vault_anchor__kept_alive_connection(anchor: VaultKvAnchor, root: hvac.Client,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes go over one kept-alive connection, survive its loss, and land in Vault."""
    def no_hvac(*a: object, **kw: object) -> None:
        raise AssertionError("the kept-alive path failed and hvac was used")

    monkeypatch.setattr(anchor.client.adapter, "post", no_hvac)
    anchor.write(1, "d" * 64)
    conn = anchor.entry._fast._conn
    assert conn is not None and conn.sock is not None
    for seq in range(2, 6):
        anchor.write(seq, "e" * 64)
    assert anchor.entry._fast._conn is conn  # the same connection every time
    conn.sock.close()  # e.g. Vault closed an idle connection
    anchor.write(6, "f" * 64)
    assert anchor.read() == (6, "f" * 64)
    raw = root.adapter.get(f"/v1/{anchor.mount}/data/{anchor.entry.key}")["data"]
    assert raw["data"] == {"seq": 6, "hash": "f" * 64} and raw["metadata"]["version"] == 6
    anchor.close()
    anchor.write(7, "a" * 64)  # reopens
    assert anchor.read() == (7, "a" * 64)


def test_vault_anchor__fast_path_failure_reports_the_vault_error(
        bao_server: DevServer, root: hvac.Client) -> None:
    """A refused or unreachable fast write falls back to hvac, whose mapped error is raised;
    the token is in no message."""
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    weak = VaultKvAnchor(bao_server.client(token), path=f"test-{uuid.uuid4().hex}/head")
    with pytest.raises(VaultForbidden) as info:
        weak.write(1, "c" * 64)
    assert token not in str(info.value)
    assert VaultKvAnchor(root, path=weak.path).read() is None  # nothing was written
    down = VaultKvAnchor(hvac.Client(url=f"http://127.0.0.1:{free_port()}", token="x",
                                     timeout=2))
    with pytest.raises(VaultDown):
        down.write(1, "c" * 64)


def test_vault_anchor__audit_log_detects_truncation(tmp_path: Path,
                                                    anchor: VaultKvAnchor) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    log = AuditLog(path, anchor)
    for i in range(5):
        entry = log.begin(_payload(f"u{i}"))
        log.finish(entry, {"result": {"status": 200, "rows": i}})
    report = verify(path, anchor)
    assert report.ok and report.records == 10
    assert anchor.read() == report.head
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:7]))
    assert verify(path, anchor).problems == [
        "the log ends at seq 7 but the anchor records seq 10: records after seq 7 were "
        "removed (truncated)"]
    with pytest.raises(AuditTamperError):
        AuditLog(path, anchor).append(_payload("x"))


WORKER = """
import os, sys
from pathlib import Path
import hvac
from vault.audit import AuditLog
from vault.keys.anchor import VaultKvAnchor
client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
log = AuditLog(Path(sys.argv[1]), VaultKvAnchor(client, path=sys.argv[2]))
for j in range(100):
    log.append({"principal": {"entity_id": "proc" + sys.argv[3]}, "request": {"action": "a"}})
"""


def test_vault_anchor__two_processes_x100(tmp_path: Path, bao_server: DevServer,
                                          anchor: VaultKvAnchor) -> None:
    path = tmp_path / "audit.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "VAULT_ADDR": bao_server.addr,
           "VAULT_TOKEN": bao_server.root_token}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), anchor.path, str(i)],
                              cwd=REPO, env=env) for i in range(2)]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["seq"] for r in recs] == list(range(1, 201))
    report = verify(path, anchor)
    assert report.ok, report.problems
    assert report.anchored == (200, recs[-1]["hash"])


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def home_log(tmp_path: Path, root: hvac.Client) -> tuple[Path, dict[str, str], AuditLog]:
    """A GENOVAULT_HOME whose default log is anchored at the default path (reset first)."""
    VaultKvAnchor(root).reset()  # root only: the shared head restarts at seq 1
    home = tmp_path / "home"
    path = home.resolve() / "audit" / "audit.jsonl"
    env = {"VAULT_ADDR": root.url, "VAULT_TOKEN": root.token, "GENOVAULT_HOME": str(home)}
    log = AuditLog(path, VaultKvAnchor(root))
    e = log.begin(_payload("alice"))
    log.finish(e, {"result": {"status": 200, "rows": 12}, "disclosure": ["small_cells"],
                   "budget": {"epsilon_spent": 0.5, "epsilon_remaining": 0.5}})
    log.append(_payload("bob", "hwe", decision={"allowed": False, "reasons": ["no consent"],
                                                "rules": ["r9"], "policy_version": "p1"}))
    log.append(_payload("eve\x1b]0;pwned\x07", "hwe"))
    return path, env, log


def test_audit_cli__verify_ok_then_tampered(home_log: tuple[Path, dict[str, str], AuditLog]
                                            ) -> None:
    path, env, _ = home_log
    runner = CliRunner()
    r = runner.invoke(audit_group, ["verify"], env=env)
    assert r.exit_code == 0, r.output
    assert "4 record(s), head seq 4, anchored head seq 4" in r.output
    assert "ok: the chain is intact" in r.output
    path.write_text(path.read_text().replace('"rows":12', '"rows":13'))
    r = runner.invoke(audit_group, ["verify"], env=env)
    assert r.exit_code == 1
    assert "problem: line 2 (seq 2): hash mismatch: the record was edited" in r.output
    assert "FAILED: 1 problem(s)" in r.output


def test_audit_cli__verify_with_an_auditor_token(
        home_log: tuple[Path, dict[str, str], AuditLog], root: hvac.Client,
        bao_server: DevServer) -> None:
    path, env, _ = home_log
    root.sys.create_or_update_acl_policy("genovault-auditor-test", AUDITOR_HCL)
    token = root.auth.token.create(policies=["genovault-auditor-test"],
                                   ttl="5m")["auth"]["client_token"]
    r = CliRunner().invoke(audit_group, ["verify"], env={**env, "VAULT_TOKEN": token})
    assert r.exit_code == 0, r.output
    # the auditor can read the head but not move it
    with pytest.raises(VaultForbidden):
        VaultKvAnchor(bao_server.client(token)).write(5, "d" * 64)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    r = CliRunner().invoke(audit_group, ["verify"], env={**env, "VAULT_TOKEN": token})
    assert r.exit_code == 1
    assert "records after seq 2 were removed (truncated)" in r.output


def test_audit_cli__verify_without_vault(home_log: tuple[Path, dict[str, str], AuditLog]
                                         ) -> None:
    _, env, _ = home_log
    env = {**env, "VAULT_ADDR": f"http://127.0.0.1:{free_port()}"}
    r = CliRunner().invoke(audit_group, ["verify"], env=env)
    assert r.exit_code == 1
    assert r.output.startswith("error: ") and "cannot be reached" in r.output
    assert env["VAULT_TOKEN"] not in r.output


def test_audit_cli__show(home_log: tuple[Path, dict[str, str], AuditLog]) -> None:
    path, env, _ = home_log
    runner = CliRunner()
    r = runner.invoke(audit_group, ["show"], env=env)
    assert r.exit_code == 0, r.output
    out = r.output.splitlines()
    assert len(out) == 4
    assert "#1  request" in out[0] and "alice(ent-alice, researcher)" in out[0]
    assert "status=200 rows=12" in out[1] and "disclosure=small_cells" in out[1]
    assert "epsilon_spent:0.5" in out[1]
    assert "bob" in out[2] and "denied" in out[2] and "reasons=no consent" in out[2]
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert "eve\\x1b]0;pwned\\x07" in out[3]

    r = runner.invoke(audit_group, ["show", "--principal", "bob", "--json"], env=env)
    recs = [json.loads(x) for x in r.output.splitlines()]
    assert [x["seq"] for x in recs] == [3]
    assert recs[0]["decision"]["reasons"] == ["no consent"]
    r = runner.invoke(audit_group, ["show", "--action", "hwe", "--limit", "1", "--json"],
                      env=env)
    assert [json.loads(x)["seq"] for x in r.output.splitlines()] == [4]
    assert "\x1b" not in r.output
    r = runner.invoke(audit_group, ["show", "--principal", "ent-alice", "--since",
                                    "2000-01-01", "--json"], env=env)
    assert [json.loads(x)["seq"] for x in r.output.splitlines()] == [1, 2]
    r = runner.invoke(audit_group, ["show", "--since", "2999-01-01T00:00:00Z"], env=env)
    assert r.exit_code == 0 and "no matching records" in r.output
    r = runner.invoke(audit_group, ["show", "--since", "yesterday"], env=env)
    assert r.exit_code == 2 and "not an ISO 8601 time" in r.output
    r = runner.invoke(audit_group, ["show", "--log", str(path), "--limit", "2"], env={})
    assert r.exit_code == 0 and len(r.output.splitlines()) == 2
