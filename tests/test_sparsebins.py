"""BinMatrix evaluates rows (and pixel bands) in its own order and returns the per-frame product:
exactly with one band, to float32 rounding with several."""

import numpy as np
import pytest
import scipy.sparse as sp

from ptyprep.fast.sparsebins import BinMatrix, execution_order, pixel_bands


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
    (band,) = bins.bands
    filled = np.flatnonzero(np.diff(mat.indptr))
    assert not np.array_equal(band.rows, filled)                  # it did reorder
    assert sorted(band.rows) == filled.tolist()                   # every non-empty row once
    assert (bins.bins_matrix() != mat).nnz == 0


def test_pixel_bands():
    assert pixel_bands(200).tolist() == [0, 200]
    assert pixel_bands(200, 64).tolist() == [0, 64, 128, 192, 200]
    assert pixel_bands(200, 200).tolist() == [0, 200]
    assert pixel_bands(1 << 21).tolist() == [0, 1 << 21]                # whole up to 2 Mi pixels
    assert pixel_bands((5 << 20) + 3).tolist() == [k << 18 for k in range(21)] + [(5 << 20) + 3]
    with pytest.raises(ValueError, match="positive"):
        pixel_bands(200, 0)


@pytest.mark.parametrize("band_pixels", [1, 37, 64, 199])
def test_bands_give_the_plain_product(band_pixels):
    rng = np.random.default_rng(5)
    mat = _matrix(rng)
    norm = rng.uniform(1, 3, mat.shape[0])
    offset = rng.uniform(0, 3, mat.shape[0])
    frames = rng.poisson(30, (4, mat.shape[1])).astype(np.uint16)
    monitor = rng.uniform(0.5, 2.0, 4)
    banded = BinMatrix(mat, norm, offset, band_pixels=band_pixels)
    assert len(banded.bands) == -(-mat.shape[1] // band_pixels)
    # the bands partition the non-zeros; no band keeps an empty row
    assert sum(b.mat.nnz for b in banded.bands) == mat.nnz
    assert all(np.diff(b.mat.indptr).min(initial=1) > 0 for b in banded.bands)
    assert (banded.bins_matrix() != mat).nnz == 0
    want = _reference(mat, norm, offset, frames, monitor)
    np.testing.assert_allclose(banded.apply(frames, monitor), want, rtol=2e-6, atol=1e-5)
    # float64 weights (summed in float64, returned as float32): float32 rounding of the result
    sq = banded.squared().apply(frames.astype(np.float64))
    dense = mat.toarray().astype(np.float64) ** 2
    np.testing.assert_allclose(sq, frames @ dense.T / norm ** 2, rtol=1.2e-7)


def test_stacked_needs_the_same_bands():
    rng = np.random.default_rng(6)
    mat = _matrix(rng)
    one = BinMatrix(mat, np.ones(mat.shape[0]), band_pixels=50)
    with pytest.raises(ValueError, match="same pixel bands"):
        one.stacked(BinMatrix(mat, np.ones(mat.shape[0])))
    frames = rng.poisson(10, (2, mat.shape[1])).astype(np.int32)
    both = one.stacked(BinMatrix(mat, np.ones(mat.shape[0]), band_pixels=50)).apply(frames)
    np.testing.assert_array_equal(both, np.concatenate([one.apply(frames)] * 2, axis=1))


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
