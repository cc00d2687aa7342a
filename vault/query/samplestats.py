"""Per-sample quality as aggregates only: binned histograms and per-group means.

A sample's call rate and heterozygosity are individual values (an outlier's value can point
at one person), so nothing here returns a per-sample array: the counts per sample live only
inside :func:`_per_sample` during one pass over the decrypted blocks and leave as

* histograms over **fixed** bin edges (never data-dependent ones: a bin edge at the minimum
  would disclose the minimum), where every bin holding 1 … k−1 samples is merged into a
  neighbour until each released bin holds 0 or at least k samples (a cohort of fewer than k
  samples gets one suppressed bin);
* per-group means and counts of variants (seen in the group, private to it), for groups of at
  least ``min_group_size`` samples; smaller groups are refused (counted, not named). If the
  samples outside the released groups (unlabelled, refused) are 1 … k−1, the smallest
  released group is suppressed too, so that no mean of fewer than k people follows from
  the overall mean minus the released groups (complementary suppression, as in
  vault.privacy.disclosure).

Same data path as every statistic: the service's reader and partition cache, its Vault
identity, the kernels' genotype counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels import count_genotypes
from kernels.codes import HET, MISSING
from vault.errors import ConfigError
from vault.privacy.cells import is_small
from vault.query.service import Disclosure, QueryService

#: fixed bin edges (right-closed last bin)
CALL_RATE_BINS: tuple[float, ...] = (0.0, 0.5, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96,
                                     0.97, 0.98, 0.985, 0.99, 0.995, 1.0)
HETEROZYGOSITY_BINS: tuple[float, ...] = tuple(round(x, 3) for x in np.arange(0.0, 0.505,
                                                                               0.01)) + (1.0,)
_ROWS_PER_CHUNK = 4096


@dataclass
class _PerSample:
    """Per-sample counts (private to this module) and per-group variant presence."""

    n_variants: int
    called: np.ndarray  # int64 (n_samples,)
    het: np.ndarray  # int64 (n_samples,)
    seen: dict[str, np.ndarray]  # column -> int64 (n_groups,) variants with AC > 0
    private: dict[str, np.ndarray]  # column -> int64 (n_groups,) variants only in the group
    groupings: dict[str, Any]


def _unpack(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """(rows, bytes) 2-bit codes -> (rows, n_samples) uint8 codes."""
    shifts = np.array([0, 2, 4, 6], np.uint8)
    codes = (packed[:, :, None] >> shifts) & np.uint8(3)
    return codes.reshape(packed.shape[0], -1)[:, :n_samples]


def _per_sample(svc: QueryService, dataset: str, columns: Sequence[str]) -> _PerSample:
    v = svc.version(dataset)
    n = v.cohort.n_samples
    for col in columns:
        if col not in v.cohort.columns:
            raise ConfigError(f"unknown group column {col!r}; this dataset has: "
                              f"{', '.join(v.cohort.columns) or 'none'}")
    groupings = {c: v.cohort.grouping(c) for c in columns}
    called = np.zeros(n, np.int64)
    het = np.zeros(n, np.int64)
    seen = {c: np.zeros(len(g.names), np.int64) for c, g in groupings.items()}
    private = {c: np.zeros(len(g.names), np.int64) for c, g in groupings.items()}
    n_variants = 0
    for ci, bi in v.reader.partitions(None):
        block = svc._block(v, ci, bi)
        if block is None or block.packed is None:
            continue
        n_variants += block.n_variants
        for lo in range(0, block.n_variants, _ROWS_PER_CHUNK):
            codes = _unpack(block.packed[lo:lo + _ROWS_PER_CHUNK], n)
            called += (codes != MISSING).sum(axis=0, dtype=np.int64)
            het += (codes == HET).sum(axis=0, dtype=np.int64)
        for col, g in groupings.items():
            counts = count_genotypes(block.packed, n, g.codes, len(g.names))
            ac_all = counts.overall[:, 1] + 2 * counts.overall[:, 2]
            ac = counts.groups[:, :, 1] + 2 * counts.groups[:, :, 2]  # (V, G)
            seen[col] += (ac > 0).sum(axis=0)
            private[col] += ((ac > 0) & (ac == ac_all[:, None])).sum(axis=0)
    return _PerSample(n_variants, called, het, seen, private, groupings)


def binned(values: np.ndarray, edges: Sequence[float], k: int) -> dict[str, Any]:
    """Counts of ``values`` over ``edges`` with every bin of 1 … k−1 merged into a neighbour.

    A small bin joins its smaller non-empty-side neighbour (the one with fewer values, the
    right one on a tie), repeatedly, until every bin holds 0 or at least k values. If all
    values together are fewer than k, one bin spanning all edges is returned, suppressed.
    Returns only bins (lo, hi, count) — never the values.
    """
    e = np.asarray(edges, np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ConfigError("bin edges must be at least two increasing numbers")
    x = np.asarray(values, np.float64)
    x = x[~np.isnan(x)]
    counts, _ = np.histogram(np.clip(x, e[0], e[-1]), bins=e)
    bins = [[float(e[i]), float(e[i + 1]), int(counts[i])] for i in range(counts.size)]
    total = int(counts.sum())
    merges = 0
    if is_small(total, k):
        return {"bins": [{"lo": float(e[0]), "hi": float(e[-1]), "count": None}],
                "n": None, "merged_bins": counts.size - 1, "suppressed": True,
                "rule": f"fewer than k={k} values in all: nothing shown"}
    while True:
        small = [i for i, b in enumerate(bins) if is_small(int(b[2]), k)]
        if not small:
            break
        i = min(small, key=lambda j: bins[j][2])
        left = i - 1 if i > 0 else None
        right = i + 1 if i + 1 < len(bins) else None
        # prefer a neighbour that holds values (merging with an empty bin does not help)
        cands = [j for j in (left, right) if j is not None]
        nonempty = [j for j in cands if bins[j][2] > 0]
        pool = nonempty or cands
        j = min(pool, key=lambda t: (bins[t][2], -t))
        a, b = sorted((i, j))
        bins[a] = [bins[a][0], bins[b][1], bins[a][2] + bins[b][2]]
        del bins[b]
        merges += 1
    return {"bins": [{"lo": lo, "hi": hi, "count": c} for lo, hi, c in bins], "n": total,
            "merged_bins": merges, "suppressed": False,
            "rule": f"bins holding 1..{k - 1} samples are merged into a neighbour"}


def sample_histograms(svc: QueryService, dataset: str, disclosure: Disclosure,
                      bins: dict[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """Histograms of per-sample call rate and heterozygosity (het / called calls): bin counts
    only, with bins below k merged (see :func:`binned`)."""
    return sample_quality(svc, dataset, disclosure, (), bins)["histograms"]


def sample_quality(svc: QueryService, dataset: str, disclosure: Disclosure,
                   columns: Sequence[str], bins: dict[str, Sequence[float]] | None = None
                   ) -> dict[str, Any]:
    """One pass: the per-sample histograms and, for each column, per-group aggregates
    (mean call rate, mean heterozygosity, variants seen, private variants)."""
    edges = {"call_rate": CALL_RATE_BINS, "heterozygosity": HETEROZYGOSITY_BINS,
             **(bins or {})}
    ps = _per_sample(svc, dataset, columns)
    k = disclosure.k
    n = ps.called.size
    with np.errstate(divide="ignore", invalid="ignore"):
        call_rate = ps.called / ps.n_variants if ps.n_variants else np.full(n, np.nan)
        heterozygosity = np.where(ps.called > 0, ps.het / np.maximum(ps.called, 1), np.nan)
    hist = {"call_rate": binned(call_rate, edges["call_rate"], k),
            "heterozygosity": binned(heterozygosity, edges["heterozygosity"], k)}
    overall = None
    if n >= k and ps.n_variants:
        overall = {"samples": n, "mean_call_rate": _mean(call_rate),
                   "mean_heterozygosity": _mean(heterozygosity)}
    groups: dict[str, Any] = {}
    for col, g in ps.groupings.items():
        keep = g.sizes >= disclosure.min_group_size
        released = np.flatnonzero(keep)
        hidden = n - int(g.sizes[keep].sum())
        complementary: set[int] = set()
        if is_small(hidden, k) and released.size:
            complementary.add(int(released[np.argsort(g.sizes[released], kind="stable")[0]]))
        rows: dict[str, dict[str, Any]] = {}
        for gi in released.tolist():
            members = g.codes == gi
            if gi in complementary:
                rows[g.names[gi]] = {"samples": int(g.sizes[gi]), "mean_call_rate": None,
                                     "mean_heterozygosity": None, "variants_seen": None,
                                     "private_variants": None, "suppressed": "complementary"}
                continue
            rows[g.names[gi]] = {
                "samples": int(g.sizes[gi]),
                "mean_call_rate": _mean(call_rate[members]),
                "mean_heterozygosity": _mean(heterozygosity[members]),
                "variants_seen": int(ps.seen[col][gi]),
                "private_variants": int(ps.private[col][gi]),
                "suppressed": None}
        groups[col] = {"groups": rows, "refused_groups": int((~keep).sum()),
                       "hidden_samples_small": bool(is_small(hidden, k))}
    return {"n_variants": ps.n_variants, "histograms": hist, "overall": overall,
            "groups": groups,
            "disclosure": {"k": k, "min_group_size": disclosure.min_group_size,
                           "rules": ["per-sample values are shown only as histogram bins "
                                     "over fixed edges; bins of 1..k-1 samples are merged "
                                     "into a neighbour",
                                     "per-group means only for groups of at least "
                                     "min_group_size samples; if the samples outside them "
                                     "are 1..k-1, the smallest group is suppressed too",
                                     "variants seen / private count variants, not people"]}}


def _mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else None
