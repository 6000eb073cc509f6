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

from .format import ExportFormat
from .sink import FRAME_FILTERS, ExportFile

#: CXI mask bit of an invalid pixel (CXI 1.6, the detector mask table).
CXI_PIXEL_IS_INVALID = 0x1
CXI_VERSION = 160


def corner_position(geometry):
    """``(x, y, z)`` metres of the corner of pixel (0, 0) with the CXI default basis
    (rows along −y, columns along −x) when the optical axis is at ``geometry.center``."""
    (row, col), (py, px) = geometry.center, geometry.psize_m
    return np.array([(col + 0.5) * px, (row + 0.5) * py, geometry.distance_m])


def translation(positions):
    """CXI ``(N, 3)`` translations from ptyprep's ``(y, x)`` positions: x, y, 0."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([positions[:, 1], positions[:, 0], np.zeros(len(positions))])


def _nx(group, nx_class, **attrs):
    group.attrs["NX_class"] = nx_class
    for key, value in attrs.items():
        group.attrs[key] = value
    return group


class CxiFile(ExportFile):
    """Writes ``<stem>.cxi`` (see the module notes)."""

    def start(self, dtype):
        g = self.geometry
        h, w = g.shape
        self._h5 = f = h5py.File(self.tmp, "w")
        f.attrs["default"] = "entry_1"
        f["cxi_version"] = CXI_VERSION
        entry = _nx(f.create_group("entry_1"), "NXentry", default="data_1")
        entry["definition"] = "NXcxi_ptycho"
        label = self.info.get("source", {}) if isinstance(self.info.get("source"), dict) else {}
        entry["title"] = str(label.get("name", "ptyprep export"))
        instrument = _nx(entry.create_group("instrument_1"), "NXinstrument")
        source = _nx(instrument.create_group("source_1"), "NXsource")
        source.create_dataset("energy", data=g.energy_J).attrs["units"] = "J"
        detector = _nx(instrument.create_group("detector_1"), "NXdetector")
        detector.create_dataset("distance", data=g.distance_m).attrs["units"] = "m"
        detector.create_dataset("y_pixel_size", data=g.psize_m[0]).attrs["units"] = "m"
        detector.create_dataset("x_pixel_size", data=g.psize_m[1]).attrs["units"] = "m"
        detector.create_dataset("corner_position", data=corner_position(g)).attrs["units"] = "m"
        detector.create_dataset("basis_vectors", data=np.array(
            [[0.0, -g.psize_m[0], 0.0], [-g.psize_m[1], 0.0, 0.0]])).attrs["units"] = "m"
        self._data = detector.create_dataset("data", shape=(self.num_frames, h, w), dtype=dtype,
                                             maxshape=(None, h, w), chunks=(1, h, w),
                                             **FRAME_FILTERS)
        self._data.attrs["axes"] = "translation:y:x"
        sample = _nx(entry.create_group("sample_1"), "NXsample")
        geometry = _nx(sample.create_group("geometry_1"), "NXgeometry")
        self._translation = geometry.create_dataset("translation", shape=(self.num_frames, 3),
                                                    maxshape=(None, 3), dtype=np.float64)
        self._translation.attrs["units"] = "m"
        data = _nx(entry.create_group("data_1"), "NXdata", signal="data")
        data["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        data["translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")

    def write_frames(self, start, data, valid, positions, indices):
        stop = start + len(data)
        self._data[start:stop] = data
        self._translation[start:stop] = translation(positions)

    def write_end(self, summary):
        f, g = self._h5, self.geometry
        n = summary.num_frames
        if n != self._data.shape[0]:                 # not as many frames as planned
            self._data.resize(n, axis=0)
            self._translation.resize(n, axis=0)
        detector = f["entry_1/instrument_1/detector_1"]
        mask = np.where(summary.bad_pixels(), CXI_PIXEL_IS_INVALID, 0).astype(np.uint32)
        detector.create_dataset("mask", data=mask, **FRAME_FILTERS)
        self.log_mask_union(summary)
        probe, obj, center = self.guesses(summary)
        dy, dx = g.sample_pixel_m
        entry = f["entry_1"]
        image = _nx(entry.create_group("image_1"), "NXdata", signal="data")
        image.create_dataset("data", data=probe).attrs["axes"] = "y:x"
        image["data_type"] = "probe"
        image["data_space"] = "real"
        image["image_size"] = np.array([dx * probe.shape[1], dy * probe.shape[0], 0.0])
        image["source_1"] = h5py.SoftLink("/entry_1/instrument_1/source_1")
        image["detector_1"] = h5py.SoftLink("/entry_1/instrument_1/detector_1")
        f["entry_1/instrument_1/source_1/illumination"] = h5py.SoftLink("/entry_1/image_1/data")
        image = _nx(entry.create_group("image_2"), "NXdata", signal="data")
        image.create_dataset("data", data=obj[np.newaxis]).attrs["axes"] = "layer:y:x"
        image["data_type"] = "object"
        image["data_space"] = "real"
        image["image_size"] = np.array([dx * obj.shape[1], dy * obj.shape[0], 0.0])
        extras = entry.create_group("ptychodus")
        extras["probe_position_indexes"] = summary.indices
        extras["probe_pixel_width_m"] = dx
        extras["probe_pixel_height_m"] = dy
        extras["object_pixel_width_m"] = dx
        extras["object_pixel_height_m"] = dy
        extras["object_center_x_m"] = center[1]
        extras["object_center_y_m"] = center[0]

    def close_files(self):
        h5, self._h5 = getattr(self, "_h5", None), None
        if h5 is not None:
            h5.close()


class CxiFormat(ExportFormat):
    """CXI 1.6 ptychography (``<stem>.cxi``), as ptychodus and other CXI readers take it."""

    name = "cxi"
    suffix = ".cxi"
    file_class = CxiFile
