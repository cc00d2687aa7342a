"""YAML roles rendered to Cedar, compiled once, evaluated with the schema always passed.

Per role ``r`` the renderer writes *permit* rules for its scope (which actions on which
datasets) and one *forbid* rule per restriction (statistic not granted, dataset not
granted, consent, declared use, group-by, filters, request size). A request is allowed iff
a permit applies and no forbid fires, which is Cedar's own semantics; the forbid that fires
names the reason. Per dataset there are forbids for group columns and filter values that
the dataset does not declare, and a few request-shape forbids apply to every role.

Every rule carries ``@id("<scope>:<rule>")`` and ``@reason("<code>")``; the set is loaded
from EST JSON keyed by ``@id``, so diagnostics name rules by ``@id``, not by position.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import cedarpy

from vault.policy.model import (
    CONSENT_ACTIONS,
    DATASET_ACTIONS,
    GROUPED_ACTIONS,
    OPERATIONS,
    SERVICE_ACTIONS,
    STATISTICS,
)
from vault.policy.spec import DatasetSpec, RoleSpec, RuleInfo

NS = "GenoVault"
SERVICE_UID = f'{NS}::Service::"genovault"'


def schema_text() -> str:
    """The Cedar schema shipped in ``policies/access/genovault.cedarschema``."""
    return (resources.files("policies") / "access" / "genovault.cedarschema").read_text("utf-8")


def _s(value: str) -> str:
    # Ids are restricted by the JSON Schema to [A-Za-z0-9_.:+-]; json.dumps escapes the rest
    # in a way Cedar reads back the same for that alphabet.
    return json.dumps(value)


def _role(role: str) -> str:
    return f"{NS}::Role::{_s(role)}"


def _dataset(ds: str) -> str:
    return f"{NS}::Dataset::{_s(ds)}"


def _actions(actions: Iterable[str]) -> str:
    return "[" + ", ".join(f"{NS}::Action::{_s(a)}" for a in actions) + "]"


def _strings(values: Iterable[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def _within(values: tuple[str, ...], attr: str) -> str:
    """Cedar for "every element of ``attr`` is in ``values``" (empty set literals are
    refused by Cedar's validator, so nothing allowed is ``isEmpty()``)."""
    return f"{_strings(values)}.containsAll({attr})" if values else f"{attr}.isEmpty()"


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.rules: dict[str, RuleInfo] = {}

    def add(self, info: RuleInfo, body: str) -> None:
        if info.id in self.rules:
            raise ValueError(f"duplicate Cedar rule id {info.id!r}")
        self.rules[info.id] = info
        self.parts.append(f"@id({_s(info.id)})\n@reason({_s(info.reason)})\n{body};\n")


def render(datasets: Mapping[str, DatasetSpec], roles: Mapping[str, RoleSpec]
           ) -> tuple[str, dict[str, RuleInfo]]:
    """Cedar policy text for the policy, and what each rule id stands for."""
    w = _Writer()
    _request_rules(w)
    for ds in datasets.values():
        _dataset_rules(w, ds)
    for role in roles.values():
        _role_rules(w, role)
    return "\n".join(w.parts), w.rules


def _request_rules(w: _Writer) -> None:
    w.add(RuleInfo("request:dataset_required", "forbid", "dataset_required"),
          f"forbid(principal, action in {_actions(DATASET_ACTIONS)}, resource is {NS}::Service)")
    w.add(RuleInfo("request:dataset_not_applicable", "forbid", "dataset_not_applicable"),
          f"forbid(principal, action in {_actions(SERVICE_ACTIONS)}, resource is {NS}::Dataset)")
    w.add(RuleInfo("request:filters_malformed", "forbid", "filter_not_allowed"),
          "forbid(principal, action, resource) unless { context.filters_well_formed }")
    w.add(RuleInfo("request:grant_scope", "forbid", "dataset_not_visible"),
          f"forbid(principal, action in {_actions(DATASET_ACTIONS)}, resource is {NS}::Dataset) "
          "unless { context.dataset_granted }")
    w.add(RuleInfo("request:invalid_size", "forbid", "invalid_request"),
          "forbid(principal, action, resource) when { "
          "(context has variant_count && context.variant_count < 0) || "
          "(context has region_bp && context.region_bp < 0) }")


def _dataset_rules(w: _Writer, ds: DatasetSpec) -> None:
    if ds.group_columns is None:
        return
    cols = tuple(ds.group_columns)
    head = f"forbid(principal, action in {_actions(STATISTICS)}, resource == {_dataset(ds.id)})"
    grouped = (f"forbid(principal, action in {_actions(GROUPED_ACTIONS)}, "
               f"resource == {_dataset(ds.id)})")
    w.add(RuleInfo(f"dataset:{ds.id}:group_by", "forbid", "group_by_not_allowed", None, cols),
          f"{grouped} unless {{ {_within(cols, 'context.group_by')} }}")
    terms = tuple(f"{c}={v}" for c, vals in ds.group_columns.items() for v in (vals or ()))
    if terms:
        w.add(RuleInfo(f"dataset:{ds.id}:filter_values", "forbid", "filter_not_allowed", None,
                       terms),
              f"{head} unless {{ {_within(terms, 'context.group_filter_terms')} }}")


def _role_rules(w: _Writer, r: RoleSpec) -> None:
    me = f"principal == {_role(r.id)}"
    datasets = "[" + ", ".join(_dataset(d) for d in r.datasets) + "]"
    stats = tuple(a for a in STATISTICS if a in r.statistics)
    ds_ops = tuple(a for a in ("describe_dataset", "report", "representation")
                   if a in r.actions)
    svc_ops = tuple(a for a in SERVICE_ACTIONS if a in r.actions)
    # Scope: permits.
    if r.datasets and stats:
        w.add(RuleInfo(f"{r.id}:statistics", "permit", "allowed", r.id, stats),
              f"permit({me}, action in {_actions(stats)}, resource) "
              f"when {{ resource in {datasets} }}")
    if r.datasets and ds_ops:
        w.add(RuleInfo(f"{r.id}:datasets", "permit", "allowed", r.id, ds_ops),
              f"permit({me}, action in {_actions(ds_ops)}, resource) "
              f"when {{ resource in {datasets} }}")
    if svc_ops:
        w.add(RuleInfo(f"{r.id}:service", "permit", "allowed", r.id, svc_ops),
              f"permit({me}, action in {_actions(svc_ops)}, resource is {NS}::Service)")
    # Restrictions: forbids, each naming a reason.
    _forbid_unless_in(w, r, "statistic_not_allowed", STATISTICS, stats)
    _forbid_unless_in(w, r, "action_not_allowed", OPERATIONS, tuple(r.actions))
    if r.datasets:
        w.add(RuleInfo(f"{r.id}:dataset_not_visible", "forbid", "dataset_not_visible", r.id,
                       r.datasets),
              f"forbid({me}, action in {_actions(DATASET_ACTIONS)}, resource is {NS}::Dataset) "
              f"unless {{ resource in {datasets} }}")
    else:
        w.add(RuleInfo(f"{r.id}:dataset_not_visible", "forbid", "dataset_not_visible", r.id),
              f"forbid({me}, action in {_actions(DATASET_ACTIONS)}, resource is {NS}::Dataset)")
    w.add(RuleInfo(f"{r.id}:consent", "forbid", "consent_mismatch", r.id),
          f"forbid({me}, action in {_actions(CONSENT_ACTIONS)}, resource is {NS}::Dataset) "
          "unless { context.consent_ok }")
    w.add(RuleInfo(f"{r.id}:use", "forbid", "use_not_permitted", r.id),
          f"forbid({me}, action in {_actions(CONSENT_ACTIONS)}, resource) "
          "unless { context.use_ok }")
    stat_head = f"forbid({me}, action in {_actions(STATISTICS)}, resource)"
    grouped_head = f"forbid({me}, action in {_actions(GROUPED_ACTIONS)}, resource)"
    w.add(RuleInfo(f"{r.id}:group_by", "forbid", "group_by_not_allowed", r.id, r.group_by),
          f"{grouped_head} unless {{ {_within(r.group_by, 'context.group_by')} }}")
    w.add(RuleInfo(f"{r.id}:filters", "forbid", "filter_not_allowed", r.id, r.filters),
          f"{stat_head} unless {{ {_within(r.filters, 'context.filter_fields')} }}")
    w.add(RuleInfo(f"{r.id}:max_variants", "forbid", "too_many_variants", r.id,
                   (str(r.max_variants),)),
          f"{stat_head} when {{ context has variant_count && "
          f"context.variant_count > {int(r.max_variants)} }}")
    if r.max_region_bp is not None:
        w.add(RuleInfo(f"{r.id}:max_region_bp", "forbid", "region_too_large", r.id,
                       (str(r.max_region_bp),)),
              f"{stat_head} when {{ context has region_bp && "
              f"context.region_bp > {int(r.max_region_bp)} }}")


def _forbid_unless_in(w: _Writer, r: RoleSpec, reason: str, family: tuple[str, ...],
                      granted: tuple[str, ...]) -> None:
    rid = f"{r.id}:{reason}"
    head = f"forbid(principal == {_role(r.id)}, action in {_actions(family)}, resource)"
    if granted:
        w.add(RuleInfo(rid, "forbid", reason, r.id, granted),
              f"{head} unless {{ action in {_actions(granted)} }}")
    else:  # Cedar's validator refuses `action in []`: nothing granted is an unconditional forbid.
        w.add(RuleInfo(rid, "forbid", reason, r.id), head)


def compile_policies(text: str) -> Any:
    """A PolicySet whose policy ids are the ``@id`` annotations, validated against the schema.

    ValueError with every validation error if the text does not validate.
    """
    est = json.loads(cedarpy.policies_to_json_str(text))
    positional = {k: p.get("annotations", {}).get("id", k)
                  for k, p in est["staticPolicies"].items()}
    result = cedarpy.validate_policies(text, schema_text())
    if not result.validation_passed:
        errors = "; ".join(f"{positional.get(e.policy_id, e.policy_id)}: {e.error}"
                           for e in result.errors)
        raise ValueError(f"rendered Cedar policies do not validate against the schema: {errors}")
    by_id: dict[str, Any] = {}
    for pol in est["staticPolicies"].values():
        pid = pol.get("annotations", {}).get("id")
        if not pid or pid in by_id:
            raise ValueError(f"every Cedar policy needs a unique @id (got {pid!r})")
        by_id[pid] = pol
    est["staticPolicies"] = by_id
    return cedarpy.PolicySet.from_json_str(json.dumps(est))


def load_schema() -> Any:
    return cedarpy.Schema.from_str(schema_text())


def request(role: str, action: str, dataset: str | None, context: Mapping[str, Any]
            ) -> dict[str, Any]:
    return {
        "principal": _role(role),
        "action": f"{NS}::Action::{_s(action)}",
        "resource": _dataset(dataset) if dataset is not None else SERVICE_UID,
        "context": dict(context),
    }


def authorize(requests: list[dict[str, Any]], policies: Any, schema: Any) -> list[Any]:
    """cedarpy results in request order (schema always passed)."""
    if not requests:
        return []
    results = cedarpy.is_authorized_batch(requests, policies, [], schema=schema)
    if len(results) != len(requests):  # pragma: no cover - defensive
        raise RuntimeError("cedarpy returned a different number of results than requests")
    return list(results)
