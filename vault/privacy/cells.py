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


def suppress_qc(qc: dict[str, Any], k: int = DEFAULT_K) -> dict[str, Any]:
    """A QC report fit to show: every group of 1 … k−1 samples is shown as ``"<k"`` with no
    missingness, and if exactly one group of a column is suppressed, the smallest other group
    is suppressed too, so that no suppressed size can be recovered as total minus the rest."""
    out = copy.deepcopy(qc)
    for col, groups in out.get("groups", {}).items():
        small = [g for g, v in groups.items() if isinstance(v["samples"], int)
                 and is_small(v["samples"], k)]
        if len(small) == 1:
            others = sorted((v["samples"], g) for g, v in groups.items()
                            if g not in small and isinstance(v["samples"], int)
                            and v["samples"] > 0)
            if others:
                small.append(others[0][1])
        for g in small:
            groups[g] = {"samples": f"<{k}" if is_small(groups[g]["samples"], k)
                         else "suppressed", "missingness": None}
        out["groups"][col] = groups
    return out
