"""The ``cxi`` source: ptychography scans in CXI files.

Paths read, below ``/<entry>`` (default ``entry_1``):

===========================================  =============================================
``instrument_1/detector_1/data``             frames ``(N, H, W)`` (else ``data_1/data``)
``instrument_1/detector_1/mask``             optional; nonzero = bad pixel
``instrument_1/detector_1/distance``         metres
``instrument_1/detector_1/y_pixel_size``     metres (``x_pixel_size`` likewise)
``instrument_1/detector_1/corner_position``  optional ``(x, y, z)`` metres of the first pixel's corner
``instrument_1/source_1/energy``             joules (else ``source_1/wavelength``, metres)
``sample_1/geometry_1/translation``          ``(N, 3)`` metres, CXI order ``(x, y, z)``
===========================================  =============================================

CXI mask bits: some bits of a CXI mask are informational only, but this reader
treats **any nonzero value as an unusable pixel** (valid = ``mask == 0``), the
safe choice for ptychography.  A ``units`` attribute, when present, is honoured
over the CXI default unit.  The beam centre comes from ``corner_position``
(the optical axis is at ``x = y = 0``: ``row = -corner_y / psize_y - 0.5``,
``col = -corner_x / psize_x - 0.5``) when the file has one; the ``beam_center``
option overrides it.  Frames are read through :class:`~ptyprep.sources.hdf5.HDF5Source`,
so ROI reads touch only the requested hyperslab.
"""

from pathlib import Path

import numpy as np

from ..errors import RecipeError, SourceError
from .base import ScanMeta, ScanSource
from ._common import H5Files, LENGTH_UNITS, check_number, check_positions, unit_factor
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
        Override the optical axis on the raw frame (pixels).
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
            psize = self.overrides["psize_m"]
            if psize is None and self._has(det + "y_pixel_size") and self._has(det + "x_pixel_size"):
                psize = [f"{self.entry}/{det}y_pixel_size", f"{self.entry}/{det}x_pixel_size"]
            self._h5 = HDF5Source(
                self.path, frames=frames, mask=self._first(det + "mask"), mask_valid_value=0,
                energy_keV=energy, distance_m=self.overrides["distance_m"]
                if self.overrides["distance_m"] is not None else self._first(det + "distance"),
                psize_m=psize, beam_center=self.beam_center, num_frames=self.num_frames,
                label=self.label or Path(self.path).stem)
        return self._h5

    def _unit(self, inner):
        return self._files.file(self.path)[inner].attrs.get("units")

    def read_meta(self):
        if self._meta is None:
            meta = self._delegate().read_meta()
            center, corner = meta.beam_center, self._first("instrument_1/detector_1/corner_position")
            extra = {"source": "cxi", "file": self.path, "entry": self.entry,
                     "mask_rule": "valid = (CXI mask == 0); every nonzero bit counts as bad"}
            if corner is not None:
                xyz, unit = self._files.values(corner, "corner_position")
                xyz = xyz * unit_factor(unit or "m", LENGTH_UNITS, "corner_position")
                extra["corner_position_m"] = xyz.tolist()
                if center is None and meta.psize_m is not None and xyz.size >= 2:
                    center = (-xyz[1] / meta.psize_m[0] - 0.5, -xyz[0] / meta.psize_m[1] - 0.5)
            self._meta = ScanMeta(meta.num_frames, meta.frame_shape, meta.dtype, meta.energy_keV,
                                  meta.distance_m, meta.psize_m, center, meta.label, extra)
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
        return self._delegate().read_valid()

    def read_frames(self, indices, roi=None):
        return self._delegate().read_frames(indices, roi)

    def close(self):
        if self._h5 is not None:
            self._h5.close()
        self._files.close()

