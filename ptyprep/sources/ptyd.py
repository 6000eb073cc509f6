"""Reading a ``.ptyd`` back (:func:`read_ptyd`, a :class:`PreparedScan`), and re-preparing
one (:class:`PtydSource`).

As a source, the prepared frames become the raw frames of a new preparation (e.g. crop
or rebin further): the file's ``meta/center`` is the beam centre, its ``weights`` the
per-frame valid pixels.  Names come from :mod:`ptyprep.layout.ptyd`.
"""

import contextlib
from pathlib import Path

import h5py
import numpy as np

from ..errors import LayoutError, SourceError
from ..layout import ptyd as L
from .base import ScanMeta, ScanSource


class PtydSource(ScanSource):
    """Frames of a ``.ptyd`` file (any save mode), read chunk by chunk as asked.

    Only the small arrays (indices, positions) and ``meta`` are read when it opens; frames
    and weights are read from their chunk groups (or part files) for the indices asked, so
    a rank holds its share, never the whole scan.

    Parameters
    ----------
    path : str
        The ``.ptyd`` master file.
    """

    path_options = ("path",)

    def __init__(self, path):
        if not Path(path).is_file():
            raise SourceError(f"source.path {path!r} does not exist; give a .ptyd file")
        self.path = path
        self._h5 = None
        with open_ptyd(path) as (h5, meta, _):
            groups, indices, positions, rows = [], [], [], []
            for name, group in chunk_groups(h5):
                n = len(group[L.INDICES])
                groups.append(name)
                indices.append(group[L.INDICES][()].astype(np.int64))
                positions.append(group[L.POSITIONS][()])
                rows.append(np.column_stack([np.full(n, len(groups) - 1), np.arange(n)]))
                shape, dtype = group[L.DATA].shape[1:], group[L.DATA].dtype
        if not groups:
            raise SourceError(f"{str(path)!r} holds no prepared frames yet")
        self._meta, self._groups = meta, groups
        self._shape, self._dtype = tuple(shape), dtype
        indices, positions = np.concatenate(indices), np.concatenate(positions)
        rows = np.concatenate(rows)
        order = np.argsort(indices, kind="stable")
        if not np.array_equal(indices[order], np.arange(len(order))):
            order = np.arange(len(order))      # keep file order; indices are renumbered 0..N-1
        self._rows, self._positions = rows[order], positions[order]

    def read_meta(self):
        meta = self._meta
        psize = np.broadcast_to(np.asarray(meta.get("psize"), dtype=float), (2,))
        return ScanMeta(len(self._rows), self._shape, self._dtype, float(meta["energy"]),
                        float(meta["distance"]), tuple(psize),
                        tuple(np.asarray(meta["center"], dtype=float)),
                        label=meta.get("label"), extra={"ptyd": str(self.path)})

    def read_positions(self):
        return self._positions

    def read_frames(self, indices, roi=None):
        return self._read(L.DATA, indices, roi, self._dtype)

    def read_frames_valid(self, indices, roi=None):
        return self._read(L.WEIGHTS, indices, roi, bool)

    def _read(self, name, indices, roi, dtype):
        """Rows ``indices`` (scan order) of dataset ``name`` of every chunk, cropped to ``roi``."""
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        rows = self._rows[np.asarray(indices, dtype=np.int64)]
        r0, r1, c0, c1 = roi if roi is not None else (0, self._shape[0], 0, self._shape[1])
        out = np.empty((len(rows), r1 - r0, c1 - c0), dtype=dtype)
        for g in np.unique(rows[:, 0]):
            at = np.flatnonzero(rows[:, 0] == g)
            dataset = self._h5[L.CHUNKS][self._groups[g]][name]
            picked = rows[at, 1]
            low, high = int(picked.min()), int(picked.max()) + 1
            block = dataset[low:high, r0:r1, c0:c1]          # one contiguous read per chunk
            out[at] = block[picked - low]
        return out

    def close(self):
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None


def _entry(key):
    """A property reading (and replacing) item ``key`` of a :class:`PreparedScan`."""
    def get(self):
        return self[key]

    def set_(self, value):
        self[key] = value
    return property(get, set_, doc=f"``scan[{key!r}]``")


