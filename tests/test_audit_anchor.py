"""The audit anchor's invariant against a real OpenBao: its KV v2 version is the seq, written
with check-and-set, and no identity that writes anchors can rewind, delete or destroy it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from click.testing import CliRunner

from tests.support.baodev import DevServer
from tests.support.vaultasserts import forbidden
from vault.audit import AuditError, AuditLog, verify
from vault.audit.record import line_of, record_hash
from vault.cli.audit import audit_group
from vault.keys.anchor import ANCHOR_MOUNT, AUDIT_MOUNT, AnchorConflict, VaultKvAnchor
from vault.keys.auth import approle_credentials, approle_login
from vault.keys.bootstrap import mint_role_token

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(bao_server: DevServer, bootstrapped: object) -> hvac.Client:
    return bao_server.client()


@pytest.fixture(scope="module")
def service(bao_server: DevServer, root: hvac.Client) -> hvac.Client:
    """The query service's own AppRole identity (it writes every audit anchor)."""
    rid, sid = approle_credentials(root, "service")
    return bao_server.client(approle_login(bao_server.addr, rid, sid))


def _payload(i: int) -> dict[str, Any]:
    return {"principal": {"entity_id": f"ent-{i}", "display_name": f"u{i}"},
            "request": {"action": "allele_frequency", "dataset": "demo"}}


def _forge(lines: list[str], upto: int) -> list[str]:
    """Well-chained records appended after ``lines`` until seq ``upto`` (no secret needed)."""
    out = list(lines)
    last = json.loads(out[-1])
    for seq in range(last["seq"] + 1, upto + 1):
        rec: dict[str, Any] = {"seq": seq, "time": last["time"], "type": "complete",
                               "query_id": uuid.uuid4().hex, "prev": last["hash"],
                               **_payload(1000 + seq)}
        rec["hash"] = record_hash(rec)
        out.append(line_of(rec) + "\n")
        last = rec
    return out


def _rewind_attempts(client: hvac.Client, key: str) -> list[tuple[str, Callable[[], Any]]]:
    """Every way KV v2 offers to move an entry's version counter back or drop its head."""
    data, meta = f"/v1/{ANCHOR_MOUNT}/data/{key}", f"/v1/{ANCHOR_MOUNT}/metadata/{key}"
    a = client.adapter
    return [
        ("delete the current version", lambda: a.delete(data)),
        ("soft-delete versions", lambda: a.post(f"/v1/{ANCHOR_MOUNT}/delete/{key}",
                                                json={"versions": [1, 2, 3]})),
        ("destroy versions", lambda: a.post(f"/v1/{ANCHOR_MOUNT}/destroy/{key}",
                                            json={"versions": [1, 2, 3]})),
        ("undelete", lambda: a.post(f"/v1/{ANCHOR_MOUNT}/undelete/{key}",
                                    json={"versions": [1]})),
        ("delete the history", lambda: a.delete(meta)),
        ("shrink max_versions", lambda: a.post(meta, json={"max_versions": 1})),
        ("lift cas_required on the entry", lambda: a.post(meta, json={"cas_required": False})),
        ("lift cas_required on the mount", lambda: a.post(f"/v1/{ANCHOR_MOUNT}/config",
                                                          json={"cas_required": False})),
        ("patch the current version", lambda: a.request(
            "patch", data, json={"options": {"cas": 3}, "data": {"seq": 1}},
            headers={"Content-Type": "application/merge-patch+json"})),
        ("remount", lambda: a.post("/v1/sys/remount", json={"from": ANCHOR_MOUNT,
                                                             "to": "elsewhere"})),
        ("disable the mount", lambda: a.delete(f"/v1/sys/mounts/{ANCHOR_MOUNT}")),
        ("tune the mount", lambda: a.post(f"/v1/sys/mounts/{ANCHOR_MOUNT}/tune",
                                          json={"options": {"version": "1"}})),
    ]


