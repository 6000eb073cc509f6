"""The ``ptylab`` export: ``<stem>_ptylab.hdf5``, as PtyLab's ``ExperimentalData(file, "CPM")``
reads it.

PtyLab (0.3.7) reads the top-level datasets of one HDF5 file by name
(``PtyLab/io/readHdf5.py`` ``loadInputData``); the required ones of conventional
ptychography are ``ptychogram``, ``wavelength``, ``encoder``, ``dxd`` and ``zo``
(``ExperimentalData.py`` ``_setFields``), all in SI units.

============================  ================================================================
``ptychogram``                frames ``(N, Nd, Nd)``, scan order, the prepared type (counts);
                              invalid pixels are 0 (PtyLab reads no mask)
``encoder``                   ``(N, 2)`` metres: column 0 = y (row), 1 = x (column), ptyprep's
                              positions minus the middle of the scan (centred on 0, see below)
``wavelength``                metres
``zo``                        sample-detector distance, metres
``dxd``                       detector pixel, metres (one: the pixels are square)
``Nd``                        frame side, pixels (PtyLab takes it from ``ptychogram``; written
                              for other readers of the file)
``entrancePupilDiameter``     estimated probe diameter, metres (PtyLab's ``circ`` initial probe)
``orientation``               0: the frames are as prepared (PtyLab's ``setOrientation`` leaves
                              them)
``W``                         ``(Nd, Nd)`` float32, 1 = pixel valid in every frame, 0 = invalid
                              in some frame (the union); PtyLab's name of a detector (Fourier)
                              mask, which its loader does not read: see below
``ptyprep/indices``           scan index of each frame
``ptyprep/encoder_origin``    ``(y, x)`` metres subtracted from the positions
                              (``positions = encoder + encoder_origin``)
``ptyprep/center``            optical axis ``(row, col)`` on the frame, pixels
============================  ================================================================

Positions.  PtyLab places frame *j*'s probe at the object patch whose upper-left pixel is
``round(encoder[j] / dxo) + No // 2 - Np // 2`` (``Reconstruction.py``
``calculate_pixel_positions``), indexed ``[row, col]`` (``mPIE.py``: ``row, col =
positions[j]``), and sizes the object ``No = max extent + 2 Np`` pixels
(``computeParameters``): so ``encoder`` is ``(y, x)`` in ptyprep's sense, same sign, and it
must be centred on 0 or the outer patches leave the object.  PtyLab centres it only when it
transposes a ``(2, N)`` encoder; ptyprep writes it centred on the middle of the scan's extent,
``(min + max) / 2`` per axis (the object centre of :func:`~ptyprep.exports.guesses.object_extent`).

Frames.  PtyLab's far field is ``fftshift(fft2(ifftshift(esw)))``: the optical axis at pixel
``(Nd // 2, Nd // 2)``, rows along y, as ptyprep's prepared frames are; no orientation is
applied.  Its sample pixel is ``λ zo / (Nd dxd)``, ptyprep's
:attr:`~ptyprep.exports.geometry.ScanGeometry.sample_pixel_m`.  PtyLab's object and probe are
square, on one pixel size: :meth:`PtylabFormat.check_plan` refuses non-square frames or pixels.

Invalid pixels.  PtyLab's projection has no mask: a 0 is taken as measured, which the
projection enforces (dead pixels, a module gap).  ``W`` is written so that a user can set
``experimentalData.W`` from it and ``params.FourierMaskSwitch = True`` to weight PtyLab's
error metric by it.  One 2-D mask because PtyLab's ``W`` is one: it multiplies each frame's
misfit.

entrancePupilDiameter.  PtyLab's own beam-size rule (``io/generateSimulationData.py``): 2.355
times the rms radius of ``|probe|²``, here of ptyprep's initial probe guess
(:func:`~ptyprep.exports.guesses.initial_probe`, the flat-phase probe whose far field is the
mean pattern) on the sample pixel, kept between 4 pixels and the probe window ``Nd · dxp``.
"""

import logging

import h5py
import numpy as np

from ..errors import RecipeError
from .format import ExportFormat
from .sink import FRAME_FILTERS, ExportFile

log = logging.getLogger(__name__)

#: PtyLab's beam-size rule: diameter = BEAM_SIZE_FACTOR × rms radius of ``|probe|²``
#: (PtyLab ``io/generateSimulationData.py``).
BEAM_SIZE_FACTOR = 2.355
#: Smallest entrancePupilDiameter written, sample pixels.
MIN_PUPIL_PX = 4


def encoder(positions):
    """PtyLab's ``encoder`` from ptyprep's ``(y, x)`` positions: centred on the scan's middle.

    Parameters
    ----------
    positions : (N, 2) float ndarray
        ``(y, x)`` metres.

    Returns
    -------
    encoder : (N, 2) float64 ndarray
        ``positions - origin``: column 0 = y, column 1 = x, metres.
    origin : (2,) float64 ndarray
        ``(min + max) / 2`` of each column, metres.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if not len(positions):
        return positions.copy(), np.zeros(2)
    origin = (positions.min(axis=0) + positions.max(axis=0)) / 2
    return positions - origin, origin


def ptychogram(data, valid):
    """Frames as PtyLab takes them: ``data`` with the invalid pixels set to 0 (same type)."""
    data = np.asarray(data)
    return np.where(valid, data, np.zeros((), dtype=data.dtype))


def valid_weight(bad_pixels):
    """PtyLab's ``W``: (H, W) float32, 1 where valid in every frame, 0 where ``bad_pixels``."""
    return np.where(bad_pixels, 0.0, 1.0).astype(np.float32)


