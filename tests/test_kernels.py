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
@pytest.mark.parametrize("n_frames", [0, 1, 3, 8, 13, 40])
def test_kernel_is_the_plain_product(n_frames):
    rng = np.random.default_rng(n_frames)
    mat = _matrix(rng)
    plan = kernels.RingPlan(mat)
    frames = rng.poisson(40, (n_frames, mat.shape[1])).astype(np.uint32)
    got = plan.product(frames, np.float32, kernels.ring_kernel())
    assert got.shape == (n_frames, mat.shape[0]) and got.dtype == np.float32
    np.testing.assert_array_equal(got, _plain(mat, frames))          # same sums, same order
    exact = frames.astype(np.float64) @ mat.toarray().astype(np.float64).T
    np.testing.assert_allclose(got, exact, rtol=1e-6)
    assert (got[:, ::9] == 0).all()                                   # empty rows


@needs_numba
def test_kernel_blocks_and_ring_wrap(monkeypatch):
    # a ring much narrower than the frame (it wraps many times) and blocks of 3 frames
    rng = np.random.default_rng(11)
    mat = _matrix(rng, rows=300, pixels=20000, span=700)
    monkeypatch.setattr(kernels, "CHUNK_PIXELS", 256)
    monkeypatch.setattr(kernels, "RING_BYTES", 3 * 1024 * 4 * 4)
    plan = kernels.RingPlan(mat)
    assert plan.width == 1024 and plan.capacity(4) == 12 and plan.block(10, 4) == 10
    monkeypatch.setattr(kernels, "RING_BYTES", 3 * 1024 * 4)
    assert plan.block(10, 4) == 3
    frames = rng.integers(0, 1000, (10, mat.shape[1])).astype(np.int32)
    np.testing.assert_array_equal(plan.product(frames, np.float32, kernels.ring_kernel()),
                                  _plain(mat, frames))


@needs_numba
@pytest.mark.parametrize("dtype", [np.uint16, np.int64, np.float32, np.float64])
def test_kernel_casts_any_frame_dtype(dtype):
    rng = np.random.default_rng(3)
    mat = _matrix(rng)
    frames = (rng.random((5, mat.shape[1])) * 300).astype(dtype)
    got = kernels.RingPlan(mat).product(frames, np.float32, kernels.ring_kernel())
    np.testing.assert_array_equal(got, _plain(mat, frames))


@needs_numba
@pytest.mark.parametrize("band_pixels", [None, 128, 1000])
@pytest.mark.parametrize("with_monitor", [False, True])
def test_binmatrix_uses_the_kernel_and_equals_the_plain_path(band_pixels, with_monitor, monkeypatch):
    rng = np.random.default_rng(5)
    mat = _matrix(rng)
    norm = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    norm[norm == 0] = np.nan
    offset = rng.uniform(0, 3, mat.shape[0])
    frames = rng.poisson(30, (9, mat.shape[1])).astype(np.uint32)
    frames[2, :500] = 0
    monitor = rng.uniform(0.5, 2.0, 9) if with_monitor else None
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
    counts = rng.poisson(20, (4, mat.shape[1])).astype(np.float64)
    sq = BinMatrix(mat, norm, band_pixels=700).squared()
    got = sq.apply(counts, np.array([1.0, 2.0, 3.0, 4.0]) ** 2)
    assert sq._plan is not None
    dense = mat.toarray().astype(np.float64) ** 2
    want = counts @ dense.T / norm ** 2 / (np.array([1.0, 2.0, 3.0, 4.0]) ** 2)[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_without_numba_binmatrix_keeps_scipys_path(monkeypatch, caplog):
    rng = np.random.default_rng(6)
    mat = _matrix(rng)
    monkeypatch.setattr(kernels, "numba", None)
    monkeypatch.setattr(kernels, "_said", [])
    frames = rng.poisson(30, (4, mat.shape[1])).astype(np.uint16)
    bins = BinMatrix(mat, np.ones(mat.shape[0]))
    with caplog.at_level(logging.DEBUG, logger="ptyprep.fast.kernels"):
        got = bins.apply(frames)
        bins.apply(frames)
    assert kernels.ring_kernel() is None and bins._plan is None
    said = [r for r in caplog.records if "numba is not importable" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.DEBUG           # once, at debug
    np.testing.assert_array_equal(got, _plain(mat, frames))


@needs_numba
def test_a_ring_too_wide_for_the_cache_keeps_scipys_path(monkeypatch):
    rng = np.random.default_rng(9)
    mat = _matrix(rng)
    monkeypatch.setattr(kernels, "RING_BYTES", 1024)
    frames = rng.poisson(30, (3, mat.shape[1])).astype(np.uint32)
    bins = BinMatrix(mat, np.ones(mat.shape[0]))
    calls = []
    monkeypatch.setattr(kernels.RingPlan, "product", lambda *a: calls.append(a))
    np.testing.assert_array_equal(bins.apply(frames), _plain(mat, frames))
    assert calls == []
