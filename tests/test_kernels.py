"""The compiled multi-frame kernel equals the plain per-frame product (bit for bit, and within
1e-6 of the float64 product), and without numba BinMatrix keeps scipy's path."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from ptyprep.fast import kernels
from ptyprep.fast.sparsebins import BinMatrix

needs_numba = pytest.mark.skipif(kernels.numba is None, reason="numba (the fast extra) is not installed")


def _matrix(rng, rows=90, pixels=3000, span=400):
    """Random float32 CSR whose rows gather 0–25 pixels within ``span`` (some rows empty)."""
    dense = np.zeros((rows, pixels), dtype=np.float32)
    for r in range(rows):
        if r % 9 == 0:
            continue
        lo = rng.integers(0, pixels - span)
        k = rng.integers(1, 26)
        dense[r, lo + rng.choice(span, size=k, replace=False)] = rng.uniform(0.05, 1.0, size=k)
    return sp.csr_matrix(dense)


def _plain(mat, frames, dtype=np.float32):
    """scipy's product, one frame at a time, in the weights' dtype."""
    return np.stack([mat @ f.astype(dtype) for f in frames]) if len(frames) else \
        np.zeros((0, mat.shape[0]), dtype)


@needs_numba
@pytest.mark.parametrize("n_frames", [0, 1, 3, 10, 13, 31, 32, 33, 41, 64, 75])
def test_kernel_is_the_plain_product(n_frames):
    # whole blocks of 32, a last block overlapping the one before (41, 75), a padded block
    # (10–31), scipy's CSC product for a few leftover frames (33) or a small stack (0–3)
    rng = np.random.default_rng(n_frames)
    mat = _matrix(rng)
    plan = kernels.PixelPlan(mat)
    frames = rng.poisson(40, (n_frames, mat.shape[1])).astype(np.uint32)
    got = plan.product(frames, np.float32, kernels.lanes_kernel())
    assert got.shape == (n_frames, mat.shape[0]) and got.dtype == np.float32
    np.testing.assert_array_equal(got, _plain(mat, frames))          # same sums, same order
    exact = frames.astype(np.float64) @ mat.toarray().astype(np.float64).T
    np.testing.assert_allclose(got, exact, rtol=1e-6)
    assert (got[:, ::9] == 0).all()                                   # empty rows


@needs_numba
def test_every_lane_is_its_own_frame():
    # frame i is i times one image: lane i of the block must hold i times the first sums
    rng = np.random.default_rng(12)
    mat = _matrix(rng)
    base = rng.integers(0, 50, mat.shape[1]).astype(np.int64)
    frames = np.arange(kernels.LANES)[:, None] * base
    got = kernels.PixelPlan(mat).product(frames, np.float64, kernels.lanes_kernel())
    want = mat.astype(np.float64) @ base.astype(np.float64)
    np.testing.assert_allclose(got, np.arange(kernels.LANES)[:, None] * want, rtol=1e-12)


@needs_numba
def test_rows_spanning_the_frame_and_pixels_in_many_bins():
    # a row over every 7th pixel of the frame, a pixel shared by 40 rows, an empty first pixel
    rng = np.random.default_rng(13)
    dense = np.zeros((60, 5000), dtype=np.float32)
    dense[0, 1::7] = rng.uniform(0.1, 1, dense[0, 1::7].size)
    dense[10:50, 2500] = rng.uniform(0.1, 1, 40)
    dense[55, 4999] = 0.5
    mat = sp.csr_matrix(dense)
    frames = rng.integers(0, 2 ** 16, (40, 5000)).astype(np.uint16)
    got = kernels.PixelPlan(mat).product(frames, np.float32, kernels.lanes_kernel())
    np.testing.assert_array_equal(got, _plain(mat, frames))


@needs_numba
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64])
def test_kernel_casts_any_frame_dtype(dtype):
    rng = np.random.default_rng(3)
    mat = _matrix(rng)
    frames = (rng.random((12, mat.shape[1])) * 120).astype(dtype)
    got = kernels.PixelPlan(mat).product(frames, np.float32, kernels.lanes_kernel())
    np.testing.assert_array_equal(got, _plain(mat, frames))


@needs_numba
def test_the_vectoriser_setting_is_numbas_own_again(monkeypatch):
    # the kernel is compiled with the SLP vectoriser; numba's setting for all other code is
    # restored, and a second dtype compiles (or loads) under the same switch
    from numba.core import config

    before = config.SLP_VECTORIZE
    monkeypatch.setattr(kernels, "_ready", set())
    rng = np.random.default_rng(4)
    mat = _matrix(rng)
    for dtype in (np.uint32, np.int16):
        frames = rng.integers(0, 100, (12, mat.shape[1])).astype(dtype)
        got = kernels.PixelPlan(mat).product(frames, np.float32, kernels.lanes_kernel())
        np.testing.assert_array_equal(got, _plain(mat, frames))
        assert config.SLP_VECTORIZE == before
    assert kernels._ready == {(np.dtype(np.float32), np.dtype(np.uint32)),
                              (np.dtype(np.float32), np.dtype(np.int16))}


@needs_numba
@pytest.mark.parametrize("band_pixels", [None, 128, 1000])
@pytest.mark.parametrize("with_monitor", [False, True])
def test_binmatrix_uses_the_kernel_and_equals_the_plain_path(band_pixels, with_monitor, monkeypatch):
    rng = np.random.default_rng(5)
    mat = _matrix(rng)
    norm = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    norm[norm == 0] = np.nan
    offset = rng.uniform(0, 3, mat.shape[0])
    frames = rng.poisson(30, (45, mat.shape[1])).astype(np.uint32)
    frames[2, :500] = 0
    monitor = rng.uniform(0.5, 2.0, 45) if with_monitor else None
    bins = BinMatrix(mat, norm, offset, band_pixels=band_pixels)
    got = bins.apply(frames, monitor)
    assert bins._plan is not None                                     # the kernel ran
    want = _plain(mat, frames)                                        # plain, unbanded
    want -= offset.astype(np.float32)
    want *= (1.0 / norm).astype(np.float32)
    if monitor is not None:
        want /= monitor.astype(np.float32)[:, None]
    np.testing.assert_array_equal(got, want)                          # NaN in empty bins too
    assert np.isnan(got[:, ::9]).all()
    # the scipy path (bands regroup the sums) agrees within float32 rounding
    monkeypatch.setattr(kernels, "numba", None)
    fallback = BinMatrix(mat, norm, offset, band_pixels=band_pixels).apply(frames, monitor)
    np.testing.assert_allclose(got, fallback, rtol=1e-6, atol=1e-6)
    if band_pixels is None:
        np.testing.assert_array_equal(got, fallback)


@needs_numba
def test_kernel_variances_in_float64():
    rng = np.random.default_rng(8)
    mat = _matrix(rng)
    norm = rng.uniform(1, 3, mat.shape[0])
    counts = rng.poisson(20, (12, mat.shape[1])).astype(np.float64)
    monitor = np.arange(1.0, 13.0)
    sq = BinMatrix(mat, norm, band_pixels=700).squared()
    got = sq.apply(counts, monitor ** 2)
    assert sq._plan is not None
    dense = mat.toarray().astype(np.float64) ** 2
    want = counts @ dense.T / norm ** 2 / (monitor ** 2)[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_without_numba_binmatrix_keeps_scipys_path(monkeypatch, caplog):
    rng = np.random.default_rng(6)
    mat = _matrix(rng)
    monkeypatch.setattr(kernels, "numba", None)
    monkeypatch.setattr(kernels, "_said", [])
    frames = rng.poisson(30, (12, mat.shape[1])).astype(np.uint16)
    bins = BinMatrix(mat, np.ones(mat.shape[0]))
    with caplog.at_level(logging.DEBUG, logger="ptyprep.fast.kernels"):
        got = bins.apply(frames)
        bins.apply(frames)
    assert kernels.lanes_kernel() is None and bins._plan is None
    said = [r for r in caplog.records if "numba is not importable" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.DEBUG           # once, at debug
    np.testing.assert_array_equal(got, _plain(mat, frames))


@needs_numba
def test_a_small_stack_keeps_scipys_path(monkeypatch):
    # fewer than MIN_FRAMES frames: a sweep would cost as much as 32 frames
    rng = np.random.default_rng(9)
    mat = _matrix(rng)
    frames = rng.poisson(30, (kernels.MIN_FRAMES - 1, mat.shape[1])).astype(np.uint32)
    bins = BinMatrix(mat, np.ones(mat.shape[0]))
    calls = []
    monkeypatch.setattr(kernels.PixelPlan, "product", lambda *a: calls.append(a))
    np.testing.assert_array_equal(bins.apply(frames), _plain(mat, frames))
    assert calls == [] and bins._plan is None
