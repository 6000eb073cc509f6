"""The ``files`` source: one file per frame.

Two layouts:

* **ptypy tutorial folder** (``folder`` without ``pattern``): ``positions.txt``
  holds lines ``filename y x`` (metres; file names relative to the folder;
  blank lines and ``#`` comments ignored), ``geometry.txt`` holds ``key value``
  lines (``energy`` keV, ``distance`` m, ``psize`` m, ``shape``; whatever is
  there is used), and each frame is a ``.npy`` file.
* **image series** (``pattern``): every file matching the glob pattern, in
  natural order of the numbers in the names (``f_2`` before ``f_10``), read with
  fabio (TIFF, CBF, EDF, ...) or numpy (``.npy``).  Positions come from a text
  table ``positions_file`` (columns ``positions_columns``, default ``[0, 1]`` =
  y, x; unit ``positions_unit``).  The table may start with a line naming its
  columns (``# y x I0 It``); columns are then named or numbered.  The same
  table serves per-frame monitors (``monitor_columns``) and, for scanning SAXS,
  motor positions in motor units (``motors``, ``scan_shape``, ``snaking``).

Numbers given as options override ``geometry.txt``.  ``.npy`` frames are
memory-mapped, so a ROI read touches only the window; other formats are decoded
whole (their libraries cannot read a window) and cropped.
"""

import glob
import logging
from pathlib import Path

import numpy as np

from ..errors import RecipeError, SourceError
from .base import ScanMeta, ScanSource
from .frame_files import (GEOMETRY_KEYS, NPY_HEADER_READERS, parse_geometry_txt,
                          parse_positions_txt, parse_positions_txt_text, read_image)
from ._common import LENGTH_UNITS, check_number, check_positions, check_scan_options, \
    column_index, natural_key, parse_table, unit_factor, valid_from_mask

log = logging.getLogger(__name__)

