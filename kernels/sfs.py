"""Site-frequency spectrum (unfolded and folded) from per-variant allele counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sfs:
    """``counts[k]``: number of variants with k ALT (unfolded) or minor (folded) alleles."""

    counts: np.ndarray  # int64, length n_chromosomes + 1 (unfolded) or n_chromosomes // 2 + 1
    n_used: int  # variants fully called in the group (AN == n_chromosomes)
    n_excluded: int  # variants with a missing call in the group, left out


def site_frequency_spectrum(
    ac: np.ndarray, an: np.ndarray, n_chromosomes: int, folded: bool = False
) -> Sfs:
    """SFS over the variants whose every sample in the group is called (AN == n_chromosomes).

    ``ac``/``an``: ALT allele counts and allele numbers of one group (e.g. from
    ``allele_counts(counts.groups[:, g])``); ``n_chromosomes`` = 2 x group size. ALT is taken
    as the derived allele (true for simulated data; for real data prefer ``folded=True``).
    The folded spectrum counts min(AC, AN - AC) (scikit-allel ``sfs_folded``).
    """
    ac = np.asarray(ac, dtype=np.int64)
    an = np.asarray(an, dtype=np.int64)
    if ac.shape != an.shape or ac.ndim != 1:
        raise ValueError("ac and an must be 1-D arrays of the same length")
    if n_chromosomes < 0:
        raise ValueError("n_chromosomes must be >= 0")
    full = an == n_chromosomes
    k = ac[full]
    if (k < 0).any() or (k > n_chromosomes).any():
        raise ValueError("AC outside 0..AN")
    if folded:
        k = np.minimum(k, n_chromosomes - k)
        size = n_chromosomes // 2 + 1
    else:
        size = n_chromosomes + 1
    counts = np.bincount(k, minlength=size).astype(np.int64)
    return Sfs(counts=counts, n_used=int(full.sum()), n_excluded=int((~full).sum()))
