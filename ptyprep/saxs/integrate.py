"""q-φ maps and I(q) of whole stacks, built once from pyFAI's geometry.

This is the only module of ptyprep that imports pyFAI. pyFAI builds the sparse
integration matrix (its CSR engine, pixel splitting included) for the requested
bins; we take that matrix, fold the valid-pixel mask into it, compute pyFAI's
normalisation (solid angle × polarisation × flat) once in float64, and apply the
matrix to every frame of a stack.

Conventions
-----------
* q in 1/Å (pyFAI unit ``q_A^-1``); φ in degrees, range [−180°, 180°).
* φ = atan2(−Δrow, Δcol) from the beam centre: 0° along increasing column,
  +90° along *decreasing* row. pyFAI's χ runs the other way (χ = −φ), so the
  φ axis of a map is pyFAI's χ axis reversed.
* ``valid`` is True for a usable pixel; it is inverted to pyFAI's ``mask`` only
  inside this module.
* Values are pyFAI's normalised intensity: Σ c·(frame − dark) / Σ c·(solid angle
  · polarisation · flat), divided by the frame's monitor when one is given.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np
import scipy.sparse as sp

from ..errors import RecipeError
from ..fast.sparsebins import BinMatrix
from .qgrid import check_nphi, check_qgrid, phi_centres, q_bin_bounds, q_segments

__all__ = ["load_poni", "geometry_dict", "as_integrator", "StackIntegrator"]

_UNIT = "q_A^-1"


# --------------------------------------------------------------------------- geometry

def load_poni(path):
    """Load a pyFAI ``.poni`` file as an ``AzimuthalIntegrator``; RecipeError if missing or invalid."""
    import pyFAI

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RecipeError(f"poni file {path!r} does not exist; give the path of a pyFAI calibration "
                          "(.poni) file")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read().lower()
        ai = pyFAI.load(path)
    except Exception as exc:  # pyFAI raises many types on malformed files
        raise RecipeError(f"poni file {path!r} cannot be read by pyFAI ({exc}); "
                          "re-save it from pyFAI-calib2") from exc
    det = ai.detector
    if ("distance" not in text or not (det.pixel1 or 0) > 0 or not (det.pixel2 or 0) > 0
            or not (ai.wavelength or 0) > 0):
        raise RecipeError(f"poni file {path!r} lacks a distance, pixel size or wavelength; "
                          "a pyFAI calibration (.poni) with all three is needed for q")
    return ai


def geometry_dict(ai):
    """JSON-ready dict of the PONI fields of an integrator (metres, radians)."""
    det = ai.detector
    return {"dist": float(ai.dist), "poni1": float(ai.poni1), "poni2": float(ai.poni2),
            "rot1": float(ai.rot1), "rot2": float(ai.rot2), "rot3": float(ai.rot3),
            "wavelength": float(ai.wavelength),
            "detector": str(getattr(det, "name", None) or type(det).__name__), "pixel1": float(det.pixel1), "pixel2": float(det.pixel2),
            "orientation": int(getattr(det, "orientation", 3) or 3)}


_GEOMETRY_KEYS = ("dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength", "pixel1", "pixel2")


def as_integrator(geometry):
    """An ``AzimuthalIntegrator`` from a ``.poni`` path, a geometry dict or an integrator.

    A dict holds pyFAI's ``dist``, ``poni1``, ``poni2`` (m), ``rot1``, ``rot2``, ``rot3`` (rad),
    ``wavelength``, ``pixel1``, ``pixel2`` (m) and optionally ``shape`` (H, W), as
    :func:`geometry_dict` and :func:`ptyprep.saxs.py4xs.geometry_from_expara` give them; an
    integrator is copied.  RecipeError for a missing, non-numeric or non-positive field.
    """
    from pyFAI.detectors import Detector as PyFAIDetector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    if isinstance(geometry, (str, os.PathLike)):
        return load_poni(geometry)
    if isinstance(geometry, AzimuthalIntegrator):
        own = AzimuthalIntegrator()
        own.set_config(geometry.get_config())
        return own
    if not isinstance(geometry, dict):
        raise RecipeError(f"geometry {geometry!r} is neither a .poni path, a pyFAI geometry dict nor "
                          "an AzimuthalIntegrator")
    missing = [k for k in _GEOMETRY_KEYS if geometry.get(k) is None]
    if missing:
        raise RecipeError(f"pyFAI geometry dict lacks {', '.join(missing)}; give dist, poni1, poni2, "
                          "rot1, rot2, rot3 (m, rad), wavelength and pixel1, pixel2 (m)")
    try:
        g = {k: float(geometry[k]) for k in _GEOMETRY_KEYS}
        shape = geometry.get("shape")
        shape = None if shape is None else tuple(int(v) for v in shape)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"pyFAI geometry dict has a non-numeric field ({exc})") from exc
    if int(geometry.get("orientation", 3) or 3) != 3:
        raise RecipeError(f"pyFAI geometry orientation {geometry['orientation']} is not supported; "
                          "describe the frames with orientation 3 (pyFAI's default)")
    for key in ("dist", "wavelength", "pixel1", "pixel2"):
        if not g[key] > 0:
            raise RecipeError(f"pyFAI geometry {key} = {g[key]} must be positive (metres)")
    det = PyFAIDetector(pixel1=g.pop("pixel1"), pixel2=g.pop("pixel2"), max_shape=shape)
    return AzimuthalIntegrator(detector=det, **g)


def _private_ai(ai):
    """A fresh integrator with ``ai``'s geometry: its engine cache is ours and dropped after use."""
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    if isinstance(ai, (str, os.PathLike)):
        return load_poni(ai)
    if not isinstance(ai, AzimuthalIntegrator):
        raise RecipeError(f"geometry {ai!r} is neither a pyFAI AzimuthalIntegrator nor a .poni path")
    own = AzimuthalIntegrator()
    own.set_config(ai.get_config())
    own.setChiDiscAtPi()          # χ in [−180°, 180°)
    return own


