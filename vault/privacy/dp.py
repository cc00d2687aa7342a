"""Differential privacy for released counts (the registered tier), with OpenDP.

**What is noised.** The unit of release is a *cell*: the genotype-count vector
(hom-ref, het, hom-alt, missing) of one variant, overall or in one group. Every count the
API shows for a cell (AC, AN, genotype counts, n, n_called, missing) and every statistic
derived from it (AF, HWE, the association tests, presence) is computed from the noisy
vector, and the answer says so -- except presence for a role whose policy has
``dp.presence``: that is one draw on AC under a per-member information budget
(vault.privacy.presence), and spends no ε.

**Sensitivity.** Adding or removing one person changes exactly one of the four counts of a
cell by 1 (the person is hom-ref, het, hom-alt or missing there): L1 sensitivity 1 per
cell. Groups of one column are disjoint, so one person touches at most one group cell per
column and variant (parallel composition). The cost of noising a set of new cells is the
OpenDP privacy map of the vector discrete Laplace mechanism at d_in = the number of
distinct (variant, partition) pairs among them (partition = overall or a group column):
``ε = meas.map(d_in) = d_in / scale`` with ``scale = 1 / epsilon_per_query``. So the
policy's ``epsilon_per_query`` is the ε of releasing one variant (one cell, or one column of
group cells); an answer over V new variants costs V × that, and a cell already released to
the same principal costs nothing (it is reused, see vault.privacy.ledger).

**Noise.** ``opendp.measurements.make_laplace`` over ``vector_domain(atom_domain(T=int))``
and ``l1_distance(T=int)`` — the discrete Laplace (two-sided geometric) distribution,
sampled exactly on integers by OpenDP (no floating-point noise written here). Negative
noisy counts are clamped to 0 (post-processing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vault.privacy.ledger import Ledger, Release

MECHANISM = "discrete_laplace"


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@dataclass
class CellNoise:
    """The vector discrete Laplace mechanism for cells, at ``epsilon_per_cell``."""

    epsilon_per_cell: float
    _meas: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.epsilon_per_cell > 0:
            raise ValueError("epsilon_per_query must be > 0")
        dp = _dp()
        self._meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)),
                                       dp.l1_distance(T=int), self.scale)

    @property
    def scale(self) -> float:
        return 1.0 / float(self.epsilon_per_cell)

    def epsilon(self, d_in: int) -> float:
        """OpenDP's privacy map: the ε of releasing cells at L1 sensitivity ``d_in``."""
        return float(self._meas.map(int(d_in))) if d_in > 0 else 0.0

    def sample(self, counts: np.ndarray) -> np.ndarray:
        """Noisy copy of the (n, 4) counts, clamped to >= 0."""
        c = np.asarray(counts, np.int64)
        if c.size == 0:
            return c.copy()
        out = np.asarray(self._meas([int(x) for x in c.ravel().tolist()]), np.int64)
        return np.maximum(out.reshape(c.shape), 0)

    def ac_sd(self) -> float:
        """Standard deviation of a noisy AC (het + 2 × hom-alt), before clamping."""
        var_one = 2 * math.exp(-1 / self.scale) / (1 - math.exp(-1 / self.scale)) ** 2
        return math.sqrt(5 * var_one)


def sensitivity(cells: Sequence[str]) -> int:
    """L1 sensitivity of a set of cells: distinct (variant, partition) pairs, where the
    partition of ``<variant>|overall`` is overall and of ``<variant>|<col>=<g>`` is col."""
    pairs = set()
    for c in cells:
        variant, _, part = c.rpartition("|")
        pairs.add((variant, part.split("=", 1)[0]))
    return len(pairs)


def cell_key(contig: str, pos: int, ref: str, alt: str, part: str = "overall") -> str:
    return f"{contig}:{pos}:{ref}:{alt}|{part}"


