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

This module also holds the small helpers the ``files`` and ``cxi`` sources share.
"""

import logging
import re
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  registers the bitshuffle/LZ4, Blosc2, ... filters
import numpy as np

from ..errors import RecipeError, SourceError
from ..source import ScanMeta, ScanSource

log = logging.getLogger(__name__)

HC_KEV_ANGSTROM = 12.398419843320026          # E[keV] * lambda[Å]
JOULE_PER_KEV = 1.602176634e-16
LENGTH_UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "microns": 1e-6,
                "nm": 1e-9, "a": 1e-10, "å": 1e-10, "angstrom": 1e-10, "angstroms": 1e-10}
ENERGY_UNITS = {"kev": 1.0, "ev": 1e-3, "j": 1.0 / JOULE_PER_KEV}
PIXEL_UNITS = ("pixel", "pixels", "px", "")
_BRACKET = re.compile(r"^(.*?)\s*\[([^\[\]]+)\]\s*$")


def unit_factor(unit, table, what):
    """Factor of ``unit`` (case-insensitive) in ``table``; RecipeError naming ``what`` otherwise."""
    key = str(unit).strip().lower()
    if key not in table:
        raise RecipeError(f"unknown unit {unit!r} for {what}; use one of {', '.join(table)}")
    return table[key]


def to_keV(value, unit):
    """Photon energy in keV from ``value`` in ``unit`` (an energy, or a wavelength unit)."""
    key = str(unit).strip().lower()
    if key in ENERGY_UNITS:
        return float(value) * ENERGY_UNITS[key]
    if key in LENGTH_UNITS:
        return HC_KEV_ANGSTROM / (float(value) * LENGTH_UNITS[key] / 1e-10)
    raise SourceError(f"energy unit {unit!r} is neither an energy ({', '.join(ENERGY_UNITS)}) nor "
                      f"a wavelength ({', '.join(LENGTH_UNITS)}); fix the units attribute or "
                      "give the value as a number in keV")


def contiguous_runs(indices):
    """Split increasing ``indices`` into runs of consecutive values.

    Returns a list of ``(pos0, pos1)``: ``indices[pos0:pos1]`` is consecutive.
    """
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) != 1) + 1
    edges = np.concatenate(([0], cuts, [idx.size]))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def check_positions(pos, num_frames, where):
    """Validate ``(N, 2)`` positions in metres against the frame count; return float64."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise SourceError(f"positions from {where} have shape {pos.shape}, expected (N, 2) (y, x); "
                          "give an (N, 2) array or separate y and x columns")
    if num_frames is not None and len(pos) != num_frames:
        raise SourceError(f"{len(pos)} positions from {where} but {num_frames} frames; the counts "
                          "must match (set num_frames to use a prefix of the scan)")
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise SourceError(f"positions from {where} contain NaN/inf at {bad.size} frame(s), first "
                          f"at index {bad[0]}; fix the positions or drop those frames")
    return pos


def valid_from_mask(mask, valid_value, frame_shape, where):
    """``mask == valid_value`` as (H, W) bool, after dropping leading length-1 axes."""
    mask = np.asarray(mask)
    while mask.ndim > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != tuple(frame_shape):
        raise SourceError(f"mask {where} has shape {mask.shape} but frames are {tuple(frame_shape)}; "
                          "give a mask of the raw frame shape")
    return mask == valid_value


def natural_key(name):
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def check_number(name, value, allow_path=True, pair=False):
    """RecipeError unless ``value`` is None, a number, (a path,) or a 2-list of those."""
    def ok(v):
        return (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
            allow_path and isinstance(v, str) and v.strip() != "")
    if isinstance(value, str) and allow_path:
        try:
            float(value)
        except ValueError:
            pass
        else:
            raise RecipeError(f"source option {name} = {value!r} is a quoted number; write it "
                              "without quotes, or give an HDF5 path")
    if value is None or ok(value):
        return value
    if pair and isinstance(value, (list, tuple)) and len(value) == 2 and all(ok(v) for v in value):
        return list(value)
    kinds = "a number" + (" or an HDF5 path" if allow_path else "") + (
        ", or a [y, x] pair of those" if pair else "")
    raise RecipeError(f"source option {name} = {value!r} is not valid; expected {kinds}")


