"""The ``genovault`` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from vault.cli_vault import vault_group
from vault.errors import GenoVaultError


class _Group(click.Group):
    """Turns GenoVault errors into one clear line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GenoVaultError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="genovault")
def main() -> None:
    """GenoVault: a secure genomic data vault with encrypted analytics."""


main.add_command(vault_group)


@main.command("ingest")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dataset", "-d", required=True, help="Dataset id (created on first ingest).")
@click.option("--samples", "sheet", type=click.Path(path_type=Path, dir_okay=False),
              help="Sample sheet (TSV/CSV): sample id column + grouping columns.")
@click.option("--skip-invalid", is_flag=True,
              help="Drop invalid records (counted per reason in the QC report) instead of "
                   "rejecting the file.")
@click.option("--absent-sites-hom-ref", is_flag=True,
              help="Declare that sites absent from this file are hom-ref for its samples "
                   "(default: not assessed).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the QC report as JSON.")
def ingest_cmd(path: Path, dataset: str, sheet: Path | None, skip_invalid: bool,
               absent_sites_hom_ref: bool, progress: bool | None, as_json: bool) -> None:
    """Ingest a VCF, bgzipped VCF or BCF as a new batch of samples of DATASET.

    Uses the ingest role: it can add data to the vault but never read it back.
    """
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.vaultclient import connect

    client = connect("ingest")
    t0 = time.perf_counter()
    res = ingest(path, dataset, client=client, sample_sheet=sheet,
                 options=IngestOptions(skip_invalid=skip_invalid,
                                       absent_sites_hom_ref=absent_sites_hom_ref,
                                       progress=progress))
    dt = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps({"dataset": res.dataset, "batch": res.batch, "qc": res.qc,
                               "seconds": round(dt, 3)}, indent=1))
        return
    qc = res.qc
    click.echo(f"ingested {path.name} into dataset {dataset!r} as batch {res.batch} "
               f"in {dt:.1f} s")
    _print_qc(qc)


def _print_qc(qc: dict[str, Any]) -> None:
    miss = qc["missingness"]
    click.echo(f"  records read {qc['records_read']}, written {qc['records_written']}, "
               f"variants (rows) {qc['variants_written']}")
    click.echo(f"  multiallelic records {qc['multiallelic_records']} "
               f"(+{qc['multiallelic_split_rows_added']} rows from splitting)")
    click.echo(f"  haploid calls stored as homozygous {qc['haploid_calls_as_homozygous']}, "
               f"half-calls stored as missing {qc['half_calls_as_missing']}")
    skipped = qc["skipped_records"]
    click.echo("  skipped records: " + (", ".join(f"{k} {v}" for k, v in skipped.items())
                                        if skipped else "none"))
    click.echo(f"  samples {qc['samples']}, missingness "
               f"{'n/a' if miss is None else f'{miss:.4f}'}")
    for col, groups in qc["groups"].items():
        parts = []
        for g, v in groups.items():
            m = v["missingness"]
            miss_txt = "n/a" if m is None else f"{m:.4f}"
            parts.append(f"{g} n={v['samples']} miss={miss_txt}")
        click.echo(f"  {col}: " + "; ".join(parts))


@main.group("datasets")
def datasets_group() -> None:
    """List, show and verify datasets."""


@datasets_group.command("list")
def datasets_list() -> None:
    """List the committed datasets of the store."""
    from vault.store.dataset import Store

    store = Store()
    names = store.list()
    if not names:
        click.echo(f"no datasets in {store.root}")
    for name in names:
        m = store.manifest(name)
        click.echo(f"{name}\t{m['sample_count']} samples\t{len(m['batches'])} batch(es)\t"
                   f"{sum(f['rows'] for b in m['batches'] for f in b['variant_files'])} "
                   "variant rows")


@datasets_group.command("show")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def datasets_show(dataset: str, as_json: bool) -> None:
    """Show a dataset's manifest: batches, files, keys (names only), QC."""
    from vault.store.dataset import Store

    m = Store().manifest(dataset)
    if as_json:
        click.echo(json.dumps(m, indent=1))
        return
    click.echo(f"dataset {m['dataset']} (schema v{m['schema_version']}), created "
               f"{m['created_at']}, updated {m['updated_at']}")
    click.echo(f"  samples {m['sample_count']}, contigs {', '.join(m['contigs']) or '-'}")
    click.echo("  keys (Vault Transit): " + ", ".join(m["keys"].values()))
    for b in m["batches"]:
        rows = sum(f["rows"] for f in b["variant_files"])
        who = b["ingested_by"].get("display_name") or "?"
        click.echo(f"  batch {b['batch']}: {b['n_samples']} samples (from index "
                   f"{b['sample_offset']}), {rows} variant rows in {len(b['variant_files'])} "
                   f"file(s), source {b['source']['name']} sha256 {b['source']['sha256'][:16]}…,"
                   f" absent sites {b['absent_sites']}, by {who} at {b['ingested_at']}")
        _print_qc(b["qc"])


