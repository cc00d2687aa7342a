"""The ``genovault`` command line: the group, settings and error handling.

Each command group lives in its own module; they all receive the one :class:`Settings`
object (read from the environment once, here) through the click context.
"""

from __future__ import annotations

import importlib
import io
import re
import sys
from typing import IO, Any

import click

from vault.cli.output import safe
from vault.errors import GenoVaultError
from vault.settings import Settings, load_settings


class _Styled(click.ClickException):
    """A click error (usage, bad parameter, …) shown in GenoVault's style: ``error: …``."""

    def __init__(self, inner: click.ClickException) -> None:
        super().__init__(inner.format_message())
        self.inner = inner
        self.exit_code = inner.exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        buf = io.StringIO()
        self.inner.show(buf)  # usage line and hint as click writes them, then "Error: …"
        text = re.sub(r"^Error: ", "error: ", buf.getvalue(), flags=re.MULTILINE)
        click.echo(text, file=file, err=file is None, nl=False)


class _Group(click.Group):
    """Turns GenoVault errors into one clear line on stderr and the error's exit code, and
    prints click's own errors (usage, bad parameter) the same way: ``error: …``."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            raise _restyled(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GenoVaultError as exc:
            click.echo(f"error: {safe(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            raise _restyled(exc) from None


def _restyled(exc: click.ClickException) -> click.ClickException:
    return exc if isinstance(exc, _Styled) else _Styled(exc)


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this invocation (read once, at the first command that needs them)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = load_settings()
    return root.obj


#: the root's commands: name -> (module, attribute), imported when the command runs (so
#: ``genovault ingest`` does not import the API, the policy engine or the audit reader; its
#: start-up is serial time in front of every ingest)
COMMANDS: dict[str, tuple[str, str]] = {
    "vault": ("vault.cli.vault_cmds", "vault_group"),
    "ingest": ("vault.cli.ingest", "ingest_cmd"),
    "datasets": ("vault.cli.datasets", "datasets_group"),
    "login": ("vault.cli.research", "login_cmd"),
    "logout": ("vault.cli.research", "logout_cmd"),
    "query": ("vault.cli.research", "query_cmd"),
    "serve": ("vault.cli.research", "serve_cmd"),
    "policy": ("vault.cli.policy", "policy_group"),
    "audit": ("vault.cli.audit", "audit_group"),
    "budget": ("vault.cli.budget", "budget_group"),
    "keys": ("vault.cli.keys", "keys_group"),
    "samples": ("vault.cli.samples", "samples_group"),
    "report": ("vault.cli.report", "report_cmd"),
    "quickstart": ("vault.cli.quickstart", "quickstart_cmd"),
}


class _Root(_Group):
    """The root group: its commands are imported on first use (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attr = COMMANDS[cmd_name]
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        self.add_command(cmd, cmd_name)
        return cmd


@click.group(cls=_Root)
@click.version_option(package_name="genovault")
def main() -> None:
    """GenoVault: a secure genomic data vault with encrypted analytics."""


if __name__ == "__main__":  # pragma: no cover
    main()
