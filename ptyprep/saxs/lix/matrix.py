"""``MatrixWithCoords``: a 2-D array with coordinates, the object lixtools' functions take.

lixtools hands attribute functions one q-φ map at a time as py4xs' ``MatrixWithCoords``
and users' notebooks are written against it: ``m.d`` (rows along ``yc``, columns along
``xc``), ``m.xc``/``m.yc`` with their labels, and the methods ``roi``, ``line_profile``,
``flatten``, ``apply_symmetry``, ``merge``, ``copy``, ``val``, ``plot``.  This class has
that interface, written from its documented behaviour, on ptyprep's arrays:

* rows are in the order of ``yc`` (for a q-φ map: φ bin centres, increasing);
* ``apply_symmetry`` on a map whose rows span 360° of φ averages each row with the
  intensity 180° away — exactly, also for an odd number of rows, where py4xs rolls by
  ``Nphi // 2`` rows (177° for 61 bins);
* averages skip NaN, and (as py4xs) an average over no value is 0.
"""

import copy as _copy

import numpy as np

from ..attrs import symmetrize

__all__ = ["MatrixWithCoords"]


class MatrixWithCoords:
    """A 2-D array ``d`` with column coordinates ``xc`` and row coordinates ``yc``.

    Parameters
    ----------
    d : (Ny, Nx) array_like, optional
    xc : (Nx,) array_like, optional
        Column coordinates (a q-φ map: q in 1/Å).
    yc : (Ny,) array_like, optional
        Row coordinates (a q-φ map: φ in degrees).
    xc_label, yc_label : str, optional
    err : (Ny, Nx) array_like, optional
        Standard deviations of ``d``.

    Examples
    --------
    >>> m = MatrixWithCoords(np.arange(6.0).reshape(2, 3), xc=[0.1, 0.2, 0.3], yc=[-90, 90])
    >>> m.roi(0.15, 0.3, -180, 180).d
    array([[1., 2.],
           [4., 5.]])
    """

    datatype = None

    def __init__(self, d=None, xc=None, yc=None, xc_label=None, yc_label=None, err=None):
        self.d = None if d is None else np.asarray(d)
        self.xc = None if xc is None else np.asarray(xc, dtype=np.float64)
        self.yc = None if yc is None else np.asarray(yc, dtype=np.float64)
        self.xc_label, self.yc_label = xc_label, yc_label
        self.err = None if err is None else np.asarray(err)

    def __repr__(self):
        shape = None if self.d is None else self.d.shape
        return (f"MatrixWithCoords(shape={shape}, xc_label={self.xc_label!r}, "
                f"yc_label={self.yc_label!r})")

    def copy(self):
        """A copy with its own ``d`` (coordinates shared, as py4xs does)."""
        out = _copy.copy(self)
        out.d = None if self.d is None else np.array(self.d, copy=True)
        return out

    # -- selections --------------------------------------------------------------------------
    def roi(self, x1, x2, y1, y2, mask=None):
        """The sub-matrix with ``x1 <= xc <= x2`` and ``y1 <= yc <= y2`` (either order).

        ``mask`` (an array shaped like ``d``, or an object with ``.map``): True entries
        become NaN.
        """
        xs = (self.xc >= min(x1, x2)) & (self.xc <= max(x1, x2))
        ys = (self.yc >= min(y1, y2)) & (self.yc <= max(y1, y2))
        out = MatrixWithCoords(np.asarray(self.d, dtype=np.float64)[np.ix_(ys, xs)],
                               self.xc[xs], self.yc[ys], self.xc_label, self.yc_label,
                               None if self.err is None else
                               np.asarray(self.err, dtype=np.float64)[np.ix_(ys, xs)])
        if mask is not None:
            m = np.asarray(getattr(mask, "map", mask), dtype=bool)[np.ix_(ys, xs)]
            out.d[m] = np.nan
        out.datatype = self.datatype
        return out

    def val(self, x0, y0, dx, dy, mask=None):
        """NaN-aware mean of ``d`` in the box ``x0 ± dx/2``, ``y0 ± dy/2``."""
        box = self.roi(x0 - 0.5 * dx, x0 + 0.5 * dx, y0 - 0.5 * dy, y0 + 0.5 * dy, mask=mask).d
        return float(np.nanmean(box))

    def flatten(self, axis="x", method="simple"):
        """Collapse onto one axis: ``(values, errors)``.

        ``axis="x"``: one value per column (mean over the rows); ``"y"``: one per row.
        ``method="simple"`` is the NaN-aware mean (0 where a line holds no value);
        ``"err_weighted"`` weights by ``1/err²``.
        """
        if axis not in ("x", "y"):
            raise ValueError(f"unknown axis {axis!r} for flatten; use 'x' or 'y'")
        if method not in ("simple", "err_weighted"):
            raise ValueError(f"unknown method {method!r}; use 'simple' or 'err_weighted'")
        over = 0 if axis == "x" else 1
        d = np.asarray(self.d, dtype=np.float64)
        if method == "err_weighted":
            if self.err is None:
                raise ValueError("err_weighted averaging needs err")
            e = np.asarray(self.err, dtype=np.float64)
            w = np.where((e > 0) & np.isfinite(d), 1.0 / np.where(e > 0, e, 1.0) ** 2, 0.0)
            tw = w.sum(axis=over)
            with np.errstate(invalid="ignore", divide="ignore"):
                vals = np.where(tw > 0, (w * np.nan_to_num(d)).sum(axis=over) / tw, 0.0)
                errs = np.where(tw > 0, 1.0 / np.sqrt(tw), 0.0)
            return vals, errs
        ok = np.isfinite(d)
        n = ok.sum(axis=over)
        vals = np.where(ok, d, 0.0).sum(axis=over) / np.maximum(n, 1)
        errs = None
        if self.err is not None:
            e = np.where(ok, np.asarray(self.err, dtype=np.float64), 0.0).sum(axis=over)
            errs = e / np.maximum(n, 1) / np.sqrt(np.maximum(n, 1))
        return vals, errs

    def line_profile(self, direction, xrange=None, yrange=None, plot_data=False, ax=None,
                     **kwargs):
        """``(coords, values, errors)`` along ``direction`` within the other axis' range.

        ``direction="x"``: I(xc) averaged over ``yrange`` (a q-φ map: I(q) over a φ
        range); ``"y"``: I(yc) averaged over ``xrange`` (I(φ) over a q range).
        """
        xrange = [self.xc[0], self.xc[-1]] if xrange is None else xrange
        yrange = [self.yc[0], self.yc[-1]] if yrange is None else yrange
        if direction not in ("x", "y"):
            raise ValueError(f"invalid direction {direction!r}; use 'x' or 'y'")
        sub = self.roi(xrange[0], xrange[1], yrange[0], yrange[1])
        coords = sub.xc if direction == "x" else sub.yc
        values, errors = sub.flatten(axis=direction)
        if plot_data:
            import matplotlib.pyplot as plt

            (ax or plt.gca()).plot(coords, values, **kwargs)
        return coords, values, errors

    # -- combinations ------------------------------------------------------------------------
    def apply_symmetry(self):
        """Centro-symmetrised copy: rows (φ over 360°) averaged with the rows 180° away.

        Exact for any number of rows (:func:`ptyprep.saxs.attrs.symmetrize`): a row
        no detector covered takes the value opposite it.
        """
        out = self.copy()
        out.d = symmetrize(self.d)
        return out

    def expand(self, coord, axis, in_place=True):
        """Place the data on the larger coordinate set ``coord`` of ``axis`` (NaN elsewhere)."""
        coord = np.asarray(coord, dtype=np.float64)
        old = self.xc if axis == "x" else self.yc
        if axis not in ("x", "y"):
            raise ValueError(f"invalid axis {axis!r}; use 'x' or 'y'")
        where = np.searchsorted(coord, old)
        if np.any(where >= coord.size) or not np.array_equal(coord[np.minimum(where, coord.size - 1)], old):
            raise ValueError(f"{axis} coordinates are not all in the new coordinates")
        shape = (self.d.shape[0], coord.size) if axis == "x" else (coord.size, self.d.shape[1])

        def place(a):
            if a is None:
                return None
            out = np.full(shape, np.nan)
            if axis == "x":
                out[:, where] = a
            else:
                out[where, :] = a
            return out

        d, err = place(np.asarray(self.d, dtype=np.float64)), place(self.err)
        if not in_place:
            return d, err
        self.d, self.err = d, err
        if axis == "x":
            self.xc = coord
        else:
            self.yc = coord

    def merge(self, others):
        """NaN-aware mean of this and ``others`` on the union of their coordinates."""
        mats = [self] + list(others)
        for m in mats[1:]:
            if (m.xc_label, m.yc_label) != (self.xc_label, self.yc_label):
                raise ValueError("data to be merged have different coordinate labels")
        xc = np.unique(np.concatenate([np.asarray(m.xc, float) for m in mats]))
        yc = np.unique(np.concatenate([np.asarray(m.yc, float) for m in mats]))
        total = np.zeros((yc.size, xc.size))
        count = np.zeros((yc.size, xc.size))
        for m in mats:
            t = m.copy()
            t.d = np.asarray(t.d, dtype=np.float64)
            t.expand(xc, "x")
            t.expand(yc, "y")
            ok = np.isfinite(t.d)
            total[ok] += t.d[ok]
            count[ok] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return MatrixWithCoords(d, xc, yc, self.xc_label, self.yc_label)

    def bkg_cor(self, dbkg, scale_factor=1.0, in_place=True):
        """Subtract ``scale_factor`` × the background matrix ``dbkg`` (same coordinates)."""
        if not (np.array_equal(self.xc, dbkg.xc) and np.array_equal(self.yc, dbkg.yc)):
            raise ValueError("background has other coordinates than the data")
        d = np.asarray(self.d, dtype=np.float64) - np.asarray(dbkg.d, dtype=np.float64) * scale_factor
        if not in_place:
            out = self.copy()
            out.d = d
            return out
        self.d = d

    def plot(self, ax=None, logScale=False, aspect="auto", colorbar=False, **kwargs):
        """Show ``d`` with its coordinates on the axes (matplotlib)."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        d = np.asarray(self.d, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.log(d) if logScale else d
        im = ax.imshow(shown, aspect=aspect, origin="lower", interpolation="nearest",
                       extent=[self.xc[0], self.xc[-1], self.yc[0], self.yc[-1]], **kwargs)
        ax.set_xlabel(self.xc_label or "x")
        ax.set_ylabel(self.yc_label or "y")
        if colorbar:
            plt.colorbar(im, ax=ax)
        return im
