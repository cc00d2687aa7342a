"""``genovault samples withdraw|consent``: participant withdrawal (admin role)."""

from __future__ import annotations

import click

from vault.cli.main import settings_of
from vault.cli.output import echo


@click.group("samples")
def samples_group() -> None:
    """Withdraw participants from a dataset, or record their renewed consent (admin role)."""


@samples_group.command("withdraw")
@click.argument("dataset")
@click.argument("sample_ids", nargs=-1, required=True)
@click.option("--reason", default=None, help="Why (kept in the audit log, not the manifest). "
              "Never put names or ids here.")
@click.pass_context
def samples_withdraw(ctx: click.Context, dataset: str, sample_ids: tuple[str, ...],
                     reason: str | None) -> None:
    """Withdraw SAMPLE_IDS from DATASET: from the next query they are in no aggregate.

    The ids are matched through their keyed pseudonyms (Transit hmac); they are never stored.
    """
    from vault.cli.lifecycle_common import audit_recorder
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    with session(settings, "admin") as client:
        audit = audit_recorder(settings, client)
        try:
            rep = lifecycle.withdraw(Store(settings.store_root), dataset, client,
                                     list(sample_ids), reason=reason, audit=audit)
        except Exception as exc:
            lifecycle.audited_failure(audit, "samples withdraw", dataset, client, exc)
            raise
    echo(f"dataset {dataset!r}: {rep.withdrawn} sample(s) withdrawn"
         + (f", {rep.already} already withdrawn" if rep.already else "")
         + f" (manifest version {rep.manifest_version}); effective for the next query")


@samples_group.command("consent")
@click.argument("dataset")
@click.argument("sample_ids", nargs=-1, required=True)
@click.pass_context
def samples_consent(ctx: click.Context, dataset: str, sample_ids: tuple[str, ...]) -> None:
    """Record renewed consent of withdrawn SAMPLE_IDS: their data counts again."""
    from vault.cli.lifecycle_common import audit_recorder
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    with session(settings, "admin") as client:
        audit = audit_recorder(settings, client)
        try:
            n = lifecycle.record_consent(Store(settings.store_root), dataset, client,
                                         list(sample_ids), audit=audit)
        except Exception as exc:
            lifecycle.audited_failure(audit, "samples consent", dataset, client, exc)
            raise
    echo(f"dataset {dataset!r}: renewed consent recorded for {n} sample(s)")
