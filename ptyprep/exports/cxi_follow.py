"""A CXI file grown during ``ptyprep watch``, beside a growing ``.ptyd``.

``format = ["ptyd", "cxi"]`` under ``ptyprep watch``: the ``.ptyd`` follower writes each
chunk's part files and publishes its master; after each publication rank 0 publishes a new
``<stem>.cxi`` (written whole under a hidden name and renamed over the previous one) whose
``entry_1/instrument_1/detector_1/data`` is an HDF5 virtual dataset over the ``data`` of
those part files, in scan order.  Translations, the mask (the union of the invalid pixels
so far) and the probe and object guesses are those of the frames published so far; each
part file is read once.  A reader opening the CXI file at any moment sees a consistent
prefix of the scan; ``entry_1/ptyprep/complete`` is 1 once the scan has ended.

The finished file needs the ``.ptyd``'s part files beside it (bare names, so the folder can
be moved as a whole); ``ptyprep export scan.ptyd --to cxi`` writes one self-contained file.
"""

import logging
import os

import h5py
import numpy as np

from ..engine.follower import Companion
from ..errors import RecipeError, writing
from ..layout import files as F
from ..layout import ptyd as L
from ..sources.ptyd import read_chunk_arrays
from .cxi_layout import translation, write_header, write_whole_scan
from .geometry import ScanGeometry
from .sink import ScanSummary, scan_guesses

log = logging.getLogger(__name__)


def virtual_frames(parts, shape, dtype):
    """A :class:`h5py.VirtualLayout` of ``(N, H, W)`` frames over ``parts``, a list of
    ``(file name, frames)``: each part's ``data`` in turn."""
    total = sum(n for _, n in parts)
    layout = h5py.VirtualLayout(shape=(total, *shape), dtype=dtype)
    start = 0
    for name, n in parts:
        layout[start:start + n] = h5py.VirtualSource(name, L.DATA, shape=(n, *shape), dtype=dtype)
        start += n
    return layout


class GrowingCxi(Companion):
    """The CXI companion of a growing ``.ptyd`` (rank 0 publishes; see the module notes).

    Parameters
    ----------
    path : Path
        The CXI file.
    lead : PtydFollower
        The follower of the ``.ptyd``: its ``parts``, ``meta`` and ``info``.
    """

    def __init__(self, path, lead):
        if not hasattr(lead, "parts"):
            raise RecipeError("ptyprep watch grows 'cxi' beside a growing .ptyd only: name "
                              "output.format = ['ptyd', 'cxi']")
        self.path, self.lead = path, lead
        self.summary = None
        self.read = []                  # (part name, frames) of the parts accounted for
        self.dtype = None

    def publish(self, acq, complete):
        lead = self.lead
        if lead.meta is None:           # nothing prepared yet
            return
        geometry = ScanGeometry.from_meta(lead.meta)
        if self.summary is None:
            self.summary = ScanSummary(geometry.shape)
        for name in lead.parts[len(self.read):]:
            self._account(lead.dfile.parent / name)
        if not self.read:
            return
        with writing(self.path):
            self._write(geometry, complete)

    def _account(self, part):
        """Read one part file once: its frames into the summary."""
        with h5py.File(part, "r") as f:
            arrays = read_chunk_arrays(f)
        indices, data = arrays[L.INDICES], arrays[L.DATA]
        weights = np.broadcast_to(arrays[L.WEIGHTS] > 0, data.shape)
        self.summary.add(indices, data, weights, arrays[L.POSITIONS])
        self.read.append((part.name, len(indices)))
        self.dtype = data.dtype

    def _write(self, geometry, complete):
        tmp = F.publishing_name(self.path)
        with h5py.File(tmp, "w") as f:
            detector, sample_geometry = write_header(f, geometry, self.lead.info or {})
            frames = detector.create_virtual_dataset(
                "data", virtual_frames(self.read, geometry.shape, self.dtype), fillvalue=0)
            frames.attrs["axes"] = "translation:y:x"
            sample_geometry.create_dataset(
                "translation", data=translation(self.summary.positions)).attrs["units"] = "m"
            write_whole_scan(f, geometry, self.summary, scan_guesses(geometry, self.summary))
            record = f["entry_1"].create_group("ptyprep")
            record["complete"] = np.int64(complete)
            record["frames"] = np.int64(self.summary.num_frames)
        os.replace(tmp, self.path)
        if complete:
            log.info("%s: %d frames over %d part files", self.path, self.summary.num_frames,
                     len(self.read))
