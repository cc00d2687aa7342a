"""``genovault keys rotate|status|adopt``: key lifecycle of a dataset (admin role)."""

from __future__ import annotations

import json

import click

from vault.cli.main import settings_of
from vault.cli.output import echo, safe
from vault.keys.lifecycle import CLASS_CHOICES


@click.group("keys")
def keys_group() -> None:
    """Rotate, retire and inspect a dataset's Transit keys (admin role)."""


@keys_group.command("rotate")
@click.argument("dataset")
@click.option("--class", "data_class", type=click.Choice(CLASS_CHOICES), default="all",
              show_default=True, help="Which key to rotate.")
@click.option("--retire", is_flag=True,
              help="Then raise min_decryption_version: older key material (backups) no longer "
                   "opens anything.")
@click.pass_context
def keys_rotate(ctx: click.Context, dataset: str, data_class: str, retire: bool) -> None:
    """Rotate DATASET's Transit keys and re-wrap every file's key material (no data rewritten).

    Safe to kill and rerun: a rerun completes the interrupted rotation.
    """
    from vault.cli.lifecycle_common import audit_recorder
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    with session(settings, "admin") as client:
        audit = audit_recorder(settings, client)
        try:
            rep = lifecycle.rotate(Store(settings.store_root), dataset, client,
                                   data_class=data_class, retire=retire, audit=audit)
        except Exception as exc:
            lifecycle.audited_failure(audit, "keys rotate", dataset, client, exc)
            raise
    versions = ", ".join(f"{k} -> v{v}" for k, v in sorted(rep.targets.items()))
    echo(f"dataset {dataset!r}: {'resumed and completed' if rep.resumed else 'rotated'} "
         f"{versions}; re-wrapped the key material of {rep.rewrapped_files} of {rep.files} "
         f"file(s) ({rep.vault_rewraps} Transit rewraps), no Parquet file rewritten"
         + ("; old versions retired" if rep.retired else ""))


@keys_group.command("status")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def keys_status(ctx: click.Context, dataset: str, as_json: bool) -> None:
    """Key names, versions, the versions each file uses and the oldest one still needed."""
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    with session(settings, "admin") as client:
        st = lifecycle.status(Store(settings.store_root), dataset, client)
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    echo(f"dataset {dataset} (manifest version {st['manifest_version']})"
         + (" — ROTATION IN PROGRESS: rerun `genovault keys rotate`"
            if st["rotation_in_progress"] else ""))
    for name, k in st["keys"].items():
        oldest = k.get("oldest_version_in_use")
        echo(f"  {k['class']:<10} {name}  latest v{k['latest_version']}, min decryption "
             f"v{k['min_decryption_version']}, oldest in use "
             f"{'v' + str(oldest) if oldest else '-'}")
    per: dict[str, int] = {}
    for versions in st["files"].values():
        label = ", ".join(f"{c} v{'/'.join(map(str, v))}" for c, v in versions.items())
        per[label] = per.get(label, 0) + 1
    for label, n in sorted(per.items()):
        echo(f"  {n} file(s): {safe(label)}")


@keys_group.command("adopt")
@click.argument("dataset")
@click.pass_context
def keys_adopt(ctx: click.Context, dataset: str) -> None:
    """Sign an unsigned schema-v2 dataset's manifest as schema v3 (checks file checksums).

    Trust on first use: run it only on a store you trust.
    """
    from vault.cli.lifecycle_common import audit_recorder
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    with session(settings, "admin") as client:
        audit = audit_recorder(settings, client)
        try:
            m = lifecycle.adopt(Store(settings.store_root), dataset, client, audit=audit)
        except Exception as exc:
            lifecycle.audited_failure(audit, "keys adopt", dataset, client, exc)
            raise
    echo(f"dataset {dataset!r}: adopted as schema v{m.schema_version}, manifest version "
         f"{m.version}, signed")
