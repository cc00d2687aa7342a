"""``genovault policy check|explain``: lint policy files; show what a request would get."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click

from vault.cli.output import echo
from vault.policy.explain import explain
from vault.policy.lint import lint
from vault.policy.loader import PolicyLoadError, load_policy
from vault.policy.model import Principal, QueryRequest, VisaAssertion


def _default_policy_dir() -> str:
    return str(resources.files("policies") / "access")


@click.group("policy")
def policy_group() -> None:
    """Check access policy files and explain decisions."""


def _columns(values: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        ds, sep, cols = v.partition(":")
        if not sep or not ds:
            raise click.BadParameter(f"{v!r}: use DATASET:col1,col2", param_hint="--columns")
        out.setdefault(ds, []).extend(c for c in cols.split(",") if c)
    return out


@policy_group.command("check")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", "datasets", multiple=True,
              help="A dataset id that exists in the store (repeat); unknown ones are errors.")
@click.option("--columns", "columns", multiple=True, metavar="ID:col1,col2",
              help="The group columns dataset ID really has (repeat).")
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
def policy_check(path: Path, datasets: tuple[str, ...], columns: tuple[str, ...],
                 as_json: bool) -> None:
    """Validate policy FILE or DIR (schema + semantics); exit 1 if there are errors."""
    known_columns = _columns(columns) if columns else None
    try:
        policy = load_policy(path, strict=False)
    except PolicyLoadError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "loaded": False, "findings": [
                {"severity": "error", "code": "load_error", "message": p, "where": ""}
                for p in exc.problems]}, indent=1))
        else:
            for p in exc.problems:
                echo(f"error: {p}")
        sys.exit(1)
    findings = lint(policy, known_datasets=datasets or None, known_columns=known_columns)
    errors = [f for f in findings if f.severity == "error"]
    if as_json:
        click.echo(json.dumps({"ok": not errors, "loaded": True, "version": policy.version,
                               "findings": [f.to_dict() for f in findings]}, indent=1))
    else:
        for f in findings:
            echo(str(f))
        warnings = len(findings) - len(errors)
        echo(f"{len(policy.files)} file(s), {len(policy.datasets)} dataset(s), "
             f"{len(policy.roles)} role(s), {len(policy.principals)} principal rule(s), "
             f"{len(policy.passports.issuers)} trusted visa issuer(s), "
             f"{len(policy.passports.rules)} visa rule(s): "
             f"{len(errors)} error(s), {warnings} warning(s); version {policy.version}")
    if errors:
        sys.exit(1)


def _json_arg(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from exc
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return data


@policy_group.command("explain")
@click.option("--policy", "policy_path", type=click.Path(exists=True, path_type=Path),
              default=_default_policy_dir, show_default="policies/access (shipped)",
              help="Policy file or directory.")
@click.option("--principal", "principal_json", help="Principal as JSON: "
              '{"entity_id": ..., "vault_policies": [...], "groups": [...]}.')
@click.option("--vault-policy", "vault_policies", multiple=True,
              help="A Vault policy of the caller's token (repeat); instead of --principal.")
@click.option("--group", "groups", multiple=True, help="An identity group (repeat).")
@click.option("--entity-id", default="explain", show_default=True, help="Entity id.")
@click.option("--visa", "visas", multiple=True, metavar="JSON",
              help='A verified visa of a passport caller (repeat): {"iss": ..., "type": '
                   '"ControlledAccessGrants", "value": ..., "source": ..., "by": "dac"}; '
                   "instead of --principal/--vault-policy.")
@click.option("--anonymous", is_flag=True, help="A caller without a credential (Beacon "
              "PUBLIC).")
@click.option("--request", "request_json", required=True,
              help='Request as JSON: {"action": "frequency", "dataset": "demo", '
                   '"group_by": ["population"]}.')
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def policy_explain(policy_path: Path, principal_json: str | None,
                   vault_policies: tuple[str, ...], groups: tuple[str, ...], entity_id: str,
                   visas: tuple[str, ...], anonymous: bool, request_json: str,
                   as_json: bool) -> None:
    """Show the decision a principal's request gets, and why. Exit 0 allowed, 3 denied."""
    kinds = [bool(principal_json), bool(vault_policies or groups), bool(visas), anonymous]
    if sum(kinds) > 1:
        raise click.UsageError("give one of --principal, --vault-policy/--group, --visa, "
                               "--anonymous")
    try:
        if anonymous:
            principal = Principal.anonymous()
        elif visas:
            assertions = [VisaAssertion.from_dict({"sub": entity_id,
                                                   **_json_arg(v, "--visa")}) for v in visas]
            principal = Principal(entity_id, entity_id, (), auth="passport",
                                  visas=tuple(assertions))
        elif principal_json:
            principal = Principal.from_dict(_json_arg(principal_json, "--principal"))
        else:
            principal = Principal(entity_id, entity_id, vault_policies, groups)
        request = QueryRequest.from_dict(_json_arg(request_json, "--request"))
    except (KeyError, TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        policy = load_policy(policy_path)
    except PolicyLoadError as exc:
        for p in exc.problems:
            echo(f"error: {p}", err=True)
        sys.exit(1)
    out = explain(principal, request, policy)
    d = out["decision"]
    if as_json:
        click.echo(json.dumps(out, indent=1, default=str))
    else:
        _print(out)
    sys.exit(0 if d["allowed"] else 3)


def _print(out: dict[str, Any]) -> None:
    d = out["decision"]
    echo(("ALLOWED" if d["allowed"] else "DENIED") + (f" (role {d['role']})" if d["role"] else ""))
    echo(f"  reasons: {', '.join(d['reasons'])}")
    echo(f"  matched rules: {', '.join(d['matched_rules']) or '-'}")
    echo(f"  policy version: {d['policy_version']}")
    rules = out["principal_rules"]
    if "visa_rules" in out:
        for vr in out["visa_rules"]:
            scope = f" on {', '.join(vr['datasets'])}" if vr["datasets"] else ""
            use = f", use {vr['use']}" if vr["use"] else ""
            echo(f"  visa rule {vr['rule']} -> {vr['role']}{scope}{use}: "
                 + ("matched" if vr["matched"] else "not matched"))
            for n in vr["require"]:
                met = "; ".join(f"{v['type']} of {v['iss']} (by {v['by']})"
                                for v in n["met_by"]) or "no visa meets it"
                echo(f"    needs {n['type']} of issuer {n['issuer']}"
                     + (f" with value {n['value']}" if n["value"] else "") + f": {met}")
    else:
        echo("  principal rules: " + ("; ".join(f"{r['rule']} {r['match']} -> {r['role']}"
                                                 for r in rules) or "none matched"))
    if out["dataset_consent"]:
        c = out["dataset_consent"]
        echo(f"  dataset consent: {c['label']} ({c['permission']}"
             + "".join(f" +{m}" for m in c["modifiers"]) + ")")
    for r in out["roles"]:
        g = r["grant"] or {}
        via = f" (via {g['via']}" + (f", datasets {', '.join(g['datasets'])}"
                                     if g.get("datasets") else "") + ")" if g else ""
        echo(f"  role {r['role']}{via}: {'allows' if r['allowed'] else 'denies'}; use "
             f"{r['use'] or '-'}; cedar rules {', '.join(r['cedar_rules']) or '-'}")
        if r["use_check"]:
            echo(f"    use: {r['use_check']['explanation']}")
        if r["duo"]:
            echo(f"    DUO: {'match' if r['duo']['ok'] else 'no match'}: "
                 f"{r['duo']['explanation']}")
        for e in r["cedar_errors"]:
            echo(f"    cedar error: {e}")
    ob = d["obligations"]
    if ob:
        echo(f"  obligations: tier {ob['tier']}, k {ob['k']}, min group size "
             f"{ob['min_group_size']}, rare variants {ob['rare_variant']['mode']} "
             f"(max AC {ob['rare_variant']['max_ac']}), rate limit "
             f"{ob['rate_limit']['requests']}/{ob['rate_limit']['per_seconds']}s, max variants "
             f"{ob['max_variants']}, group by {', '.join(ob['allowed_group_by']) or '-'}")
        if ob["dp"]:
            dp = ob["dp"]
            echo(f"    dp: {dp['mechanism']}, epsilon {dp['epsilon_per_query']} per query, "
                 f"budget {dp['budget']} per {dp['period_days']} days")
            if dp.get("presence"):
                pres = dp["presence"]
                echo(f"    presence: member information budget {pres['member_budget_nats']} "
                     f"nats per member and principal, noise scale {pres['noise_scale']}, "
                     f"margin {pres['margin_sd']} sd, counting {pres['count']} (no epsilon)")
