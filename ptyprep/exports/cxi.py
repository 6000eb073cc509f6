"""The ``cxi`` export: a CXI 1.6 ptychography file, ``<stem>.cxi``, as ptychodus reads it.

=====================================================  ===========================================
``/cxi_version``                                       160
``entry_1/instrument_1/detector_1/data``               frames ``(N, H, W)``, scan order
``entry_1/instrument_1/detector_1/mask``               ``(H, W)`` uint32, bit 0x1 = invalid pixel
                                                       (the union over the frames)
``entry_1/instrument_1/detector_1/distance``           metres
``entry_1/instrument_1/detector_1/{x,y}_pixel_size``   metres
``entry_1/instrument_1/detector_1/corner_position``    ``(x, y, z)`` metres of pixel (0, 0)'s corner,
                                                       so that the optical axis is at x = y = 0
``entry_1/instrument_1/detector_1/basis_vectors``      ``[[0, -py, 0], [-px, 0, 0]]`` (CXI default)
``entry_1/instrument_1/source_1/energy``               joules
``entry_1/sample_1/geometry_1/translation``            ``(N, 3)`` metres: column 0 = x, 1 = y, 2 = 0
``entry_1/data_1/{data,translation}``                  links to the two above (the NXdata to plot)
``entry_1/image_1/data``                               initial probe ``(H, W)`` complex
``entry_1/image_2/data``                               initial object ``(1, Ho, Wo)`` complex
``entry_1/ptychodus/...``                              pixel sizes of probe and object, object
                                                       centre, probe position indexes
=====================================================  ===========================================

Positions are ptyprep's ``(y, x)`` probe positions unchanged, written x first: ptychodus
takes ``translation[:, 0]`` as the probe's x and ``translation[:, 1]`` as its y.
"""

import h5py
import numpy as np

from ..engine.formats import check_output
from ..errors import RecipeError
from .cxi_layout import translation, write_header, write_whole_scan
from .format import ExportFormat
from .sink import FRAME_FILTERS, ExportFile


class CxiFile(ExportFile):
    """Writes ``<stem>.cxi`` (see the module notes)."""

    def start(self, dtype):
        h, w = self.geometry.shape
        self._h5 = f = h5py.File(self.tmp, "w")
        detector, sample_geometry = write_header(f, self.geometry, self.info)
        self._data = detector.create_dataset("data", shape=(self.num_frames, h, w), dtype=dtype,
                                             maxshape=(None, h, w), chunks=(1, h, w),
                                             **FRAME_FILTERS)
        self._data.attrs["axes"] = "translation:y:x"
        self._translation = sample_geometry.create_dataset(
            "translation", shape=(self.num_frames, 3), maxshape=(None, 3), dtype=np.float64)
        self._translation.attrs["units"] = "m"

    def write_frames(self, start, data, valid, positions, indices):
        stop = start + len(data)
        self._data[start:stop] = data
        self._translation[start:stop] = translation(positions)

    def write_end(self, summary):
        n = summary.num_frames
        if n != self._data.shape[0]:                 # not as many frames as planned
            self._data.resize(n, axis=0)
            self._translation.resize(n, axis=0)
        self.log_mask_union(summary)
        write_whole_scan(self._h5, self.geometry, summary, self.guesses(summary))


class CxiFormat(ExportFormat):
    """CXI 1.6 ptychography (``<stem>.cxi``), as ptychodus and other CXI readers take it."""

    name = "cxi"
    suffix = ".cxi"
    file_class = CxiFile
    watch_instead = ""

    def follower(self, comm, **options):
        raise RecipeError("ptyprep watch grows a CXI file beside a growing .ptyd: name "
                          "output.format = ['ptyd', 'cxi']")

    def companion(self, lead, comm):
        """A CXI file over the growing ``.ptyd``'s part files
        (:mod:`ptyprep.exports.cxi_follow`)."""
        from .cxi_follow import GrowingCxi

        check_output(self.target, True)           # its folder writable
        return GrowingCxi(self.target, lead)
