"""Small-cell rules: a count of 1 … k−1 people is never shown (0 and ≥ k are).

``DEFAULT_K = 11`` is the CMS cell-size rule. The policy engine sets k per role; until a
decision is at hand (the QC report a pipeline prints), the default applies.
"""

from __future__ import annotations

import copy
from typing import Any

DEFAULT_K = 11


def is_small(count: int, k: int = DEFAULT_K) -> bool:
    """True for a count that would single out fewer than k people (but not for 0)."""
    return 0 < count < k


SMALL_GROUPS = "(groups under k)"
PER_SAMPLE_TOTALS = ("haploid_calls_as_homozygous", "half_calls_as_missing",
                     "records_without_gt_as_missing", "missingness")


def suppress_qc(qc: dict[str, Any], k: int = DEFAULT_K) -> dict[str, Any]:
    """A QC report fit to show.

    * A batch of 1 … k−1 samples: its per-sample totals (haploid and half calls, missingness)
      and all its groups are suppressed — for a one-sample batch they are one person's data.
    * Otherwise, per grouping column, groups of 1 … k−1 samples are not named: they are
      merged into one ``"(groups under k)"`` entry with no size and no missingness. If their
      total could be had as the batch total minus the shown groups and is itself under k,
      the smallest shown group loses its size too; with no shown group left, the column is
      suppressed whole.
    """
    out = copy.deepcopy(qc)
    n = qc.get("samples")
    if isinstance(n, int) and is_small(n, k):
        for key in PER_SAMPLE_TOTALS:
            if key in out:
                out[key] = None
        out["groups"] = {col: {SMALL_GROUPS: {"samples": f"<{k}", "missingness": None,
                                              "groups": "suppressed"}}
                         for col in qc.get("groups", {})}
        out["suppressed"] = (f"a batch of fewer than {k} samples: per-sample totals and "
                             "groups are not shown")
        return out
    for col, groups in qc.get("groups", {}).items():
        sizes = {g: v["samples"] for g, v in groups.items() if isinstance(v["samples"], int)}
        small = [g for g, m in sizes.items() if is_small(m, k)]
        if not small:
            continue
        shown = {g: v for g, v in groups.items() if g not in small}
        hidden_total = sum(sizes[g] for g in small)
        if is_small(hidden_total, k):
            candidates = sorted((sizes[g], g) for g in shown if sizes.get(g, 0) > 0)
            if not candidates:
                out["groups"][col] = {SMALL_GROUPS: {"samples": "suppressed",
                                                     "missingness": None,
                                                     "groups": "suppressed"}}
                continue
            partner = candidates[0][1]
            shown[partner] = {"samples": "suppressed", "missingness": None}
        shown[SMALL_GROUPS] = {"samples": f"<{k}" if len(small) == 1 else "suppressed",
                               "missingness": None, "groups": len(small)}
        out["groups"][col] = shown
    return out
