"""The ``fold_slice`` export: ``<stem>_fold_slice.h5``, as fold_slice (PtychoShelves) loads it.

fold_slice's "APS" data path (``p.prepare.data_preparator = 'matlab_aps'``,
``p.src_positions = 'hdf5_pos'``, the defaults of its ``ptycho/ptycho_recon.m``) opens two
files per scan, ``<base_path><scan folder>/data_roi<roi>_dp.hdf5`` for the patterns
(``+scans/get_filenames_aps.m``) and ``.../data_roi<roi>_para.hdf5`` for the positions
(``+scans/+positions/hdf5_pos.m``).  ptyprep writes one file and makes the two names
symbolic links to it beside it (roi label ``"0"``, as fold_slice's own ``sim_electron_cbed.m``
writes them); fold_slice needs one scan per folder.

=========================  ====================================================================
``/dp``                    frames ``(N, H, W)`` in scan order as ptyprep prepared them (h5py's
                           order), as float32 or float64 (MATLAB's ``sqrt`` takes floating
                           types only: integer counts become float32 up to 16 bits, float64
                           above, the same values)
``/ppX``, ``/ppY``         ``(N,)`` float64 metres: the probe's x (column) and y (row), ptyprep's
                           positions unchanged (same sign, same origin)
``/energy_keV``            photon energy, keV (fold_slice's ``p.energy``)
``/distance_m``            sample-detector distance, metres (``p.z``)
``/pixel_size_m``          detector pixel, metres (fold_slice's ``det.pixel_size``)
``/lambda``                wavelength, metres   } the names ptychodus's fold_slice reader takes
``/dx``                    sample pixel, metres } from a ``_para`` file
``/mask``                  ``(H, W)`` uint8, **1 = valid**, 0 = invalid in some frame (the union),
                           same orientation as the frames (fold_slice's ``fmask`` convention)
``/matlab_parameters``     the MATLAB lines to set (:func:`matlab_parameters`), also logged
=========================  ====================================================================

Orientation.  HDF5 is row-major and MATLAB column-major: ``h5read`` returns the
``(N, H, W)`` dataset as a ``W × H × N`` array.  fold_slice's loader
(``+detector/+prep_data/+matlab_aps/load_data.m``) transposes it back,
``permute(data, [2 1 3])``, when the detector package has ``det.orientation(1) = 1`` -- as the
APS packages fold_slice uses for X-rays have (``eiger_APS``, ``Pilatus300K_APS``, ``medipix3``,
``eiger_APS_temp``): ``data(:, :, k)`` is then frame k with rows along y.  So ``/dp`` is written
untransposed and a detector package with the transpose is named; the same file is what
ptychodus's fold_slice plugin reads as ``(N, H, W)`` (``h5_diffraction_file.py``).  fold_slice
fft-shifts the frames (``matlab_ps/prep_data_matlab.m``), so the optical axis is the frame's
``(H/2, W/2)``, ptyprep's centre.

Positions.  ``hdf5_pos.m`` takes ``positions_real = [-ppY, -ppX]`` and
``core/ptycho_adjust_positions.m`` negates them again, divides by the sample pixel and
subtracts their minimum: the probe's object pixel is ``(ppY, ppX) / dx`` plus a shift, row
first -- ptypy's and ptyprep's placement (``sim_electron_cbed.m`` simulates its data the same
way: ``object(ppY rows, ppX columns)``, ``fft2``).  Origin and units: metres, any origin.

Geometry.  fold_slice computes the sample pixel ``λ p.z / (p.asize · det.pixel_size)``
(``core/initialize_ptycho.m``) from ``p.energy`` (keV) and ``p.z`` (m) of the parameter
script and the pixel of the detector *package* (a ``p.ds`` in the script is ignored): when no
package has ptyprep's pixel, ``eiger_APS`` is named and ``p.z`` scaled so that ``λ z / ds`` is
kept.  Its mask is a ``.mat`` file (``p.io.default_mask_file``, loaded as variable ``mask``,
1 = valid), cropped at ``p.ctr ± p.asize / 2``: the lines say how to make it from ``/mask``.
Near-field scans, odd frame sizes and non-square pixels are refused (fold_slice has no
equivalent of the first in this loader and cannot crop its mask or size its pixel for the
others).
"""

