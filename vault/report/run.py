"""Generate a report outside the API: the caller's identity, the policy decision, the
service's identity for the data, one audit record, then the files.

The same path as an API request, run in-process: the caller's Vault token (a minted admin
token with the embedded vault, or ``VAULT_TOKEN``) becomes a principal; ``decide`` must allow
the ``report`` action on the dataset; the data is read with the query service's own AppRole
identity (``genovault-service``: decrypt and the audit anchor), never with the caller's
token; one ``complete`` audit record (who, decision, disclosure summary) is written before any
file is — no record, no report.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.errors import ConfigError, GenoVaultError
from vault.policy import Principal, QueryRequest, decide, load_policy
from vault.policy.model import Decision
from vault.query.service import Disclosure, QueryService
from vault.report.build import build_report
from vault.report.html import render_html
from vault.report.reference import load_reference
from vault.settings import Settings

#: the policy files shipped with GenoVault (used when GENOVAULT_POLICY_DIR is not set)
DEFAULT_POLICY_DIR = Path(__file__).resolve().parents[2] / "policies" / "access"
#: roles the CLI can act as with the embedded vault: admin (a minted admin-role token) and
#: pipeline (the pipelines' AppRole ``genovault-ingest``); the access policy decides
CALLER_ROLES = ("admin", "pipeline")


class ReportDenied(GenoVaultError):
    """The access policy does not allow this caller to generate the report."""

    exit_code = 3


@dataclass
class ReportResult:
    html: Path | None
    json: Path | None
    query_id: str
    seconds: float
    report: dict[str, Any]


def disclosure_of(decision: Decision) -> Disclosure:
    ob = decision.obligations
    assert ob is not None
    rare = ob.rare_variant
    return Disclosure(k=int(ob.k), min_group_size=int(ob.min_group_size), tier=str(ob.tier),
                      rare_max_ac=int(rare.max_ac) if rare and rare.mode == "suppress"
                      and rare.max_ac else None)


def principal_of(addr: str, token: str) -> Principal:
    from vault.keys.auth import lookup_token

    info = lookup_token(addr, token)
    return Principal(entity_id=str(info.get("entity_id") or ""),
                     display_name=str(info.get("display_name") or ""),
                     vault_policies=tuple(sorted(info.get("policies") or [])),
                     groups=tuple(sorted(str(g) for g in (info.get("groups") or []))),
                     metadata={str(k): str(v) for k, v in (info.get("meta") or {}).items()})


@contextlib.contextmanager
def _caller(settings: Settings, role: str) -> Iterator[Any]:
    """The caller's Vault client (its token names who asks)."""
    from vault.keys import auth as vauth
    from vault.keys import client as vclient

    if role not in CALLER_ROLES:
        raise ConfigError(f"unknown role {role!r}: use one of {', '.join(CALLER_ROLES)}")
    if settings.external_vault or role == "admin":
        with vclient.session(settings, "admin") as client:
            yield client
        return
    root = vclient.connect(settings)
    rid, sid = vauth.approle_credentials(root, "ingest")
    client = vclient.client_for(root.url, vauth.approle_login(root.url, rid, sid))
    try:
        yield client
    finally:
        vclient.revoke_token(root, client)


def service_client(settings: Settings) -> Any:
    """The query service's own identity (AppRole genovault-service), as the API uses it."""
    from vault.keys import auth as vauth
    from vault.keys import client as vclient

    if settings.external_vault:
        assert settings.vault_addr is not None
        if not settings.service_role_id or settings.service_secret_id is None:
            raise ConfigError("a report reads data with the service's own Vault identity: set "
                              "GENOVAULT_SERVICE_ROLE_ID and GENOVAULT_SERVICE_SECRET_ID "
                              "(AppRole genovault-service; see docs/vault.md)")
        token = vauth.approle_login(settings.vault_addr, settings.service_role_id,
                                    settings.service_secret_id.get_secret_value())
        return vclient.client_for(settings.vault_addr, token)
    root = vclient.connect(settings)
    rid, sid = vauth.approle_credentials(root, "service")
    return vclient.client_for(root.url, vauth.approle_login(root.url, rid, sid))


