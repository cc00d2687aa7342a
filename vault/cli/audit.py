"""``genovault audit verify|show``: the auditor's view of the audit trail.

The auditor reads the trail and the anchored chain head in Vault; it queries nothing.
``verify`` connects to Vault (VAULT_ADDR/VAULT_TOKEN of an auditor, or the embedded vault's
root token) to read the anchor; ``show`` reads only the log file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vault.cli.main import _Group, settings_of
from vault.cli.output import echo
from vault.errors import ConfigError

_LOG_OPTION = click.option(
    "--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
    help="The audit log to read (default: <GENOVAULT_HOME>/audit/audit.jsonl).")


@click.group("audit", cls=_Group)
def audit_group() -> None:
    """Verify and read the audit trail (auditor role: reads the trail, queries nothing)."""


def _log_path(ctx: click.Context, log_path: Path | None) -> Path:
    from vault.audit.paths import audit_log_path

    return log_path if log_path is not None else audit_log_path(settings_of(ctx))


@audit_group.command("verify")
@_LOG_OPTION
@click.pass_context
def audit_verify(ctx: click.Context, log_path: Path | None) -> None:
    """Check the hash chain of every record and the chain head anchored in Vault.

    Exit status 0 if the log is intact, 1 if a problem was found (each is printed)."""
    from vault.audit.verify import verify
    from vault.keys.anchor import VaultKvAnchor
    from vault.keys.client import connect

    path = _log_path(ctx, log_path)
    anchor = VaultKvAnchor(connect(settings_of(ctx)))
    report = verify(path, anchor)
    head = f"seq {report.head[0]}" if report.head else "none"
    anchored = f"seq {report.anchored[0]}" if report.anchored else "none"
    echo(f"audit log {path}: {report.records} record(s), head {head}, anchored head "
         f"{anchored} ({anchor.mount}/{anchor.path})")
    if report.unanswered:
        echo(f"{len(report.unanswered)} request(s) without a response record (in flight, "
             "crashed, or answer withheld): " + ", ".join(report.unanswered[:10])
             + (" …" if len(report.unanswered) > 10 else ""))
    if anchor.legacy_ahead:
        echo(f"note: this log is anchored the old way ({anchor.legacy_mount}/{anchor.path}, "
             "KV v1): appends are refused until an admin runs `genovault audit "
             "adopt-anchor`")
    if report.ok:
        echo("ok: the chain is intact and matches its anchor")
        return
    for problem in report.problems:
        echo(f"problem: {problem}", err=True)
    echo(f"FAILED: {len(report.problems)} problem(s)", err=True)
    sys.exit(1)


@audit_group.command("adopt-anchor")
@_LOG_OPTION
@click.pass_context
def audit_adopt_anchor(ctx: click.Context, log_path: Path | None) -> None:
    """Move a log anchored the old way (KV v1) to the KV v2 anchor whose version is the seq.

    The log must verify against its old anchor. Every record's hash is then anchored as KV
    version = seq (resumable; Vault keeps only the last versions). Run it with the query
    service stopped, with an admin token (or the service's)."""
    from vault.audit.verify import verify
    from vault.keys.anchor import VaultKvAnchor
    from vault.keys.client import connect

    path = _log_path(ctx, log_path)
    anchor = VaultKvAnchor(connect(settings_of(ctx)))
    legacy = anchor.legacy()
    if legacy is None:
        echo(f"nothing to adopt: {anchor.legacy_mount}/{anchor.path} holds no chain head")
        return
    current = anchor.read()
    if not anchor.legacy_ahead:
        echo(f"already adopted: {anchor.where} anchors seq {current[0] if current else 0}, "
             f"at or past the old head (seq {legacy[0]})")
        return
    report = verify(path, anchor)
    if not report.ok or report.head != legacy:
        for problem in report.problems:
            echo(f"problem: {problem}", err=True)
        raise ConfigError(f"the audit log {path} does not verify against its old anchor "
                          f"(seq {legacy[0]}): nothing adopted; keep it as evidence")
    hashes = [json.loads(line)["hash"] for line in path.read_bytes().splitlines()]
    written = anchor.adopt(hashes)
    head = anchor.read()
    echo(f"adopted: {written} version(s) written; {anchor.where} now anchors seq "
         f"{head[0] if head else 0} (KV version = seq, check-and-set)")


@audit_group.command("show")
@_LOG_OPTION
@click.option("--principal", help="Only records of this entity id or display name.")
@click.option("--since", help="Only records at or after this time (ISO 8601; naive = UTC).")
@click.option("--action", help="Only records of this request action.")
@click.option("--limit", type=click.IntRange(min=0), help="Only the last N matching records.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON Lines.")
@click.pass_context
def audit_show(ctx: click.Context, log_path: Path | None, principal: str | None,
               since: str | None, action: str | None, limit: int | None,
               as_json: bool) -> None:
    """Show audit records, oldest first (run `genovault audit verify` to trust them)."""
    from vault.audit.reader import read
    from vault.audit.record import parse_time

    if since is not None:
        try:
            parse_time(since)
        except ValueError:
            raise ConfigError(f"--since {since!r} is not an ISO 8601 time "
                              "(e.g. 2026-05-01 or 2026-05-01T12:00:00Z)") from None
    path = _log_path(ctx, log_path)
    records = read(path, principal=principal, since=since, action=action, limit=limit)
    for rec in records:
        # ensure_ascii escapes every control character; echo() escapes again for text
        echo(json.dumps(rec, ensure_ascii=True) if as_json else _line(rec))
    if not records and not as_json:
        echo(f"no matching records in {path}", err=True)


def _line(rec: dict[str, Any]) -> str:
    who = _dict(rec.get("principal"))
    req = _dict(rec.get("request"))
    dec = _dict(rec.get("decision"))
    res = _dict(rec.get("result"))
    allowed = dec.get("allowed")
    verdict = "allowed" if allowed is True else "denied" if allowed is False else "-"
    parts = [
        str(rec.get("time", "?")), f"#{rec.get('seq', '?')}", str(rec.get("type", "?")),
        str(rec.get("query_id", "?")),
        f"{who.get('display_name') or '-'}({who.get('entity_id') or '-'}, "
        f"{who.get('role') or '-'})",
        f"{req.get('action') or '-'}@{req.get('dataset') or '-'}", verdict,
    ]
    if dec.get("reasons"):
        parts.append("reasons=" + ",".join(str(r) for r in dec["reasons"]))
    if res:
        parts.append(f"status={res.get('status', '-')} rows={res.get('rows', '-')}")
    if rec.get("disclosure"):
        parts.append("disclosure=" + ",".join(str(d) for d in rec["disclosure"]))
    budget = _dict(rec.get("budget"))
    if budget:
        parts.append("budget=" + ",".join(f"{k}:{v}" for k, v in sorted(budget.items())))
    return "  ".join(parts)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
