"""The ``hdf5`` source: frames, positions and geometry from HDF5 files.

Reads one dataset of frames ``(N, H, W)`` from one file or from several files
(frames concatenated in file order), an Eiger master group whose members are
external links ``data_000001``, ``data_000002``, ... (concatenated in natural
name order), or a virtual dataset.  Only the requested hyperslab is read:
contiguous runs of indices are read with one call each, straight into the
output array.

Geometry options take a number or an HDF5 path.  A value read from a path is
converted with the dataset's ``units`` attribute, or with a unit written after
the path in brackets (``"/entry/instrument/detector/distance [mm]"``); without
either it is taken in the option's own unit (m, keV, pixels).  A path may name
another file as ``"file.h5::/path"``; a path without ``::`` is looked up in the
first frames file and should start with ``/``.

The helpers the ``files`` and ``cxi`` sources share live in :mod:`._common`.
"""

import logging
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  registers the bitshuffle/LZ4, Blosc2, ... filters
import numpy as np

from ..fast.chunkread import read_hyperslab, roi_reader
from ..errors import RecipeError, SourceError
from .base import ScanMeta, ScanSource
from ._common import (LENGTH_UNITS, H5Files, check_number, check_positions, check_scan_options,
                      contiguous_runs, natural_key, resolve_center, resolve_energy,
                      resolve_length, resolve_psize, unit_factor, valid_from_mask)

log = logging.getLogger(__name__)


class _Segments:
    """Frames stored as consecutive datasets; reads index runs into one output array."""

    def __init__(self, dsets):
        self.dsets = dsets
        self.shapes = [tuple(d.shape) for d in dsets]
        counts = [1 if len(shape) == 2 else shape[0] for shape in self.shapes]
        self.offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self._readers = {}

    def roi_reader(self, s):
        """Crop-on-read function of dataset ``s`` (:func:`~ptyprep.fast.chunkread.roi_reader`)."""
        if s not in self._readers:
            self._readers[s] = roi_reader(self.dsets[s])
        return self._readers[s]

    def read(self, indices, roi, out):
        r0, r1, c0, c1 = roi
        idx = np.asarray(indices, dtype=np.int64)
        for p0, p1 in contiguous_runs(idx):
            g0, g1, pos = int(idx[p0]), int(idx[p1 - 1]) + 1, p0
            while g0 < g1:
                s = int(np.searchsorted(self.offsets, g0, side="right")) - 1
                end = min(g1, int(self.offsets[s + 1]))
                d, shape, a = self.dsets[s], self.shapes[s], g0 - int(self.offsets[s])
                n = end - g0
                if len(shape) == 2:
                    d.read_direct(out, np.s_[r0:r1, c0:c1], np.s_[pos])
                elif r1 - r0 < shape[1] and self.roi_reader(s) is not None:
                    # crop on read: only the compressed blocks of the ROI rows decoded
                    self.roi_reader(s)(np.arange(a, a + n), roi, out=out[pos:pos + n])
                else:
                    read_hyperslab(d, (a, r0, c0), out[pos:pos + n])
                pos += end - g0
                g0 = end
        return out


