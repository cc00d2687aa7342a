"""The writer thread's joining of a few rows with the next ones (vault.ingest.pipeline)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from vault.ingest.pipeline import _joinable, _joined


def _rows(contig: int, pos: list[int], width: int = 2, **extra: pa.Array):
    cols = {"pos": pa.array(pos, pa.int64()), "ref": pa.array(["A"] * len(pos)), **extra}
    packed = np.arange(len(pos) * width, dtype=np.uint8).reshape(len(pos), width)
    return contig, cols, packed


def test_joined__keeps_order_of_rows_columns_and_genotypes():
    a = _rows(0, [5])
    b = _rows(0, [7, 9])
    ci, cols, packed = _joined(a, b)
    assert ci == 0
    assert cols["pos"].to_pylist() == [5, 7, 9]
    assert cols["ref"].to_pylist() == ["A", "A", "A"]
    assert np.array_equal(packed, np.vstack([a[2], b[2]]))


@pytest.mark.parametrize(("first", "second", "ok"), [
    pytest.param(_rows(0, [1]), _rows(0, [2]), True, id="same-contig"),
    pytest.param(_rows(0, [1]), _rows(1, [2]), False, id="other-contig"),
    pytest.param(_rows(0, [1], info_DP=pa.array([1], pa.int32())),
                 _rows(0, [2], info_DP=pa.array([1.0], pa.float32())), False,
                 id="info-type-differs"),
    pytest.param(_rows(0, [1], info_DP=pa.array([1], pa.int32())), _rows(0, [2]), False,
                 id="info-column-missing"),
])
def test_joinable__only_same_contig_and_columns(first, second, ok):
    assert _joinable(first, second) is ok

