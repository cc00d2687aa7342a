"""``genovault quickstart``: the main job on a fresh machine, end to end.

Embedded Vault; demo identities in Vault userpass (admin, auditor, researcher-a,
researcher-b) and the pipeline's AppRole; the demo cohort ingested through the pipeline
role; a local demo visa issuer (a key made in GENOVAULT_HOME, 0600, playing a data access
committee) and a policy directory that trusts it; the API started in the background; then
real answers through real HTTP, as the researchers would get them — /v1 statistics, Beacon
v2 boolean and count answers, a Beacon request refused for a missing visa and one accepted
with a visa of the demo issuer — and the audit trail verified as the auditor. Vault and the
API keep running; the last lines say how to stop both.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from vault.cli.main import settings_of
from vault.cli.output import echo, print_qc
from vault.privacy.cells import suppress_qc
from vault.settings import Settings

DEMO_USERS = {
    # user: (Vault policies, what the access policy lets them do)
    "admin": (["genovault-admin"], "key management, reports; no statistics"),
    "auditor": (["genovault-auditor"], "reads the audit trail; no statistics"),
    "researcher-a": (["genovault-researcher-a"], "grouped statistics on the demo cohort"),
    "researcher-b": (["genovault-researcher-b"], "overall statistics only"),
}


def demo_dir(settings: Settings) -> Path:
    return settings.home / "demo"


def write_credentials(settings: Settings, data: dict[str, Any]) -> Path:
    folder = demo_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "credentials.json"
    tmp = path.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)
    return path


def read_credentials(settings: Settings) -> dict[str, Any] | None:
    path = demo_dir(settings) / "credentials.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@click.command("quickstart")
@click.option("--dataset", default="demo", show_default=True)
@click.pass_context
def quickstart_cmd(ctx: click.Context, dataset: str) -> None:
    """Vault, demo identities, ingest, API, real queries as two researchers, audit verify."""
    from vault.cli.research import vault_addr
    from vault.client import ApiError, Client, flatten
    from vault.errors import DuplicateIngest
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.keys import auth as vauth
    from vault.keys import client as vclient
    from vault.keys.embedded import EmbeddedVault
    from vault.keys.login import userpass_login
    from vault.store.dataset import Store

    settings = settings_of(ctx)
    home = settings.home
    store = Store(settings.store_root)
    echo(f"== 1. embedded OpenBao (home {home})")
    for line in EmbeddedVault.from_settings(settings).up().lines():
        echo(f"   {line}")
    addr = vault_addr(settings)
    root = vclient.connect(settings)

    echo("== 2. demo identities (Vault userpass) and the pipeline's AppRole")
    creds = read_credentials(settings) or {"users": {}}
    for user, (policies, what) in DEMO_USERS.items():
        password = creds["users"].get(user) or secrets.token_urlsafe(18)
        vauth.create_user(root, user, password, policies)
        creds["users"][user] = password
        echo(f"   {user:<13} Vault policies {', '.join(policies):<24} {what}")
    api_url = settings.client_url
    creds.update({"api_url": api_url, "vault_addr": addr,
                  "note": "development default: demo passwords, kept 0600 beside the data"})
    path = write_credentials(settings, creds)
    echo(f"   passwords, API URL and Vault address: {path} (mode 0600, development default)")

    data = files("vault") / "sample_data"
    vcf = Path(str(data / "demo_cohort.vcf.gz"))
    sheet = Path(str(data / "demo_cohort_samples.tsv"))
    echo(f"== 3. ingest {vcf.name} through the pipeline role (AppRole genovault-ingest: "
         "encrypt only)")
    role_id, secret_id = vauth.approle_credentials(root, "ingest")
    pipeline = vclient.client_for(addr, vauth.approle_login(addr, role_id, secret_id))
    try:
        res = ingest(vcf, dataset, client=pipeline, store=store, sample_sheet=sheet,
                     options=IngestOptions(progress=False if settings.no_progress else None))
        echo(f"   new batch {res.batch}")
        print_qc(suppress_qc(res.qc))
    except DuplicateIngest:
        echo(f"   already ingested into {dataset!r}; keeping it")
    finally:
        pipeline.auth.token.revoke_self()

    echo("== 4. the API")
    issuer = _demo_passports(settings, dataset)
    pid = _start_api(settings, api_url)
    echo(f"   running at {api_url} (pid {pid}); OpenAPI at {api_url}/openapi.json")

    region = "20:1-60000"
    echo(f"== 5. researcher-a: allele frequency per population, {region}")
    token_a = userpass_login(addr, "researcher-a", creds["users"]["researcher-a"])
    with Client(api_url, token_a) as a:
        page = a.get(f"/v1/datasets/{dataset}/frequency", region=region,
                     group_by="population", limit=8)
    _show_frequency(page, flatten)
    page_a = page
    echo("== 6. researcher-b asks for group_by=population (not allowed for that role)")
    token_b = userpass_login(addr, "researcher-b", creds["users"]["researcher-b"])
    with Client(api_url, token_b) as b:
        try:
            b.get(f"/v1/datasets/{dataset}/frequency", region=region,
                  group_by="population", limit=5)
            echo("   unexpectedly allowed")
        except ApiError as exc:
            echo(f"   refused: {exc}")
        # researcher-b is on the registered tier: every new variant costs privacy budget
        small = "20:1-2000"
        page_b = b.get(f"/v1/datasets/{dataset}/frequency", region=small, limit=3)
        d = page_b["disclosure"]
        eps = "" if d.get("epsilon_spent") is None else (
            f", ε spent {d['epsilon_spent']:g}, remaining {d['epsilon_remaining']:g}")
        echo(f"   without group_by ({small}) it is allowed: {page_b['count']} variants, "
             f"tier {d['tier']}, noise {d.get('noise') or 'none'}{eps}; query "
             f"{page_b['query_id']}")
    echo("== 7. an answer with suppressed cells (researcher-a, genotype counts)")
    with Client(api_url, token_a) as a:
        page = a.get(f"/v1/datasets/{dataset}/genotype-counts", region=region,
                     group_by="population", limit=50)
    hit = next((v for v in page["variants"] if v["suppressed"]), None)
    if hit is None:
        echo("   no suppressed cell in this page")
    else:
        echo(f"   {hit['chrom']}:{hit['pos']} {hit['ref']}>{hit['alt']}: "
             + "; ".join(f"{name} het={_dot(c['het'])} hom_alt={_dot(c['hom_alt'])}"
                         for name, c in hit["groups"].items()))
        k = page["disclosure"]["k"]
        echo("   disclosure: " + json.dumps(hit["suppressed"]) + f" with k={k} (null = "
             f"suppressed, never 0); query {page['query_id']}")
    echo("== 8. GA4GH Beacon v2 (/beacon/v2), with a Vault token and with a GA4GH visa")
    _beacon_demo(api_url, dataset, token_a, issuer, page_a)
    echo("== 9. the data-quality and representation report (admin)")
    from vault.report import write_report

    report_path = write_report(settings, dataset, demo_dir(settings) / f"{dataset}-report.html")
    echo(f"   {report_path} (offline HTML; the same content as JSON beside it with "
         "`genovault report`)")
    echo("== 10. audit verify (as the auditor)")
    token_aud = userpass_login(addr, "auditor", creds["users"]["auditor"])
    env = {**os.environ, "VAULT_ADDR": addr, "VAULT_TOKEN": token_aud}
    out = subprocess.run([sys.executable, "-m", "vault.cli", "audit", "verify"], env=env,
                         capture_output=True, text=True, check=False)
    for line in (out.stdout + out.stderr).strip().splitlines():
        echo(f"   {line}")
    echo("")
    echo("Vault and the API are still running. Log in as a demo user with "
         "`genovault login -u researcher-a` (password in the credentials file) and try "
         f"`genovault query frequency -d {dataset} -r {region} -g population`.")
    echo("Stop the API with `genovault serve --stop` and Vault with `genovault vault down`.")


def _demo_passports(settings: Settings, dataset: str) -> Any:
    """The demo visa issuer (key made once, 0600, in GENOVAULT_HOME) and the policy the API
    is started with: the shipped one plus ``passports.yaml`` trusting that issuer. None if
    GENOVAULT_POLICY_DIR names another policy (then visas are answered as that says)."""
    from vault.passport.demo import demo_issuer, demo_policy
    from vault.policy import PolicyLoadError, load_policy

    folder = demo_dir(settings) / "passport"
    issuer = demo_issuer(folder)
    echo(f"   demo visa issuer (plays a data access committee): key {issuer.key_path} "
         "(mode 0600, made here, never shipped)")
    if settings.policy_dir is not None:
        echo(f"   policy: {settings.policy_dir} (GENOVAULT_POLICY_DIR); the demo issuer is "
             "trusted only if that policy says so")
        return issuer
    shipped = Path(str(files("policies") / "access"))
    policy_dir = demo_policy(demo_dir(settings) / "policy", shipped, issuer, dataset)
    try:
        load_policy(policy_dir)
    except PolicyLoadError as exc:  # e.g. a dataset the shipped roles do not cover
        (policy_dir / "passports.yaml").unlink()
        echo(f"   the demo visa rule does not fit dataset {dataset!r}; no passports "
             f"({exc.problems[0][:160]})")
    os.environ["GENOVAULT_POLICY_DIR"] = str(policy_dir)
    echo(f"   policy: {policy_dir} (the shipped policy + passports.yaml trusting the demo "
         "issuer)")
    return issuer


def _beacon_demo(api_url: str, dataset: str, token: str, issuer: Any,
                 page: dict[str, Any]) -> None:
    """Beacon v2 boolean and count answers (Vault token), a request refused for a missing
    visa, and one accepted with a visa of the demo issuer."""
    import httpx

    from vault.passport.demo import grant_value

    url = f"{api_url}/beacon/v2/datasets/{dataset}/g_variants"
    hit = next((v for v in page["variants"] if (v.get("overall") or {}).get("af")), None)
    if hit is None:
        echo("   no released variant to ask about")
        return
    seq = {"referenceName": hit["chrom"], "start": [hit["pos"] - 1],
           "referenceBases": hit["ref"], "alternateBases": hit["alt"]}
    rng = {"referenceName": hit["chrom"], "start": [0], "end": [60000]}

    def ask(params: dict[str, Any], granularity: str, bearer: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        body = {"meta": {"apiVersion": "v2.0.0"},
                "query": {"requestParameters": params, "requestedGranularity": granularity}}
        return httpx.post(url, json=body, headers=headers, timeout=60)

    def line(label: str, r: httpx.Response) -> None:
        doc = r.json()
        if r.status_code != 200:
            err = doc.get("error") or {}
            ids = (doc.get("info") or {}).get("queryIds") or []
            echo(f"   {label}: HTTP {r.status_code} {err.get('errorMessage', doc)}; query "
                 f"{', '.join(map(str, ids)) or '-'}")
            return
        summary = doc["responseSummary"]
        info = (doc["info"].get("datasets") or [{}])[0]
        disclosure = info.get("disclosure", {})
        echo(f"   {label}: HTTP 200 {doc['meta']['returnedGranularity']}: exists "
             f"{summary['exists']}" + (f", numTotalResults {summary['numTotalResults']}"
                                       if "numTotalResults" in summary else "")
             + f"; tier {disclosure.get('tier')}, k={disclosure.get('k')}; query "
             f"{info.get('queryId')}")

    where = f"{hit['chrom']}:{hit['pos']} {hit['ref']}>{hit['alt']}"
    line(f"researcher-a (Vault token), boolean, {where}", ask(seq, "boolean", token))
    line("researcher-a (Vault token), count, 20:[0,60000)", ask(rng, "count", token))
    line("no credential (no visa), boolean", ask(seq, "boolean", None))
    terms = issuer.visa("demo-researcher@genovault.invalid", "AcceptedTermsAndPolicies",
                        "https://genovault.invalid/terms", by="self")
    line("a visa without the DAC's grant (AcceptedTermsAndPolicies), count",
         ask(rng, "count", terms))
    grant = issuer.visa("demo-researcher@genovault.invalid", "ControlledAccessGrants",
                        grant_value(dataset))
    line("the demo DAC's ControlledAccessGrants visa, count", ask(rng, "count", grant))
    echo("   (the audit record of each names the visa's issuer and subject, never the JWT)")


def _dot(value: object) -> str:
    return "·" if value is None else str(value)


def _show_frequency(page: dict[str, Any], flatten: Any) -> None:
    groups = sorted({g for v in page["variants"] for g in (v.get("groups") or {})})
    echo("   pos      ref>alt   AF(all)  " + "  ".join(f"AF({g})".ljust(9) for g in groups))
    for v in page["variants"]:
        cells = [v["overall"]] + [v["groups"][g] for g in groups]
        afs = ["·".ljust(8) if c["af"] is None else f"{c['af']:.4f}".ljust(8) for c in cells]
        echo(f"   {v['pos']:<8} {v['ref'] + '>' + v['alt']:<9} " + "  ".join(afs))
    d = page["disclosure"]
    echo(f"   disclosure: tier {d['tier']}, k={d['k']}, {d['suppressed_cells']} cells "
         f"suppressed, {d['complementary_cells']} complementary, rare variants not "
         f"listed (· = suppressed); query {page['query_id']}")


def _start_api(settings: Settings, url: str) -> int:
    """Start ``genovault serve --detach`` unless an API answers already; wait until ready."""
    import httpx

    from vault.cli.research import api_pid_path

    try:
        if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
            pid_path = api_pid_path(settings)
            return int(pid_path.read_text()) if pid_path.exists() else -1
    except httpx.HTTPError:
        pass
    out = subprocess.run([sys.executable, "-m", "vault.cli", "serve", "--detach"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise click.ClickException(f"the API did not start: {out.stderr.strip()[-500:]}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return int(api_pid_path(settings).read_text())
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise click.ClickException(f"the API did not become ready at {url}; see "
                               f"{api_pid_path(settings).with_name('api.log')}")
