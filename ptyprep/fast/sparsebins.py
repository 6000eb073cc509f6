"""A sparse bins × pixels matrix applied to stacks of frames, in the order that runs fastest.

Pure numpy/scipy: :mod:`ptyprep.saxs.integrate` builds the matrix from pyFAI's geometry and hands
it here. :meth:`BinMatrix.apply` returns ``mat @ frame`` per frame in the caller's bin order;
only the order in which the products are *evaluated* changes.

Two orders matter on a CPU:

* **Rows.** scipy's CSR product walks one row at a time, its inner loop running over the
  row's non-zeros. With many short rows (a 500 × 180 q-φ map of an Eiger 1M has 90 000 rows
  of 2–46 pixels) the end of every row is a mispredicted branch unless rows of equal length
  come one after another, and the gathers from the frame hit the cache better when rows of
  similar pixels follow each other. Rows sorted by (length, mean pixel index) measured
  20–25 % less time per frame than pyFAI's (q, χ) order.
* **Pixels.** The product gathers ``frame[pixel]`` all over the float32 copy of the frame.
  Up to ``WHOLE_FRAME_PIXELS`` that copy stays in the last-level cache beside the matrix;
  beyond (an Eiger 4M: 18 MB of frame and 22–35 MB of matrix against a 32 MB L3) every
  gather missed, and the frame is cast and binned in bands of ``BAND_PIXELS`` consecutive
  pixels (1 MiB of float32) that stay in cache while the matrix streams past: 1.2–2.2×
  less time per Eiger 4M frame, no gain on an Eiger 1M (``benchmarks/README.md``).

With one band the result is bit-identical to ``mat @ frame``; with bands each bin is the sum
of its bands' partial sums, which regroups the float32 additions (~1e-6 relative).

When numba is importable (the ``fast`` extra), :meth:`BinMatrix.apply` runs the multi-frame
kernel of :mod:`ptyprep.fast.kernels` instead for stacks of at least ``MIN_FRAMES`` frames: the
matrix is read once per block of 32 frames, no bands, bit-identical to ``mat @ frame`` (so to
the above with one band).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import kernels

__all__ = ["BinMatrix", "execution_order", "pixel_bands", "WHOLE_FRAME_PIXELS", "BAND_PIXELS"]

#: Frames of up to this many pixels (8 MiB as float32) are cast and binned whole.
WHOLE_FRAME_PIXELS = 1 << 21
#: Larger frames in bands of this many consecutive pixels (1 MiB as float32).
BAND_PIXELS = 1 << 18


def execution_order(mat):
    """Row order of ``mat`` that scipy's CSR product runs fastest.

    Parameters
    ----------
    mat : (R, P) scipy.sparse.csr_matrix

    Returns
    -------
    order : (R,) int64 ndarray
        Rows sorted by number of non-zeros, ties by mean column index (stable).
    """
    lengths = np.diff(mat.indptr)
    rows = np.repeat(np.arange(mat.shape[0]), lengths)
    mean_col = np.bincount(rows, weights=mat.indices, minlength=mat.shape[0]).astype(np.float64)
    filled = lengths > 0
    mean_col[filled] /= lengths[filled]
    return np.lexsort((mean_col, lengths))


def pixel_bands(n_pixels, band_pixels=None):
    """Edges of the pixel bands a frame of ``n_pixels`` is binned in.

    Parameters
    ----------
    n_pixels : int
        P, pixels of a frame (H·W).
    band_pixels : int, optional
        Pixels per band; default: the whole frame up to ``WHOLE_FRAME_PIXELS``, else
        ``BAND_PIXELS``.

    Returns
    -------
    edges : (B + 1,) int64 ndarray
        Band b holds pixels ``edges[b]:edges[b + 1]``; ``[0, P]`` for one band.
    """
    if band_pixels is None:
        band_pixels = n_pixels if n_pixels <= WHOLE_FRAME_PIXELS else BAND_PIXELS
    if band_pixels < 1:
        raise ValueError(f"band_pixels must be a positive number of pixels, not {band_pixels}")
    return np.append(np.arange(0, n_pixels, band_pixels, dtype=np.int64), np.int64(n_pixels))


@dataclass(frozen=True)
class _Band:
    """The non-empty rows of the matrix restricted to pixels ``start:stop``."""

    start: int
    stop: int
    mat: sp.csr_matrix      # (r, stop − start), rows in execution order
    rows: np.ndarray        # (r,) int64: the bin (caller's order) of each row


def _band(mat, start, stop):
    sub = mat[:, start:stop] if (start, stop) != (0, mat.shape[1]) else mat
    filled = np.flatnonzero(np.diff(sub.indptr))
    sub = sub[filled]
    order = execution_order(sub)
    return _Band(int(start), int(stop), sub[order], filled[order].astype(np.int64))


class BinMatrix:
    """Normalised sparse binning of frame stacks.

    Parameters
    ----------
    mat : (R, P) scipy.sparse.csr_matrix, float32
        Pixel weights of each bin, rows in the caller's bin order, P = H·W pixels.
    norm : (R,) ndarray, float64
        Divisor of each bin; NaN for bins no pixel reaches.
    offset : (R,) ndarray, optional
        Subtracted from each bin before the division (e.g. the binned dark image).
    band_pixels : int, optional
        Pixels per band of :func:`pixel_bands` (default: chosen from the frame size).

    Notes
    -----
    ``apply(frames)[i] = (mat @ frames[i].ravel() − offset) / norm / monitor[i]``.
    """

    def __init__(self, mat, norm, offset=None, band_pixels=None):
        mat = sp.csr_matrix(mat)
        mat.sort_indices()
        edges = pixel_bands(mat.shape[1], band_pixels)
        bands = [_band(mat, a, b) for a, b in zip(edges[:-1], edges[1:])]
        self._set(bands, mat.shape, mat.dtype, 1.0 / np.asarray(norm, dtype=np.float64),
                  None if offset is None else np.asarray(offset, dtype=np.float64))

    def _set(self, bands, shape, dtype, inv_norm, offset):
        self.bands = bands            # list of _Band, consecutive pixel ranges covering 0:P
        self.shape = tuple(shape)     # (R, P): bins × pixels
        self.dtype = np.dtype(dtype)  # of the weights and of the product
        self.inv_norm = inv_norm      # (R,) float64, NaN = uncovered
        self.offset = offset          # (R,) float64 or None
        self._plan = None             # kernels.PixelPlan, built on the first compiled apply
        # The products of all bands, one after another, are F partial sums ("parts"); bin b
        # is the sum of parts gather[0, b] + gather[1, b] + ... in band order, where index F
        # is a zero (no more parts, or an empty bin). One band: gather[0] is a permutation.
        part_bins = np.concatenate([b.rows for b in bands])
        self.n_parts = part_bins.size
        by_bin = np.argsort(part_bins, kind="stable")
        first = np.searchsorted(part_bins[by_bin], part_bins[by_bin], side="left")
        rank = np.arange(by_bin.size) - first
        self.gather = np.full((int(rank.max(initial=0)) + 1, self.shape[0]), self.n_parts,
                              dtype=np.int64)
        self.gather[rank, part_bins[by_bin]] = by_bin
        return self

    @property
    def covered(self):
        """(R,) bool: bins some pixel reaches (finite divisor)."""
        return np.isfinite(self.inv_norm)

    def bins_matrix(self):
        """The matrix with rows in the caller's bin order, (R, P) csr_matrix."""
        rows = np.concatenate([np.repeat(b.rows, np.diff(b.mat.indptr)) for b in self.bands])
        cols = np.concatenate([b.mat.indices.astype(np.int64) + b.start for b in self.bands])
        data = np.concatenate([b.mat.data for b in self.bands])
        mat = sp.csr_matrix((data, (rows, cols)), shape=self.shape)
        mat.sort_indices()
        return mat

    def stacked(self, other):
        """One BinMatrix giving ``self``'s bins then ``other``'s (same pixels and bands)."""
        if [(b.start, b.stop) for b in self.bands] != [(b.start, b.stop) for b in other.bands]:
            raise ValueError("stacked BinMatrix objects must have the same pixel bands")
        r = self.shape[0]
        bands = [_Band(a.start, a.stop, sp.vstack([a.mat, b.mat], format="csr"),
                       np.concatenate([a.rows, b.rows + r]))
                 for a, b in zip(self.bands, other.bands)]
        offsets = None
        if self.offset is not None or other.offset is not None:
            offsets = np.concatenate([np.zeros(m.shape[0]) if m.offset is None else m.offset
                                      for m in (self, other)])
        return BinMatrix.__new__(BinMatrix)._set(
            bands, (r + other.shape[0], self.shape[1]), np.promote_types(self.dtype, other.dtype),
            np.concatenate([self.inv_norm, other.inv_norm]), offsets)

    def squared(self):
        """The propagation of independent variances: weights and divisors squared, no offset
        (float64 weights)."""
        bands = []
        for b in self.bands:
            mat = b.mat.copy()
            mat.data = mat.data.astype(np.float64) ** 2
            bands.append(_Band(b.start, b.stop, mat, b.rows))
        return BinMatrix.__new__(BinMatrix)._set(bands, self.shape, np.float64,
                                                 self.inv_norm ** 2, None)

    def apply(self, frames, monitor=None):
        """Bin every frame of a stack.

        Parameters
        ----------
        frames : (N, P) ndarray, any real dtype
            Frames flattened to P pixels (a C-contiguous (N, H, W) stack reshaped).
        monitor : (N,) ndarray, optional
            Each frame's result is divided by its monitor value.

        Returns
        -------
        (N, R) float32 ndarray (float64 if the weights are float64), bins in the caller's order.
        """
        kernel = None
        if frames.dtype in kernels.FRAME_DTYPES and frames.shape[0] >= kernels.MIN_FRAMES:
            kernel = kernels.lanes_kernel()
        if kernel is None:
            binned = self._banded_product(frames)
        else:
            if self._plan is None:
                mat = self.bins_matrix()
                mat.data = mat.data.astype(self.dtype, copy=False)
                self._plan = kernels.PixelPlan(mat)
            binned = self._plan.product(frames, self.dtype, kernel)
        if self.offset is not None:
            binned -= self.offset.astype(self.dtype)
        binned *= self.inv_norm.astype(self.dtype)
        if monitor is not None:
            binned /= monitor.astype(self.dtype)[:, None]
        return binned.astype(np.float32, copy=False)

    def _banded_product(self, frames):
        """(N, R) products of scipy's CSR, band by band and frame by frame."""
        n = frames.shape[0]
        parts = np.empty((n, self.n_parts + 1), dtype=self.dtype)
        parts[:, -1] = 0
        buf = np.empty(max(b.stop - b.start for b in self.bands), dtype=self.dtype)
        for i in range(n):
            at = 0
            for band in self.bands:
                # cast one band, then bin it while it is in cache
                part = buf[:band.stop - band.start]
                np.copyto(part, frames[i, band.start:band.stop], casting="unsafe")
                parts[i, at:at + band.rows.size] = band.mat @ part
                at += band.rows.size
        binned = parts.take(self.gather[0], axis=1)
        for more in self.gather[1:]:
            binned += parts.take(more, axis=1)
        return binned
