"""``genovault datasets list|show|verify``."""

from __future__ import annotations

import contextlib
import json
import sys

import click

from vault.cli.main import settings_of
from vault.cli.output import echo, safe


@click.group("datasets")
def datasets_group() -> None:
    """List, show and verify datasets."""


@datasets_group.command("list")
@click.pass_context
def datasets_list(ctx: click.Context) -> None:
    """List the committed datasets of the store (and report anything that is not one)."""
    from vault.store.dataset import Store

    store = Store(settings_of(ctx).store_root)
    listing = store.scan()
    if not listing.datasets:
        echo(f"no datasets in {store.root}")
    for name in listing.datasets:
        m = store.manifest(name)
        echo(f"{name}\t{m.sample_count} samples\t{len(m.batches)} batch(es)\t"
             f"{m.variant_rows} variant rows")
    for why in listing.skipped:
        echo(f"skipped {why}", err=True)


@datasets_group.command("show")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--details", is_flag=True,
              help="Also decrypt each batch's source file names and group columns (no "
                   "statistics: the QC is in `genovault report`); needs the query role.")
@click.pass_context
def datasets_show(ctx: click.Context, dataset: str, as_json: bool, details: bool) -> None:
    """Show a dataset's manifest: batches, files, keys (names only) and, with --details, the
    batches' source file names and group columns.

    No statistic: each batch's QC (samples and missingness per group) is part of `genovault
    report DATASET`, which the access policy decides, suppresses across every batch and
    group together and audits.
    """
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    store = Store(settings.store_root)
    m = store.manifest(dataset)
    infos = _batch_infos(ctx, store, dataset) if details else {}
    if as_json:
        out = m.model_dump(mode="json")
        if details:
            out["batch_info"] = infos
        click.echo(json.dumps(out, indent=1))
        return
    echo(f"dataset {m.dataset} (schema v{m.schema_version}), created {m.created_at}, "
         f"updated {m.updated_at}")
    echo(f"  samples {m.sample_count}, contigs {', '.join(m.contigs) or '-'}")
    echo("  keys (Vault Transit): " + ", ".join(m.keys.values()))
    echo("  files bound to their place: " + (
        "in the cryptography (derived keys, one context per file) and by checksum"
        if m.binding is not None else "by checksum only (created before schema 6)"))
    for b in m.batches:
        who = b.ingested_by.display_name or "?"
        echo(f"  batch {b.batch}: {b.n_samples} samples (from index {b.sample_offset}), "
             f"{b.variant_rows} variant rows in {len(b.variant_files)} file(s), source sha256 "
             f"{b.source.sha256[:16]}…"
             + (f" and {len(b.parts)} more source file(s)" if b.parts else "")
             + f", absent sites {b.absent_sites}, by {who} at "
             f"{b.ingested_at}")
        if b.batch in infos:
            info = infos[b.batch]
            echo(f"    source {', '.join(info['sources'])}, group columns "
                 f"{', '.join(info['group_columns']) or '-'}")
    if details:
        echo(f"  each batch's QC is in `genovault report {m.dataset}` (decided by the access "
             "policy, small cells suppressed, audited)")


def _batch_infos(ctx: click.Context, store: object, dataset: str) -> dict[str, dict]:
    """Per batch its source file names and group columns: no QC, no count (the report's)."""
    from vault.keys.client import session
    from vault.store.verify import open_reader

    with session(settings_of(ctx), "query") as client:
        reader = open_reader(dataset, client, store)  # type: ignore[arg-type]
        return {b.batch: reader.batch_sources(b) for b in reader.batches}


@datasets_group.command("verify")
@click.argument("dataset")
@click.pass_context
def datasets_verify(ctx: click.Context, dataset: str) -> None:
    """Decrypt every file of DATASET and check checksums and row counts (query role)."""
    from vault.keys.client import session
    from vault.store.dataset import Store
    from vault.store.verify import open_reader, verify_dataset

    settings = settings_of(ctx)
    with session(settings, "query") as client:
        report = verify_dataset(open_reader(dataset, client, Store(settings.store_root)))
    for p in report.problems:
        click.echo(f"PROBLEM {safe(p)}", err=True)
    if not report.ok:
        echo(f"dataset {dataset!r}: {len(report.problems)} problem(s) in "
             f"{report.files_checked} files", err=True)
        sys.exit(1)
    echo(f"dataset {dataset!r}: OK — {report.files_checked} files decrypted and matched "
         f"their checksums, {report.rows_checked} rows")


