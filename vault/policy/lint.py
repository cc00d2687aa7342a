"""Semantic checks of a loaded policy, beyond what the JSON Schema can say.

Errors make a policy unsafe or meaningless (strict :func:`load_policy` refuses it); warnings
are probably mistakes. ``known_datasets`` / ``known_columns`` (from the store) turn on the
checks of names against real data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from vault.policy.duo import match_consent
from vault.policy.spec import DEFAULT_K, K_FLOOR, Finding, Policy, RoleSpec

#: Site-level fields a filter may name besides the datasets' group columns.
SITE_FIELDS = ("chrom", "pos", "ref", "alt", "id", "qual", "filter")

#: INFO fields that are, by their definition, computed from the genotypes of the file's own
#: samples (VCF 4.3 reserved AC, AN, AF, NS; bcftools +fill-tags; GATK): a site filter over
#: one of them (``AC = 1``) is an exact oracle for counts that disclosure control suppresses
#: or noises, and it does not change when a participant withdraws. A role may not list them
#: in ``filters``. External annotations (``AC_gnomad``, ``CSQ``, ``VQSLOD``) are what site
#: filters are for.
COHORT_INFO_FIELDS = frozenset({
    "AC", "AN", "AF", "NS", "MAF", "MLEAC", "MLEAF", "AC_Het", "AC_Hom", "AC_Hemi", "HWE",
    "ExcHet", "F_MISSING", "InbreedingCoeff"})

Severity = Literal["error", "warning"]
Add = Callable[[Severity, str, str, str], None]


def lint(policy: Policy, known_datasets: Iterable[str] | None = None,
         known_columns: Mapping[str, Iterable[str]] | None = None) -> list[Finding]:
    """Every finding, errors first, each naming file:line and JSON path."""
    out: list[Finding] = []
    known = None if known_datasets is None else set(known_datasets)
    columns = None if known_columns is None else {d: set(c) for d, c in known_columns.items()}
    _datasets(policy, known, columns, out)
    for role in policy.roles.values():
        _role(policy, role, columns, out)
    _principals(policy, out)
    _passports(policy, out)
    return sorted(out, key=lambda f: (f.severity != "error", f.where, f.code))


def _datasets(policy: Policy, known: set[str] | None, columns: dict[str, set[str]] | None,
              out: list[Finding]) -> None:
    for ds in policy.datasets.values():
        where = f"{ds.source}: $.datasets.{ds.id}"
        if known is not None and ds.id not in known:
            out.append(Finding("error", "unknown_dataset",
                               f"dataset {ds.id!r} is not in the store", where))
        if columns is not None and ds.id in columns and ds.group_columns is not None:
            for col in ds.group_columns:
                if col not in columns[ds.id]:
                    out.append(Finding("error", "unknown_column",
                                       f"dataset {ds.id!r} has no column {col!r}",
                                       f"{where}.group_columns.{col}"))


def _role(policy: Policy, r: RoleSpec, columns: dict[str, set[str]] | None,
          out: list[Finding]) -> None:
    where = f"{r.source}: {r.json_path}"

    def add(sev: Severity, code: str, msg: str, sub: str = "") -> None:
        out.append(Finding(sev, code, msg, where + sub))

    if r.k < K_FLOOR:
        add("error", "k_below_floor", f"role {r.id!r}: k={r.k} is below the floor of "
            f"{K_FLOOR}; cells of 1..{r.k - 1} people would be shown", ".k")
    elif r.k < DEFAULT_K:
        add("warning", "k_below_default", f"role {r.id!r}: k={r.k} is below the usual "
            f"{DEFAULT_K} (CMS cell-size rule)", ".k")
    if r.min_group_size < r.k:
        add("warning", "min_group_below_k", f"role {r.id!r}: min_group_size "
            f"{r.min_group_size} is below k={r.k}", ".min_group_size")
    if r.rare_variant.max_ac < 0:
        add("error", "rare_max_ac_negative",
            f"role {r.id!r}: rare_variant.max_ac must be >= 0", ".rare_variant.max_ac")
    if r.dp is not None and r.dp.epsilon_per_query > r.dp.budget:
        add("error", "dp_epsilon_over_budget", f"role {r.id!r}: epsilon_per_query "
            f"{r.dp.epsilon_per_query} exceeds the budget {r.dp.budget}", ".dp")
    for name in r.datasets:
        if name not in policy.datasets:
            add("error", "unknown_dataset", f"role {r.id!r} names dataset {name!r}, which no "
                "policy file defines", ".datasets")
    research = bool(r.statistics) or "representation" in r.actions
    if "audit_read" in r.actions and research:
        add("error", "separation_of_duties", f"role {r.id!r} grants audit_read and "
            "statistics or representation: an auditor reads the trail, not the data; use "
            "two roles")
    if "representation" in r.actions:
        _representation(policy, r, add)
    if not r.statistics:
        for field in ("group_by", "filters"):
            if field == "group_by" and "representation" in r.actions:
                continue  # the representation answer is grouped by these columns
            if getattr(r, field):
                add("warning", "unused_setting",
                    f"role {r.id!r} sets {field} but grants no statistic", f".{field}")
        return
    if r.use is None:
        add("error", "use_required", f"role {r.id!r} grants statistics but declares no use "
            "(a DUO code such as GRU or HMB), so no dataset's consent can admit it", ".use")
    if "describe_dataset" not in r.actions:
        add("warning", "datasets_not_listed", f"role {r.id!r} grants statistics without "
            "describe_dataset: its datasets will not appear in list_datasets", ".actions")
    visible = 0
    for ds_id in r.datasets:
        ds = policy.datasets.get(ds_id)
        if ds is None:
            continue
        tier = r.tier or ds.tier or "registered"
        if tier == "registered" and r.dp is None:
            add("error", "dp_required", f"role {r.id!r} is registered tier on dataset "
                f"{ds_id!r} but has no dp settings", ".dp")
        if r.use is not None and match_consent(ds.consent, r.use).ok:
            visible += 1
        _columns(r, ds_id, ds.group_columns, columns, add)
    if r.use is not None and r.datasets and not visible:
        add("warning", "no_visible_dataset", f"role {r.id!r}: the consent of none of its "
            f"datasets permits its use {r.use.label()}", ".use")


def _representation(policy: Policy, r: RoleSpec, add: Add) -> None:
    """``representation``: consent-checked (needs a use), exact counts (no DP version)."""
    if r.use is None and not r.statistics:
        add("error", "use_required", f"role {r.id!r} grants representation but declares no "
            "use (a DUO code such as GRU or HMB), so no dataset's consent can admit it", ".use")
    for ds_id in r.datasets:
        ds = policy.datasets.get(ds_id)
        tier = r.tier or (ds.tier if ds else None) or "registered"
        if tier == "registered" or r.dp is not None:
            add("warning", "representation_refused_dp", f"role {r.id!r} grants "
                f"representation but is registered tier (DP) on dataset {ds_id!r}: the "
                "representation has exact counts only and is refused to it "
                "(dp_unsupported:representation)", ".actions")


def _columns(r: RoleSpec, ds_id: str, declared: Mapping[str, object] | None,
             columns: dict[str, set[str]] | None, report: Add) -> None:
    real = None if columns is None else columns.get(ds_id)
    for field, names in (("group_by", r.group_by), ("filters", r.filters)):
        for col in names:
            if field == "filters" and col in SITE_FIELDS:
                continue
            if field == "filters" and col in COHORT_INFO_FIELDS:
                report("error", "cohort_info_filter", f"role {r.id!r}: filter field {col!r} "
                       "is an INFO field computed from the cohort's own genotypes: filtering "
                       f"on it ({col} = 1) gives away counts that disclosure control hides, "
                       "and it is not updated when a participant withdraws; use external "
                       "annotations (e.g. AC_gnomad, CSQ, VQSLOD)", f".{field}")
                continue
            if field == "filters" and (declared is None or col not in declared) and (
                    real is None or col not in real):
                # not a group column: an INFO field kept at ingest (`ingest --info`) is a
                # site filter field the policy cannot see; anything else is refused (400)
                report("warning", "filter_field_not_a_column", f"role {r.id!r}: filter field "
                       f"{col!r} is neither a site column nor a group column of dataset "
                       f"{ds_id!r}: it works only as an INFO field kept at ingest "
                       "(`genovault ingest --info`); requests naming a field the dataset "
                       "does not have are refused", f".{field}")
                continue
            if real is not None and col not in real:
                report("error", "unknown_column", f"role {r.id!r}: dataset {ds_id!r} has no "
                       f"column {col!r}", f".{field}")
            elif declared is not None and col not in declared:
                report("warning", "column_not_declared", f"role {r.id!r}: {field} column "
                       f"{col!r} is not a group column of dataset {ds_id!r}, so requests "
                       "using it are denied there", f".{field}")


def _principals(policy: Policy, out: list[Finding]) -> None:
    mapped = {r.role for r in policy.passports.rules}
    for rule in policy.principals:
        where = f"{rule.source}: {rule.json_path}"
        if rule.role not in policy.roles:
            out.append(Finding("error", "unknown_role",
                               f"principal rule maps to unknown role {rule.role!r}", where))
        mapped.add(rule.role)
    for role in policy.roles.values():
        if role.id not in mapped:
            out.append(Finding("warning", "unreachable_role",
                               f"no principal rule maps to role {role.id!r}",
                               f"{role.source}: {role.json_path}"))
    rules = policy.principals
    for i, a in enumerate(rules):
        for b in rules[i + 1:]:
            a_items, b_items = set(a.match.items()), set(b.match.items())
            if not (a_items <= b_items or b_items <= a_items):
                continue
            where = f"{b.source}: {b.json_path}"
            if a.role == b.role:
                out.append(Finding("warning", "duplicate_principal_rule",
                                   f"rules {a.json_path} and {b.json_path} both map "
                                   f"{dict(b.match)} to role {a.role!r}", where))
            else:
                out.append(Finding("warning", "overlapping_principals",
                                   f"a principal matching {dict(b.match)} gets both roles "
                                   f"{a.role!r} and {b.role!r}: a request is allowed if either "
                                   "allows it, with the obligations of the first allowing "
                                   "role in file order", where))


#: what a role of callers without a credential may be granted (Beacon's PUBLIC level)
PUBLIC_STATISTICS = ("presence", "frequency")
PUBLIC_ACTIONS = ("list_datasets", "describe_dataset")


def _passports(policy: Policy, out: list[Finding]) -> None:
    """Visa rules: known roles, issuers and datasets; and what a public role may grant."""
    pp = policy.passports
    for linker in pp.issuers.values():
        if "links" in linker.signs and "visas" not in linker.signs:
            out.append(Finding("error", "issuer_links_without_visas", f"issuer {linker.id!r} "
                               "may link identities (signs: links) but not sign visas, and a "
                               "LinkedIdentities visa is a visa: add visas to its signs",
                               linker.source))
    for rule in pp.rules:
        where = f"{rule.source}: {rule.json_path}"
        role = policy.roles.get(rule.role)
        if role is None:
            out.append(Finding("error", "unknown_role",
                               f"visa rule maps to unknown role {rule.role!r}", where))
        for i, need in enumerate(rule.require):
            issuer = pp.issuers.get(need.issuer)
            if issuer is None:
                out.append(Finding("error", "unknown_issuer", f"visa rule requires a visa of "
                                   f"issuer {need.issuer!r}, which passports.issuers does "
                                   "not define", f"{where}.require[{i}]"))
            elif "visas" not in issuer.signs:
                out.append(Finding("error", "issuer_signs_no_visas", f"issuer {need.issuer!r} "
                                   "is trusted for passports only, not for visas",
                                   f"{where}.require[{i}]"))
            if "self" in need.by or "peer" in need.by:
                out.append(Finding("warning", "self_asserted_visa", f"visa rule accepts a "
                                   f"{need.type} visa asserted by "
                                   f"{'/'.join(b for b in need.by if b in ('self', 'peer'))}:"
                                   " the holder (or a peer) vouches for it, no authority",
                                   f"{where}.require[{i}].by"))
        for ds in rule.datasets or ():
            if ds not in policy.datasets:
                out.append(Finding("error", "unknown_dataset", f"visa rule names dataset "
                                   f"{ds!r}, which no policy file defines", f"{where}.datasets"))
            elif role is not None and ds not in role.datasets:
                out.append(Finding("error", "dataset_outside_role", f"visa rule grants role "
                                   f"{rule.role!r} on dataset {ds!r}, which the role does not "
                                   "cover", f"{where}.datasets"))
    for name in policy.public_roles:
        r = policy.roles[name]
        wide = [s for s in r.statistics if s not in PUBLIC_STATISTICS] + \
            [a for a in r.actions if a not in PUBLIC_ACTIONS]
        where = f"{r.source}: {r.json_path}"
        if wide:
            out.append(Finding("error", "public_role_too_wide", f"role {name!r} is given to "
                               "callers without a credential and grants "
                               f"{', '.join(wide)}: a public role may grant only "
                               f"{', '.join(PUBLIC_STATISTICS + PUBLIC_ACTIONS)}", where))
        if r.group_by or r.filters:
            out.append(Finding("error", "public_role_too_wide", f"role {name!r} is given to "
                               "callers without a credential and may group or filter: a "
                               "public answer is overall only", where))
