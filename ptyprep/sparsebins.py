"""A sparse bins × pixels matrix applied to stacks of frames, rows in the order that runs fastest.

Pure numpy/scipy: :mod:`ptyprep.integrate` builds the matrix from pyFAI's geometry and hands
it here. The result of :meth:`BinMatrix.apply` is bit-identical to ``mat @ frame`` per frame
in the caller's bin order: only the order in which the rows are *evaluated* changes.

Why reorder the rows: scipy's CSR product walks one row at a time, its inner loop running
over the row's non-zeros. With many short rows (a 500 × 180 q-φ map of an Eiger 1M has
90 000 rows of 2–46 pixels) the end of every row is a mispredicted branch unless rows of
equal length come one after another, and the gathers from the frame hit the cache better
when rows of similar pixels follow each other. Rows sorted by (length, mean pixel index)
measured 20–25 % less time per frame than pyFAI's (q, χ) order on this machine
(``benchmarks/bench_integrate.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["BinMatrix", "execution_order"]


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

    Notes
    -----
    ``apply(frames)[i] = (mat @ frames[i].ravel() − offset) / norm / monitor[i]``.
    """

    def __init__(self, mat, norm, offset=None):
        mat = sp.csr_matrix(mat)
        mat.sort_indices()
        order = execution_order(mat)
        inv_norm = 1.0 / np.asarray(norm, dtype=np.float64)
        self._set(mat[order], order, inv_norm[order],
                  None if offset is None else np.asarray(offset, dtype=np.float64)[order])

    def _set(self, mat, order, inv_norm, offset):
        """Fill from arrays already in execution order."""
        self.mat = mat                                   # (R, P), rows in execution order
        self.order = order                               # execution row r is bin order[r]
        self.restore = np.argsort(order)                 # bin b is execution row restore[b]
        self.inv_norm = inv_norm                         # (R,) float64, NaN = uncovered
        self.offset = offset                             # (R,) float64 or None
        return self

    @property
    def shape(self):
        """(R, P): bins × pixels."""
        return self.mat.shape

    @property
    def covered(self):
        """(R,) bool, caller's bin order: bins some pixel reaches (finite divisor)."""
        return np.isfinite(self.inv_norm[self.restore])

    def bins_matrix(self):
        """The matrix with rows in the caller's bin order, (R, P) csr_matrix."""
        return self.mat[self.restore]

    def stacked(self, other):
        """One BinMatrix giving ``self``'s bins then ``other``'s (same pixels)."""
        offsets = None
        if self.offset is not None or other.offset is not None:
            offsets = np.concatenate([np.zeros(m.shape[0]) if m.offset is None else m.offset
                                      for m in (self, other)])
        return BinMatrix.__new__(BinMatrix)._set(
            sp.vstack([self.mat, other.mat], format="csr"),
            np.concatenate([self.order, other.order + self.shape[0]]),
            np.concatenate([self.inv_norm, other.inv_norm]), offsets)

    def squared(self):
        """The propagation of independent variances: weights and divisors squared, no offset
        (float64 weights)."""
        mat = self.mat.copy()
        mat.data = mat.data.astype(np.float64) ** 2
        return BinMatrix.__new__(BinMatrix)._set(mat, self.order, self.inv_norm ** 2, None)

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
        n = frames.shape[0]
        dtype = self.mat.dtype
        binned = np.empty((n, self.shape[0]), dtype=dtype)
        buf = np.empty(frames.shape[1], dtype=dtype)
        for i in range(n):
            # one pass per frame: the cast stays in cache for the gathers of the product
            np.copyto(buf, frames[i], casting="unsafe")
            binned[i] = self.mat @ buf
        if self.offset is not None:
            binned -= self.offset.astype(dtype)
        binned *= self.inv_norm.astype(dtype)
        out = binned.take(self.restore, axis=1)
        if monitor is not None:
            out /= monitor.astype(dtype)[:, None]
        return out.astype(np.float32, copy=False)
