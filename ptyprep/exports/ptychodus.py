"""The ``ptychodus`` export: ``<stem>_ptychodus/`` holding ``diffraction.h5`` and ``product.h5``
as ptychodus 1.7 saves them (``ptychodus.api.io.save_diffraction_data`` and
``save_product``), so that its ``load_diffraction_data`` and ``load_product`` read them and
``ptychodus --batch reconstruct -i <stem>_ptychodus -o OUT`` takes the folder as it is (the
workflow directory's standard names, ``StandardFileLayout``).

``diffraction.h5``

=======================================  ===============================================
``patterns``                             frames ``(N, H, W)``, scan order, the prepared
                                         dtype (gzip); attrs ``detector_pixel_width_m``
                                         (x) and ``detector_pixel_height_m`` (y), metres
``indexes``                              ``(N,)`` int64, the scan indices of the frames
``bad_pixels``                           ``(H, W)`` bool, True = bad: the union of the
                                         invalid pixels over the frames
=======================================  ===============================================

``product.h5``

=======================================  ===============================================
attrs ``name``, ``comments``             the scan's label; ptyprep's provenance (version,
                                         source, recipe as JSON)
attr ``photon_energy_eV``                eV
attr ``detector_object_distance_m``      metres (the effective one for a cone beam)
attr ``far_field``                       False for ``prep.propagation = "nearfield"``
attrs ``probe_photon_count``,            0.0, ptychodus's defaults (a 0.0 photon count is
``exposure_time_s``, ...                 estimated by ptychodus from the patterns)
``probe_position_indexes``               ``(N,)`` int64, as ``indexes``
``probe_position_{x,y}_m``               ``(N,)`` float64 metres: ptyprep's ``(y, x)``
                                         positions unchanged, x and y apart
``probe``                                ``(1, 1, H, W)`` complex64 (coherent, incoherent
                                         modes); attrs ``pixel_{width,height}_m``
``object``                               ``(1, Ho, Wo)`` complex64 (layers); attrs
                                         ``center_{x,y}_m``, ``pixel_{width,height}_m``
``object_layer_spacing_m``,              empty float64 (one layer, no losses yet)
``loss_epochs``, ``loss_values``
=======================================  ===============================================

Positions mean the same in both codes: ptychodus maps a probe position to object pixels
by ``(x_m - center_x_m) / pixel_width_m + (width_px - 1) / 2`` (columns grow with x, rows
with y), the object patch the probe illuminates.

The probe's and object's pixel is the one ptychodus derives itself from ``diffraction.h5``
and the energy and distance (``compute_product_geometry``; it resamples a probe, and warns
of an object, whose pixel differs from its own by more than 1e-9): ``λ z / (N psize)`` per
axis in the far field; in the near field the detector pixel (ptyprep's is already the
equivalent parallel beam's, so ptychodus's magnification is 1 with
``focus_object_distance_m`` = 0).  The probe and object are the initial guesses of
:mod:`ptyprep.exports.guesses`; in the near field the probe guess is the square root of
the mean pattern (there the detector samples the probe's own plane, not its Fourier
transform) and the object is sized on the detector pixel.
"""

import json

import h5py
import numpy as np

from .._version import __version__
from .format import ExportFormat
from .sink import FRAME_FILTERS, ExportFile

#: The two files of a ptychodus workflow folder (``ptychodus.api.io.StandardFileLayout``).
DIFFRACTION_FILE = "diffraction.h5"
PRODUCT_FILE = "product.h5"

# ``ptychodus.api.io.DiffractionFileKeys``
PATTERNS = "patterns"
DETECTOR_PIXEL_WIDTH = "detector_pixel_width_m"
DETECTOR_PIXEL_HEIGHT = "detector_pixel_height_m"
INDEXES = "indexes"
BAD_PIXELS = "bad_pixels"

# ``ptychodus.api.io.ProductFileKeys``
PROBE_POSITION_INDEXES = "probe_position_indexes"
PROBE_POSITION_X = "probe_position_x_m"
PROBE_POSITION_Y = "probe_position_y_m"
PROBE = "probe"
OBJECT = "object"
PIXEL_WIDTH = "pixel_width_m"
PIXEL_HEIGHT = "pixel_height_m"
CENTER_X = "center_x_m"
CENTER_Y = "center_y_m"
OBJECT_LAYER_SPACING = "object_layer_spacing_m"
LOSS_EPOCHS = "loss_epochs"
LOSS_VALUES = "loss_values"

