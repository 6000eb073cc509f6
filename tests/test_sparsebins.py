"""BinMatrix evaluates rows in its own order and returns exactly the per-frame product."""

import numpy as np
import pytest
import scipy.sparse as sp

from ptyprep.sparsebins import BinMatrix, execution_order


def _matrix(rng, rows=60, pixels=200):
    """Random float32 CSR with rows of 0–20 non-zeros (some empty), indices sorted."""
    dense = np.zeros((rows, pixels), dtype=np.float32)
    for r in range(rows):
        k = rng.integers(0, 21) if r % 7 else 0
        cols = rng.choice(pixels, size=k, replace=False)
        dense[r, cols] = rng.uniform(0.05, 1.0, size=k)
    return sp.csr_matrix(dense)


def _reference(mat, norm, offset, frames, monitor):
    """The plain per-frame computation, in float32 like the fast path."""
    out = np.stack([mat @ f.astype(np.float32) for f in frames])
    if offset is not None:
        out -= offset.astype(np.float32)
    out *= (1.0 / norm).astype(np.float32)
    if monitor is not None:
        out /= monitor.astype(np.float32)[:, None]
    return out


@pytest.mark.parametrize("with_offset", [False, True])
@pytest.mark.parametrize("with_monitor", [False, True])
def test_apply_is_bit_identical_to_the_plain_product(with_offset, with_monitor):
    rng = np.random.default_rng(1)
    mat = _matrix(rng)
    norm = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    norm[norm == 0] = np.nan
    offset = rng.uniform(0, 3, mat.shape[0]) if with_offset else None
    frames = rng.poisson(30, (5, mat.shape[1])).astype(np.uint32)
    monitor = rng.uniform(0.5, 2.0, 5) if with_monitor else None
    got = BinMatrix(mat, norm, offset).apply(frames, monitor)
    want = _reference(mat, norm, offset, frames, monitor)
    assert got.dtype == np.float32 and got.shape == (5, mat.shape[0])
    np.testing.assert_array_equal(got, want)                 # NaN where norm is NaN, both sides
    assert np.isnan(got[:, 0]).all()                           # row 0 is empty
    np.testing.assert_array_equal(BinMatrix(mat, norm).covered, np.isfinite(norm))


def test_execution_order_groups_rows_by_length_then_position():
    mat = sp.csr_matrix(np.array([[0, 0, 1, 1],
                                  [1, 0, 0, 0],
                                  [0, 0, 0, 0],
                                  [1, 1, 0, 0],
                                  [0, 0, 0, 1]], dtype=np.float32))
    # lengths 2, 1, 0, 2, 1; mean columns 2.5, 0, -, 0.5, 3
    assert execution_order(mat).tolist() == [2, 1, 4, 3, 0]


def test_rows_come_back_in_the_callers_order():
    rng = np.random.default_rng(2)
    mat = _matrix(rng)
    bins = BinMatrix(mat, np.ones(mat.shape[0]))
    assert not np.array_equal(bins.order, np.arange(mat.shape[0]))   # it did reorder
    assert (bins.bins_matrix() != mat).nnz == 0
    np.testing.assert_array_equal(bins.order[bins.restore], np.arange(mat.shape[0]))


def test_stacked_gives_both_results_side_by_side():
    rng = np.random.default_rng(3)
    a, b = _matrix(rng, rows=40), _matrix(rng, rows=25)
    na, nb = rng.uniform(1, 2, 40), rng.uniform(1, 2, 25)
    off = rng.uniform(0, 1, 40)
    frames = rng.poisson(10, (3, a.shape[1])).astype(np.int32)
    one, two = BinMatrix(a, na, off), BinMatrix(b, nb)
    both = one.stacked(two).apply(frames)
    np.testing.assert_array_equal(both, np.concatenate([one.apply(frames), two.apply(frames)], axis=1))


def test_squared_propagates_variances():
    rng = np.random.default_rng(4)
    mat = _matrix(rng)
    norm = rng.uniform(1, 3, mat.shape[0])
    counts = rng.poisson(20, (2, mat.shape[1])).astype(np.float64)
    monitor = np.array([1.5, 2.5])
    got = BinMatrix(mat, norm, offset=np.ones(mat.shape[0])).squared().apply(counts, monitor ** 2)
    dense = mat.toarray().astype(np.float64)
    want = (counts @ (dense ** 2).T) / norm ** 2 / (monitor ** 2)[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-6)
