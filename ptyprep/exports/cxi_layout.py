"""The CXI 1.6 file layout the ``cxi`` export writes (:mod:`ptyprep.exports.cxi` has the
table), as functions shared by the one-pass writer and the file ``watch`` grows
(:mod:`ptyprep.exports.cxi_follow`)."""

import h5py
import numpy as np

from .sink import FRAME_FILTERS

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