def entrance_pupil_diameter(probe, pixel_m):
    """Probe diameter by PtyLab's beam-size rule: 2.355 × the rms radius of ``|probe|²``.

    Parameters
    ----------
    probe : (N, N) complex ndarray
        A probe centred at ``(N // 2, N // 2)`` (:func:`~ptyprep.exports.guesses.initial_probe`).
    pixel_m : float
        Its pixel, metres.

    Returns
    -------
    float
        Metres, between ``MIN_PUPIL_PX`` pixels and the window ``N · pixel_m`` (the latter also
        when the probe is all zero).
    """
    intensity = np.abs(np.asarray(probe)) ** 2
    n = intensity.shape[-1]
    total = intensity.sum()
    if not total > 0:
        return float(n * pixel_m)
    yy, xx = np.indices(intensity.shape, dtype=np.float64)
    r2 = (yy - intensity.shape[0] // 2) ** 2 + (xx - intensity.shape[1] // 2) ** 2
    diameter_px = BEAM_SIZE_FACTOR * np.sqrt((r2 * intensity).sum() / total)
    return float(np.clip(diameter_px, MIN_PUPIL_PX, n) * pixel_m)


def square_frame_error(shape):
    """The one-sentence RecipeError for prepared frames of ``shape`` that are not square
    (None when they are)."""
    h, w = (int(s) for s in shape)
    if h == w:
        return None
    return RecipeError(f"the prepared frames are {h}×{w} pixels but PtyLab needs square frames "
                       f"(one Nd); set prep.shape to one integer, e.g. prep.shape = {min(h, w)}")


def square_pixel_error(psize):
    """The one-sentence RecipeError for a prepared pixel ``psize`` ``(y, x)`` m that is not
    square (None when it is)."""
    py, px = (float(p) for p in psize)
    if np.isclose(py, px, rtol=1e-9, atol=0.0):
        return None
    return RecipeError(f"the prepared detector pixel is {py:g} × {px:g} m (y × x) but PtyLab "
                       "holds one pixel size (dxd); the ptylab export needs square pixels")


class PtylabFile(ExportFile):
    """Writes ``<stem>_ptylab.hdf5`` (see the module notes)."""

    def start(self, dtype):
        g = self.geometry
        n = g.shape[0]
        self._h5 = f = h5py.File(self.tmp, "w")
        self._frames = f.create_dataset("ptychogram", shape=(self.num_frames, n, n), dtype=dtype,
                                        maxshape=(None, n, n), chunks=(1, n, n),
                                        **FRAME_FILTERS)
        f.create_dataset("wavelength", data=g.wavelength_m).attrs["units"] = "m"
        f.create_dataset("zo", data=g.distance_m).attrs["units"] = "m"
        f.create_dataset("dxd", data=g.psize_m[0]).attrs["units"] = "m"
        f.create_dataset("Nd", data=np.int64(n))
        f.create_dataset("orientation", data=np.int64(0))
        f.attrs["creator"] = "ptyprep"
        axis = (n // 2, n // 2)
        if tuple(g.center) != axis:
            log.info("%s: the optical axis is at pixel (%g, %g) of the frame, PtyLab takes it at "
                     "(%d, %d): the reconstruction carries the phase ramp of that offset",
                     self.path.name, g.center[0], g.center[1], *axis)
        if g.propagation != "farfield":
            log.warning("%s: a %s scan, but PtyLab's CPM sample pixel is λ·zo/(Nd·dxd) (far "
                        "field): set reconstruction.dxp = dxd after making the Reconstruction",
                        self.path.name, g.propagation)

    def write_frames(self, start, data, valid, positions, indices):
        self._frames[start:start + len(data)] = ptychogram(data, valid)

    def write_end(self, summary):
        f, g = self._h5, self.geometry
        n = summary.num_frames
        if n != self._frames.shape[0]:               # not as many frames as planned
            self._frames.resize(n, axis=0)
        enc, origin = encoder(summary.positions)
        f.create_dataset("encoder", data=enc).attrs["units"] = "m"
        f.create_dataset("W", data=valid_weight(summary.bad_pixels()), **FRAME_FILTERS)
        self.log_mask_union(summary)
        probe, _, _ = self.guesses(summary)
        diameter = entrance_pupil_diameter(probe, g.sample_pixel_m[0])
        f.create_dataset("entrancePupilDiameter", data=diameter).attrs["units"] = "m"
        extras = f.create_group("ptyprep")
        extras["indices"] = summary.indices
        extras.create_dataset("encoder_origin", data=origin).attrs["units"] = "m"
        extras["center"] = np.asarray(g.center, dtype=np.float64)


class PtylabFormat(ExportFormat):
    """PtyLab's conventional-ptychography (CPM) HDF5 file (``<stem>_ptylab.hdf5``)."""

    name = "ptylab"
    suffix = "_ptylab.hdf5"
    file_class = PtylabFile

    def check_plan(self, plan):
        meta = plan.output_meta()
        error = square_frame_error(meta["shape"]) or square_pixel_error(meta["psize"])
        if error is not None:
            raise error
