"""Re-prepare an existing ``.ptyd`` (e.g. crop or rebin further).

The prepared frames become the raw frames of a new preparation: the file's
``meta/center`` is the beam centre, its ``weights`` the per-frame valid pixels.
"""

from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..source import ScanMeta, ScanSource, crop_roi


class PtydSource(ScanSource):
    """Frames of a ``.ptyd`` file (any save mode).

    Parameters
    ----------
    path : str
        The ``.ptyd`` master file.
    """

    path_options = ("path",)

    def __init__(self, path):
        from ..writers.ptyd import read_ptyd

        if not Path(path).is_file():
            raise SourceError(f"source.path {path!r} does not exist; give a .ptyd file")
        self.path = path
        self._scan = read_ptyd(path)
        order = np.argsort(self._scan["indices"], kind="stable")
        if not np.array_equal(self._scan["indices"][order], np.arange(len(order))):
            # keep file order; indices are renumbered 0..N-1
            order = np.arange(len(order))
        self._order = order

    def read_meta(self):
        meta = self._scan["meta"]
        psize = np.broadcast_to(np.asarray(meta.get("psize"), dtype=float), (2,))
        return ScanMeta(len(self._order), tuple(self._scan["data"].shape[1:]),
                        self._scan["data"].dtype, float(meta["energy"]), float(meta["distance"]),
                        tuple(psize), tuple(np.asarray(meta["center"], dtype=float)),
                        label=meta.get("label"), extra={"ptyd": str(self.path)})

    def read_positions(self):
        return self._scan["positions"][self._order]

    def read_frames(self, indices, roi=None):
        return crop_roi(self._scan["data"][self._order[np.asarray(indices)]], roi)

    def read_frames_valid(self, indices, roi=None):
        return crop_roi(self._scan["weights"][self._order[np.asarray(indices)]], roi)