class FilesSource(ScanSource):
    """Frames stored one per file (ptypy tutorial folder, or an image series).

    Parameters
    ----------
    folder : str, optional
        ptypy tutorial folder holding ``positions.txt`` and ``geometry.txt``.
    pattern : str, optional
        Glob pattern of the frame files (image series layout).
    positions_file : str, optional
        Positions table (series: columns ``positions_columns``; tutorial: overrides
        ``folder/positions.txt``).
    positions_unit : str
        "m", "mm", "um" or "nm" (series layout; positions.txt is in metres).
    positions_columns : [int or str, int or str]
        Columns of y and x in ``positions_file`` (numbers from 0, or names from the
        table's header line).
    monitor_columns : dict or list, optional
        Per-frame monitors in ``positions_file``: ``{incident = "I0", transmitted =
        "It"}`` (attribute name = column), or a list of columns kept under their names.
    motors : [slow, fast], optional
        Columns of the recorded slow and fast motor positions (motor units); their
        header names become the motor names.  Default: ``positions_columns``.
    scan_shape : [n_slow, n_fast], optional
        Raster shape (default one row of all frames).
    snaking : bool
        Odd rows of the raster run the fast axis backwards.
    energy_keV, distance_m : float, optional
        Override or supply the geometry.
    psize_m : float or [y, x], optional
        Detector pixel size in metres.
    beam_center : [row, col], optional
        Optical axis on the raw frame, pixels.
    mask : str, optional
        ``.npy`` or image file; ``mask == mask_valid_value`` marks usable pixels.
    mask_valid_value : int
        1 by default; 0 flips the polarity.
    num_frames : int
        Use only the first ``num_frames`` frames (0 = all).
    label : str, optional
        Scan name (default: the folder's or the pattern's parent's name).
    end_of_scan : str, optional
        A file whose appearance marks the end of the acquisition (``ptyprep watch``).

    Notes
    -----
    Following a growing folder (``ptyprep watch``): the first call of
    :meth:`available` or :meth:`refresh` switches the source to following.  The
    folder is then listed again on every refresh; a frame counts when it and
    all frames before it are complete (``.npy``: the file holds every byte its
    header announces; other formats: the size did not change since the previous
    refresh) and its position line is written (a last line without its newline
    is not).  Writers should write under another name and rename.
    """

    path_options = ("folder", "pattern", "positions_file", "mask", "end_of_scan")
    #: the option a scanning-SAXS ``Detector(dataset=...)`` sets (its frames' glob pattern)
    frames_option = "pattern"

    def __init__(self, folder=None, pattern=None, positions_file=None, positions_unit="m",
                 positions_columns=(0, 1), energy_keV=None, distance_m=None, psize_m=None,
                 beam_center=None, mask=None, mask_valid_value=1, num_frames=0, label=None,
                 end_of_scan=None, monitor_columns=None, motors=None, scan_shape=None,
                 snaking=False):
        if not folder and not pattern:
            raise RecipeError("source 'files' needs folder (a ptypy positions.txt folder) or "
                              "pattern (a glob of frame files)")
        unit_factor(positions_unit, LENGTH_UNITS, "positions_unit")
        cols = list(positions_columns) if isinstance(positions_columns, (list, tuple)) else []
        if len(cols) != 2 or not all(_is_column(c) for c in cols):
            raise RecipeError(f"source option positions_columns = {positions_columns!r} is not "
                              "valid; expected two columns [y, x]: numbers counted from 0 or "
                              "names from the table's header line")
        if isinstance(monitor_columns, (list, tuple)):
            monitor_columns = {str(c): c for c in monitor_columns}
        if monitor_columns is not None and not (isinstance(monitor_columns, dict) and all(
                _is_column(c) for c in monitor_columns.values())):
            raise RecipeError(f"source option monitor_columns = {monitor_columns!r} is not valid; "
                              "give {incident = 'I0', transmitted = 'It'} or a list of columns")
        if motors is not None and not (isinstance(motors, (list, tuple)) and len(motors) == 2
                                       and all(_is_column(c) for c in motors)):
            raise RecipeError(f"source option motors = {motors!r} is not valid; give the two "
                              "columns [slow, fast] of positions_file")
        if (monitor_columns or motors) and not positions_file:
            raise RecipeError("monitor_columns and motors name columns of positions_file; "
                              "give positions_file too")
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0:
            raise RecipeError(f"source option num_frames = {num_frames!r} is not valid; "
                              "expected an integer >= 0 (0 = all frames)")
        self.folder, self.pattern, self.positions_file = folder, pattern, positions_file
        self.positions_unit, self.positions_columns = positions_unit, cols
        self.options = dict(energy_keV=check_number("energy_keV", energy_keV, allow_path=False),
                            distance_m=check_number("distance_m", distance_m, allow_path=False),
                            psize_m=check_number("psize_m", psize_m, allow_path=False, pair=True))
        if beam_center is not None:
            if not (isinstance(beam_center, (list, tuple)) and len(beam_center) == 2):
                raise RecipeError(f"source option beam_center = {beam_center!r} is not valid; "
                                  "expected [row, col] in pixels")
            check_number("beam_center", list(beam_center), allow_path=False, pair=True)
        self.beam_center = beam_center
        self.mask, self.mask_valid_value = mask, mask_valid_value
        self.num_frames, self.label = num_frames, label
        self.end_of_scan = end_of_scan
        self.monitor_columns, self.motors = monitor_columns, motors
        self.scan = check_scan_options(None, None, scan_shape, None, None, snaking)
        self.following = False
        self._sizes = {}
        self._files = self._positions = self._meta = self._valid = None
        self._table = None

    # -- index of files and positions ---------------------------------------------------
    def _index(self):
        if self._files is not None:
            return
        if self.following:
            return self._index_growing()
        if self.pattern:
            files = sorted(glob.glob(str(self.pattern)), key=natural_key)
            if not files:
                raise SourceError(f"no file matches pattern {self.pattern!r}; check the folder "
                                  "and the wildcard (relative to the recipe's folder)")
            pos = self._read_table(files) if self.positions_file else None
        else:
            folder = Path(self.folder)
            table = Path(self.positions_file or folder / "positions.txt")
            if not table.is_file():
                raise SourceError(f"{str(table)!r} does not exist; a ptypy data folder needs "
                                  "positions.txt ('filename y x' lines), or give pattern=")
            names, pos = parse_positions_txt(table)
            files = [str(folder / n) for n in names]
        if self.num_frames:
            files = files[:self.num_frames]
            pos = None if pos is None else pos[:self.num_frames]
        self._files = files
        self._positions = pos

    def _read_table(self, files):
        path = Path(self.positions_file)
        if not path.is_file():
            raise SourceError(f"positions_file {str(path)!r} does not exist; check the path")
        try:
            text = path.read_text()
            if self.following:  # a line is complete once its newline is written
                text = text[:text.rfind("\n") + 1]
            names, table = parse_table(text, f"positions_file {str(path)!r}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"positions_file {str(path)!r} is not a numeric table: {exc}") from exc
        self._table = (names, table)
        cols = [self._column(c, "positions_columns") for c in self.positions_columns]
        return table[:, cols] * unit_factor(self.positions_unit, LENGTH_UNITS, "positions_unit")

    def _column(self, col, option):
        names, table = self._table
        return column_index(col, names, table.shape[1], f"positions_file {self.positions_file!r}",
                            option)

    # -- following a growing folder ---------------------------------------------------------
    def refresh(self):
        """Forget the listing of a growing folder; switches the source to following."""
        self.following = True
        self._files = self._positions = self._meta = None

    def available(self):
        """``(complete_frames, scan_ended)`` of a folder that may still be growing.

        The scan has ended when the ``end_of_scan`` file exists (checked before
        the frames are listed) or ``num_frames`` frames are complete.
        """
        self.refresh()
        ended = self.end_of_scan is not None and Path(self.end_of_scan).exists()
        self._index_growing(require_stable=True)
        n = len(self._files)
        return n, bool(ended or (self.num_frames and n >= self.num_frames))

    def _index_growing(self, require_stable=False):
        """List the complete frames; ``require_stable``: a non-``.npy`` file also needs a size
        unchanged since the previous listing (other readers trust the count given to them)."""
        if self.pattern:
            files = sorted(glob.glob(str(self.pattern)), key=natural_key)
            pos = None
            if self.positions_file:
                pos = self._read_table(files) if Path(self.positions_file).is_file() else \
                    np.zeros((0, 2))
        else:
            folder = Path(self.folder)
            table = Path(self.positions_file or folder / "positions.txt")
            names, pos = [], np.zeros((0, 2))
            if table.is_file():
                text = table.read_text()
                complete = text[:text.rfind("\n") + 1]
                names, pos = parse_positions_txt_text(complete, table)
            files = [str(folder / n) for n in names]
        n = 0
        while n < len(files) and self._complete(files[n], require_stable):
            n += 1
        if pos is not None:
            n = min(n, len(pos))
        if self.num_frames:
            n = min(n, self.num_frames)
        self._files = files[:n]
        self._positions = None if pos is None else pos[:n]

    def _complete(self, path, require_stable):
        try:
            stat = Path(path).stat()
        except OSError:
            return False
        if path.lower().endswith(".npy"):
            try:
                with open(path, "rb") as fh:
                    version = np.lib.format.read_magic(fh)
                    read_header = NPY_HEADER_READERS.get(version)
                    if read_header is not None:
                        shape, _, dtype = read_header(fh)
                        header = fh.tell()
            except (OSError, ValueError, EOFError):
                return False
            if read_header is not None:
                return stat.st_size >= header + int(np.prod(shape)) * dtype.itemsize
        key = (stat.st_size, stat.st_mtime_ns)
        stable = self._sizes.get(path) == key
        self._sizes[path] = key
        return stable or not require_stable

    def _geometry(self):
        geo = {}
        if self.folder and (Path(self.folder) / "geometry.txt").is_file():
            raw = parse_geometry_txt(Path(self.folder) / "geometry.txt")
            geo = {GEOMETRY_KEYS[k]: v for k, v in raw.items() if k in GEOMETRY_KEYS}
        geo.update({k: v for k, v in self.options.items() if v is not None})
        p = geo.get("psize_m")
        if p is not None:
            geo["psize_m"] = tuple(float(v) for v in p) if isinstance(p, list) else (float(p),) * 2
        return geo

    # -- ScanSource -------------------------------------------------------------------------
    def read_meta(self):
        if self._meta is None:
            self._index()
            first = read_image(self._files[0], mmap=True)
            if first.ndim != 2:
                raise SourceError(f"frame file {self._files[0]!r} holds shape {first.shape}, "
                                  "expected one 2-D frame per file")
            shape = tuple(int(s) for s in first.shape)
            if self.mask is not None:
                self._valid = valid_from_mask(read_image(self.mask), self.mask_valid_value, shape,
                                              repr(self.mask))
            geo = self._geometry()
            bc = None if self.beam_center is None else tuple(float(v) for v in self.beam_center)
            label = self.label or Path(self.folder or Path(self.pattern).parent).name
            self._meta = ScanMeta(len(self._files), shape, first.dtype, geo.get("energy_keV"),
                                  geo.get("distance_m"), geo.get("psize_m"), bc, label,
                                  {"source": "files", "first_file": self._files[0]})
        return self._meta

    def read_positions(self):
        n = self.read_meta().num_frames
        if self._positions is None:
            log.warning("no positions_file given for %s; using zeros", self.pattern)
            return np.zeros((n, 2))
        return check_positions(self._positions, n,
                               repr(self.positions_file or f"{self.folder}/positions.txt"))

    def read_valid(self):
        self.read_meta()
        return self._valid

    # -- scanning SAXS: monitors and raster from the table ----------------------------------
    def read_monitors(self):
        """``{name: (N,)}`` of the ``monitor_columns`` of ``positions_file``, or None."""
        if not self.monitor_columns:
            return None
        self.read_meta()
        table = self._table[1]
        return {name: table[:, self._column(col, "monitor_columns")].copy()
                for name, col in self.monitor_columns.items()}

    def read_scan_geometry(self):
        """Raster from ``scan_shape``/``motors``/``snaking`` and the table (None if unset)."""
        sc = self.scan
        if sc["scan_shape"] is None and self.motors is None and not sc["snaking"]:
            return None
        n = self.read_meta().num_frames
        shape = [1, n] if sc["scan_shape"] is None else list(sc["scan_shape"])
        shape = [1] + shape if len(shape) == 1 else shape
        if self._table is None:
            idx = np.arange(n, dtype=np.float64)
            return {"shape": shape, "motors": ["row", "column"], "snaking": sc["snaking"],
                    "positions": np.stack([idx // shape[1], idx % shape[1]], axis=1)}
        names, table = self._table
        cols = [self._column(c, "motors") for c in (self.motors or self.positions_columns)]
        motors = [names[c] if names else f"column{c}" for c in cols]
        return {"shape": shape, "motors": motors, "snaking": sc["snaking"],
                "positions": table[:, cols].copy()}

    def read_frames(self, indices, roi=None):
        meta = self.read_meta()
        h, w = meta.frame_shape
        r0, r1, c0, c1 = (0, h, 0, w) if roi is None else roi
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= meta.num_frames):
            raise SourceError(f"frame index {int(idx.max())} is outside the scan of "
                              f"{meta.num_frames} frames")
        out = np.empty((idx.size, r1 - r0, c1 - c0), dtype=meta.dtype)
        for k, i in enumerate(idx.tolist()):
            img = read_image(self._files[i], mmap=True)
            if img.shape != (h, w):
                raise SourceError(f"frame file {self._files[i]!r} has shape {img.shape}, the "
                                  f"first frame has {(h, w)}; all frames must match")
            out[k] = img[r0:r1, c0:c1]
        return out


def _is_column(c):
    return (isinstance(c, int) and not isinstance(c, bool) and c >= 0) or (
        isinstance(c, str) and c != "")