def product_attrs(geometry, name, comments):
    """The file attributes of ``product.h5``, in the order and with the types
    ``save_product`` writes them (``probe_photon_count`` 0.0: ptychodus estimates it)."""
    return {
        "name": str(name),
        "comments": str(comments),
        "detector_object_distance_m": float(geometry.distance_m),
        "photon_energy_eV": float(geometry.energy_eV),
        "probe_photon_count": 0.0,
        "exposure_time_s": 0.0,
        "mass_attenuation_m2_per_kg": 0.0,
        "tomography_angle_deg": 0.0,
        "focus_object_distance_m": 0.0,
        "tilt_angle_deg": 0.0,
        "far_field": bool(geometry.propagation != "nearfield"),
    }


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def provenance_comments(info):
    """``comments`` of ``product.h5``: one line naming ptyprep and the source, then the
    provenance (version, source, recipe) as JSON."""
    source = info.get("source") if isinstance(info.get("source"), dict) else {}
    extra = source.get("extra") if isinstance(source.get("extra"), dict) else {}
    origin = extra.get("ptyd") or source.get("name") or "an unknown source"
    record = {"ptyprep_version": info.get("ptyprep_version", __version__),
              "source": source, "recipe": info.get("recipe")}
    return (f"Prepared by ptyprep {record['ptyprep_version']} from {origin}.\n"
            f"ptyprep provenance: {json.dumps(record, default=_jsonable, sort_keys=True)}")


class PtychodusFile(ExportFile):
    """Writes ``<stem>_ptychodus/`` (see the module notes)."""

    is_folder = True

    def __init__(self, path, geometry, num_frames, info=None):
        super().__init__(path, geometry, num_frames, info)
        label = geometry.get("label") if isinstance(geometry, dict) else None
        stem = self.path.name.removesuffix(PtychodusFormat.suffix) or self.path.name
        self.name = str(label) if label else stem

    def start(self, dtype):
        h, w = self.geometry.shape
        self.tmp.mkdir()
        self._h5 = f = h5py.File(self.tmp / DIFFRACTION_FILE, "w")
        self._patterns = f.create_dataset(PATTERNS, shape=(self.num_frames, h, w), dtype=dtype,
                                          maxshape=(None, h, w), chunks=(1, h, w),
                                          **FRAME_FILTERS)
        py, px = self.geometry.psize_m
        self._patterns.attrs[DETECTOR_PIXEL_WIDTH] = float(px)
        self._patterns.attrs[DETECTOR_PIXEL_HEIGHT] = float(py)

    def write_frames(self, start, data, valid, positions, indices):
        self._patterns[start:start + len(data)] = data

    def write_end(self, summary):
        f = self._h5
        if summary.num_frames != self._patterns.shape[0]:      # not as many frames as planned
            self._patterns.resize(summary.num_frames, axis=0)
        f.create_dataset(INDEXES, data=summary.indices.astype(np.int64), **FRAME_FILTERS)
        f.create_dataset(BAD_PIXELS, data=summary.bad_pixels(), **FRAME_FILTERS)
        self.log_mask_union(summary)
        self.close_files()
        self._write_product(summary)

    def _write_product(self, summary):
        probe, obj, center = self.guesses(summary)
        dy, dx = self.geometry.sample_pixel_m
        positions = summary.positions
        with h5py.File(self.tmp / PRODUCT_FILE, "w") as f:
            for key, value in product_attrs(self.geometry, self.name,
                                            provenance_comments(self.info)).items():
                f.attrs[key] = value
            f.create_dataset(PROBE_POSITION_INDEXES, data=summary.indices.astype(np.int64))
            f.create_dataset(PROBE_POSITION_X, data=positions[:, 1])
            f.create_dataset(PROBE_POSITION_Y, data=positions[:, 0])
            h5_probe = f.create_dataset(PROBE, data=probe[np.newaxis, np.newaxis])
            h5_probe.attrs[PIXEL_WIDTH] = float(dx)
            h5_probe.attrs[PIXEL_HEIGHT] = float(dy)
            h5_object = f.create_dataset(OBJECT, data=obj[np.newaxis])
            h5_object.attrs[CENTER_X] = float(center[1])
            h5_object.attrs[CENTER_Y] = float(center[0])
            h5_object.attrs[PIXEL_WIDTH] = float(dx)
            h5_object.attrs[PIXEL_HEIGHT] = float(dy)
            for key in (OBJECT_LAYER_SPACING, LOSS_EPOCHS, LOSS_VALUES):
                f.create_dataset(key, data=np.zeros(0, dtype=np.float64))


class PtychodusFormat(ExportFormat):
    """ptychodus's own files (``<stem>_ptychodus/diffraction.h5`` and ``product.h5``), which
    its readers load and its batch mode reconstructs (with pty-chi among others)."""

    name = "ptychodus"
    suffix = "_ptychodus"
    file_class = PtychodusFile