class H5Files:
    """Lazily opened, cached read-only HDF5 files; ``"file::/path"`` specs resolve here."""

    def __init__(self, default_file, swmr=False):
        self.default_file = str(default_file)
        self.swmr = swmr
        self._open = {}

    def file(self, path):
        path = str(path)
        if path not in self._open:
            if not Path(path).is_file():
                raise SourceError(f"HDF5 file {path!r} does not exist; check the path "
                                  "(relative paths are taken from the recipe's folder)")
            try:
                # SWMR read: a file a detector writer holds open in SWMR mode can be read
                # (plain files open the same way); without it HDF5's lock refuses the open.
                self._open[path] = h5py.File(path, "r", swmr=self.swmr)
            except OSError as exc:
                raise SourceError(f"cannot open {path!r} as HDF5: {exc}") from exc
        return self._open[path]

    def split(self, spec):
        """``(file, inner_path, unit_or_None)`` of ``"[file::]path [unit]"``."""
        unit = None
        m = _BRACKET.match(spec)
        if m:
            spec, unit = m.group(1), m.group(2)
        fname, sep, inner = spec.partition("::")
        return (fname, inner, unit) if sep else (self.default_file, spec, unit)

    def node(self, spec, what):
        """The HDF5 object named by ``spec`` and its unit (bracket, else ``units`` attribute)."""
        fname, inner, unit = self.split(spec)
        f = self.file(fname)
        try:
            obj = f[inner]
        except (KeyError, ValueError) as exc:
            raise SourceError(f"{what}: {inner!r} not found in {fname!r} (missing dataset, or a "
                              "dangling external link); check the HDF5 path (absolute, starting "
                              "with '/') with `h5ls -r` or `ptyprep inspect`") from exc
        if unit is None:
            u = obj.attrs.get("units")
            unit = u.decode() if isinstance(u, bytes) else (None if u is None else str(u))
        return obj, unit

    def values(self, spec, what):
        """Flat float64 values of a dataset and its unit."""
        obj, unit = self.node(spec, what)
        if not isinstance(obj, h5py.Dataset):
            raise SourceError(f"{what}: {spec!r} is a group, expected a dataset of numbers")
        return np.asarray(obj[()], dtype=np.float64).ravel(), unit

    def close(self):
        for f in self._open.values():
            try:
                f.close()
            except Exception:  # closing is best effort  # noqa: BLE001
                pass
        self._open.clear()


def resolve_energy(files, value, what="energy_keV"):
    """keV from a number, or an HDF5 path to an energy or a wavelength."""
    if value is None or not isinstance(value, str):
        return None if value is None else float(value)
    v, unit = files.values(value, what)
    return to_keV(v[0], unit or "keV")


def resolve_length(files, value, what):
    """Metres from a number, or an HDF5 path (first value)."""
    if value is None or not isinstance(value, str):
        return None if value is None else float(value)
    v, unit = files.values(value, what)
    return float(v[0]) * unit_factor(unit or "m", LENGTH_UNITS, what)


def resolve_psize(files, value):
    """``(y, x)`` metres from a number, [y, x], a path (1 or 2 values) or [path_y, path_x]."""
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(resolve_length(files, v, "psize_m") for v in value)
    if isinstance(value, str):
        v, unit = files.values(value, "psize_m")
        v = v * unit_factor(unit or "m", LENGTH_UNITS, "psize_m")
        return (float(v[0]), float(v[-1]))
    return (float(value), float(value))


def resolve_center(files, value, psize):
    """``(row, col)`` pixels from numbers or two HDF5 paths (lengths divided by the pixel size)."""
    if value is None:
        return None
    out = []
    for axis, v in enumerate(value):
        if not isinstance(v, str):
            out.append(float(v))
            continue
        vals, unit = files.values(v, "beam_center")
        if unit is None or unit.strip().lower() in PIXEL_UNITS:
            out.append(float(vals[0]))
            continue
        if psize is None:
            raise RecipeError(f"beam_center path {v!r} is in {unit!r}; converting it to pixels "
                              "needs psize_m, so give psize_m too")
        out.append(float(vals[0]) * unit_factor(unit, LENGTH_UNITS, "beam_center") / psize[axis])
    return tuple(out)


class _Segments:
    """Frames stored as consecutive datasets; reads index runs into one output array."""

    def __init__(self, dsets):
        self.dsets = dsets
        counts = [1 if d.ndim == 2 else d.shape[0] for d in dsets]
        self.offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    def read(self, indices, roi, out):
        r0, r1, c0, c1 = roi
        idx = np.asarray(indices, dtype=np.int64)
        for p0, p1 in contiguous_runs(idx):
            g0, g1, pos = int(idx[p0]), int(idx[p1 - 1]) + 1, p0
            while g0 < g1:
                s = int(np.searchsorted(self.offsets, g0, side="right")) - 1
                end = min(g1, int(self.offsets[s + 1]))
                d, a = self.dsets[s], g0 - int(self.offsets[s])
                if d.ndim == 2:
                    d.read_direct(out, np.s_[r0:r1, c0:c1], np.s_[pos])
                else:
                    d.read_direct(out, np.s_[a:a + end - g0, r0:r1, c0:c1],
                                  np.s_[pos:pos + end - g0])
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
                    "distance_m", "psize_m", "beam_center", "end_of_scan")

    def __init__(self, path, frames="/entry/data/data", positions=None, positions_y=None,
                 positions_x=None, positions_unit=None, mask=None, mask_valid_value=1,
                 energy_keV=None, distance_m=None, psize_m=None, beam_center=None,
                 num_frames=0, label=None, single_frame=False, end_of_scan=None):
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

    def close(self):
        self._segments = None
        self._files.close()
