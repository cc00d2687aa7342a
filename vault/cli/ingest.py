"""``genovault ingest``: add VCF/BCF file(s) to a dataset as a new batch, or to an existing
batch with ``--batch`` (ingest role)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from vault.cli.main import settings_of
from vault.cli.output import echo, print_qc
from vault.privacy.cells import suppress_qc


@click.command("ingest")
@click.argument("paths", nargs=-1, metavar="FILE...",
                type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dataset", "-d", required=True, help="Dataset id (created on first ingest).")
@click.option("--list", "list_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A file naming the files to ingest, one path a line (blank lines and "
                   "lines starting with '#' are ignored; relative paths as given, like "
                   "`bcftools concat -f`).")
@click.option("--batch", "batch", metavar="BATCH",
              help="Add the file(s) to this existing batch (e.g. b0001) instead of making a "
                   "new one: same samples in the same order, other regions.")
@click.option("--samples", "sheet", type=click.Path(path_type=Path, dir_okay=False),
              help="Sample sheet (TSV/CSV): sample id column + grouping columns.")
@click.option("--skip-invalid", is_flag=True,
              help="Drop invalid records (counted per reason in the QC report) instead of "
                   "rejecting the file.")
@click.option("--absent-sites-hom-ref", is_flag=True,
              help="Declare that sites absent from this file are hom-ref for its samples "
                   "(default: not assessed).")
@click.option("--allow-identifying-column", "allow_identifying", multiple=True,
              metavar="COLUMN",
              help="Keep a grouping column although most of its values are unique (admins "
                   "only: grouping by it can single people out).")
@click.option("--info", "info", multiple=True, metavar="ID[,ID…]",
              help="Keep these INFO fields as site columns (split per ALT allele like "
                   "`bcftools norm -m-`, typed by the header), usable in query filters. "
                   "Default: none. Repeatable.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the QC report as JSON.")
@click.option("--dask", "dask_spec", metavar="SCHEDULER",
              help="Parse, encode and encrypt the files on Dask, one file per worker task "
                   "(the store must be on a filesystem every worker sees): tcp://HOST:PORT "
                   "or tls://HOST:PORT of a scheduler, or local:N (a local cluster of N "
                   "processes). Default: GENOVAULT_DASK_SCHEDULER, else this machine. See "
                   "docs/ingest.md.")
@click.option("--ttl-minutes", type=click.IntRange(1, 24 * 60), default=60, show_default=True,
              help="Lifetime of the ingest token minted for this command (embedded vault).")
@click.pass_context
def ingest_cmd(ctx: click.Context, paths: tuple[Path, ...], dataset: str,
               list_file: Path | None, batch: str | None, sheet: Path | None,
               skip_invalid: bool, absent_sites_hom_ref: bool, allow_identifying: tuple[str, ...],
               progress: bool | None, as_json: bool, ttl_minutes: int,
               info: tuple[str, ...] = (), dask_spec: str | None = None) -> None:
    """Ingest VCF, bgzipped VCF or BCF file(s) as a new batch of samples of DATASET.

    Several files (a release split per chromosome or region) become one batch when they
    carry the same samples in the same order and hold disjoint regions; they may be given in
    any order. Uses the ingest role: it can add data to the vault but never read it back.
    """
    from vault.ids import check_dataset_id
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.ingest.vcf_info import parse_info_option
    from vault.keys.client import session
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    check_dataset_id(dataset)
    files = [*paths, *(_read_list(list_file) if list_file else [])]
    if not files:
        raise click.UsageError("give the file(s) to ingest: FILE... or --list FILE", ctx)
    keep_info = parse_info_option(info)  # a bad name fails before any token is minted
    if progress is None and settings.no_progress:
        progress = False
    executor = None
    if dask_spec or settings.dask_scheduler:
        from vault.ingest.distributed import ingest_from_settings
        from vault.query.distributed import parse_spec

        parse_spec(dask_spec or settings.dask_scheduler or "")  # a bad spec fails here
        executor = ingest_from_settings(settings, dask_spec, f"{ttl_minutes}m")
    t0 = time.perf_counter()
    # a token scoped to this dataset, revoked when the ingest ends (the caller's own
    # VAULT_TOKEN is used as given and never revoked)
    try:
        with session(settings, "ingest", dataset=dataset, ttl=f"{ttl_minutes}m") as client:
            res = ingest(files, dataset, client=client, store=Store(settings.store_root),
                         sample_sheet=sheet,
                         options=IngestOptions(skip_invalid=skip_invalid,
                                               absent_sites_hom_ref=absent_sites_hom_ref,
                                               allow_identifying_columns=allow_identifying,
                                               progress=progress, batch=batch,
                                               info=keep_info),
                         executor=executor)
    finally:
        if executor is not None:
            executor.close()
    dt = time.perf_counter() - t0
    qc = suppress_qc(res.qc)
    sources = [{"name": s["name"], "qc": suppress_qc(s["qc"])} for s in res.sources]
    if as_json:
        out = {"dataset": res.dataset, "batch": res.batch, "qc": qc, "sources": sources,
               "seconds": round(dt, 3)}
        if res.part is not None:
            out["part"] = res.part
        click.echo(json.dumps(out, indent=1))
        return
    names = ", ".join(s["name"] for s in sources)
    if res.part is not None:
        echo(f"added {names} to batch {res.batch} of dataset {dataset!r} in {dt:.1f} s "
             "(QC of the added file(s) only)")
    else:
        echo(f"ingested {names} into dataset {dataset!r} as batch {res.batch} in {dt:.1f} s")
    print_qc(qc)


def _read_list(path: Path) -> list[Path]:
    """The paths a --list file names (one a line; blank lines and # comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: cannot be read ({exc})",
                                 param_hint="'--list'") from exc
    out = [Path(line.strip()) for line in text.splitlines()
           if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise click.BadParameter(f"{path}: names no file", param_hint="'--list'")
    return out
