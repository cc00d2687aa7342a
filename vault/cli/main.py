"""The ``genovault`` command line: the group, settings and error handling.

Each command group lives in its own module; they all receive the one :class:`Settings`
object (read from the environment once, here) through the click context.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from vault.cli.output import safe
from vault.errors import GenoVaultError
from vault.settings import Settings, load_settings


class _Group(click.Group):
    """Turns GenoVault errors into one clear line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GenoVaultError as exc:
            click.echo(f"error: {safe(exc)}", err=True)
            sys.exit(exc.exit_code)


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this invocation (read once, at the first command that needs them)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = load_settings()
    return root.obj


@click.group(cls=_Group)
@click.version_option(package_name="genovault")
def main() -> None:
    """GenoVault: a secure genomic data vault with encrypted analytics."""


def _register() -> None:
    from vault.cli.audit import audit_group
    from vault.cli.budget import budget_group
    from vault.cli.datasets import datasets_group
    from vault.cli.ingest import ingest_cmd
    from vault.cli.keys import keys_group
    from vault.cli.policy import policy_group
    from vault.cli.quickstart import quickstart_cmd
    from vault.cli.report import report_cmd
    from vault.cli.research import login_cmd, logout_cmd, query_cmd, serve_cmd
    from vault.cli.samples import samples_group
    from vault.cli.vault_cmds import vault_group

    for cmd in (vault_group, ingest_cmd, datasets_group, login_cmd, logout_cmd, query_cmd,
                serve_cmd, policy_group, audit_group, budget_group, keys_group, samples_group,
                report_cmd, quickstart_cmd):
        main.add_command(cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
