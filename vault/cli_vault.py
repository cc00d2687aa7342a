"""``genovault vault …``: run the embedded OpenBao and bootstrap any Vault/OpenBao.

Prints what happened in plain words; never prints a token or unseal key.
"""

from __future__ import annotations

import os

import click

from vault.bao import EmbeddedVault
from vault.config import genovault_home
from vault.errors import GenoVaultError


def _fail(e: GenoVaultError) -> click.ClickException:
    exc = click.ClickException(str(e))
    exc.exit_code = e.exit_code
    return exc


@click.group(name="vault")
def vault_group() -> None:
    """Run the embedded OpenBao, or bootstrap an existing Vault/OpenBao for GenoVault."""


@vault_group.command("up")
def up_cmd() -> None:
    """Start, initialise, unseal and bootstrap the embedded OpenBao (no-op if it runs)."""
    try:
        status = EmbeddedVault(genovault_home()).up()
    except GenoVaultError as e:
        raise _fail(e) from e
    for line in status.lines():
        click.echo(line)
    click.echo(
        "to use it from other tools: export VAULT_ADDR="
        f"{status.addr} (the root token is in {genovault_home() / 'bao' / 'init.json'})"
    )


@vault_group.command("down")
def down_cmd() -> None:
    """Stop the embedded OpenBao (its data and keys stay on disk)."""
    try:
        was_running = EmbeddedVault(genovault_home()).down()
    except GenoVaultError as e:
        raise _fail(e) from e
    home = genovault_home()
    if was_running:
        click.echo(f"stopped the embedded vault in {home}; its keys are kept for the next `up`")
    else:
        click.echo(f"the embedded vault in {home} was not running")


@vault_group.command("status")
def status_cmd() -> None:
    """Show whether the embedded OpenBao runs, where, and whether it is sealed."""
    try:
        status = EmbeddedVault(genovault_home()).status()
    except GenoVaultError as e:
        raise _fail(e) from e
    for line in status.lines():
        click.echo(line)
    if os.environ.get("VAULT_ADDR"):
        click.echo(f"note: VAULT_ADDR is set ({os.environ['VAULT_ADDR']}), so GenoVault uses "
                   "that Vault, not the embedded one")


@vault_group.command("bootstrap")
def bootstrap_cmd() -> None:
    """Mount Transit and write GenoVault's policies and roles (idempotent).

    Uses VAULT_ADDR and an admin VAULT_TOKEN if both are set, else the embedded vault.
    """
    from vault.bootstrap import bootstrap
    from vault.vaultclient import connect

    try:
        client = connect()  # VAULT_ADDR/VAULT_TOKEN, else the embedded vault's root token
        report = bootstrap(client)
    except GenoVaultError as e:
        raise _fail(e) from e
    click.echo(f"bootstrapped Vault at {client.url}:")
    for line in report.lines():
        click.echo(f"  {line}")
