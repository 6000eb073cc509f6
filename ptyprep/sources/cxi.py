"""The ``cxi`` source: ptychography scans in CXI files.

Paths read, below ``/<entry>`` (default ``entry_1``):

===========================================  =============================================
``instrument_1/detector_1/data``             frames ``(N, H, W)`` (else ``data_1/data``)
``instrument_1/detector_1/mask``             optional; CXI mask bits (below)
``instrument_1/detector_1/distance``         metres
``instrument_1/detector_1/y_pixel_size``     metres (``x_pixel_size`` likewise); optional
                                             when ``basis_vectors`` is given
``instrument_1/detector_1/corner_position``  optional ``(x, y, z)`` metres of the first pixel's corner
``instrument_1/detector_1/basis_vectors``    optional ``(2, 3)`` metres: the step from pixel
                                             ``(0, 0)`` to ``(1, 0)`` and to ``(0, 1)``
``instrument_1/source_1/energy``             joules (else ``source_1/wavelength``, metres)
``sample_1/geometry_1/translation``          ``(N, 3)`` metres, CXI order ``(x, y, z)``
===========================================  =============================================

Geometry follows CXI 1.6, section "The orientation of pixel detectors": the centre
of pixel ``(r, k)`` lies at ``corner + (r + 0.5) b_row + (k + 0.5) b_col`` and, without
``basis_vectors``, ``b_row = (0, -y_pixel_size, 0)`` and ``b_col = (-x_pixel_size, 0, 0)``
(rows run along -y, columns along -x).  The beam centre is the optical axis ``x = y = 0``
solved on that grid (:func:`axis_from_corner`); with the default basis it is
``row = corner_y / psize_y - 0.5``, ``col = corner_x / psize_x - 0.5``.  The
``beam_center`` option overrides it.

Orientation: ptyprep's frames are the default CXI orientation.  A detector whose
``basis_vectors`` say it is transposed (rows along x) or flipped (a step along +x or
+y) is reoriented on read, so :meth:`CXISource.read_frames` (ROI reads included: a
window of the reoriented frame is mapped back to the stored one, and only that
hyperslab is read), :meth:`CXISource.read_valid`, the frame shape, the pixel size
``(y, x)`` and the beam centre all describe the default orientation.  A rotated or
tilted basis (not one of the 8 axis-aligned orientations) is refused.  Without
``x/y_pixel_size`` the pixel size is the basis vectors' lengths; with them, both must
agree.

CXI mask bits (CXI 1.6, Detector class, "Definition of each bit in the mask"):
``0x1`` invalid, ``0x2`` saturated, ``0x4`` hot, ``0x8`` dead, ``0x10`` shadowed,
``0x80`` bad, ``0x200`` missing (module gap) and ``0x400`` noisy make a pixel
unusable; ``0x1000`` ("signal above the background") is informational and ignored.
Bits with no standard meaning may mean anything, so they count as bad too (the safe
choice for ptychography): valid = ``(mask & ~0x1000) == 0``.  A ``units`` attribute,
when present, is honoured over the CXI default unit.  Frames are read through
:class:`~ptyprep.sources.hdf5.HDF5Source`, so ROI reads touch only the requested
hyperslab.
"""

from pathlib import Path

import numpy as np

from ..errors import RecipeError, SourceError
from ..orientation import orient, orient_center
from .base import ScanMeta, ScanSource
from ._common import (H5Files, LENGTH_UNITS, check_number, check_positions, unit_factor,
                      valid_from_mask)
from .cxi_geometry import (DEFAULT_ORIENTATION, PSIZE_RTOL, axis_from_corner, default_basis,
                           orientation_from_basis, psize_from_basis, stored_roi,
                           valid_from_cxi_mask)
from .hdf5 import HDF5Source