import logging
import math
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import OutputError, RecipeError
from .format import ExportFormat
from .sink import FRAME_FILTERS, ExportFile

log = logging.getLogger(__name__)

#: fold_slice's roi label: the file names are ``data_roi<label>_dp.hdf5`` and ``..._para.hdf5``.
ROI_LABEL = "0"
#: fold_slice's detector packages for APS X-ray data whose ``det.orientation`` is
#: ``[1 0 0]`` (``h5read``'s transpose undone) and that find ``data_roi*_dp.hdf5``
#: (``det.get_filename = @scans.get_filenames_aps``): name → ``det.pixel_size`` (metres).
DETECTOR_PACKAGES = {"eiger_APS": 75e-6, "Pilatus300K_APS": 172e-6, "medipix3": 55e-6,
                     "eiger_APS_temp": 37.5e-6}
#: the package named when none has the scan's pixel (``p.z`` is scaled instead)
DEFAULT_PACKAGE = "eiger_APS"


def link_names(roi_label=ROI_LABEL):
    """The two names fold_slice opens: ``(patterns, positions)``."""
    return f"data_roi{roi_label}_dp.hdf5", f"data_roi{roi_label}_para.hdf5"


def matlab_dtype(dtype):
    """The type ``/dp`` is written in: the floating type holding every value of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return dtype
    if dtype.kind in "ui" and dtype.itemsize >= 4:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def package_pixel(package, psize):
    """True when detector package ``package`` has pixel ``psize`` (relative 1e-6)."""
    return math.isclose(DETECTOR_PACKAGES[package], psize, rel_tol=1e-6)


def detector_package(psize_m):
    """``(name, ds)``: the fold_slice detector package with pixel ``psize_m``, else
    :data:`DEFAULT_PACKAGE` (and ``p.z`` is scaled: :func:`matlab_z`)."""
    name = next((n for n in DETECTOR_PACKAGES if package_pixel(n, psize_m)), DEFAULT_PACKAGE)
    return name, DETECTOR_PACKAGES[name]


def matlab_z(geometry):
    """``p.z`` (metres) for the detector package of :func:`detector_package`: the distance,
    scaled by ``ds / psize`` when the package's pixel differs (fold_slice's sample pixel is
    ``λ p.z / (asize · ds)``, so only ``z / ds`` matters)."""
    psize = float(geometry.psize_m[1])
    name, ds = detector_package(psize)
    if package_pixel(name, psize):
        return float(geometry.distance_m)
    return float(geometry.distance_m) * ds / psize


def _m(text):
    """A MATLAB character vector literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _num(value):
    """A float as MATLAB reads it back exactly (Python's shortest round-trip repr)."""
    return repr(float(value))


