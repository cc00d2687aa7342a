"""``genovault quickstart``: the main job on a fresh machine, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vault.cli.main import settings_of
from vault.cli.output import echo, print_qc
from vault.privacy.cells import suppress_qc


@click.command("quickstart")
@click.option("--dataset", default="demo", show_default=True)
@click.pass_context
def quickstart_cmd(ctx: click.Context, dataset: str) -> None:
    """Start the embedded Vault, ingest the bundled demo cohort, show it and run a query."""
    from importlib.resources import files

    from vault.errors import DuplicateIngest
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.keys.client import connect
    from vault.keys.embedded import EmbeddedVault
    from vault.store.dataset import Store
    from vault.store.verify import open_reader, verify_dataset

    settings = settings_of(ctx)
    home = settings.home
    store = Store(settings.store_root)
    click.echo(f"== 1. embedded OpenBao (home {home})")
    for line in EmbeddedVault.from_settings(settings).up().lines():
        click.echo(f"   {line}")
    data = files("vault") / "sample_data"
    vcf = Path(str(data / "demo_cohort.vcf.gz"))
    sheet = Path(str(data / "demo_cohort_samples.tsv"))
    click.echo(f"== 2. ingest {vcf.name} with the ingest role (encrypt-only token)")
    try:
        res = ingest(vcf, dataset, client=connect(settings, "ingest"), store=store,
                     sample_sheet=sheet,
                     options=IngestOptions(progress=False if settings.no_progress else None))
        click.echo(f"   new batch {res.batch}")
        print_qc(suppress_qc(res.qc))
    except DuplicateIngest:
        click.echo(f"   already ingested into {dataset!r}; keeping it")
    click.echo(f"== 3. dataset {dataset!r}")
    m = store.manifest(dataset)
    echo(f"   {m.sample_count} samples, contigs {', '.join(m.contigs)}, {m.variant_rows} "
         f"variant rows, keys {', '.join(m.keys.values())}")
    click.echo("== 4. verify (query role: decrypt every file, check checksums and rows)")
    reader = open_reader(dataset, connect(settings, "query"), store)
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

