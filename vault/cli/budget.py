"""``genovault budget show``: each principal's privacy-budget use (admins).

Reads the ledger file (``<GENOVAULT_HOME>/privacy/ledger.db``); it queries no genotype.
Every charge is also in the audit trail (the answer's record names ε spent). Presence under
the member information budget (policy ``dp.presence``) shows as the number of presence
answers and of members excluded per principal: aggregates, never a member.

The members excluded are a count of participants (the carriers behind a principal's
presence answers), so the listing goes the way ``genovault report`` goes (vault/report/run.py):
the caller's Vault token (a minted admin-role token with the embedded vault, or
``VAULT_TOKEN``) becomes a principal, ``decide`` must allow ``budget_read``, a count of
1 … k−1 members is shown as ``<k`` (null in JSON), and one audit record (written with the
query service's identity, allowed or refused) comes before any line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from vault.cli.main import _Group, settings_of
from vault.cli.output import echo
from vault.errors import GenoVaultError
from vault.settings import Settings


class BudgetReadDenied(GenoVaultError):
    """The access policy does not allow this caller to read the budget ledger."""

    exit_code = 3


@click.group("budget", cls=_Group)
def budget_group() -> None:
    """The differential-privacy budget ledger (registered tier)."""


@budget_group.command("show")
@click.option("--ledger", "ledger_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The ledger to read (default: <GENOVAULT_HOME>/privacy/ledger.db).")
@click.option("--period-days", type=int, default=30, show_default=True,
              help="Length of the budget period for the 'this period' column.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per principal.")
@click.pass_context
def budget_show(ctx: click.Context, ledger_file: Path | None, period_days: int,
                as_json: bool) -> None:
    """ε spent per principal: this period, ever, charges and noisy cells stored; presence
    answers under the member information budget and members it excluded (counts only;
    1 … k−1 shown as <k). The access policy decides (``budget_read``); one audit record."""
    from vault.privacy.cells import is_small
    from vault.privacy.ledger import Ledger, ledger_path

    settings = settings_of(ctx)
    path = ledger_file if ledger_file is not None else ledger_path(settings.home)
    record, k = _decided(settings, {"period_days": period_days,
                                    "ledger": ledger_file is not None})
    rows = Ledger(path).usage(period_days) if path.exists() else []
    suppressed = 0
    for r in rows:
        if is_small(int(r["members_excluded"]), k):
            r["members_excluded"] = None  # null: suppressed, never 0
            suppressed += 1
    query_id = record({"status": 200, "rows": len(rows),
                       "disclosure": {"k": k, "suppressed_cells": suppressed}})
    if not path.exists():
        echo(f"no ledger at {path}: no registered-tier answer was given yet; audit record "
             f"{query_id}")
        return
    if as_json:
        for r in rows:
            echo(json.dumps(r, sort_keys=True))
        return
    echo(f"ledger {path}  (period of {period_days} days)")
    echo(f"{'principal':<28} {'roles':<22} {'ε period':>10} {'ε total':>10} "
         f"{'charges':>8} {'cells':>8} {'presence':>9} {'excluded':>8}  last charge")
    for r in rows:
        last = dt.datetime.fromtimestamp(r["last_charge"], dt.UTC).strftime("%Y-%m-%d %H:%M")
        name = r["display_name"] or r["principal"]
        excluded = f"<{k}" if r["members_excluded"] is None else str(r["members_excluded"])
        echo(f"{name[:28]:<28} {','.join(r['roles'])[:22]:<22} {r['epsilon_period']:>10.4g} "
             f"{r['epsilon_total']:>10.4g} {r['charges']:>8} {r['cells_stored']:>8} "
             f"{r['presence_answers']:>9} {excluded:>8}  {last}")
    if not rows:
        echo("(no charges)")
    echo(f"members excluded of 1 … {k - 1} shown as <{k}; audit record {query_id}")


def _decided(settings: Settings, params: dict[str, Any]) -> tuple[Any, int]:
    """The caller's principal, the policy decision on ``budget_read`` and its audit record:
    a refusal is recorded and raised; else ``(record, k)``, where ``record(result)`` appends
    the one record of the answer and returns its query id."""
    from vault.audit import AuditLog, audit_log_path
    from vault.keys import client as vclient
    from vault.keys.anchor import VaultKvAnchor
    from vault.policy import QueryRequest, decide, load_policy
    from vault.privacy.cells import DEFAULT_K
    from vault.report.run import DEFAULT_POLICY_DIR, principal_of, service_client

    policy = load_policy(settings.policy_dir or DEFAULT_POLICY_DIR)
    with vclient.session(settings, "admin") as caller:
        principal = principal_of(caller.url, caller.token)
    decision = decide(principal, QueryRequest(action="budget_read"), policy)
    log = AuditLog(audit_log_path(settings), VaultKvAnchor(service_client(settings)))
    base = {"principal": {"entity_id": principal.entity_id,
                          "display_name": principal.display_name, "role": decision.role},
            "request": {"method": "CLI", "path": "genovault budget show",
                        "action": "budget_read", "dataset": None, "params": params},
            "decision": {"allowed": decision.allowed, "reasons": list(decision.reasons),
                         "rules": list(decision.matched_rules),
                         "policy_version": decision.policy_version}}

    def record(result: dict[str, Any]) -> str:
        return log.append({**base, "result": result}).query_id

    if not decision.allowed:
        query_id = record({"status": 403, "reasons": list(decision.reasons)})
        raise BudgetReadDenied("the access policy does not allow this caller to read the "
                               f"budget ledger ({', '.join(decision.reasons)}); audit record "
                               f"{query_id}")
    ob = decision.obligations
    return record, int(ob.k) if ob is not None else DEFAULT_K