def matlab_parameters(geometry, folder=".", name="scan_fold_slice.h5", roi_label=ROI_LABEL):
    """The PtychoShelves / fold_slice parameter lines that load this export.

    Parameters
    ----------
    geometry : ScanGeometry
        Far field, even square frames, square pixels (:func:`fold_slice_error`).
    folder : str or Path
        The folder of the file and of its two links (``p.base_path``).
    name : str
        The file's name (for the comment and the mask line).
    roi_label : str

    Returns
    -------
    str
        MATLAB lines, one per parameter, ending in a newline.
    """
    h, w = (int(s) for s in geometry.shape)
    psize = float(geometry.psize_m[1])
    package, ds = detector_package(psize)
    z = matlab_z(geometry)
    folder = str(folder).rstrip("/") or "/"
    base = folder if folder.endswith("/") else folder + "/"
    dp, para = link_names(roi_label)
    mask_mat = base + Path(name).stem + "_mask.mat"
    z_note = ("% m, sample-detector distance" if package_pixel(package, psize) else
              f"% m: the distance {_num(geometry.distance_m)} m times {_num(ds)} / {_num(psize)} "
              "(the package's pixel / the scan's), which keeps lambda z / ds")
    lines = [
        f"% fold_slice (PtychoShelves) parameters for {name}, written by ptyprep",
        f"p.   base_path = {_m(base)};   % holds {dp} and {para} (links to {name})",
        "p.   scan_number = 1;",
        "p.   scan.format = '';   % no scan sub-folder: the files are in base_path",
        f"p.   scan.roi_label = {_m(roi_label)};",
        "p.   scan.type = 'default';",
        "p.   src_positions = 'hdf5_pos';   % /ppX, /ppY, metres",
        "p.   src_metadata = 'none';",
        "p.   prepare.data_preparator = 'matlab_aps';",
        f"p.   detector.name = {_m(package)};   % det.pixel_size = {_num(ds)} m, "
        "det.orientation = [1 0 0]",
        "p.   beam_source = '';   % X-rays: metres (not 'electron')",
        f"p.   energy = {_num(geometry.energy_keV)};   % keV",
        f"p.   z = {_num(z)};   {z_note}",
        f"p.   asize = [{h} {w}];",
        f"p.   ctr = [{h // 2 + 1} {w // 2 + 1}];   % optical axis, 1-based (row, col)",
        "p.   prop_regime = 'farfield';",
        f"mask = permute(h5read({_m(base + name)}, '/mask'), [2 1]);   % 1 = valid",
        f"save({_m(mask_mat)}, 'mask');",
        f"p.   io.default_mask_file = {_m(mask_mat)};",
    ]
    return "\n".join(lines) + "\n"


def fold_slice_error(meta):
    """The one-sentence RecipeError for a prepared scan (``meta``) that fold_slice cannot load
    as written (None when it can)."""
    propagation = meta.get("propagation") or "farfield"
    if propagation != "farfield":
        return RecipeError(f"the scan is prepared for {propagation!r} propagation but the "
                           "fold_slice export writes far-field scans only (PtychoShelves' "
                           "near-field mode takes the measured cone-beam geometry); export "
                           "cxi or ptychodus, or prepare with prep.propagation = 'farfield'")
    shape = [int(s) for s in np.broadcast_to(np.asarray(meta["shape"]), (2,))]
    if shape[0] % 2 or shape[1] % 2:
        return RecipeError(f"the prepared frames are {shape[0]}×{shape[1]} pixels but fold_slice "
                           "crops its mask at p.ctr ± p.asize/2 (get_center.m), which needs an "
                           "even size; choose prep.shape and prep.rebin so that shape / rebin "
                           "is even")
    py, px = (float(p) for p in np.broadcast_to(np.asarray(meta["psize"], float), (2,)))
    if not math.isclose(py, px, rel_tol=1e-9):
        return RecipeError(f"the prepared pixels are {py:g} × {px:g} m (y × x) but fold_slice "
                           "takes one detector pixel size (det.pixel_size); prepare square "
                           "pixels (prep.rebin acts on both axes) or export cxi")
    return None