@datasets_group.command("verify")
@click.argument("dataset")
def datasets_verify(dataset: str) -> None:
    """Decrypt every file of DATASET and check checksums and row counts (query role)."""
    from vault.store.verify import open_reader, verify_dataset
    from vault.vaultclient import connect

    reader = open_reader(dataset, connect("query"))
    report = verify_dataset(reader)
    for p in report.problems:
        click.echo(f"PROBLEM {p}", err=True)
    if not report.ok:
        click.echo(f"dataset {dataset!r}: {len(report.problems)} problem(s) in "
                   f"{report.files_checked} files", err=True)
        sys.exit(1)
    click.echo(f"dataset {dataset!r}: OK — {report.files_checked} files decrypted and matched "
               f"their checksums, {report.rows_checked} rows")


@main.command("quickstart")
@click.option("--dataset", default="demo", show_default=True)
def quickstart_cmd(dataset: str) -> None:
    """Start the embedded Vault, ingest the bundled demo cohort, show it and run a query."""
    from importlib.resources import files

    from vault.bao import EmbeddedVault
    from vault.config import genovault_home
    from vault.errors import DuplicateIngest
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.store.dataset import Store
    from vault.store.verify import open_reader, verify_dataset
    from vault.vaultclient import connect

    home = genovault_home()
    click.echo(f"== 1. embedded OpenBao (home {home})")
    for line in EmbeddedVault(home).up().lines():
        click.echo(f"   {line}")
    data = files("vault") / "sample_data"
    vcf = Path(str(data / "demo_cohort.vcf.gz"))
    sheet = Path(str(data / "demo_cohort_samples.tsv"))
    click.echo(f"== 2. ingest {vcf.name} with the ingest role (encrypt-only token)")
    try:
        res = ingest(vcf, dataset, client=connect("ingest"), sample_sheet=sheet,
                     options=IngestOptions())
        click.echo(f"   new batch {res.batch}")
        _print_qc(res.qc)
    except DuplicateIngest:
        click.echo(f"   already ingested into {dataset!r}; keeping it")
    click.echo(f"== 3. dataset {dataset!r}")
    m = Store().manifest(dataset)
    click.echo(f"   {m['sample_count']} samples, contigs {', '.join(m['contigs'])}, "
               f"{sum(f['rows'] for b in m['batches'] for f in b['variant_files'])} variant "
               f"rows, keys {', '.join(m['keys'].values())}")
    click.echo("== 4. verify (query role: decrypt every file, check checksums and rows)")
    reader = open_reader(dataset, connect("query"))
    report = verify_dataset(reader)
    click.echo(f"   {'OK' if report.ok else 'PROBLEMS: ' + '; '.join(report.problems)} — "
               f"{report.files_checked} files, {report.rows_checked} rows")
    click.echo("== 5. query: allele frequency per population, 20:1-60000 (aggregates only)")
    _demo_query(reader, "20:1-60000", "population")


def _demo_query(reader: Any, region: str, group_by: str) -> None:
    import numpy as np

    from kernels import count_genotypes, variant_stats

    samples = reader.samples(["sample_index", group_by])
    labels = samples.column(group_by).to_pylist()
    names = sorted({v for v in labels if v is not None})
    group = np.array([names.index(v) if v is not None else -1 for v in labels], np.int32)
    click.echo("   pos      ref>alt   AF(all)  " + "  ".join(f"AF({n})" for n in names)
               + "   HWE p(all)")
    shown = 0
    for block in reader.blocks(region, site_columns=("pos", "ref", "alt")):
        counts = count_genotypes(block.packed, block.n_samples, group, len(names))
        overall = variant_stats(counts.overall)
        per = variant_stats(counts.groups)
        for i in range(min(block.n_variants, 12 - shown)):
            site = f"{block.sites['ref'][i].as_py()}>{block.sites['alt'][i].as_py()}"
            afs = "  ".join(f"{per.af[i, g]:8.4f}" for g in range(len(names)))
            click.echo(f"   {block.sites['pos'][i].as_py():<8} {site:<9} "
                       f"{overall.af[i]:7.4f}  {afs}   {overall.hwe_p[i]:.3g}")
        shown += min(block.n_variants, 12 - shown)
        if shown >= 12:
            break
    sizes = ", ".join(f"{n} n={int((group == g).sum())}" for g, n in enumerate(names))
    click.echo(f"   groups: {sizes}")


if __name__ == "__main__":  # pragma: no cover
    main()
