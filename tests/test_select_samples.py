"""Repacking the codes of the samples kept (withdrawal masking at read, compaction)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.store.reader import packed_bytes, select_samples


def naive(packed: np.ndarray, n: int, keep: np.ndarray) -> np.ndarray:
    """One code at a time, in plain Python."""
    kept = [s for s in range(n) if keep[s]]
    out = np.zeros((packed.shape[0], packed_bytes(len(kept))), np.uint8)
    for i in range(packed.shape[0]):
        for j, s in enumerate(kept):
            code = (int(packed[i, s // 4]) >> (2 * (s % 4))) & 3
            out[i, j // 4] |= code << (2 * (j % 4))
    return out


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 41), rows=st.integers(0, 6), seed=st.integers(0, 2**32 - 1),
       p_keep=st.floats(0.0, 1.0))
def test_select_samples_equals_one_code_at_a_time(n: int, rows: int, seed: int,
                                                  p_keep: float) -> None:
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, (rows, packed_bytes(n)), dtype=np.uint8)
    keep = rng.random(n) < p_keep
    got = select_samples(packed, n, keep)
    assert got.dtype == np.uint8 and got.shape == (rows, packed_bytes(int(keep.sum())))
    assert np.array_equal(got, naive(packed, n, keep))


@pytest.mark.parametrize("n", [4, 5, 8])
def test_select_samples_keeps_everything_or_nothing(n: int) -> None:
    packed = np.random.default_rng(n).integers(0, 256, (3, packed_bytes(n)), dtype=np.uint8)
    all_kept = select_samples(packed, n, np.ones(n, bool))
    assert np.array_equal(all_kept, naive(packed, n, np.ones(n, bool)))
    assert select_samples(packed, n, np.zeros(n, bool)).shape == (3, 0)
