"""A compiled multi-frame CSR product: one pass over the matrix serves a block of frames.

Optional: the kernel is compiled with numba (``pip install ptyprep[fast]``); without numba
:func:`ring_kernel` returns None, says so once in the log (debug level), and
:class:`ptyprep.fast.sparsebins.BinMatrix` keeps scipy's per-frame product.

Why a block and why a ring
--------------------------
scipy's CSR product of one frame streams the whole matrix (an Eiger 1M q-φ map: 1.6 M
non-zeros, 13 MB) for every frame, and a ``mat @ block`` would need the (P, N) transpose of the
stack. Here the rows are sorted by their last pixel and swept once per block of G frames:

* a **ring** of W pixel rows × G frames holds the frames' float values of the pixels
  ``[hi − W, hi)``; it is filled (cast from the frames' own dtype, transposed to pixel-major)
  a chunk of pixels ahead of the rows that need it, so a pixel of a frame is read from memory
  once, and W (a power of two larger than the widest row's pixel span plus one chunk) keeps
  every pixel of the current row in the ring. No row is split, so no partial sums;
* each row's G sums run over the G contiguous values of each of its pixels (vectorised over
  frames), while the matrix itself is read once per block, not once per frame.

Equality
--------
Each bin is summed in the weights' dtype (float32 for maps, float64 for variances), over its
pixels in increasing column order from 0, exactly as scipy's ``csr_matvec`` does, without
fused multiply-adds (numba compiles without fastmath): the result is bit-identical to the plain
``mat @ frame.astype(weights.dtype)`` of each frame.
"""

from __future__ import annotations

import logging

import numpy as np

try:  # optional dependency: the `fast` extra
    import numba
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    numba = None

__all__ = ["ring_kernel", "RingPlan", "FRAME_DTYPES", "RING_BYTES", "CHUNK_PIXELS", "MIN_BLOCK"]

log = logging.getLogger(__name__)

#: Frame dtypes the kernel reads directly (others take scipy's path).
FRAME_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64, np.int8,
                                               np.int16, np.int32, np.int64, np.float32, np.float64))
#: Bytes of the ring (W pixels × G frames), sized to stay in the last-level cache.
RING_BYTES = 2 << 20
#: Pixels the ring is filled ahead of the row that needs them.
CHUNK_PIXELS = 2048
#: Most frames per block.
MAX_BLOCK = 32
#: Fewest frames per block worth the kernel: below (a ring too wide for the cache, as for
#: coarse bins or an Eiger 4M) the matrix is read too often and scipy's banded path is kept.
MIN_BLOCK = 8

_said = []


def ring_kernel():
    """The compiled block product, or None (logged once at debug level) without numba."""
    if numba is None:
        if not _said:
            _said.append(True)
            log.debug("numba is not importable: q-phi binning uses scipy's per-frame CSR product "
                      "(install ptyprep[fast] for the multi-frame kernel)")
        return None
    return _block


class RingPlan:
    """The non-empty rows of a CSR matrix in kernel order and the ring that fits them.

    Parameters
    ----------
    mat : (R, P) scipy.sparse.csr_matrix with sorted indices

    Attributes
    ----------
    data, indices (int64), indptr (int64) : the rows sorted by last pixel, stable
    bins : (r,) int64, the row of ``mat`` of each kernel row
    width : int, W, ring rows (a power of two)
    """

    def __init__(self, mat):
        lengths = np.diff(mat.indptr)
        filled = np.flatnonzero(lengths)
        sub = mat[filled]
        sub.sort_indices()
        first = sub.indices[sub.indptr[:-1]].astype(np.int64)
        last = sub.indices[sub.indptr[1:] - 1].astype(np.int64)
        order = np.argsort(last, kind="stable")
        sub = sub[order]
        self.data = sub.data
        self.indices = sub.indices.astype(np.int64)
        self.indptr = sub.indptr.astype(np.int64)
        self.bins = filled[order].astype(np.int64)
        span = int((last - first).max(initial=0)) + 1
        self.width = 1 << int(np.ceil(np.log2(span + CHUNK_PIXELS + 1)))
        self.n_bins, self.n_pixels = mat.shape

    def capacity(self, itemsize):
        """Frames a ring of ``RING_BYTES`` holds (at most ``MAX_BLOCK``)."""
        return int(min(MAX_BLOCK, RING_BYTES // (self.width * itemsize)))

    def block(self, n_frames, itemsize):
        """Frames per block: the capacity, at least 1, at most N."""
        return int(max(1, min(n_frames, self.capacity(itemsize))))

    def product(self, frames, dtype, kernel):
        """(N, R) array of ``mat @ frames[i]`` in ``dtype``; 0 in empty rows."""
        frames = np.ascontiguousarray(frames)
        n = frames.shape[0]
        out = np.zeros((n, self.n_bins), dtype=dtype)
        g = self.block(n, out.itemsize)
        ring = np.empty(self.width * g, dtype=dtype)
        acc = np.empty(g, dtype=dtype)
        for g0 in range(0, n, g):
            kernel(self.data, self.indices, self.indptr, self.bins, frames, g0, min(g, n - g0),
                   ring, acc, self.width - 1, CHUNK_PIXELS, out)
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


if numba is not None:
    _u64 = numba.uint64

    @_compiled(nogil=True, inline="always")
    def _fill(flat, n_pixels, g0, g, lo, hi, ring, mask):
        # pixels lo:hi of frames g0:g0+g → ring rows (p & mask), column f; blocks of 64
        # pixels keep the ring lines being written in L1 while g frames are read
        p0 = lo
        while p0 < hi:
            p1 = min(hi, p0 + 64)
            for f in range(g):
                src = (g0 + f) * n_pixels
                for p in range(p0, p1):
                    ring[_u64((p & mask) * g + f)] = flat[_u64(src + p)]
            p0 = p1

    @_compiled(nogil=True)
    def _block(data, indices, indptr, bins, frames, g0, g, ring, acc, mask, chunk, out):
        n_pixels = frames.shape[1]
        flat = frames.ravel()
        hi = 0                                   # the ring holds pixels [hi - W, hi)
        for r in range(indptr.size - 1):
            a, b = indptr[r], indptr[r + 1]
            need = indices[b - 1] + 1
            if need > hi:
                new = min(n_pixels, max(need, hi + chunk))
                _fill(flat, n_pixels, g0, g, hi, new, ring, mask)
                hi = new
            for f in range(g):
                acc[f] = 0
            for j in range(a, b):
                w = data[j]
                at = _u64((indices[j] & mask) * g)
                for f in range(g):
                    acc[f] += w * ring[at + _u64(f)]
            row = bins[r]
            for f in range(g):
                out[g0 + f, row] = acc[f]
