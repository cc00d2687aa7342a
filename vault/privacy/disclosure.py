"""Small-cell and complementary suppression of per-variant genotype counts.

A *cell* is one variant in one group (or overall). The counts that carry genotype
information are the genotype counts (hom-ref, het, hom-alt) and the allele counts AC and
REF (= AN − AC); which of them an answer releases depends on the statistic (``FIELDS``). A
cell is **small** when any released one is 1 … k−1 (0 is not small: it is released as 0, and
null is never shown as 0). A small cell is suppressed whole: every count and every statistic
derived from it (AF, HWE, …) is null, and only the group size stays.

Missing-call and called counts (and so AN = 2 × called) say how well a site was measured,
not what anyone carries, so they are released as they are — as gnomAD releases AN per
population. This is a deliberate choice, documented in docs/disclosure.md.

Suppressing one cell is not enough: the overall counts are the sum of the groups and of the
*hidden* samples (in no released group: unlabelled, or in a group refused for its size), so a
lone suppressed cell — or a hidden part that is small — would be recovered as
``overall − Σ other groups``. For every variant whose overall cell is released, if the sum
has a sensitive unknown (a suppressed group, or a small hidden part) but fewer than two
unknowns, the released group with the fewest samples is suppressed too (the overall cell if
there is no other group): **complementary suppression**. A hidden part of at least k samples
counts as an unknown that shields; a smaller one does not (its range is too narrow).

Answers of different kinds about the same variants and groups must not combine into a
recovery either: a genotype answer releases each cell's AC as well, so its suppression
starts from the allele answer's (small and complementary cells) and adds its own; every
cell whose AC either answer leaves unknown is then unknown in both.

Everything here is pure numpy over count arrays shaped like the kernels' ``GenotypeCounts``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: reason codes per cell
NONE, SMALL, COMPLEMENTARY, RARE = 0, 1, 2, 3
REASON_NAMES = {SMALL: "count<k", COMPLEMENTARY: "complementary", RARE: "rare_variant"}


#: genotype-bearing counts each kind of answer releases (directly or through a statistic)
FIELDS: dict[str, tuple[str, ...]] = {
    "alleles": ("ac", "ref"),  # frequency, presence, SFS
    "genotypes": ("hom_ref", "het", "hom_alt", "ac", "ref"),  # genotype counts, HWE, tests
    "calls": (),  # missingness: called and missing counts only
}


def _field(c: np.ndarray, name: str) -> np.ndarray:
    if name == "hom_ref":
        return c[..., 0]
    if name == "het":
        return c[..., 1]
    if name == "hom_alt":
        return c[..., 2]
    if name == "ac":
        return c[..., 1] + 2 * c[..., 2]
    if name == "ref":
        return 2 * c[..., 0] + c[..., 1]
    raise ValueError(f"unknown count {name!r}")


def small_cells(counts: np.ndarray, k: int, kind: str = "genotypes") -> np.ndarray:
    """Bool (...): True where a released count of the cell (..., 4) is in 1 … k−1."""
    c = np.asarray(counts, np.int64)
    out = np.zeros(c.shape[:-1], np.bool_)
    for name in FIELDS[kind]:
        x = _field(c, name)
        out |= (x > 0) & (x < k)
    return out


@dataclass(frozen=True)
class Protection:
    """Which cells to suppress and why (reason codes above)."""

    overall: np.ndarray  # int8 (n_variants,)
    groups: np.ndarray  # int8 (n_variants, n_groups)

    @property
    def n_suppressed(self) -> int:
        return int((self.overall != NONE).sum() + (self.groups != NONE).sum())

    def count(self, reason: int) -> int:
        return int((self.overall == reason).sum() + (self.groups == reason).sum())


def protect(overall: np.ndarray, groups: np.ndarray, group_sizes: np.ndarray, k: int,
            kind: str = "genotypes", rare_max_ac: int | None = None) -> Protection:
    """Suppression for ``overall`` (V, 4) and released ``groups`` (V, G, 4) counts.

    ``group_sizes`` (G,): samples per released group; samples in no released group are the
    hidden part, derived as overall − Σ groups. ``rare_max_ac``: variants whose overall AC is
    1 … rare_max_ac are suppressed everywhere (the policy's rare-variant rule).
    """
    overall = np.asarray(overall, np.int64)
    groups = np.asarray(groups, np.int64)
    if overall.shape[0] == 0:
        return Protection(np.zeros(0, np.int8), np.zeros(groups.shape[:2], np.int8))
    groups = groups.reshape(overall.shape[0], -1, 4)
    n_groups = groups.shape[1]
    reason_o = np.where(small_cells(overall, k, kind), SMALL, NONE).astype(np.int8)
    reason_g = np.where(small_cells(groups, k, kind), SMALL, NONE).astype(np.int8)
    if kind == "genotypes":
        # A genotype answer gives every released cell's AC too (het + 2 hom-alt), so it must
        # hide at least every cell the allele answer of the same variants and groups hides:
        # with complementary cells chosen for each kind alone, the allele answer's
        # complementary cell could be released here, and a suppressed AC recovered as
        # overall − Σ the groups known from either answer. (Its small cells are small here
        # too: FIELDS["genotypes"] includes ac and ref.)
        alleles = protect(overall, groups, group_sizes, k, "alleles")
        reason_o = np.where(reason_o == NONE, alleles.overall, reason_o).astype(np.int8)
        reason_g = np.where(reason_g == NONE, alleles.groups.reshape(reason_g.shape),
                            reason_g).astype(np.int8)
    if rare_max_ac is not None and rare_max_ac > 0:
        ac = overall[:, 1] + 2 * overall[:, 2]
        rare = (ac > 0) & (ac <= rare_max_ac)
        reason_o[rare] = RARE
        reason_g[rare, :] = RARE
    if n_groups:
        hidden = overall - groups.sum(axis=1)
        n_hidden = hidden.sum(axis=-1)
        # The hidden part is sensitive when it is a small group or has a small count; it can
        # shield another cell only when it holds at least k samples (else its range is tight).
        hidden_sensitive = ((n_hidden > 0) & (n_hidden < k)) | small_cells(hidden, k, kind)
        hidden_shields = n_hidden >= k
        order = np.argsort(np.asarray(group_sizes, np.int64), kind="stable")
        # per variant (rows are independent, so this is done for all of them at once)
        suppressed = reason_g != NONE
        sensitive = suppressed.any(axis=1) | hidden_sensitive
        unknowns = suppressed.sum(axis=1) + (hidden_sensitive | hidden_shields)
        need = (reason_o == NONE) & sensitive & (unknowns < 2)
        # the released group with the fewest samples, else the overall cell
        free = ~suppressed[:, order]
        has_free = free.any(axis=1)
        pick = order[np.argmax(free, axis=1)]
        rows = np.flatnonzero(need & has_free)
        reason_g[rows, pick[rows]] = COMPLEMENTARY
        reason_o[need & ~has_free] = COMPLEMENTARY
    return Protection(reason_o, reason_g)