class HDF5Source(ScanSource):
    """Frames and scan metadata from HDF5 files (single, multi-file, Eiger master, VDS).

    Parameters
    ----------
    path : str or list of str
        HDF5 file(s); frames of several files are concatenated in list order.
    frames : str
        Dataset ``(N, H, W)`` of frames, or a group whose 3-D datasets (Eiger
        ``data_000001``, ...) are concatenated in natural name order.
    positions : str, optional
        ``(N, 2)`` dataset of ``(y, x)`` positions.
    positions_y, positions_x : str, optional
        Two ``(N,)`` datasets instead of ``positions``.
    positions_unit : str, optional
        "m", "mm", "um" or "nm"; default: the dataset's ``units`` attribute, else "m".
    mask : str, optional
        Mask dataset path (absolute: ``/...``), ``"file.h5::/path"``, or a ``.npy`` file.
        Every option that may hold an HDF5 path is in ``path_options``: a relative
        ``file.h5::`` part is taken from the recipe's folder, so HDF5 paths must be
        absolute.
    mask_valid_value : int
        Mask value that marks a usable pixel (1; use 0 for "nonzero = bad").
    energy_keV, distance_m : float or str, optional
        Number, or HDF5 path (an energy path may also hold a wavelength).
    psize_m : float, [y, x], str or [str, str], optional
        Detector pixel size in metres.
    beam_center : [row, col] numbers or two HDF5 paths, optional
        Optical axis on the raw frame, pixels.
    num_frames : int
        Use only the first ``num_frames`` frames (0 = all).  While a scan is
        followed, this is also its known length: reaching it ends the scan.
    label : str, optional
        Scan name (default: the first file's stem).
    single_frame : bool
        Accept a 2-D ``(H, W)`` frames dataset as a one-frame scan.
    end_of_scan : str, optional
        HDF5 path of a dataset that becomes non-zero when the acquisition has
        ended (``ptyprep watch``); the writer must flush it, SWMR readers see
        dataset updates, not attribute changes.
    incident, transmitted : str, optional
        HDF5 paths of per-frame ``(N,)`` beam monitors before / after the sample
        (:meth:`read_monitors`; scanning SAXS records them as attributes).
    scan_shape : [n_slow, n_fast] or str, optional
        Raster shape, or the HDF5 path of a dataset holding it (one value = [1, n]).
    motors : [slow, fast] str, optional
        Motor names (default ``["slow", "fast"]`` when positions are given).
    motor_positions : [str, str], optional
        HDF5 paths of the ``(N,)`` recorded slow and fast positions, in motor units;
        default ``positions_y`` / ``positions_x`` (their raw values, not converted).
    snaking : bool
        Odd rows of the raster run the fast axis backwards.

    Notes
    -----
    Following a growing scan (``ptyprep watch``): the first call of
    :meth:`available` or :meth:`refresh` switches the source to following.
    Files are then opened for SWMR reading (a detector writer may hold them open
    in SWMR mode) and reopened on every refresh; a frame counts once its
    position exists as well, and an Eiger master's frames stop at the first data
    file that does not exist yet.
    """

    #: Relative HDF5 paths would be taken for files here: HDF5 paths must start with "/".
    path_options = ("path", "mask", "positions", "positions_y", "positions_x", "energy_keV",
                    "distance_m", "psize_m", "beam_center", "end_of_scan", "incident",
                    "transmitted", "scan_shape", "motor_positions")
    #: the option a scanning-SAXS ``Detector(dataset=...)`` sets (its frames dataset)
    frames_option = "frames"

    def __init__(self, path, frames="/entry/data/data", positions=None, positions_y=None,
                 positions_x=None, positions_unit=None, mask=None, mask_valid_value=1,
                 energy_keV=None, distance_m=None, psize_m=None, beam_center=None,
                 num_frames=0, label=None, single_frame=False, end_of_scan=None,
                 incident=None, transmitted=None, scan_shape=None, motors=None,
                 motor_positions=None, snaking=False):
        paths = [path] if isinstance(path, str) else list(path or [])
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise RecipeError(f"source option path = {path!r} is not valid; give an HDF5 file "
                              "name or a list of file names")
        if positions is not None and (positions_y is not None or positions_x is not None):
            raise RecipeError("give either positions (an (N, 2) dataset) or positions_y and "
                              "positions_x, not both")
        if (positions_y is None) != (positions_x is None):
            raise RecipeError("positions_y and positions_x must be given together")
        if positions_unit is not None:
            unit_factor(positions_unit, LENGTH_UNITS, "positions_unit")
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0:
            raise RecipeError(f"source option num_frames = {num_frames!r} is not valid; "
                              "expected an integer >= 0 (0 = all frames)")
        if beam_center is not None:
            beam_center = check_number("beam_center", beam_center, pair=True)
            if not isinstance(beam_center, list):
                raise RecipeError(f"source option beam_center = {beam_center!r} is not valid; "
                                  "expected [row, col] numbers or two HDF5 paths")
        self.paths = paths
        self.frames = frames
        self.positions, self.positions_y, self.positions_x = positions, positions_y, positions_x
        self.positions_unit = positions_unit
        self.mask, self.mask_valid_value = mask, mask_valid_value
        self.energy_keV = check_number("energy_keV", energy_keV)
        self.distance_m = check_number("distance_m", distance_m)
        self.psize_m = check_number("psize_m", psize_m, pair=True)
        self.beam_center = beam_center
        self.num_frames, self.label, self.single_frame = num_frames, label, bool(single_frame)
        if end_of_scan is not None and (not isinstance(end_of_scan, str) or not end_of_scan):
            raise RecipeError(f"source option end_of_scan = {end_of_scan!r} is not valid; give "
                              "the HDF5 path of a dataset that becomes non-zero at the scan's end")
        self.end_of_scan = end_of_scan
        self.scan = check_scan_options(incident, transmitted, scan_shape, motors,
                                       motor_positions, snaking)
        self.following = False
        self._files = H5Files(paths[0])
        self._segments = None
        self._meta = None

    # -- frames ---------------------------------------------------------------------------
    def _frame_datasets(self, fname):
        obj, _ = self._files.node(f"{fname}::{self.frames}", "frames")
        if isinstance(obj, h5py.Group):
            dsets = []
            for name in sorted(obj, key=natural_key):
                try:
                    member = obj.get(name)
                except (KeyError, OSError):  # followed: a data file still held by its writer
                    if not self.following:
                        raise
                    member = None
                if member is None:  # dangling external link: a file not (yet) written
                    (log.debug if self.following else log.warning)(
                        "%s::%s/%s is a dangling link; frames stop before it",
                        fname, self.frames, name)
                    break
                if isinstance(member, h5py.Dataset) and member.ndim == 3:
                    dsets.append(member)
            if not dsets and not self.following:  # followed: no data file written yet
                raise SourceError(f"group {self.frames!r} in {fname!r} holds no 3-D frame "
                                  "datasets; point frames at the dataset itself")
            return dsets
        if obj.ndim == 3 or (obj.ndim == 2 and self.single_frame):
            return [obj]
        hint = " (set single_frame = true for one 2-D image)" if obj.ndim == 2 else ""
        raise SourceError(f"frames {self.frames!r} in {fname!r} has shape {obj.shape}, expected "
                          f"a 3-D (N, H, W) stack{hint}")

    def _open(self):
        if self._segments is None:
            dsets = []
            for p in self.paths:
                if self.following and dsets and not Path(p).is_file():
                    break  # a later file of a followed scan, not written yet
                dsets += self._frame_datasets(p)
            shapes = {d.shape[-2:] for d in dsets}
            dtypes = {d.dtype for d in dsets}
            if len(shapes) > 1 or len(dtypes) > 1:
                raise SourceError(f"frame datasets differ in frame shape {sorted(shapes)} or dtype "
                                  f"{sorted(map(str, dtypes))}; concatenate only matching files")
            self._segments = _Segments(dsets)
        return self._segments

    def _count(self):
        total = int(self._open().offsets[-1])
        if self.following:
            total = min(total, self._positions_rows())
        return min(total, self.num_frames) if self.num_frames else total

    # -- following a growing scan ---------------------------------------------------------
    def refresh(self):
        """Forget what was read of a growing scan; the next access reopens the files.

        Switches the source to following (SWMR reads, see the class notes).
        """
        self.following = True
        self._segments = self._meta = None
        self._files.close()
        self._files.swmr = True

    def available(self):
        """``(complete_frames, scan_ended)`` of a scan that may still be acquired.

        A frame is complete when its frame and its position are both written.
        The scan has ended when the ``end_of_scan`` dataset is non-zero, or when
        ``num_frames`` frames are complete.  The marker is read before the
        frames, so frames counted after a set marker are all the scan's frames.
        """
        self.refresh()
        ended = self._marker_set()
        n = self._count()
        return n, bool(ended or (self.num_frames and n >= self.num_frames))

    def _marker_set(self):
        if self.end_of_scan is None:
            return False
        try:
            values, _ = self._files.values(self.end_of_scan, "end_of_scan")
        except SourceError:  # not written yet
            return False
        return bool(np.any(values != 0))

    def _positions_rows(self):
        if self.positions is not None:
            return int(self._files.node(self.positions, "positions")[0].shape[0])
        if self.positions_y is not None:
            return min(int(self._files.node(p, "positions")[0].shape[0])
                       for p in (self.positions_y, self.positions_x))
        return np.iinfo(np.int64).max

    def read_frames(self, indices, roi=None):
        seg = self._open()
        h, w = seg.dsets[0].shape[-2:]
        roi = (0, h, 0, w) if roi is None else tuple(int(v) for v in roi)
        idx = np.asarray(indices, dtype=np.int64)
        n = self._count()
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise SourceError(f"frame index {int(idx.max())} is outside the scan of {n} frames")
        out = np.empty((idx.size, roi[1] - roi[0], roi[3] - roi[2]), dtype=seg.dsets[0].dtype)
        return seg.read(idx, roi, out)

    def where(self):
        more = f" (+{len(self.paths) - 1} files)" if len(self.paths) > 1 else ""
        return f"{str(self.paths[0])!r}{more} dataset {self.frames!r}"

    # -- metadata -------------------------------------------------------------------------
    def read_meta(self):
        if self._meta is None:
            seg = self._open()
            shape = tuple(int(s) for s in seg.dsets[0].shape[-2:])
            f = self._files
            psize = resolve_psize(f, self.psize_m)
            if self.mask is not None:
                self._valid = valid_from_mask(self._read_mask(), self.mask_valid_value, shape,
                                              repr(self.mask))
            self._meta = ScanMeta(
                num_frames=self._count(), frame_shape=shape, dtype=seg.dsets[0].dtype,
                energy_keV=resolve_energy(f, self.energy_keV),
                distance_m=resolve_length(f, self.distance_m, "distance_m"),
                psize_m=psize, beam_center=resolve_center(f, self.beam_center, psize),
                label=self.label or Path(self.paths[0]).stem,
                extra={"source": "hdf5", "files": list(self.paths), "frames": self.frames,
                       "frame_datasets": len(seg.dsets)})
        return self._meta

    def _read_mask(self):
        spec = str(self.mask)
        if spec.lower().endswith(".npy"):
            if not Path(spec).is_file():
                raise SourceError(f"mask file {spec!r} does not exist; check the path")
            return np.load(spec)
        obj, _ = self._files.node(spec, "mask")
        return obj[()]

    def read_valid(self):
        if self.mask is None:
            return None
        self.read_meta()
        return self._valid

    def read_positions(self):
        n = self.read_meta().num_frames
        f = self._files
        if self.positions is None and self.positions_y is None:
            log.warning("no positions given for %s; using zeros", self.paths[0])
            return np.zeros((n, 2))
        if self.positions is not None:
            obj, unit = f.node(self.positions, "positions")
            pos = np.asarray(obj[()], dtype=np.float64)
            where = repr(self.positions)
        else:
            y, unit = f.values(self.positions_y, "positions_y")
            x, _ = f.values(self.positions_x, "positions_x")
            if self.following:  # one may be written ahead of the other
                y, x = y[:min(len(y), len(x))], x[:min(len(y), len(x))]
            if y.shape != x.shape:
                raise SourceError(f"positions_y has {y.size} values but positions_x has {x.size}; "
                                  "they must have one value per frame each")
            pos = np.stack([y, x], axis=1)
            where = repr(self.positions_y)
        unit = self.positions_unit or unit or "m"
        pos = pos * unit_factor(unit, LENGTH_UNITS, "positions_unit")
        if (self.num_frames or self.following) and pos.ndim == 2 and len(pos) > n:
            pos = pos[:n]
        return check_positions(pos, n, where)

    # -- scanning SAXS: monitors and raster --------------------------------------------------
    def read_monitors(self):
        """``{"incident": (N,), "transmitted": (N,)}`` of the monitors given as options, or None."""
        out = {name: self._files.values(self.scan[name], name)[0]
               for name in ("incident", "transmitted") if self.scan[name]}
        return out or None

    def read_scan_geometry(self):
        """Raster from ``scan_shape``/``motors``/``motor_positions``/``snaking`` (None if unset)."""
        sc = self.scan
        paths = sc["motor_positions"] or ([self.positions_y, self.positions_x]
                                          if self.positions_y is not None else None)
        if sc["scan_shape"] is None and paths is None and sc["motors"] is None:
            return None
        n = self.read_meta().num_frames
        shape = sc["scan_shape"]
        if isinstance(shape, str):
            values = self._files.values(shape, "scan_shape")[0]
            shape = [int(v) for v in values]
        shape = [1, n] if shape is None else list(shape)
        if len(shape) == 1:
            shape = [1] + shape
        if len(shape) != 2 or min(shape) < 1:
            raise SourceError(f"scan_shape {shape} is not [n_slow, n_fast] with both >= 1")
        if paths is not None:
            slow = self._files.values(paths[0], "motor_positions")[0]
            fast = self._files.values(paths[1], "motor_positions")[0]
            m = min(len(slow), len(fast))
            positions = np.stack([slow[:m], fast[:m]], axis=1)
        else:
            idx = np.arange(n, dtype=np.float64)
            positions = np.stack([idx // shape[1], idx % shape[1]], axis=1)
        motors = sc["motors"] or (["slow", "fast"] if paths is not None else ["row", "column"])
        return {"shape": shape, "motors": motors, "snaking": sc["snaking"],
                "positions": positions}

    def close(self):
        self._segments = None
        self._files.close()