class PreparedScan(dict):
    """A prepared scan read back from a ``.ptyd``: what :func:`read_ptyd` returns.

    A dict of six entries whose values are attributes as well: ``scan.data`` is
    ``scan["data"]``.  Item access, ``keys()``, ``in``, iteration over the keys and
    ``.get`` work as on the plain dict ``read_ptyd`` used to return.

    Attributes
    ----------
    data : (N, n, n) ndarray
        The N prepared frames of n × n pixels in scan order (detector counts): the raw
        dtype for ``rebin = 1``, int64 for a ``sum`` rebin of integer frames, float for a
        ``mean`` one; float64 when the file has no frame yet.
    weights : (N, n, n) bool ndarray
        True where a pixel is valid (the file stores uint8, 1 = valid).
    positions : (N, 2) float64 ndarray
        Scan positions (y, x) in metres, one row per frame.
    indices : (N,) int64 ndarray
        Scan index of each frame (0 … N − 1 for a whole scan).
    meta : dict
        The file's ``meta/``: ``num_frames``, ``shape`` (n, n) pixels, ``center`` (row, col)
        pixels, ``psize`` (2,) metres, ``energy`` keV, ``distance`` metres, ``version``,
        ``label``, ``propagation``.
    info : dict
        The file's provenance ``info/`` (recipe, conventions, raw_center, …); empty if the
        file has none.
    path : Path
        The file read (an attribute only, not an entry).
    """

    data = _entry(L.DATA)
    weights = _entry(L.WEIGHTS)
    positions = _entry(L.POSITIONS)
    indices = _entry(L.INDICES)
    meta = _entry(L.META)
    info = _entry(L.INFO)

    def __init__(self, entries=(), path=None):
        super().__init__(entries)
        self.path = None if path is None else Path(path)

    def __repr__(self):
        data = self.get(L.DATA)
        shape = "×".join(map(str, np.shape(data)[1:]))
        frames = len(data) if data is not None else 0
        expected = (self.get(L.META) or {}).get(L.NUM_FRAMES)
        known = expected is not None and int(expected) not in (frames, L.NUM_FRAMES_UNKNOWN)
        of = f" of {int(expected)}" if known else ""
        dtype = f" {data.dtype}" if data is not None and hasattr(data, "dtype") else ""
        where = str(self.path) if self.path is not None else "?"
        return (f"PreparedScan({where!r}: {frames}{of} frames of {shape or '?'}{dtype}; "
                f"entries {', '.join(map(str, self))})")


def read_ptyd(path):
    """Read a prepared scan back.

    Parameters
    ----------
    path : str or Path
        A ``.ptyd`` file in any save mode; external links resolve next to it.

    Returns
    -------
    PreparedScan
        A dict that also has attributes: ``data`` (N, n, n), ``weights`` (N, n, n) bool,
        ``positions`` (N, 2) metres (y, x), ``indices`` (N,) int64 — chunks concatenated
        in ``int(name)`` order, dangling links (parts not yet written) skipped — ``meta``
        (dict) and ``info`` (dict of the provenance group, empty if absent).
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no .ptyd file at {str(path)!r}")
    with open_ptyd(path) as (h5, meta, info):
        pieces = [read_chunk_arrays(group) for _, group in chunk_groups(h5)]
    if pieces:
        out = {k: np.concatenate([p[k] for p in pieces]) for k in L.CHUNK_ARRAYS}
    else:
        n = int(meta["shape"][0])
        out = {L.DATA: np.zeros((0, n, n)), L.WEIGHTS: np.zeros((0, n, n), np.uint8),
               L.POSITIONS: np.zeros((0, 2)), L.INDICES: np.zeros(0, np.int64)}
    out[L.WEIGHTS] = out[L.WEIGHTS] > 0
    out[L.INDICES] = out[L.INDICES].astype(np.int64)
    out[L.META], out[L.INFO] = meta, info
    return PreparedScan(out, path=path)


@contextlib.contextmanager
def open_ptyd(path):
    """Open a ``.ptyd`` for reading: yield ``(h5, meta, info)``; LayoutError if it is not one."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise LayoutError(f"{str(path)!r} is not a readable HDF5 file: {exc}") from exc
    with h5:
        if L.META not in h5 or L.CHUNKS not in h5:
            raise LayoutError(f"{str(path)!r} is not a .ptyd file: it has no meta/ and chunks/ groups")
        meta = {k: read_value(v) for k, v in h5[L.META].items()}
        info = {k: read_value(v) for k, v in h5[L.INFO].items()} if L.INFO in h5 else {}
        yield h5, meta, info


def chunk_groups(h5):
    """``(name, group)`` of every chunk of an open ``.ptyd`` in ``int(name)`` order; a
    dangling external link (a part not written yet) is skipped."""
    for name in sorted(h5[L.CHUNKS], key=int):
        try:
            yield name, h5[L.CHUNKS][name]
        except KeyError:
            continue


def read_chunk_arrays(group):
    """The four arrays of one chunk group (or part file root) as numpy arrays."""
    return {name: group[name][()] for name in L.CHUNK_ARRAYS}


def read_value(node):
    """Decode an h5rw-typed dataset."""
    kind = node.attrs.get(L.TYPE)
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == L.NONE:
        return None
    value = node[()]
    if kind == L.STRING or isinstance(value, bytes):
        return value.decode() if isinstance(value, bytes) else str(value)
    return value
