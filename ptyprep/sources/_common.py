"""Helpers the built-in sources share: units, HDF5 path specs, positions, masks, tables.

Kept free of any one source's logic so ``hdf5``, ``files`` and ``cxi`` import them
from here (``ptyprep.sources.hdf5`` re-exports the old names).
"""

import logging
import re
from pathlib import Path

import h5py
import numpy as np

from ..errors import RecipeError, SourceError

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


def check_scan_options(incident, transmitted, scan_shape, motors, motor_positions, snaking):
    """Validated scanning options of a source (RecipeError naming the bad one)."""
    for name, v in (("incident", incident), ("transmitted", transmitted)):
        if v is not None and (not isinstance(v, str) or not v):
            raise RecipeError(f"source option {name} = {v!r} is not valid; give the HDF5 path "
                              "of a per-frame (N,) monitor dataset")
    if scan_shape is not None and not isinstance(scan_shape, str):
        ok = isinstance(scan_shape, (list, tuple)) and len(scan_shape) in (1, 2) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in scan_shape)
        if not ok:
            raise RecipeError(f"source option scan_shape = {scan_shape!r} is not valid; give "
                              "[n_slow, n_fast] (integers >= 1) or an HDF5 path")
        scan_shape = list(scan_shape)
    for name, v in (("motors", motors), ("motor_positions", motor_positions)):
        if v is not None and not (isinstance(v, (list, tuple)) and len(v) == 2
                                  and all(isinstance(x, str) and x for x in v)):
            raise RecipeError(f"source option {name} = {v!r} is not valid; give two names "
                              "[slow, fast]")
    if not isinstance(snaking, bool):
        raise RecipeError(f"source option snaking = {snaking!r} must be true or false")
    return {"incident": incident, "transmitted": transmitted, "scan_shape": scan_shape,
            "motors": None if motors is None else list(motors),
            "motor_positions": None if motor_positions is None else list(motor_positions),
            "snaking": snaking}


def parse_table(text, where):
    """``(names or None, (rows, cols) float64)`` of a whitespace- or comma-separated table.

    The first non-blank line names the columns when its tokens (after an optional
    ``#``) are not all numbers and there is one per data column; other ``#`` lines
    are comments.

    Examples
    --------
    >>> parse_table("# y x I0\\n1 2 3\\n4 5 6\\n", "t")[0]
    ['y', 'x', 'I0']
    """
    names, rows = None, []
    first = True
    for k, line in enumerate(text.splitlines(), start=1):
        raw = line.replace(",", " ").strip()
        if not raw:
            continue
        if first:
            first = False
            tokens = raw.lstrip("#").split()
            if tokens and not all(_is_number(t) for t in tokens):
                names = tokens
                continue
        body = raw.split("#", 1)[0].split()
        if not body:
            continue
        try:
            rows.append([float(t) for t in body])
        except ValueError:
            raise SourceError(f"{where}:{k}: expected numbers, got {line.strip()!r}") from None
        if len(rows[-1]) != len(rows[0]):
            raise SourceError(f"{where}:{k}: {len(rows[-1])} columns, the first row has "
                              f"{len(rows[0])}; every row needs the same columns")
    ncols = len(rows[0]) if rows else (len(names) if names else 0)
    if names is not None and len(names) != ncols:
        names = None                      # a comment line, not a header
    return names, np.array(rows, dtype=np.float64).reshape(-1, ncols)


def _is_number(token):
    try:
        float(token)
    except ValueError:
        return False
    return True


def column_index(col, names, ncols, where, option):
    """Index of column ``col`` (a number counted from 0, or a name from the header)."""
    if isinstance(col, int) and not isinstance(col, bool):
        if not 0 <= col < ncols:
            raise SourceError(f"{where} has {ncols} column(s); {option} names column {col}")
        return col
    if names is None or col not in names:
        have = f"columns {names}" if names else "no header line naming its columns"
        raise SourceError(f"{where} has {have}; {option} names column {col!r}. Add a first line "
                          "naming the columns, or give column numbers counted from 0")
    return names.index(col)