def generate(settings: Settings, dataset: str, *, out_html: Path | None = None,
             out_json: Path | None = None, reference: Path | None = None,
             role: str = "admin", anchor_path: str | None = None,
             dask: str | None = None) -> ReportResult:
    """Decide, compute, audit (one record), write. Raises ReportDenied when not allowed.

    ``dask``: run the report's counts on that Dask cluster (``tcp://...`` or ``local:N``;
    default ``GENOVAULT_DASK_SCHEDULER``, else the local path; docs/scale.md).

    ``anchor_path``: the audit chain anchor's path in the audit KV mount (default: the one
    the API uses; tests give each log its own)."""
    from vault.audit import AuditLog, audit_log_path
    from vault.keys.anchor import VaultKvAnchor
    from vault.store.dataset import Store

    t0 = time.monotonic()
    policy = load_policy(settings.policy_dir or DEFAULT_POLICY_DIR)
    with _caller(settings, role) as caller:
        principal = principal_of(caller.url, caller.token)
    qreq = QueryRequest(action="report", dataset=dataset)
    decision = decide(principal, qreq, policy)
    service = service_client(settings)
    anchor = VaultKvAnchor(service) if anchor_path is None else VaultKvAnchor(
        service, path=anchor_path)
    log = AuditLog(audit_log_path(settings), anchor)
    base = {"principal": {"entity_id": principal.entity_id,
                          "display_name": principal.display_name, "role": decision.role},
            "request": {"method": "CLI", "path": "genovault report", "action": "report",
                        "dataset": dataset, "params": {"reference": bool(reference)}},
            "decision": {"allowed": decision.allowed, "reasons": list(decision.reasons),
                         "rules": list(decision.matched_rules),
                         "policy_version": decision.policy_version}}
    if not decision.allowed or (decision.obligations and decision.obligations.dp):
        reasons = list(decision.reasons) if not decision.allowed else ["dp_unavailable"]
        entry = log.append({**base, "result": {"status": 403, "reasons": reasons}})
        raise ReportDenied(f"the access policy does not allow a report on {dataset!r} for "
                           f"this caller ({', '.join(reasons)}); audit record "
                           f"{entry.query_id}")
    d = disclosure_of(decision)
    from vault.query.distributed import executor_from_settings

    executor = executor_from_settings(settings, dask, lambda: service)
    svc = QueryService(Store(settings.store_root), lambda: service, executor=executor)
    try:
        ref = None
        if reference is not None:
            desc = svc.describe(dataset, d, None)
            ref = load_reference(reference, {c: [g["name"] for g in gs]
                                             for c, gs in desc["group_columns"].items()})
        report = build_report(svc, dataset, d, ref, generated_by={"role": decision.role})
    finally:
        if executor is not None:
            executor.close()
    dsum = report["disclosure"]
    entry = log.append({**base, "result": {
        "status": 200, "rows": 1,
        "disclosure": {"tier": d.tier, "k": d.k, "min_group_size": d.min_group_size,
                       "suppressed_cells": dsum["suppressed_cells"],
                       "complementary_cells": dsum["complementary_cells"],
                       "withheld": len(dsum["suppressed"])},
        "outputs": {"html": bool(out_html), "json": bool(out_json)}}})
    report["generated_by"]["query_id"] = entry.query_id
    if out_json is not None:
        _write(Path(out_json), json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    if out_html is not None:
        _write(Path(out_html), render_html(report))
    return ReportResult(out_html, out_json, entry.query_id, time.monotonic() - t0, report)


def write_report(settings: Settings, dataset: str, out_path: Path) -> Path:
    """The HTML report of ``dataset`` at ``out_path``, as the admin (for the quickstart)."""
    res = generate(settings, dataset, out_html=Path(out_path), role="admin")
    assert res.html is not None
    return res.html


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
