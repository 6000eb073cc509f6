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
from ..layout import files as F
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


def write_header(f, geometry, info):
    """Everything of a CXI file but its frames, translations and whole-scan parts: the
    groups with their NeXus classes, the geometry, the NXdata links.  Returns the detector
    and the sample's geometry groups (where ``data`` and ``translation`` go)."""
    g = geometry
    f.attrs["default"] = "entry_1"
    f["cxi_version"] = CXI_VERSION
    entry = _nx(f.create_group("entry_1"), "NXentry", default="data_1")
    entry["definition"] = "NXcxi_ptycho"
    label = info.get("source", {}) if isinstance(info.get("source"), dict) else {}
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
    sample = _nx(entry.create_group("sample_1"), "NXsample")
    sample_geometry = _nx(sample.create_group("geometry_1"), "NXgeometry")
    data = _nx(entry.create_group("data_1"), "NXdata", signal="data")
    data["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
    data["translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
    return detector, sample_geometry


def write_whole_scan(f, geometry, summary, guesses):
    """The parts of a CXI file that need the whole scan (or all of it published so far):
    the mask (the union of the invalid pixels), the probe and object guesses
    ``(probe, obj, center_m)``, ptychodus's position indexes and pixel sizes."""
    detector = f["entry_1/instrument_1/detector_1"]
    mask = np.where(summary.bad_pixels(), CXI_PIXEL_IS_INVALID, 0).astype(np.uint32)
    detector.create_dataset("mask", data=mask, **FRAME_FILTERS)
    probe, obj, center = guesses
    dy, dx = geometry.sample_pixel_m
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

    def close_files(self):
        h5, self._h5 = getattr(self, "_h5", None), None
        if h5 is not None:
            h5.close()


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
        """A CXI file over the growing ``.ptyd``'s part files (:mod:`ptyprep.exports.cxi_follow`)."""
        from .cxi_follow import GrowingCxi

        check_output(F.incomplete_name(self.target), True)     # its folder writable
        return GrowingCxi(self.target, lead)