class FoldSliceFile(ExportFile):
    """Writes ``<stem>_fold_slice.h5`` and links fold_slice's two names to it (module notes)."""

    def start(self, dtype):
        g = self.geometry
        h, w = g.shape
        self._dtype = matlab_dtype(dtype)
        self._h5 = f = h5py.File(self.tmp, "w")
        self._dp = f.create_dataset("dp", shape=(self.num_frames, h, w), dtype=self._dtype,
                                    maxshape=(None, h, w), chunks=(1, h, w), **FRAME_FILTERS)
        self._dp.attrs["axes"] = "frame:y:x"
        self._dp.attrs["matlab"] = ("h5read gives x, y, frame: fold_slice's det.orientation "
                                    "[1 0 0] transposes it to y, x, frame")
        self._pos = {}
        for key, axis in (("ppX", "x (column)"), ("ppY", "y (row)")):
            d = f.create_dataset(key, shape=(self.num_frames,), maxshape=(None,),
                                 dtype=np.float64)
            d.attrs["units"] = "m"
            d.attrs["description"] = f"probe position {axis}, ptyprep's position unchanged"
            self._pos[key] = d
        for key, value, unit in (("energy_keV", g.energy_keV, "keV"),
                                 ("distance_m", g.distance_m, "m"),
                                 ("pixel_size_m", g.psize_m[1], "m"),
                                 ("lambda", g.wavelength_m, "m"),
                                 ("dx", g.sample_pixel_m[1], "m")):
            f.create_dataset(key, data=float(value)).attrs["units"] = unit

    def write_frames(self, start, data, valid, positions, indices):
        stop = start + len(data)
        self._dp[start:stop] = np.asarray(data).astype(self._dtype, copy=False)
        positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
        self._pos["ppY"][start:stop] = positions[:, 0]
        self._pos["ppX"][start:stop] = positions[:, 1]

    def write_end(self, summary):
        f, g = self._h5, self.geometry
        n = summary.num_frames
        if n != self._dp.shape[0]:                   # not as many frames as planned
            self._dp.resize(n, axis=0)
            for d in self._pos.values():
                d.resize(n, axis=0)
        mask = f.create_dataset("mask", data=(~summary.bad_pixels()).astype(np.uint8),
                                **FRAME_FILTERS)
        mask.attrs["description"] = ("1 = valid pixel, 0 = invalid in some frame (fold_slice's "
                                     "fmask), oriented as the frames")
        self.log_mask_union(summary)
        h, w = g.shape
        if tuple(float(c) for c in g.center) != (h / 2, w / 2):
            log.warning("%s: the optical axis is at (%g, %g) but fold_slice takes it at the "
                        "frame's (%d, %d) (it fft-shifts the frames)", self.path.name,
                        *g.center, h // 2, w // 2)
        text = matlab_parameters(g, self.path.parent.resolve(), self.path.name)
        f["matlab_parameters"] = text
        self._check_links()
        log.info("%s: to reconstruct with fold_slice set\n%s", self.path.name, text.rstrip())

    def links(self):
        return {name: self.path.name for name in link_names()}

    def _check_links(self):
        """Refuse (before the commit) to replace a real file at a link name; say when a link
        to another file is replaced."""
        for name in link_names():
            link = self.path.parent / name
            if link.is_symlink():
                if os.readlink(link) != self.path.name:
                    log.warning("%s: %s linked to %s; it now links to %s (fold_slice reads one "
                                "scan per folder)", self.path.name, name, os.readlink(link),
                                self.path.name)
            elif link.exists():
                raise OutputError(link_collision(link))


def link_collision(link):
    """The one-sentence message for a real file where a fold_slice link goes."""
    return (f"{str(link)!r} exists and is not a link; the fold_slice export links that name "
            "to its file: move it, or write the export to another folder (--out)")


class FoldSliceFormat(ExportFormat):
    """fold_slice / PtychoShelves (``<stem>_fold_slice.h5`` and its ``data_roi0_*.hdf5`` links)."""

    name = "fold_slice"
    suffix = "_fold_slice.h5"
    file_class = FoldSliceFile

    def check(self):
        super().check()
        for name in link_names():
            link = self.target.parent / name
            if link.exists() and not link.is_symlink():
                raise OutputError(link_collision(link))

    def check_plan(self, plan):
        error = fold_slice_error(plan.output_meta())
        if error is not None:
            raise error
