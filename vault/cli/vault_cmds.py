"""``genovault vault …``: run the embedded OpenBao and bootstrap any Vault/OpenBao.

Prints what happened in plain words; never prints a token or unseal key.
"""

from __future__ import annotations

from pathlib import Path

import click

from vault.cli.main import settings_of
from vault.keys.embedded import EmbeddedVault


@click.group(name="vault")
def vault_group() -> None:
    """Run the embedded OpenBao, or bootstrap an existing Vault/OpenBao for GenoVault."""


@vault_group.command("up")
@click.pass_context
def up_cmd(ctx: click.Context) -> None:
    """Start, initialise, unseal and bootstrap the embedded OpenBao (no-op if it runs)."""
    status = EmbeddedVault.from_settings(settings_of(ctx)).up()
    for line in status.lines():
        click.echo(line)
    click.echo(
        "to use it from other tools: export VAULT_ADDR="
        f"{status.addr} (the root token is in {settings_of(ctx).home / 'bao' / 'init.json'})"
    )


@vault_group.command("down")
@click.pass_context
def down_cmd(ctx: click.Context) -> None:
    """Stop the embedded OpenBao (its data and keys stay on disk)."""
    was_running = EmbeddedVault.from_settings(settings_of(ctx)).down()
    home = settings_of(ctx).home
    if was_running:
        click.echo(f"stopped the embedded vault in {home}; its keys are kept for the next `up`")
    else:
        click.echo(f"the embedded vault in {home} was not running")


@vault_group.command("status")
@click.pass_context
def status_cmd(ctx: click.Context) -> None:
    """Show whether the embedded OpenBao runs, where, and whether it is sealed."""
    status = EmbeddedVault.from_settings(settings_of(ctx)).status()
    for line in status.lines():
        click.echo(line)
    settings = settings_of(ctx)
    if settings.external_vault:
        click.echo(f"note: VAULT_ADDR is set ({settings.vault_addr}), so GenoVault uses "
                   "that Vault, not the embedded one")


@vault_group.command("bootstrap")
@click.option("--audit-path", type=click.Path(path_type=Path, dir_okay=False),
              help="File for Vault's audit device, if the Vault has none yet (see "
                   "docs/vault.md).")
@click.pass_context
def bootstrap_cmd(ctx: click.Context, audit_path: Path | None) -> None:
    """Mount Transit and write GenoVault's policies and roles (idempotent).

    Uses VAULT_ADDR and an admin VAULT_TOKEN if both are set, else the embedded vault.
    """
    from vault.keys.bootstrap import bootstrap
    from vault.keys.client import connect

    # VAULT_ADDR/VAULT_TOKEN, else the embedded vault's root token
    client = connect(settings_of(ctx))
    report = bootstrap(client, audit_path=str(audit_path) if audit_path else None)
    click.echo(f"bootstrapped Vault at {client.url}:")
    for line in report.lines():
        click.echo(f"  {line}")