@datasets_group.command("destroy")
@click.argument("dataset")
@click.option("--request", "request", is_flag=True,
              help="File a destruction request (admin); prints its id.")
@click.option("--approve", "approve", metavar="ID", default=None,
              help="Approve request ID (a different admin) and crypto-shred the dataset.")
@click.pass_context
def datasets_destroy(ctx: click.Context, dataset: str, request: bool,
                     approve: str | None) -> None:
    """Crypto-shred DATASET: one admin requests, a different admin approves.

    The request marks the dataset's Transit keys deletable (genovault-shred-request); the
    approval commits a signed tombstone manifest, deletes the keys (genovault-shred-approve:
    Vault deletes only keys the request marked) and removes the files. Nothing it held can be
    decrypted again, from any copy, by anyone.
    """
    from vault.cli.lifecycle_common import audit_recorder
    from vault.errors import ConfigError
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    if request == (approve is not None):
        raise ConfigError("use exactly one of --request and --approve ID")
    settings = settings_of(ctx)
    store = Store(settings.store_root)
    with session(settings, "admin") as client:
        audit = audit_recorder(settings, client)
        command = "datasets destroy --request" if request else "datasets destroy --approve"
        try:
            if request:
                with session(settings, "shred-request") as marker:
                    rid = lifecycle.request_destroy(store, dataset, client, marker=marker,
                                                    audit=audit)
                echo(f"destruction of {dataset!r} requested: id {rid}. A different admin "
                     f"approves it with `genovault datasets destroy {dataset} --approve {rid}`")
                return
            assert approve is not None
            with session(settings, "shred-approve") as shredder:
                m = lifecycle.approve_destroy(store, dataset, approve, client, shredder,
                                              audit=audit)
        except Exception as exc:
            lifecycle.audited_failure(audit, command, dataset, client, exc)
            raise
    assert m.tombstone is not None
    echo(f"dataset {dataset!r} destroyed: {len(m.tombstone.keys)} key(s) deleted, files "
         "removed, tombstone kept")


@datasets_group.command("compact")
@click.argument("dataset")
@click.option("--shred-old-keys", is_flag=True,
              help="Then delete the old batches' own genotypes keys (shredder role), so no "
                   "backup of the old files yields the withdrawn genotypes; also those an "
                   "earlier compaction left (run without this flag, or stopped before its "
                   "delete).")
@click.pass_context
def datasets_compact(ctx: click.Context, dataset: str, shred_old_keys: bool) -> None:
    """Rewrite the batches holding withdrawn samples without them (physical removal).

    Needs the query role (decrypt) and the dataset's ingest role (encrypt, sign).
    """
    from vault.cli.lifecycle_common import audit_recorder
    from vault.keys import lifecycle
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    # the audit chain head is written with an admin token (the ingest role may not)
    with session(settings, "query") as reader, \
            session(settings, "ingest", dataset=dataset) as writer, \
            session(settings, "admin") as admin:
        audit = audit_recorder(settings, admin)
        try:
            with contextlib.ExitStack() as stack:
                shredder = stack.enter_context(session(settings, "shredder")) \
                    if shred_old_keys else None
                rep = lifecycle.compact(Store(settings.store_root), dataset, reader, writer,
                                        shredder=shredder, audit=audit)
        except Exception as exc:
            lifecycle.audited_failure(audit, "datasets compact", dataset, writer, exc)
            raise
    if not rep.batches:
        echo(f"dataset {dataset!r}: nothing to compact (no withdrawn sample is stored)")
    else:
        echo(f"dataset {dataset!r}: rewrote batch(es) {', '.join(rep.batches)} without "
             f"{rep.removed_samples} withdrawn sample(s) "
             f"({rep.genotypes_per_s:,.0f} genotypes/s)")
    if shred_old_keys:  # this compaction's old keys and any an earlier one left
        echo(f"old genotypes key(s) deleted: {', '.join(rep.shredded_keys) or 'none'}")
        if rep.unshreddable:
            echo(f"WARNING: batch(es) {', '.join(rep.unshreddable)} were written under the "
                 "dataset's shared genotypes key, which other batches still use: it was NOT "
                 "deleted, so a backup of their old files still yields the withdrawn samples' "
                 "genotypes. Destroy such backups, or re-ingest the dataset under a new id")