def _geometry_shape(ai, valid):
    det_shape = ai.detector.shape if ai.detector.shape is not None else ai.detector.max_shape
    if det_shape is None and valid is None:
        raise RecipeError("the detector shape is unknown: the poni names no detector shape and no valid "
                          "mask was given; pass valid=(H, W) bool array")
    if valid is None:
        return tuple(int(v) for v in det_shape), np.ones(det_shape, dtype=bool)
    valid = np.asarray(valid)
    if valid.dtype != bool:
        raise RecipeError(f"valid mask has dtype {valid.dtype}, expected bool (True = usable pixel)")
    if det_shape is not None and tuple(valid.shape) != tuple(det_shape):
        raise RecipeError(f"valid mask shape {valid.shape} differs from the detector shape "
                          f"{tuple(det_shape)}; give a mask made for this detector")
    return tuple(valid.shape), valid


# --------------------------------------------------------------------------- engine

@contextlib.contextmanager
def _quiet_empty_segments():
    """Silence pyFAI's "Sparse matrix is empty" warning: a q segment that misses one detector
    is expected when several detectors share a grid (those bins become NaN in ``coverage``)."""
    logger = logging.getLogger("pyFAI.ext.sparse_builder")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class StackIntegrator:
    """q-φ maps and I(q) of whole stacks, built once from pyFAI's geometry.

    Parameters
    ----------
    ai : pyFAI AzimuthalIntegrator or path of a ``.poni`` file
        Geometry; a private copy is used (the caller's engine cache is untouched).
    qgrid : (Nq,) array_like, 1/Å
        Bin centres, strictly increasing, possibly piecewise uniform (see :func:`make_qgrid`).
    nphi : int
        Number of φ bins.
    valid : (H, W) bool ndarray, optional
        True = usable pixel. Defaults to all pixels of the detector.
    split : {"bbox", "no", "full"}
        pyFAI pixel splitting.
    solid_angle : bool
        Normalise by pyFAI's (relative) solid angle.
    polarization_factor : float, optional
        pyFAI polarisation factor (−1 … 1); None = no correction.
    dark, flat : (H, W) ndarray, optional
        Subtracted from every frame / folded into the normalisation. Pixels whose flat is
        not finite and positive are treated as invalid.

    Attributes
    ----------
    shape : (H, W) tuple
    qgrid : (Nq,) float64, 1/Å;  nphi : int;  phi : (nphi,) float64, degrees
    coverage : (nphi, Nq) bool, bins that receive any valid pixel
    iq_coverage : (Nq,) bool

    Examples
    --------
    >>> integ = StackIntegrator("saxs.poni", make_qgrid((0.01, 0.3, 0.002)), 36,
    ...                         valid=valid)                              # doctest: +SKIP
    >>> maps = integ.qphi(frames, monitor=i0)   # (N, 36, Nq) float32     # doctest: +SKIP
    """

    def __init__(self, ai, qgrid, nphi, valid=None, split="bbox", solid_angle=True,
                 polarization_factor=None, dark=None, flat=None):
        if split not in ("bbox", "no", "full"):
            raise RecipeError(f"split = {split!r} is not one of 'bbox', 'no', 'full'")
        self.qgrid = check_qgrid(qgrid)
        self.nphi = check_nphi(nphi)
        self.phi = phi_centres(self.nphi)
        self.split = split
        ai = _private_ai(ai)
        orientation = int(getattr(ai.detector, "orientation", 3) or 3)
        if orientation != 3:
            raise RecipeError(f"detector orientation {orientation} is not supported; use a poni with "
                              "orientation 3 (pyFAI's default) and orient the frames accordingly")
        self.shape, valid = _geometry_shape(ai, valid)
        self.valid = valid.copy()
        self._ai = ai
        h, w = self.shape
        weight = np.ones(self.shape, dtype=np.float64)
        if solid_angle:
            weight *= ai.solidAngleArray(self.shape)
        if polarization_factor is not None:
            weight *= np.asarray(ai.polarization(self.shape, float(polarization_factor)))
        if flat is not None:
            flat = self._image(flat, "flat").astype(np.float64)
            ok = np.isfinite(flat) & (flat > 0)
            self.valid &= ok
            weight *= np.where(ok, flat, 1.0)
        self._weight = weight.ravel()
        self._dark = None if dark is None else self._image(dark, "dark").astype(np.float64).ravel()
        self._q_extent = None
        with _quiet_empty_segments():
            self._qphi = self._build(2)
        self.coverage = self._qphi.covered.reshape(self.nphi, self.qgrid.size)
        if not self.coverage.any():
            raise RecipeError(f"q grid {self.qgrid[0]:.4g}–{self.qgrid[-1]:.4g} 1/Å lies entirely "
                              "outside this detector's q coverage; choose q within the detector's range")
        self._iq = self._both = self._qphi_sq = None

    # -- construction helpers
    def _image(self, arr, name):
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise RecipeError(f"{name} of shape {arr.shape} differs from the detector shape {self.shape}")
        return arr

    def _segment_matrix(self, dim, lo, hi, n):
        """pyFAI's CSR matrix for one uniform segment, rows in pyFAI order."""
        ai = self._ai
        img = np.zeros(self.shape, dtype=np.float32)
        kw = dict(unit=_UNIT, method=(self.split, "csr", "cython"), radial_range=(lo, hi),
                  mask=~self.valid, correctSolidAngle=False)
        try:
            if dim == 2:
                res = ai.integrate2d_ng(img, n, self.nphi, azimuth_range=(-180.0, 180.0), **kw)
            else:
                res = ai.integrate1d_ng(img, n, **kw)
            data, indices, indptr = ai.engines[res.method].engine.lut
        except (ValueError, RuntimeError, KeyError, AttributeError) as exc:
            raise RecipeError(f"pyFAI could not build the integration for q {lo:.4g}–{hi:.4g} 1/Å "
                              f"({exc})") from exc
        nrows = n * self.nphi if dim == 2 else n
        data = np.array(data, dtype=np.float32)
        indices = np.array(indices)
        data[~self._pixels_reaching(lo, hi)[indices]] = 0      # pyFAI clips them into edge bins
        mat = sp.csr_matrix((data, indices, np.array(indptr)), shape=(nrows, self.valid.size))
        mat.eliminate_zeros()
        ai.reset_engines()                       # the LUT is ours now; free pyFAI's copy
        return mat

    def _pixels_reaching(self, lo, hi):
        """(H·W,) bool: pixels reaching the q range [lo, hi] (1/Å) of a segment (pyFAI's CSR
        puts pixels outside ``radial_range`` into its edge bins): by the centre without
        splitting, by any part with it."""
        if self._q_extent is None:
            if self.split == "no":
                qc = self._ai.center_array(self.shape, unit=_UNIT).ravel()
                self._q_extent = (qc, qc)
            else:
                corners = self._ai.array_from_unit(self.shape, "corner", unit=_UNIT)[..., 0]
                self._q_extent = (corners.min(axis=-1).ravel(), corners.max(axis=-1).ravel())
        qmin, qmax = self._q_extent
        tol = 1e-6 * (hi - lo)
        return (qmax >= lo - tol) & (qmin <= hi + tol)

    def _build(self, dim):
        """Matrix (rows = bins in our order), normalisation (NaN = uncovered) and dark term."""
        lo, hi = q_bin_bounds(self.qgrid)
        nq, nphi = self.qgrid.size, self.nphi
        blocks, rows = [], []
        offset = 0
        for start, stop, _ in q_segments(self.qgrid):
            n = stop - start
            blocks.append(self._segment_matrix(dim, lo[start], hi[stop - 1], n))
            if dim == 2:
                # pyFAI row = iq * nphi + ichi; our row = iphi * Nq + iq with iphi = nphi-1-ichi
                iphi, iq = np.meshgrid(np.arange(nphi), np.arange(start, stop), indexing="ij")
                rows.append((iphi, iq, offset + (iq - start) * nphi + (nphi - 1 - iphi)))
            offset += blocks[-1].shape[0]
        full = sp.vstack(blocks, format="csr")
        if dim == 2:
            order = np.empty(nq * nphi, dtype=np.int64)
            for iphi, iq, src in rows:
                order[(iphi * nq + iq).ravel()] = src.ravel()
            full = full[order]
        # fold the valid mask in (pyFAI already drops masked pixels; make sure)
        full.data[~self.valid.ravel()[full.indices]] = 0
        full.eliminate_zeros()
        full.sort_indices()
        norm = full.astype(np.float64) @ self._weight
        norm[~(norm > 0)] = np.nan
        dark = None if self._dark is None else full.astype(np.float64) @ self._dark
        return BinMatrix(full, norm, dark)

    def _iq_engine(self):
        if self._iq is None:
            with _quiet_empty_segments():
                self._iq = self._build(1)
        return self._iq

    @property
    def iq_coverage(self):
        """(Nq,) bool: q bins of I(q) that receive any valid pixel."""
        return self._iq_engine().covered

    @property
    def qphi_matrix(self):
        """(nphi·Nq, H·W) csr_matrix: pixel weights of each q-φ bin (row = iphi·Nq + iq)."""
        return self._qphi.bins_matrix()

    # -- application
    def _apply(self, engine, frames, monitor):
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.shape[1:] != self.shape:
            raise ValueError(f"frames of shape {frames.shape} are not a stack (N, H, W) with "
                             f"(H, W) = {self.shape}")
        n = frames.shape[0]
        if monitor is not None:
            monitor = np.asarray(monitor, dtype=np.float64).reshape(-1)
            if monitor.shape != (n,):
                raise ValueError(f"monitor of shape {monitor.shape} does not match {n} frames")
        return engine.apply(frames.reshape(n, -1), monitor)

    def qphi(self, frames, monitor=None):
        """q-φ maps of a stack.

        Parameters
        ----------
        frames : (N, H, W) ndarray, any real dtype
        monitor : (N,) array_like, optional
            Each frame (after dark subtraction) is divided by its monitor value (> 0).

        Returns
        -------
        maps : (N, nphi, Nq) float32 ndarray
            Normalised intensity; NaN in bins no valid pixel reaches.
        """
        out = self._apply(self._qphi, frames, monitor)
        return out.reshape(out.shape[0], self.nphi, self.qgrid.size)

    def iq(self, frames, monitor=None):
        """Azimuthal average I(q) with pyFAI ``integrate1d_ng`` semantics.

        Parameters
        ----------
        frames : (N, H, W) ndarray;  monitor : (N,) array_like, optional

        Returns
        -------
        iq : (N, Nq) float32 ndarray, NaN where no valid pixel reaches a bin.
        """
        return self._apply(self._iq_engine(), frames, monitor)

    def qphi_iq(self, frames, monitor=None):
        """Both :meth:`qphi` and :meth:`iq` in one pass over the stack: ((N, nphi, Nq), (N, Nq))."""
        if self._both is None:
            self._both = self._qphi.stacked(self._iq_engine())
        out = self._apply(self._both, frames, monitor)
        k = self.nphi * self.qgrid.size
        return out[:, :k].reshape(-1, self.nphi, self.qgrid.size), out[:, k:]

    def qphi_var(self, frames, monitor=None):
        """Poisson variance of :meth:`qphi`: σ² = counts, propagated through the same matrix.

        For a bin with pixel weights ``c`` (the sparse matrix row) and normalisation
        ``n = Σ c·w`` (solid angle × polarisation × flat), ``var = Σ c²·max(x, 0) / n²``
        (divided by ``monitor²``), with ``x`` the raw frame (dark included: the counts).

        Parameters
        ----------
        frames : (N, H, W) ndarray of counts;  monitor : (N,) array_like, optional

        Returns
        -------
        var : (N, nphi, Nq) float32 ndarray, NaN where no valid pixel reaches a bin.
        """
        if self._qphi_sq is None:
            self._qphi_sq = self._qphi.squared()
        frames = np.clip(np.asarray(frames, dtype=np.float64), 0.0, None)
        out = self._apply(self._qphi_sq, frames,
                          None if monitor is None else np.asarray(monitor, np.float64) ** 2)
        return out.reshape(out.shape[0], self.nphi, self.qgrid.size)
