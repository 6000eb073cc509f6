"""APS / tike: far-field ptychography test files in tike's ``.npz(.bz2)`` layout.

A tike file holds ``data`` ``(1, N, H, W)`` float32 photon counts **stored
FFT-shifted** (DC in the corners), ``scan`` ``(1, N, 2)`` positions in object
pixels and ``probe``.  It carries no geometry, so energy, distance and pixel
size are required options.  Positions become metres with the far-field object
pixel size ``dx = lambda * z / (n * psize)`` per axis (``n`` = frame side).

tike's convention (``tike.ptycho.reconstruct``): ``scan`` is "coordinate order
consistent with WIDE, HIGH order" of ``psi``, i.e. column 0 indexes the
object's rows (vertical, y) and column 1 its columns (x): ``scan_axes = "yx"``.

Frames are returned as stored; set ``[prep] fftshift = true`` to move DC to the
frame centre in the pipeline (then ``center = "fftshift"``).
"""

import bz2
import functools
import io
import os
from pathlib import Path

import numpy as np

import ptyprep
from ptyprep.errors import RecipeError, SourceError
from ptyprep.sources.base import ScanMeta, ScanSource

HC_KEV_M = 12.398419843320026e-10     # lambda[m] = HC_KEV_M / E[keV]


@functools.lru_cache(maxsize=2)
def _load(path, _stamp):
    """``(data (N, H, W), scan (N, 2))`` of a tike file; cached per (path, mtime, size)."""
    opener = bz2.open if path.endswith(".bz2") else open
    try:
        with opener(path, "rb") as fh:
            npz = np.load(io.BytesIO(fh.read()))
            arrays = {k: npz[k] for k in ("data", "scan") if k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise SourceError(f"cannot read {path!r} as a tike .npz(.bz2) file: {exc}") from exc
    missing = sorted({"data", "scan"} - set(arrays))
    if missing:
        raise SourceError(f"tike file {path!r} lacks array(s) {', '.join(missing)}; "
                          "expected 'data' (1, N, H, W) and 'scan' (1, N, 2)")
    data, scan = arrays["data"], arrays["scan"]
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    while scan.ndim > 2 and scan.shape[0] == 1:
        scan = scan[0]
    if data.ndim != 3 or scan.ndim != 2 or scan.shape[1] != 2:
        raise SourceError(f"tike file {path!r} has data {data.shape} and scan {scan.shape}; "
                          "expected (N, H, W) frames and (N, 2) positions")
    return np.ascontiguousarray(data), scan.astype(np.float64)


def object_pixel_m(energy_keV, distance_m, psize_m, frame_shape):
    """Far-field object pixel size ``(dy, dx)`` in metres: ``lambda z / (n psize)``."""
    wavelength = HC_KEV_M / energy_keV
    return tuple(wavelength * distance_m / (n * p) for n, p in zip(frame_shape, psize_m))


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise RecipeError(f"source option {name} = {value!r} is not valid; expected a positive "
                          "number (the tike file carries no geometry, so the recipe must give it)")
    return float(value)


class TikeNpzSource(ScanSource):
    """A tike ``.npz`` or ``.npz.bz2`` ptychography file, held in memory.

    Parameters
    ----------
    path : str
        The tike file.
    energy_keV, distance_m : float
        Nominal photon energy (keV) and sample-detector distance (m).
    psize_m : float or [y, x]
        Detector pixel size (m).
    scan_axes : {"yx", "xy"}
        Which column of ``scan`` is the row (y) coordinate first.
    num_frames : int
        Use only the first ``num_frames`` frames (0 = all).
    label : str, optional
        Scan name (default: the file name without extensions).
    """

    path_options = ("path",)

    def __init__(self, path, energy_keV, distance_m, psize_m, scan_axes="yx", num_frames=0,
                 label=None):
        if not isinstance(path, str) or not path:
            raise RecipeError(f"source option path = {path!r} is not valid; give a tike .npz file")
        self.path = path
        self.energy_keV = _positive("energy_keV", energy_keV)
        self.distance_m = _positive("distance_m", distance_m)
        ps = psize_m if isinstance(psize_m, (list, tuple)) else [psize_m, psize_m]
        if len(ps) != 2:
            raise RecipeError(f"source option psize_m = {psize_m!r} is not valid; expected a "
                              "number or [y, x] in metres")
        self.psize_m = tuple(_positive("psize_m", p) for p in ps)
        if scan_axes not in ("yx", "xy"):
            raise RecipeError(f"source option scan_axes = {scan_axes!r} is not valid; expected "
                              "'yx' (tike's order: column 0 = rows) or 'xy'")
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0:
            raise RecipeError(f"source option num_frames = {num_frames!r} is not valid; "
                              "expected an integer >= 0 (0 = all frames)")
        self.scan_axes, self.num_frames = scan_axes, num_frames
        self.label = label or Path(path).name.split(".")[0]

    def _arrays(self):
        if not Path(self.path).is_file():
            raise SourceError(f"tike file {self.path!r} does not exist; check the path "
                              "(relative paths are taken from the recipe's folder)")
        st = os.stat(self.path)
        data, scan = _load(str(self.path), (st.st_mtime_ns, st.st_size))
        if len(scan) != len(data):
            raise SourceError(f"tike file {self.path!r} has {len(scan)} positions but "
                              f"{len(data)} frames; the counts must match")
        n = self.num_frames or len(data)
        return data[:n], scan[:n]

    def read_meta(self):
        data, _ = self._arrays()
        shape = tuple(int(s) for s in data.shape[1:])
        return ScanMeta(len(data), shape, data.dtype, self.energy_keV, self.distance_m,
                        self.psize_m, None, self.label,
                        {"source": "tike-npz", "file": self.path, "scan_axes": self.scan_axes,
                         "stored_fftshifted": True,
                         "object_pixel_m": object_pixel_m(self.energy_keV, self.distance_m,
                                                          self.psize_m, shape)})

    def read_positions(self):
        data, scan = self._arrays()
        yx = scan if self.scan_axes == "yx" else scan[:, ::-1]
        pos = yx * np.array(object_pixel_m(self.energy_keV, self.distance_m, self.psize_m,
                                           data.shape[1:]))
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
        if bad.size:
            raise SourceError(f"tike file {self.path!r} has NaN/inf positions at {bad.size} "
                              f"frame(s), first at index {bad[0]}")
        return pos

    def read_frames(self, indices, roi=None):
        data, _ = self._arrays()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(data)):
            raise SourceError(f"frame index {int(idx.max())} is outside the scan of "
                              f"{len(data)} frames")
        r0, r1, c0, c1 = (0, data.shape[1], 0, data.shape[2]) if roi is None else roi
        return np.ascontiguousarray(data[idx, r0:r1, c0:c1])


ptyprep.register_source("tike-npz", TikeNpzSource)
