"""``genovault login|logout|query|serve``: the researcher's side and the API server.

``query`` talks to the API (``GENOVAULT_URL``), like any other client: the answer passed the
policy decision, disclosure control and audit of the service.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from vault.cli.main import settings_of
from vault.cli.output import echo, safe, tsv_cell
from vault.settings import Settings

STATISTICS = ("frequency", "genotype-counts", "hardy-weinberg", "missingness")


def vault_addr(settings: Settings) -> str:
    if settings.vault_addr:
        return settings.vault_addr
    from vault.errors import VaultNotConfigured
    from vault.keys.embedded import bao_paths

    path = bao_paths(settings.home).addr
    if not path.exists():
        raise VaultNotConfigured(f"no Vault configured: there is no embedded vault in "
                                 f"{settings.home}; set VAULT_ADDR or run `genovault vault up`")
    return path.read_text(encoding="utf-8").strip()


@click.command("login")
@click.option("--username", "-u", required=True, help="Vault userpass user name.")
@click.option("--password", prompt=True, hide_input=True, help="Prompted when not given.")
@click.pass_context
def login_cmd(ctx: click.Context, username: str, password: str) -> None:
    """Log in to Vault (userpass) and keep the token for the CLI in a 0600 file."""
    from vault.cli import session_file
    from vault.keys.login import userpass_login

    settings = settings_of(ctx)
    addr = vault_addr(settings)
    token = userpass_login(addr, username, password)
    path = session_file.save(settings, addr, username, token)
    echo(f"logged in as {username} at {addr}; the token is kept in {path} (mode 0600) — "
         "`genovault logout` revokes it")


@click.command("logout")
@click.pass_context
def logout_cmd(ctx: click.Context) -> None:
    """Revoke the token `genovault login` saved, and forget it."""
    from vault.cli import session_file
    from vault.keys.login import revoke_self

    settings = settings_of(ctx)
    saved = session_file.load(settings)
    if saved is None:
        echo("not logged in")
        return
    revoke_self(saved["vault_addr"], saved["token"])
    session_file.remove(settings)
    echo(f"logged out {saved['username']}: the token is revoked")


@click.command("query")
@click.argument("statistic", type=click.Choice(STATISTICS))
@click.option("--dataset", "-d", required=True)
@click.option("--region", "-r", help="CHROM, CHROM:START-END or CHROM:START-")
@click.option("--group-by", "-g", help="A grouping column, e.g. population.")
@click.option("--limit", type=int, default=1000, show_default=True, help="Variants per page.")
@click.option("--format", "fmt", type=click.Choice(["table", "tsv", "json"]), default="table",
              show_default=True)
@click.pass_context
def query_cmd(ctx: click.Context, statistic: str, dataset: str, region: str | None,
              group_by: str | None, limit: int, fmt: str) -> None:
    """Ask the API for a per-variant statistic (as the logged-in researcher)."""
    from vault.cli import session_file
    from vault.client import Client, flatten

    settings = settings_of(ctx)
    with Client(settings.client_url, session_file.caller_token(settings)) as client:
        pages = list(client.pages(statistic, dataset, region=region, group_by=group_by,
                                  limit=limit))
    if fmt == "json":
        click.echo(json.dumps(pages if len(pages) > 1 else pages[0], indent=1))
        return
    rows = [r for p in pages for r in flatten(p)]
    _print_rows(rows, fmt)
    last = pages[-1]
    d = last["disclosure"]
    print_disclosure = (f"disclosure: tier {d['tier']}, k={d['k']}, "
                        f"{sum(p['disclosure'].get('suppressed_cells') or 0 for p in pages)} "
                        f"cells suppressed, "
                        f"{sum(p['disclosure'].get('complementary_cells') or 0 for p in pages)} "
                        "complementary, rare variants not listed; query "
                        + ", ".join(p["query_id"] for p in pages))
    echo(print_disclosure, err=fmt == "tsv")


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if not rows:
        echo("no variants")
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "tsv":
        click.echo("\t".join(cols))
        for r in rows:
            click.echo("\t".join(tsv_cell(r.get(c)) for c in cols))
        return
    rows = [{**r, "group": r.get("group") or "(all)"} for r in rows]
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    click.echo(safe("  ".join(c.ljust(widths[c]) for c in cols)))
    for r in rows:
        click.echo(safe("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in cols)))


def _fmt(v: Any) -> str:
    if v is None:
        return "·"  # null: suppressed or not assessed, never 0
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def api_pid_path(settings: Settings) -> Path:
    return settings.home / "api" / "api.pid"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: GENOVAULT_API_PORT or 8700.")
@click.option("--detach", is_flag=True,
              help="Run in the background (log in <home>/api/api.log, pid in api.pid).")
@click.option("--stop", is_flag=True, help="Stop the API started with --detach.")
@click.option("--dask", "dask_spec", metavar="SCHEDULER",
              help="Run query plans on Dask: tcp://HOST:PORT of a scheduler, or local:N (a "
                   "local cluster of N processes). Default: GENOVAULT_DASK_SCHEDULER, else the "
                   "local path. See docs/scale.md.")
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int | None, detach: bool,
              stop: bool, dask_spec: str | None) -> None:
    """Run the policy-enforced HTTP API (uvicorn)."""
    settings = settings_of(ctx)
    if dask_spec:
        from vault.query.distributed import parse_spec

        parse_spec(dask_spec)  # a bad spec fails here, before anything starts
    pid_path = api_pid_path(settings)
    if stop:
        _stop(pid_path)
        return
    port = port or settings.api_port
    if detach:
        pid_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = pid_path.with_name("api.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vault.cli", "serve", "--host", host, "--port",
                 str(port), *(["--dask", dask_spec] if dask_spec else [])],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        pid_path.write_text(f"{proc.pid}\n")
        echo(f"GenoVault API starting on http://{host}:{port} (pid {proc.pid}, log {log})")
        return
    import uvicorn

    from vault.api.app import create_app
    from vault.api.inprocess import server_options
    from vault.api.wiring import build_services, service_identity
    from vault.query.distributed import executor_from_settings

    identity = service_identity(settings)
    services = build_services(settings, identity=identity)
    executor = executor_from_settings(settings, dask_spec, identity.client)
    services.query.executor = executor
    app = create_app(services)
    where = f"; query plans on Dask at {executor.client.scheduler.address}" if executor else ""
    echo(f"GenoVault API on http://{host}:{port} (OpenAPI at /openapi.json){where}; Ctrl-C "
         "stops it", err=True)
    try:
        uvicorn.run(app, host=host, port=port, **server_options(settings.trusted_proxies))
    finally:
        if executor is not None:
            executor.close()


def _stop(pid_path: Path) -> None:
    if not pid_path.exists():
        echo("no API started with --detach is recorded")
        return
    pid = int(pid_path.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        echo(f"the API (pid {pid}) was not running")
        pid_path.unlink()
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pid_path.unlink()
    echo(f"stopped the API (pid {pid})")
