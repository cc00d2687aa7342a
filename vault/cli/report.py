"""``genovault report DATASET``: the data-quality and representation report (HTML and JSON).

Acts as the admin (a minted admin-role token with the embedded vault, or ``VAULT_TOKEN``)
or, with ``--role pipeline`` and the embedded vault, as the pipelines' AppRole; the access
policy decides (the ``report`` action). The data is read with the query service's own
identity; one audit record is written before any file. See docs/report.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from vault.cli.main import settings_of
from vault.cli.output import echo


@click.command("report")
@click.argument("dataset")
@click.option("--out", "out_html", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("report.html"), show_default=True,
              help="The self-contained HTML report (opens offline).")
@click.option("--json", "out_json", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the report's content as JSON.")
@click.option("--reference", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Target distribution: a TSV with columns column, group, expected_share "
                   "(shares of a column sum to 1); adds the representation ratio per group.")
@click.option("--role", type=click.Choice(["admin", "pipeline"]), default="admin",
              show_default=True,
              help="Who asks, with the embedded vault (with VAULT_TOKEN, the token decides).")
@click.option("--dask", "dask_spec", metavar="SCHEDULER",
              help="Compute the report's counts on Dask: tcp://HOST:PORT of a scheduler, or "
                   "local:N (a local cluster of N processes). Default: "
                   "GENOVAULT_DASK_SCHEDULER, else the local path. See docs/scale.md.")
@click.pass_context
def report_cmd(ctx: click.Context, dataset: str, out_html: Path, out_json: Path | None,
               reference: Path | None, role: str, dask_spec: str | None) -> None:
    """Write the data-quality and representation report of DATASET (admin or pipeline)."""
    from vault.report.run import generate

    if dask_spec:
        from vault.query.distributed import parse_spec

        parse_spec(dask_spec)  # a bad spec fails before the caller is authenticated
    res = generate(settings_of(ctx), dataset, out_html=out_html, out_json=out_json,
                   reference=reference, role=role, dask=dask_spec)
    d = res.report["disclosure"]
    echo(f"report of {dataset!r}: {out_html}" + (f" and {out_json}" if out_json else "")
         + f" in {res.seconds:.1f} s; {len(d['suppressed'])} cell(s) or bins withheld "
         f"(k={d['k']}); audit record {res.query_id}")
    for line in res.report["summary"]:
        echo(f"  {line}")
