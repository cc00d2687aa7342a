"""The ``genovault`` command line: the group, settings and error handling.

Each command group lives in its own module; they all receive the one :class:`Settings`
object (read from the environment once, here) through the click context.
"""

from __future__ import annotations

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
