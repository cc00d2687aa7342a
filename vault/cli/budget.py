"""``genovault budget show``: each principal's privacy-budget use (admins).

Reads the ledger file (``<GENOVAULT_HOME>/privacy/ledger.db``) directly; it queries nothing.
Every charge is also in the audit trail (the answer's record names ε spent). Presence under
the member information budget (policy ``dp.presence``) shows as the number of presence
answers and of members excluded per principal: aggregates, never a member.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from vault.cli.main import _Group, settings_of
from vault.cli.output import echo


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
    answers under the member information budget and members it excluded (counts only)."""
    from vault.privacy.ledger import Ledger, ledger_path

    path = ledger_file if ledger_file is not None else ledger_path(settings_of(ctx).home)
    if not path.exists():
        echo(f"no ledger at {path}: no registered-tier answer was given yet")
        return
    rows = Ledger(path).usage(period_days)
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
        echo(f"{name[:28]:<28} {','.join(r['roles'])[:22]:<22} {r['epsilon_period']:>10.4g} "
             f"{r['epsilon_total']:>10.4g} {r['charges']:>8} {r['cells_stored']:>8} "
             f"{r['presence_answers']:>9} {r['members_excluded']:>8}  {last}")
    if not rows:
        echo("(no charges)")