def test_anchor_acl__admin_and_service_cannot_rewind_delete_or_destroy(
        root: hvac.Client, service: hvac.Client, bao_server: DevServer) -> None:
    admin = bao_server.client(mint_role_token(root, "admin"))
    shared = VaultKvAnchor(root)
    shared.reset()  # the session server's shared head: this test's chain starts at 1
    own = f"acl-{uuid.uuid4().hex}"
    try:
        for who, client, path in (("admin", admin, "chain/head"), ("service", service, own)):
            anchor = VaultKvAnchor(client, path=path)
            for seq in (1, 2, 3):  # it may move the head forward ...
                anchor.write(seq, f"{seq:x}" * 64)
            assert anchor.read() == (3, "3" * 64)
            with pytest.raises(AnchorConflict):  # ... never back: check-and-set on version 3
                anchor.write(2, "f" * 64)
            with pytest.raises(AnchorConflict):
                anchor.entry.write(1, {"seq": 1, "hash": "e" * 64})
            with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
                client.adapter.post(f"/v1/{ANCHOR_MOUNT}/data/{anchor.entry.key}",
                                    json={"data": {"seq": 1, "hash": "e" * 64}})  # no cas
            for what, attempt in _rewind_attempts(client, anchor.entry.key):
                try:
                    forbidden(attempt)
                except AssertionError as e:
                    raise AssertionError(f"{who} could {what}") from e
            # the legacy KV v1 head is frozen for both
            forbidden(client.adapter.post, f"/v1/{AUDIT_MOUNT}/{path}",
                      json={"seq": 1, "hash": "e" * 64})
            assert anchor.read() == (3, "3" * 64)
            assert [s for s, _h in anchor.history()] == [2, 1]
    finally:
        shared.reset()


def test_truncated_log__forged_reanchor_is_detected(tmp_path: Path,
                                                    service: hvac.Client) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = VaultKvAnchor(service, path=f"trunc-{uuid.uuid4().hex}")
    log = AuditLog(path, anchor)
    for i in range(10):
        log.append(_payload(i))
    lines = path.read_text().splitlines(keepends=True)
    rec7 = json.loads(lines[6])
    path.write_text("".join(lines[:7]))  # truncate to seq 7
    # 1. re-anchor seq 7: check-and-set refuses (the entry is at version 10)
    with pytest.raises(AnchorConflict, match="not at version 6"):
        anchor.write(7, rec7["hash"])
    assert verify(path, anchor).problems == [
        "the log ends at seq 7 but the anchor records seq 10: records after seq 7 were "
        "removed (truncated)"]
    # 2. a raw write on top (cas = 10) claiming seq 7: Vault stores version 11, the anchor
    #    refuses to be read as seq 7, verify and the log say so
    service.adapter.post(f"/v1/{ANCHOR_MOUNT}/data/{anchor.entry.key}",
                         json={"options": {"cas": 10},
                               "data": {"seq": 7, "hash": rec7["hash"]}})
    problems = verify(path, anchor).problems
    assert len(problems) == 1 and "the anchor cannot be trusted" in problems[0]
    assert "KV version 11 but claims seq 7" in problems[0]
    with pytest.raises(AuditError, match="KV version 11"):
        AuditLog(path, anchor).append(_payload(99))


def test_replaced_tail__is_detected_by_the_kept_versions(tmp_path: Path,
                                                        service: hvac.Client) -> None:
    """Truncate, forge well-chained records past the old head and anchor them properly: the
    count matches, but the versions Vault keeps still hold the original hashes."""
    path = tmp_path / "audit.jsonl"
    anchor = VaultKvAnchor(service, path=f"forge-{uuid.uuid4().hex}")
    log = AuditLog(path, anchor)
    for i in range(10):
        log.append(_payload(i))
    lines = path.read_text().splitlines(keepends=True)
    forged = _forge(lines[:7], 11)
    path.write_text("".join(forged))
    anchor.write(11, json.loads(forged[-1])["hash"])  # a legitimate-looking next version
    report = verify(path, anchor)
    assert report.head == report.anchored == (11, json.loads(forged[-1])["hash"])
    assert report.problems == [
        "seq 8 does not match the hash anchored when it was written (anchor version 8): the "
        "records from seq 8 on were replaced, even though the log has as many records as the "
        "anchor counts"]


