"""Beacon v2 filters: the terms this beacon announces in ``/filtering_terms`` and applies.

* **Dataset consent** (ontology filters, scope ``dataset``): a DUO term id such as
  ``DUO:0000042`` (GRU) or ``DUO:0000007`` (DS) keeps the datasets whose consent has that
  permission or modifier, or one below it in DUO's hierarchy (a GRU filter keeps HMB and DS
  datasets too, HMB keeps DS, NPUNCU keeps NPU and NCU): Beacon's ``includeDescendantTerms``,
  true unless the filter says false (then the term itself only). This selects datasets by
  their annotation, as an ontology filter does; it is not the access decision (that is the
  policy's DUO matching, docs/policy.md). Every DUO term GenoVault understands is announced
  (a fixed list: it says nothing about the datasets).
* **Group** (alphanumeric filters, scope ``genomicVariation``): ``{"id": "population",
  "operator": "=", "value": "pop1"}`` keeps the variants whose released ``pop1`` cell has a
  non-zero ALT count — the group cell ``/v1/…/frequency?group_by=population`` shows. The
  access policy decides it like that request (the role must be allowed to group and filter
  by the column, and the value must be one the dataset declares), so a filter never gives
  more than ``/v1`` would. The group columns named by both a dataset and a role's
  ``filters`` are announced (names only, not values). One group filter per request.

Anything else (another entry type's scope, an unknown id, an operator other than ``=``) is
not applied: the answer says so in ``info.warnings`` and ``info.unappliedFilters``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vault.beacon.request import BeaconError
from vault.policy.duo import TERMS, DuoError, descendants, normalize
from vault.policy.spec import DatasetSpec, Policy

#: scopes this beacon serves (entry type names as Beacon writes them)
_SCOPES = ("genomicVariation", "genomicVariations", "g_variants", "dataset", "datasets")


@dataclass(frozen=True)
class Filters:
    """The filters of a request, as this beacon understood them."""

    #: per consent filter, the DUO ids that meet it (the term, and with
    #: ``includeDescendantTerms`` the terms below it)
    consent_terms: tuple[frozenset[str], ...] = ()
    group: tuple[str, str] | None = None
    unapplied: tuple[dict[str, str], ...] = ()

    @property
    def applied(self) -> bool:
        return bool(self.consent_terms or self.group)


def group_columns(policy: Policy) -> list[str]:
    """Group columns a filter may name: declared by a dataset and in some role's filters."""
    declared = {c for ds in policy.datasets.values() for c in (ds.group_columns or {})}
    usable = {c for r in policy.roles.values() for c in r.filters}
    return sorted(declared & usable)


def filtering_terms(policy: Policy) -> list[dict[str, Any]]:
    """The ``filteringTerms`` of ``/filtering_terms``."""
    terms: list[dict[str, Any]] = [
        {"type": "ontologyTerm", "id": code, "label": f"{short}: {label} (dataset consent)",
         "scopes": ["dataset"]}
        for code, (short, _kind, label) in sorted(TERMS.items())]
    terms += [{"type": "alphanumeric", "id": col,
               "label": f"{col}: the variant's ALT allele is seen in this group (= only)",
               "scopes": ["genomicVariation"]} for col in group_columns(policy)]
    return terms


def parse_filters(filters: tuple[dict[str, Any], ...], policy: Policy) -> Filters:
    """The request's filters split into consent terms, a group filter and the rest."""
    consent: list[frozenset[str]] = []
    group: tuple[str, str] | None = None
    unapplied: list[dict[str, str]] = []
    columns = set(group_columns(policy))
    for f in filters:
        fid = str(f.get("id"))
        scope = f.get("scope")
        if scope is not None and scope not in _SCOPES:
            unapplied.append({"filter": fid, "warning": f"scope {str(scope)[:40]!r} is not "
                              "served by this beacon (genomic variations only)"})
            continue
        if "operator" in f or "value" in f:
            if fid not in columns:
                unapplied.append({"filter": fid, "warning": "unknown filtering term (see "
                                  "/filtering_terms)"})
                continue
            if f.get("operator", "=") != "=" or not isinstance(f.get("value"), str):
                unapplied.append({"filter": fid, "warning": "a group filter takes operator "
                                  "'=' and a group name"})
                continue
            if group is not None:
                raise BeaconError("at most one group filter per request")
            group = (fid, str(f["value"]))
            continue
        if fid.startswith("DUO:"):
            try:
                code = normalize(fid)
            except DuoError:
                pass
            else:
                below = f.get("includeDescendantTerms", True)
                if not isinstance(below, bool):
                    raise BeaconError("includeDescendantTerms must be a boolean")
                consent.append(descendants(code) if below else frozenset({code}))
                continue
        unapplied.append({"filter": fid, "warning": "unknown filtering term (see "
                          "/filtering_terms)"})
    return Filters(tuple(dict.fromkeys(consent)), group, tuple(unapplied))


def consent_matches(ds: DatasetSpec | None, terms: tuple[frozenset[str], ...]) -> bool:
    """Does the dataset's consent (permission or modifiers) meet every consent filter, i.e.
    carry one of the DUO ids of each of ``terms``?"""
    if ds is None:
        return False
    have = {ds.consent.permission, *ds.consent.modifiers}
    return all(have & t for t in terms)