@dataclass
class DPSession:
    """The DP state of one answer: who pays, the mechanism, what this answer spent."""

    ledger: Ledger
    principal: str
    epsilon_per_cell: float
    budget: float
    period_days: int
    role: str | None = None
    display_name: str | None = None
    dataset: str | None = None
    query_id: str | None = None
    presence_margin_sd: float = 2.0
    #: ``dp.presence`` of the policy: presence paid from a per-member information budget
    #: (vault.privacy.presence.PresenceParams); None: presence costs an ε cell
    presence: Any = None
    spent: float = 0.0
    new_cells: int = 0
    reused_cells: int = 0
    last: Release | None = None
    _noise: CellNoise | None = None

    @property
    def noise(self) -> CellNoise:
        if self._noise is None:
            self._noise = CellNoise(self.epsilon_per_cell)
        return self._noise

    def cells(self, dataset_version: str, keys: list[str], counts: np.ndarray) -> np.ndarray:
        """Noisy (n, 4) counts for ``keys`` (exact ``counts`` (n, 4)); reused cells are free,
        new ones are debited (BudgetExhausted if the period's budget does not cover them)."""
        if not keys:
            return np.zeros((0, 4), np.int64)
        counts = np.asarray(counts, np.int64).reshape(len(keys), 4)
        rel = self.ledger.release(
            self.principal, dataset_version, keys, lambda idx: counts[idx], self.noise.sample,
            lambda idx: self.noise.epsilon(sensitivity([keys[i] for i in idx])),
            self.budget, self.period_days, role=self.role, display_name=self.display_name,
            dataset=self.dataset, query_id=self.query_id)
        self.spent += rel.epsilon
        self.new_cells += rel.new_cells
        self.reused_cells += len(set(keys)) - rel.new_cells
        self.last = rel
        return np.stack([rel.counts[k] for k in keys]).astype(np.int64)

    def presence_threshold(self, k: int) -> int:
        """A noisy AC must reach this to answer "present": k plus ``presence_margin_sd``
        standard deviations of the AC noise, so that an absent allele is almost never
        reported present."""
        return int(k + math.ceil(self.presence_margin_sd * self.noise.ac_sd()))

    def remaining(self) -> float:
        if self.last is not None:
            return self.last.remaining
        return max(0.0, self.budget - self.ledger.spent(self.principal, self.period_days))

    def summary(self) -> dict[str, Any]:
        return {"noise": MECHANISM, "epsilon_per_query": self.epsilon_per_cell,
                "noise_scale": self.noise.scale, "epsilon_spent": round(self.spent, 9),
                "epsilon_remaining": round(self.remaining(), 9), "epsilon_budget": self.budget,
                "budget_period_days": self.period_days, "new_cells": self.new_cells,
                "reused_cells": self.reused_cells}


def noisy_counts(session: DPSession, dataset_version: str, contig: str, pos: np.ndarray,
                 ref: Sequence[str], alt: Sequence[str], overall: np.ndarray,
                 groups: np.ndarray, wanted: np.ndarray, group_by: str | None,
                 group_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of a partition's ``overall`` (V, 4) and ``groups`` (V, G, 4) counts for
    the ``wanted`` variants (the others are zeroed: they are never released)."""
    idx = np.flatnonzero(wanted)
    o = np.zeros_like(np.asarray(overall, np.int64))
    g = np.zeros_like(np.asarray(groups, np.int64))
    if idx.size == 0:
        return o, g
    keys: list[str] = []
    exact: list[np.ndarray] = []
    for i in idx.tolist():
        base = f"{contig}:{int(pos[i])}:{ref[i]}:{alt[i]}"
        keys.append(f"{base}|overall")
        exact.append(overall[i])
        for gi, name in enumerate(group_names):
            keys.append(f"{base}|{group_by}={name}")
            exact.append(groups[i, gi])
    noisy = session.cells(dataset_version, keys, np.stack(exact))
    step = 1 + len(group_names)
    for j, i in enumerate(idx.tolist()):
        o[i] = noisy[j * step]
        for gi in range(len(group_names)):
            g[i, gi] = noisy[j * step + 1 + gi]
    return o, g


NOISE_RULES = [
    "registered tier: every count is the genotype-count vector of its cell with discrete "
    "Laplace noise (OpenDP), clamped at 0; AC, AN, n, AF, HWE and the tests are computed "
    "from the noisy counts",
    "a cell is noised once per principal and dataset version; repeating a question returns "
    "the same noisy answer at no cost",
    "suppression and the rare-variant rule are applied to the noisy counts",
]