WORKER = """
import os, sys, threading
from pathlib import Path
import hvac
from vault.audit import AuditLog
from vault.keys.anchor import VaultKvAnchor
client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
log = AuditLog(Path(sys.argv[1]), VaultKvAnchor(client, path=sys.argv[2]))
def work(t):
    for j in range(40):
        log.append({"principal": {"entity_id": f"p{sys.argv[3]}t{t}"}, "request": {"a": j}})
threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_two_processes_x_two_threads__verifiable_chain(tmp_path: Path, bao_server: DevServer,
                                                      service: hvac.Client) -> None:
    path = tmp_path / "audit.jsonl"
    key = f"conc-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "VAULT_ADDR": bao_server.addr,
           "VAULT_TOKEN": service.token}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), key, str(i)],
                              cwd=REPO, env=env) for i in range(2)]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["seq"] for r in recs] == list(range(1, 161))
    anchor = VaultKvAnchor(service, path=key)
    report = verify(path, anchor)
    assert report.ok, report.problems
    assert report.anchored == (160, recs[-1]["hash"])
    assert len(anchor.history()) == 31  # max_versions 32: older versions were pruned


def test_legacy_anchor__keeps_verifying_then_is_adopted(tmp_path: Path, root: hvac.Client,
                                                        bao_server: DevServer) -> None:
    """A log anchored the old way (KV v1 genovault-audit/chain/head) verifies, refuses to
    grow, and is adopted by `genovault audit adopt-anchor` (an admin token)."""
    home = tmp_path / "home"
    path = home.resolve() / "audit" / "audit.jsonl"
    old_log = AuditLog(path, None)
    for i in range(5):
        old_log.append(_payload(i))
    last = json.loads(path.read_text().splitlines()[-1])
    shared = VaultKvAnchor(root)
    shared.reset()
    root.secrets.kv.v1.create_or_update_secret(
        path="chain/head", mount_point=AUDIT_MOUNT, secret={"seq": 5, "hash": last["hash"]})
    admin_token = mint_role_token(root, "admin")
    env = {"VAULT_ADDR": root.url, "VAULT_TOKEN": admin_token, "GENOVAULT_HOME": str(home)}
    try:
        anchor = VaultKvAnchor(bao_server.client(admin_token))
        assert anchor.read() == (5, last["hash"]) and anchor.legacy_ahead
        r = CliRunner().invoke(audit_group, ["verify"], env=env)
        assert r.exit_code == 0, r.output
        assert "anchored the old way" in r.output and "ok: the chain is intact" in r.output
        with pytest.raises(AuditError, match="adopt-anchor"):
            AuditLog(path, anchor).append(_payload(6))
        # a v2 entry started below the legacy head changes nothing: the higher one counts
        anchor.entry.write(1, {"seq": 1, "hash": "a" * 64})
        assert VaultKvAnchor(root).read() == (5, last["hash"])
        r = CliRunner().invoke(audit_group, ["adopt-anchor"], env=env)  # ... nor is adopted
        assert r.exit_code != 0 and "written outside GenoVault" in r.output
        shared.reset()
        r = CliRunner().invoke(audit_group, ["adopt-anchor"], env=env)
        assert r.exit_code == 0, r.output
        assert "adopted: 5 version(s) written" in r.output
        anchor = VaultKvAnchor(bao_server.client(admin_token))
        AuditLog(path, anchor).append(_payload(6))
        report = verify(path, anchor)
        assert report.ok and report.anchored is not None and report.anchored[0] == 6
        assert not anchor.legacy_ahead
        r = CliRunner().invoke(audit_group, ["adopt-anchor"], env=env)  # idempotent
        assert r.exit_code == 0 and "already adopted" in r.output, r.output
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
        r = CliRunner().invoke(audit_group, ["verify"], env=env)
        assert r.exit_code == 1 and "(truncated)" in r.output
    finally:
        root.secrets.kv.v1.delete_secret(path="chain/head", mount_point=AUDIT_MOUNT)
        shared.reset()
