"""Reading a ``.ptyd`` for the viewer: positions, the mean frame and mask, one frame per click.

:class:`PtydReader` keeps, per chunk group, the scan indices and positions (small) and
the sum of its frames and its all-valid mask, read once in blocks; on a refresh (a
daemon published a new master) only the chunks it has not seen are read, so following a
scan reads every frame once.  A click reads one frame and its weights: one row of one
chunk's ``data`` and ``weights``.  Names come from :mod:`ptyprep.layout.ptyd`; the file
is opened through :func:`ptyprep.sources.ptyd.open_ptyd` (any save mode, external links
of part files not yet written skipped).
"""

from dataclasses import dataclass

import numpy as np

from ..layout import ptyd as L
from ..sources.ptyd import chunk_groups, open_ptyd

#: Frames summed per read while a chunk's mean is made (bounds the memory of a refresh).
BLOCK_FRAMES = 64
#: Characters of a meta/info value shown in the table.
VALUE_CHARS = 160


@dataclass
class ChunkSummary:
    """What the viewer keeps of one chunk group."""

    key: tuple              # (name, frames, first index): a chunk that changes is read again
    indices: np.ndarray
    positions: np.ndarray
    total: np.ndarray       # (n, n) sum of the frames
    valid: np.ndarray       # (n, n) bool: valid in every frame


def _summarise(name, group):
    indices = group[L.INDICES][()].astype(np.int64)
    positions = np.asarray(group[L.POSITIONS][()], np.float64).reshape(-1, 2)
    data, weights = group[L.DATA], group[L.WEIGHTS]
    total = np.zeros(data.shape[1:], np.float64)
    valid = np.ones(data.shape[1:], bool)
    for start in range(0, data.shape[0], BLOCK_FRAMES):
        stop = min(start + BLOCK_FRAMES, data.shape[0])
        total += np.asarray(data[start:stop], np.float64).sum(axis=0)
        valid &= (weights[start:stop] > 0).all(axis=0)
    first = int(indices[0]) if len(indices) else -1
    return ChunkSummary((name, len(indices), first), indices, positions, total, valid)


def value_text(value):
    """A meta/info value as one short line of text for the table."""
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.size <= 16 else f"array {value.shape} {value.dtype}"
    elif isinstance(value, np.generic):
        value = value.item()
    text = str(value).replace("\n", " ")
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


class PtydReader:
    """The parts of a ``.ptyd`` that ``ptyprep view`` shows.

    Parameters
    ----------
    path : str or Path
        A ``.ptyd`` master file (any save mode).

    Attributes
    ----------
    meta, info : dict
        The file's ``meta/`` and ``info/`` as read by the last :meth:`refresh`.
    indices : (N,) int64, positions : (N, 2) float64 (y, x) metres
        The frames published so far, sorted by scan index.
    """

    def __init__(self, path):
        self.path = path
        self.meta, self.info = {}, {}
        self._chunks = {}
        self._where = {}          # scan index -> (chunk name, row)
        self.indices = np.zeros(0, np.int64)
        self.positions = np.zeros((0, 2))
        self.shape = (0, 0)
        self.refresh()

    def refresh(self):
        """Read the master again; read the chunks not seen before.  Returns True when the
        frames shown changed (new or replaced chunks)."""
        changed = False
        seen = {}
        with open_ptyd(self.path) as (h5, meta, info):
            self.meta, self.info = meta, info
            for name, group in chunk_groups(h5):
                n = len(group[L.INDICES])
                first = int(group[L.INDICES][0]) if n else -1
                old = self._chunks.get(name)
                if old is None or old.key != (name, n, first):
                    old = _summarise(name, group)
                    changed = True
                seen[name] = old
        changed |= set(seen) != set(self._chunks)
        self._chunks = seen
        if changed:
            self._index()
        return changed

    def _index(self):
        chunks = list(self._chunks.values())
        shape = np.asarray(self.meta.get(L.SHAPE, (0, 0))).astype(int).ravel()
        self.shape = tuple(np.broadcast_to(shape, (2,))) if shape.size else (0, 0)
        if not chunks:
            self.indices, self.positions, self._where = np.zeros(0, np.int64), np.zeros((0, 2)), {}
            return
        indices = np.concatenate([c.indices for c in chunks])
        positions = np.concatenate([c.positions for c in chunks])
        order = np.argsort(indices, kind="stable")
        self.indices, self.positions = indices[order], positions[order]
        self._where = {int(i): (c.key[0], row) for c in chunks
                       for row, i in enumerate(c.indices)}
        self.shape = chunks[0].total.shape

    @property
    def frames(self):
        """Frames published so far."""
        return len(self.indices)

    def mean_frame(self):
        """Mean of every frame published so far ((n, n) float64; zeros before the first)."""
        if not self._chunks:
            return np.zeros(self.shape)
        return sum(c.total for c in self._chunks.values()) / max(self.frames, 1)

    def valid_mask(self):
        """True where a pixel is valid in every frame ((n, n) bool)."""
        if not self._chunks:
            return np.ones(self.shape, bool)
        return np.all([c.valid for c in self._chunks.values()], axis=0)

    def frame(self, index):
        """``(data, valid)`` of the frame with scan index ``index``: one row of its chunk.

        Raises
        ------
        KeyError
            No frame ``index`` has been published.
        """
        name, row = self._where[int(index)]
        with open_ptyd(self.path) as (h5, _, _):
            group = h5[L.CHUNKS][name]
            return (np.asarray(group[L.DATA][row]),
                    np.asarray(group[L.WEIGHTS][row]) > 0)

    def nearest(self, y, x):
        """Scan index of the published position nearest ``(y, x)`` (metres), or None."""
        if not self.frames:
            return None
        d2 = (self.positions[:, 0] - y) ** 2 + (self.positions[:, 1] - x) ** 2
        return int(self.indices[int(np.argmin(d2))])

    def position(self, index):
        """``(y, x)`` metres of frame ``index``."""
        at = int(np.searchsorted(self.indices, index))
        return tuple(self.positions[at])

    def table(self):
        """``(keys, values)``: every ``meta/`` and ``info/`` entry as text, for the table."""
        keys, values = [], []
        for prefix, entries in ((L.META, self.meta), (L.INFO, self.info)):
            for key, value in entries.items():
                keys.append(f"{prefix}/{key}")
                values.append(value_text(value))
        return keys, values

    def expected(self):
        """The scan's length when the file knows it, else None."""
        n = self.meta.get(L.NUM_FRAMES)
        if n is None or int(n) == L.NUM_FRAMES_UNKNOWN:
            return None
        return int(n)

    def complete(self):
        """True once the file records that the scan ended and everything is published
        (``info/complete``); a ``ptyprep run`` output without the record counts as complete."""
        return bool(self.info.get(L.COMPLETE, 1))
