"""A compiled multi-frame product of a bins × pixels matrix: one pass over the matrix serves 32 frames.

Optional: the kernel is compiled with numba (``pip install ptyprep[fast]``); without numba
:func:`lanes_kernel` returns None, says so once in the log (debug level), and
:class:`ptyprep.fast.sparsebins.BinMatrix` keeps scipy's per-frame product.

Why pixels, and why 32 lanes
----------------------------
scipy's CSR product of one frame streams the whole matrix (an Eiger 1M q-φ map: 1.6 M
non-zeros, 13 MB) for every frame, and a ``mat @ block`` would need the (P, N) transpose of
the stack. Here the matrix is stored column by column (CSC: for each pixel, the bins it feeds)
and swept once per block of ``LANES`` = 32 frames:

* for each pixel, its 32 values (one per frame, each frame read once, in order) are cast to the
  weights' dtype and held in registers — the transpose happens there, not in memory;
* each of the pixel's bins adds ``weight × value`` into its 32 sums, which sit side by side
  (``acc[bin, frame]``, 128 bytes a bin); the bins open at any pixel (a few hundred) stay in
  the first-level cache.

The 32 lanes are written out one by one; numba compiles this one function with LLVM's SLP
vectoriser on (``NUMBA_SLP_VECTORIZE``, off by default in numba and left so for all other
code), which turns them into vector loads, multiplies and adds. Measured on an Eiger 1M,
500 × 180 bins: 0.97 ms a frame against 2.2 ms for the earlier ring of pixel rows × frames
(whose fill and in-memory row sums cost most) and 1.4 ms with 8 lanes (``benchmarks/README.md``).

Equality
--------
Each bin is summed in the weights' dtype (float32 for maps, float64 for variances), over its
pixels in increasing pixel order from 0 — the order in which the sweep reaches them, and
exactly the order of scipy's ``csr_matvec`` — with a multiply then an add (numba compiles
without fastmath, so no fused multiply-adds): the result is bit-identical to the plain
``mat @ frame.astype(weights.dtype)`` of each frame (``tests/test_kernels.py``).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

try:  # optional dependency: the `fast` extra
    import numba
    from numba.core import config as _numba_config
    from numba.extending import overload
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    numba = None

__all__ = ["lanes_kernel", "PixelPlan", "FRAME_DTYPES", "LANES", "MIN_FRAMES"]

log = logging.getLogger(__name__)

#: Frame dtypes the kernel reads directly (others take scipy's path).
FRAME_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64, np.int8,
                                               np.int16, np.int32, np.int64, np.float32, np.float64))
#: Frames one sweep of the matrix serves (the kernel's lanes).
LANES = 32
#: Fewest frames worth a sweep: a sweep costs about as much for 1 frame as for 32, so fewer
#: frames (a small stack, or what is left after whole blocks) take scipy's per-frame product.
MIN_FRAMES = 10

_said = []
_ready = set()                  # (weights dtype, frames dtype) compiled in this process
_compile_lock = threading.Lock()


def lanes_kernel():
    """The compiled block product (a callable), or None (logged once at debug level) without numba."""
    if numba is None:
        if not _said:
            _said.append(True)
            log.debug("numba is not importable: q-phi binning uses scipy's per-frame CSR product "
                      "(install ptyprep[fast] for the multi-frame kernel)")
        return None
    return _run


def _run(colptr, rowidx, data, bins, flat, base, acc, out, row0):
    """``_lanes`` compiled (or loaded from numba's cache) with the SLP vectoriser for these dtypes."""
    key = (data.dtype, flat.dtype)
    if key not in _ready:
        with _compile_lock:
            saved = _numba_config.SLP_VECTORIZE
            _numba_config.SLP_VECTORIZE = 1
            try:
                _lanes(colptr, rowidx, data, bins, flat, base, acc, out, row0)
            finally:
                _numba_config.SLP_VECTORIZE = saved
            _ready.add(key)
        return
    _lanes(colptr, rowidx, data, bins, flat, base, acc, out, row0)


class PixelPlan:
    """The non-empty rows of a CSR matrix, pixel by pixel (CSC), for the lanes kernel.

    Parameters
    ----------
    mat : (R, P) scipy.sparse.csr_matrix

    Attributes
    ----------
    colptr (int64), rowidx (int32), data : the CSC of the r non-empty rows; kernel row k
    bins : (r,) int64, the row of ``mat`` of each kernel row
    """

    def __init__(self, mat):
        filled = np.flatnonzero(np.diff(mat.indptr))
        sub = mat[filled].tocsc()
        sub.sort_indices()
        self.csc = sub                           # also the per-frame product for leftovers
        self.colptr = sub.indptr.astype(np.int64)
        self.rowidx = sub.indices.astype(np.int32)
        self.data = sub.data
        self.bins = filled.astype(np.int64)
        self.n_bins, self.n_pixels = mat.shape

    def product(self, frames, dtype, kernel):
        """(N, R) array of ``mat @ frames[i]`` in ``dtype``; 0 in empty rows.

        Whole blocks of ``LANES`` frames go through ``kernel``; the last ``N mod LANES`` frames
        too if there are at least ``MIN_FRAMES`` of them (the last block then overlaps the one
        before and recomputes its frames identically; a stack of fewer than ``LANES`` frames is
        padded with zeros), else one by one through scipy's CSC product, which sums each bin in
        the same order.
        """
        frames = np.ascontiguousarray(frames).reshape(len(frames), self.n_pixels)
        n, p = frames.shape
        out = np.zeros((n, self.n_bins), dtype=dtype)
        data = self.data.astype(dtype, copy=False)
        acc = np.empty(self.bins.size * LANES, dtype=dtype)
        whole = n - n % LANES
        args = (self.colptr, self.rowidx, data, self.bins)
        for g0 in range(0, whole, LANES):
            kernel(*args, frames.reshape(-1), g0 * p, acc, out, g0)
        rest = n - whole
        if rest >= MIN_FRAMES and whole:
            kernel(*args, frames.reshape(-1), (n - LANES) * p, acc, out, n - LANES)
        elif rest >= MIN_FRAMES:
            padded = np.zeros((LANES, p), dtype=frames.dtype)
            padded[:n] = frames
            block = np.zeros((LANES, self.n_bins), dtype=dtype)
            kernel(*args, padded.reshape(-1), 0, acc, block, 0)
            out[:] = block[:n]
        else:
            csc = self.csc if self.csc.dtype == dtype else self.csc.astype(dtype)
            for i in range(whole, n):
                out[i, self.bins] = csc @ frames[i].astype(dtype)
        return out


def _compiled(**options):
    """numba.njit with the on-disk cache where numba can write one (else compiled per process:
    a package folder the user cannot write, e.g. a system install run by another user)."""
    def decorate(func):
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:            # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(func)
    return decorate


def _cast(value, like):
    """``value`` in the dtype of the array ``like`` (compiled code only)."""
    raise NotImplementedError("_cast is only callable from compiled code")


if numba is not None:
    _u64 = numba.uint64

    @overload(_cast, inline="always")
    def _cast_numba(value, like):
        to = like.dtype

        def cast(value, like):
            return to(value)
        return cast

    @_compiled(nogil=True)
    def _lanes(colptr, rowidx, data, bins, flat, base, acc, out, row0):
        # frames row0 … row0 + 31 of the stack start at flat[base + f * P]; acc[k * LANES + f]
        # is frame f's sum of kernel row k: pixel by pixel, the 32 values of the pixel are
        # added into each of its rows (explicit lanes: numba's SLP pass makes them vectors)
        n_pixels = colptr.size - 1
        s = _u64(n_pixels)
        acc[:] = 0
        for p in range(n_pixels):
            a = colptr[p]
            b = colptr[p + 1]
            if a == b:
                continue
            q = _u64(base) + _u64(p)
            v0 = _cast(flat[q], acc)
            v1 = _cast(flat[q + s], acc)
            v2 = _cast(flat[q + s * _u64(2)], acc)
            v3 = _cast(flat[q + s * _u64(3)], acc)
            v4 = _cast(flat[q + s * _u64(4)], acc)
            v5 = _cast(flat[q + s * _u64(5)], acc)
            v6 = _cast(flat[q + s * _u64(6)], acc)
            v7 = _cast(flat[q + s * _u64(7)], acc)
            v8 = _cast(flat[q + s * _u64(8)], acc)
            v9 = _cast(flat[q + s * _u64(9)], acc)
            v10 = _cast(flat[q + s * _u64(10)], acc)
            v11 = _cast(flat[q + s * _u64(11)], acc)
            v12 = _cast(flat[q + s * _u64(12)], acc)
            v13 = _cast(flat[q + s * _u64(13)], acc)
            v14 = _cast(flat[q + s * _u64(14)], acc)
            v15 = _cast(flat[q + s * _u64(15)], acc)
            v16 = _cast(flat[q + s * _u64(16)], acc)
            v17 = _cast(flat[q + s * _u64(17)], acc)
            v18 = _cast(flat[q + s * _u64(18)], acc)
            v19 = _cast(flat[q + s * _u64(19)], acc)
            v20 = _cast(flat[q + s * _u64(20)], acc)
            v21 = _cast(flat[q + s * _u64(21)], acc)
            v22 = _cast(flat[q + s * _u64(22)], acc)
            v23 = _cast(flat[q + s * _u64(23)], acc)
            v24 = _cast(flat[q + s * _u64(24)], acc)
            v25 = _cast(flat[q + s * _u64(25)], acc)
            v26 = _cast(flat[q + s * _u64(26)], acc)
            v27 = _cast(flat[q + s * _u64(27)], acc)
            v28 = _cast(flat[q + s * _u64(28)], acc)
            v29 = _cast(flat[q + s * _u64(29)], acc)
            v30 = _cast(flat[q + s * _u64(30)], acc)
            v31 = _cast(flat[q + s * _u64(31)], acc)
            for j in range(a, b):
                w = data[j]
                at = _u64(rowidx[j]) * _u64(LANES)
                acc[at] += w * v0
                acc[at + _u64(1)] += w * v1
                acc[at + _u64(2)] += w * v2
                acc[at + _u64(3)] += w * v3
                acc[at + _u64(4)] += w * v4
                acc[at + _u64(5)] += w * v5
                acc[at + _u64(6)] += w * v6
                acc[at + _u64(7)] += w * v7
                acc[at + _u64(8)] += w * v8
                acc[at + _u64(9)] += w * v9
                acc[at + _u64(10)] += w * v10
                acc[at + _u64(11)] += w * v11
                acc[at + _u64(12)] += w * v12
                acc[at + _u64(13)] += w * v13
                acc[at + _u64(14)] += w * v14
                acc[at + _u64(15)] += w * v15
                acc[at + _u64(16)] += w * v16
                acc[at + _u64(17)] += w * v17
                acc[at + _u64(18)] += w * v18
                acc[at + _u64(19)] += w * v19
                acc[at + _u64(20)] += w * v20
                acc[at + _u64(21)] += w * v21
                acc[at + _u64(22)] += w * v22
                acc[at + _u64(23)] += w * v23
                acc[at + _u64(24)] += w * v24
                acc[at + _u64(25)] += w * v25
                acc[at + _u64(26)] += w * v26
                acc[at + _u64(27)] += w * v27
                acc[at + _u64(28)] += w * v28
                acc[at + _u64(29)] += w * v29
                acc[at + _u64(30)] += w * v30
                acc[at + _u64(31)] += w * v31
        r = _u64(row0)
        for k in range(bins.size):
            col = _u64(bins[k])
            at = _u64(k) * _u64(LANES)
            out[r, col] = acc[at]
            out[r + _u64(1), col] = acc[at + _u64(1)]
            out[r + _u64(2), col] = acc[at + _u64(2)]
            out[r + _u64(3), col] = acc[at + _u64(3)]
            out[r + _u64(4), col] = acc[at + _u64(4)]
            out[r + _u64(5), col] = acc[at + _u64(5)]
            out[r + _u64(6), col] = acc[at + _u64(6)]
            out[r + _u64(7), col] = acc[at + _u64(7)]
            out[r + _u64(8), col] = acc[at + _u64(8)]
            out[r + _u64(9), col] = acc[at + _u64(9)]
            out[r + _u64(10), col] = acc[at + _u64(10)]
            out[r + _u64(11), col] = acc[at + _u64(11)]
            out[r + _u64(12), col] = acc[at + _u64(12)]
            out[r + _u64(13), col] = acc[at + _u64(13)]
            out[r + _u64(14), col] = acc[at + _u64(14)]
            out[r + _u64(15), col] = acc[at + _u64(15)]
            out[r + _u64(16), col] = acc[at + _u64(16)]
            out[r + _u64(17), col] = acc[at + _u64(17)]
            out[r + _u64(18), col] = acc[at + _u64(18)]
            out[r + _u64(19), col] = acc[at + _u64(19)]
            out[r + _u64(20), col] = acc[at + _u64(20)]
            out[r + _u64(21), col] = acc[at + _u64(21)]
            out[r + _u64(22), col] = acc[at + _u64(22)]
            out[r + _u64(23), col] = acc[at + _u64(23)]
            out[r + _u64(24), col] = acc[at + _u64(24)]
            out[r + _u64(25), col] = acc[at + _u64(25)]
            out[r + _u64(26), col] = acc[at + _u64(26)]
            out[r + _u64(27), col] = acc[at + _u64(27)]
            out[r + _u64(28), col] = acc[at + _u64(28)]
            out[r + _u64(29), col] = acc[at + _u64(29)]
            out[r + _u64(30), col] = acc[at + _u64(30)]
            out[r + _u64(31), col] = acc[at + _u64(31)]