class CXISource(ScanSource):
    """Frames, positions and geometry of a CXI ptychography file.

    Parameters
    ----------
    path : str
        The ``.cxi`` file.
    entry : str
        Entry group (``"entry_1"``).
    energy_keV, distance_m : float, optional
        Override the file's energy (keV) and distance (m).
    psize_m : float or [y, x], optional
        Override the file's pixel size (m).
    beam_center : [row, col], optional
        Override the optical axis on the (reoriented) frame (pixels).
    num_frames : int
        Use only the first ``num_frames`` frames (0 = all).
    label : str, optional
        Scan name (default: the file's stem).
    """

    path_options = ("path",)

    def __init__(self, path, entry="entry_1", energy_keV=None, distance_m=None, psize_m=None,
                 beam_center=None, num_frames=0, label=None):
        if not isinstance(path, str) or not path:
            raise RecipeError(f"source option path = {path!r} is not valid; give a .cxi file name")
        if not isinstance(entry, str) or not entry:
            raise RecipeError(f"source option entry = {entry!r} is not valid; give an entry group "
                              "name such as 'entry_1'")
        self.path, self.entry = path, "/" + entry.strip("/")
        self.overrides = dict(
            energy_keV=check_number("energy_keV", energy_keV, allow_path=False),
            distance_m=check_number("distance_m", distance_m, allow_path=False),
            psize_m=check_number("psize_m", psize_m, allow_path=False, pair=True))
        if beam_center is not None and not (isinstance(beam_center, (list, tuple))
                                            and len(beam_center) == 2):
            raise RecipeError(f"source option beam_center = {beam_center!r} is not valid; "
                              "expected [row, col] in pixels")
        self.beam_center = None if beam_center is None else list(beam_center)
        check_number("beam_center", self.beam_center, allow_path=False, pair=True)
        self.num_frames, self.label = num_frames, label
        self._files = H5Files(path)
        self._h5 = None
        self._meta = None
        self._valid = None
        self._orientation = DEFAULT_ORIENTATION

    def _has(self, rel):
        return f"{self.entry}/{rel}" in self._files.file(self.path)

    def _first(self, *rels):
        return next((f"{self.entry}/{r}" for r in rels if self._has(r)), None)

    def _delegate(self):
        if self._h5 is None:
            det = "instrument_1/detector_1/"
            frames = self._first(det + "data", "data_1/data")
            if frames is None:
                raise SourceError(f"{self.path!r} has no {self.entry}/{det}data nor "
                                  f"{self.entry}/data_1/data; is it a CXI file (check entry=)?")
            energy = self.overrides["energy_keV"]
            if energy is None and self._has("instrument_1/source_1/energy"):
                energy = f"{self.entry}/instrument_1/source_1/energy"
                energy += "" if self._unit(energy) else " [J]"
            elif energy is None and self._has("instrument_1/source_1/wavelength"):
                energy = f"{self.entry}/instrument_1/source_1/wavelength"
                energy += "" if self._unit(energy) else " [m]"
            self._h5 = HDF5Source(
                self.path, frames=frames, energy_keV=energy,
                distance_m=self.overrides["distance_m"]
                if self.overrides["distance_m"] is not None else self._first(det + "distance"),
                num_frames=self.num_frames, label=self.label or Path(self.path).stem)
        return self._h5

    def _unit(self, inner):
        return self._files.file(self.path)[inner].attrs.get("units")

    def _lengths(self, inner, what):
        """Flat float64 metres of dataset ``inner`` (``units`` attribute, else metres)."""
        v, unit = self._files.values(inner, what)
        return v * unit_factor(unit or "m", LENGTH_UNITS, what)

    def _override_psize(self):
        """``(y, x)`` metres of the ``psize_m`` option, or None."""
        value = self.overrides["psize_m"]
        if value is None:
            return None
        return tuple(float(v) for v in (value if isinstance(value, list) else [value, value]))

    def _file_psize(self):
        """``(y, x)`` metres from ``y/x_pixel_size``, or None when either is missing."""
        det = "instrument_1/detector_1/"
        if not (self._has(det + "y_pixel_size") and self._has(det + "x_pixel_size")):
            return None
        return tuple(float(self._lengths(f"{self.entry}/{det}{a}_pixel_size",
                                         f"{a}_pixel_size")[0]) for a in "yx")

    def _basis(self, spec, file_psize):
        """Orientation and pixel size ``(y, x)`` from ``basis_vectors`` at ``spec``."""
        obj, unit = self._files.node(spec, "basis_vectors")
        b = np.asarray(obj[()], dtype=np.float64)
        b = b * unit_factor(unit or "m", LENGTH_UNITS, "basis_vectors")
        while b.ndim > 2 and b.shape[0] == 1:
            b = b[0]
        try:
            orientation = orientation_from_basis(b)
            psize = psize_from_basis(b)
        except ValueError as exc:
            raise SourceError(f"{spec} in {self.path!r} is not an axis-aligned 2-D detector "
                              f"basis ({exc}); ptyprep reads only the 8 orientations with rows "
                              "and columns along x or y, so resample the frames or rewrite "
                              "basis_vectors as [[0, -psize_y, 0], [-psize_x, 0, 0]] (or a "
                              "transpose/sign change of it)") from None
        if file_psize is not None and self.overrides["psize_m"] is None and not np.allclose(
                file_psize, psize, rtol=PSIZE_RTOL, atol=0):
            raise SourceError(f"{spec} in {self.path!r} has steps of {psize[0]:g} m along y and "
                              f"{psize[1]:g} m along x but y/x_pixel_size say {file_psize[0]:g} "
                              f"and {file_psize[1]:g} m; fix the file, or give psize_m = [y, x]")
        return b, orientation, psize

    def read_meta(self):
        if self._meta is None:
            meta = self._delegate().read_meta()
            det = "instrument_1/detector_1/"
            extra = {"source": "cxi", "file": self.path, "entry": self.entry,
                     "mask_rule": "valid = (CXI mask & ~0x1000) == 0; 0x1000 (signal above "
                                  "background) is informational, every other set bit counts "
                                  "as bad"}
            file_psize = self._file_psize()
            psize = self._override_psize()
            basis_spec, basis = self._first(det + "basis_vectors"), None
            if basis_spec is not None:
                basis, self._orientation, basis_psize = self._basis(basis_spec, file_psize)
                psize = psize or basis_psize
                extra["basis_vectors_m"] = basis.tolist()
                extra["reoriented"] = list(self._orientation)
            else:
                psize = psize or file_psize
                if psize is not None:
                    basis = default_basis(psize)
            center = None if self.beam_center is None else tuple(float(v) for v in
                                                                 self.beam_center)
            corner = self._first(det + "corner_position")
            if corner is not None:
                xyz = self._lengths(corner, "corner_position")
                extra["corner_position_m"] = xyz.tolist()
                if center is None and basis is not None and xyz.size >= 2:
                    try:
                        stored = axis_from_corner(np.append(xyz[:2], 0.0), basis)
                    except ValueError as exc:
                        raise SourceError(f"{basis_spec} in {self.path!r}: {exc}; give the "
                                          "beam_center option") from None
                    center, _ = orient_center(stored, meta.frame_shape, self._orientation)
            shape = tuple(int(n) for n in meta.frame_shape)
            shape = shape[::-1] if self._orientation[0] else shape
            mask = self._first(det + "mask")
            if mask is not None:
                obj, _ = self._files.node(mask, "mask")
                # valid_from_mask drops leading length-1 axes and checks the frame shape
                valid = valid_from_mask(valid_from_cxi_mask(obj[()]), True, meta.frame_shape,
                                        f"{mask} in {self.path!r}")
                self._valid = np.ascontiguousarray(orient(valid, self._orientation))
            self._meta = ScanMeta(meta.num_frames, shape, meta.dtype,
                                  meta.energy_keV, meta.distance_m, psize, center, meta.label,
                                  extra)
        return self._meta

    def read_positions(self):
        n = self.read_meta().num_frames
        spec = self._first("sample_1/geometry_1/translation", "data_1/translation")
        if spec is None:
            raise SourceError(f"{self.path!r} has no {self.entry}/sample_1/geometry_1/translation; "
                              "a CXI ptychography file needs the (N, 3) scan translations")
        obj, unit = self._files.node(spec, "positions")
        t = np.asarray(obj[()], dtype=np.float64)
        if t.ndim != 2 or t.shape[1] < 2:
            raise SourceError(f"{spec} in {self.path!r} has shape {t.shape}, expected (N, 3) "
                              "translations (x, y, z) in metres")
        t = t * unit_factor(unit or "m", LENGTH_UNITS, "translation")
        if self.num_frames and len(t) > n:
            t = t[:n]
        return check_positions(t[:, [1, 0]], n, f"{self.path}::{spec}")

    def read_valid(self):
        self.read_meta()
        return self._valid

    def read_frames(self, indices, roi=None):
        meta = self.read_meta()
        if self._orientation == DEFAULT_ORIENTATION:
            return self._delegate().read_frames(indices, roi)
        raw = None if roi is None else stored_roi(roi, meta.frame_shape, self._orientation)
        return np.ascontiguousarray(orient(self._delegate().read_frames(indices, raw),
                                           self._orientation))

    def close(self):
        if self._h5 is not None:
            self._h5.close()
        self._files.close()
