"""The preparation plan: everything decided from the recipe and the source's metadata.

:func:`make_plan` runs on every rank before the first collective and raises a
:class:`~ptyprep.errors.PtyprepError` for any bad input, so all ranks fail the
same way.  The plan is a frozen value; the pipeline only reads it.
"""

import functools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import frames as F
from ..errors import RecipeError, SourceError
from ..sources.images import load_image


@dataclass(frozen=True)
class Plan:
    """Decisions shared by every rank.

    Attributes
    ----------
    num_frames : int
        Frames to prepare (scan indices ``0..num_frames-1``).
    raw_shape : (int, int)
        Raw frame shape.
    shape : (int, int)
        Cropped shape (before rebin).
    center : (float, float) or None
        Raw-frame centre (row, col); None until an automatic centre is computed.
    valid : (H, W) bool ndarray
        Static valid mask of the raw frame (source mask and flat field).
    positions : (num_frames, 2) float64 ndarray, metres
    distance_m, psize_m : float, (float, float)
        The source's sample-to-detector distance and raw detector pixel (y, x), metres.
    focus_to_sample_m : float or None
        Focus-to-sample distance of a cone beam, metres (None: a parallel beam).
    """

    num_frames: int
    raw_shape: tuple
    shape: tuple
    center: Optional[tuple]
    center_mode: str
    rebin: int
    rebin_mode: str
    orientation: tuple
    chunk_frames: int
    valid: np.ndarray
    positions: np.ndarray
    energy_keV: float
    distance_m: float
    psize_m: tuple
    dark: Optional[np.ndarray] = None
    flat: Optional[np.ndarray] = None
    saturation: float = 0.0
    threshold: float = 0.0
    fftshift: bool = False
    label: str = ""
    propagation: str = "farfield"
    focus_to_sample_m: Optional[float] = None
    source_extra: dict = field(default_factory=dict)

    @functools.cached_property
    def window(self):
        """Raw-frame crop window (row0, row1, col0, col1); may extend past the frame."""
        return F.crop_window(self.center, self.shape)

    @functools.cached_property
    def roi(self):
        """Part of the window to read from the source (None: nothing inside the frame)."""
        return F.clip_window(self.window, self.raw_shape)

    def chunks(self):
        """``(start, stop)`` index ranges of the chunks, in scan order."""
        return [(s, min(s + self.chunk_frames, self.num_frames))
                for s in range(0, self.num_frames, self.chunk_frames)]

    def detector_psize(self):
        """(2,) detector pixel of the prepared frame (after orientation and rebin), metres."""
        psize = np.asarray(self.psize_m, dtype=float)
        return (psize[::-1] if self.orientation[0] else psize) * self.rebin

    def geometry(self):
        """``(psize, distance, magnification)`` written to ``meta``: the detector's for a
        parallel beam, the equivalent parallel beam's for a cone beam (:func:`fresnel_scaling`)."""
        if self.focus_to_sample_m is None:
            return self.detector_psize(), float(self.distance_m), 1.0
        return fresnel_scaling(self.detector_psize(), self.distance_m, self.focus_to_sample_m)

    def geometry_info(self):
        """``info/geometry`` of a cone-beam scan (None for a parallel beam): the measured
        distances (metres), the magnification and the pixel sizes before and after scaling."""
        if self.focus_to_sample_m is None:
            return None
        psize, distance, magnification = self.geometry()
        return {"beam": "cone", "detector_psize_m": self.detector_psize().tolist(),
                "sample_to_detector_m": float(self.distance_m),
                "focus_to_sample_m": float(self.focus_to_sample_m),
                "focus_to_detector_m": float(self.focus_to_sample_m + self.distance_m),
                "magnification": magnification, "effective_psize_m": psize.tolist(),
                "effective_distance_m": distance}

    def output_meta(self):
        """``meta`` of the prepared scan: shape, centre, pixel size after orientation and rebin
        (and distance), Fresnel-scaled for a cone beam (:meth:`geometry`)."""
        cropped_center = (self.shape[0] // 2, self.shape[1] // 2)
        center, shape = F.orient_center(cropped_center, self.shape, self.orientation)
        r = self.rebin
        psize, distance, _ = self.geometry()
        return {
            "num_frames": self.num_frames,
            "shape": np.array([shape[0] // r, shape[1] // r], dtype=np.int64),
            "center": np.array([center[0] / r, center[1] / r], dtype=np.float64),
            "psize": psize,
            "energy": float(self.energy_keV),
            "distance": distance,
            "label": self.label or None,
            "propagation": self.propagation,
        }


def make_plan(recipe, source, require_square=True):
    """Check the recipe against the source and decide the preparation.

    Raises
    ------
    RecipeError, SourceError
        With one sentence naming the value, the expectation and a fix.
    """
    prep = recipe.prep
    meta = source.read_meta()
    raw_shape = tuple(int(s) for s in meta.frame_shape)
    if len(raw_shape) != 2:
        raise SourceError(f"frames have shape {raw_shape} per frame; expected 2-D frames "
                          "(a 3-D (N, H, W) dataset)")
    check_frame_dtype(meta.dtype, source)
    positions = np.asarray(source.read_positions(), dtype=np.float64)
    n_meta = meta.num_frames if meta.num_frames is not None else len(positions)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise SourceError(f"positions have shape {positions.shape}; expected (N, 2) (y, x) in metres")
    if len(positions) < n_meta:
        raise SourceError(f"the source has {n_meta} frames but {len(positions)} positions; "
                          "every frame needs a (y, x) position")
    num_frames = min(n_meta, prep.num_frames) if prep.num_frames else n_meta
    if num_frames < 1:
        raise SourceError(f"{source.where()} has no frames to prepare; check the path and "
                          "dataset, or wait until the detector has written frames (ptyprep watch "
                          "follows a scan as it is written)")
    positions = positions[:num_frames]
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if len(bad):
        raise SourceError(f"positions of frame(s) {bad[:5].tolist()} are NaN or infinite; "
                          "fix the position data or limit prep.num_frames")

    shape = prep.shape or (min(raw_shape),) * 2
    if require_square and shape[0] != shape[1]:
        raise RecipeError(f"prep.shape {list(shape)} is not square; ptypy's .ptyd needs square "
                          "frames: give one integer")
    if shape[0] % prep.rebin or shape[1] % prep.rebin:
        raise RecipeError(f"prep.rebin={prep.rebin} does not divide the cropped size "
                          f"{list(shape)}; choose a divisor or set prep.shape")

    energy = _required(meta.energy_keV, "energy", "energy_keV = 8.0")
    distance = _required(meta.distance_m, "detector distance", "distance_m = 5.0")
    psize = _required(meta.psize_m, "pixel size", "psize_m = 75e-6")
    psize = tuple(np.broadcast_to(np.asarray(psize, dtype=float), (2,)))
    for what, values, example in (("energy", energy, "energy_keV = 8.0"),
                                  ("detector distance", distance, "distance_m = 5.0"),
                                  ("pixel size", psize, "psize_m = 75e-6")):
        check_positive(values, what, example, source.where())

    center = _raw_center(prep.center, meta, raw_shape)
    if center is not None:
        check_center_inside(center, raw_shape)

    valid = np.ones(raw_shape, dtype=bool)
    source_valid = source.read_valid()
    if source_valid is not None:
        if source_valid.shape != raw_shape:
            raise SourceError(f"valid-pixel mask has shape {source_valid.shape}; "
                              f"frames are {raw_shape}")
        valid &= source_valid
    dark = _load_frame(recipe, prep.dark, "prep.dark", raw_shape)
    flat = _load_frame(recipe, prep.flat, "prep.flat", raw_shape)
    if flat is not None:
        valid &= F.flat_valid(flat)
    return Plan(
        num_frames=num_frames, raw_shape=raw_shape, shape=tuple(shape), center=center,
        center_mode=prep.center if isinstance(prep.center, str) else "given",
        rebin=prep.rebin, rebin_mode=prep.rebin_mode, orientation=prep.orientation,
        chunk_frames=recipe.output.chunk_frames, valid=valid, positions=positions,
        energy_keV=float(energy), distance_m=float(distance), psize_m=psize,
        dark=dark, flat=flat, saturation=prep.saturation, threshold=prep.threshold,
        fftshift=prep.fftshift, label=recipe.output.label or (meta.label or ""),
        propagation=prep.propagation, focus_to_sample_m=prep.focus_to_sample_m,
        source_extra=dict(meta.extra))


def fresnel_scaling(psize_m, distance_m, focus_to_sample_m):
    """The parallel-beam geometry equivalent to a cone beam (Fresnel scaling theorem).

    With the focus at ``z01 = focus_to_sample_m`` before the sample and the detector at
    ``z2 = distance_m`` after it (focus to detector ``z12 = z01 + z2``), the geometric
    magnification is ``M = z12 / z01``; the hologram is that of a parallel beam on a detector
    of pixel ``psize / M`` at ``z2 / M = z01 z2 / z12`` from the sample.

    Parameters
    ----------
    psize_m : float or (2,) array_like
        Detector pixel size, metres.
    distance_m : float
        Sample-to-detector distance ``z2``, metres (> 0).
    focus_to_sample_m : float
        Focus-to-sample distance ``z01``, metres (> 0).

    Returns
    -------
    psize : ndarray
        Effective pixel size ``psize / M`` (the shape of ``psize_m``), metres.
    distance : float
        Effective propagation distance ``z2 / M``, metres.
    magnification : float
        ``M = z12 / z01 = 1 + z2 / z01`` (> 1).
    """
    magnification = 1.0 + distance_m / focus_to_sample_m   # = z12 / z01
    return (np.asarray(psize_m, dtype=float) / magnification,
            float(distance_m) / magnification, float(magnification))


#: Kinds of frame dtype that hold detector counts or intensities: integers (signed or
#: unsigned, 8 to 64 bits: counting detectors, integrating ones in ADU) and floats (16 to
#: 64 bits: corrected or converted frames; NaN and ±inf pixels come out invalid).
ACCEPTED_FRAME_KINDS = {"u": "unsigned integer", "i": "signed integer", "f": "float"}


def check_frame_dtype(dtype, source):
    """Raise SourceError unless frames of ``dtype`` hold counts or intensities (see
    :data:`ACCEPTED_FRAME_KINDS`): booleans, complex numbers, strings, records are not."""
    dtype = np.dtype(dtype)
    if dtype.kind not in ACCEPTED_FRAME_KINDS or dtype.itemsize > 8:
        raise SourceError(f"frames of {source.where()} are of type {dtype} ({dtype.kind!r}), "
                          "which is not detector counts or intensities; ptyprep takes "
                          "integer (signed or unsigned) or float frames of up to 64 bits: "
                          "name the frames dataset in the [source] table")


def check_positive(values, what, example, where):
    """Raise SourceError unless every value of ``values`` (read from the source ``where``
    or given by the recipe) is finite and > 0."""
    values = np.atleast_1d(np.asarray(values, dtype=float))
    if not (np.isfinite(values).all() and (values > 0).all()):
        shown = values[0] if values.size == 1 else values.tolist()
        unit = example.split("=")[0].strip().rpartition("_")[2]
        raise SourceError(f"{what} {shown} {unit} (read for {where}, or set in the recipe) is "
                          f"not finite and positive; set it in the [source] table (e.g. "
                          f"{example})")


def _required(value, what, example):
    if value is None:
        raise SourceError(f"the source gives no {what}; set it in the [source] table "
                          f"(e.g. {example})")
    return value


def _raw_center(mode, meta, raw_shape):
    if isinstance(mode, tuple):
        return mode
    if mode == "fftshift":
        return (float(raw_shape[0] // 2), float(raw_shape[1] // 2))
    if mode == "geometric":
        return (raw_shape[0] / 2 - 0.5, raw_shape[1] / 2 - 0.5)
    if mode == "source":
        if meta.beam_center is None:
            raise RecipeError("prep.center = 'source' but the source gives no beam centre; "
                              "set [source] beam_center, or prep.center to [row, col] or 'auto'")
        return tuple(float(c) for c in meta.beam_center)
    return None  # auto: computed from the first chunk


def check_center_inside(center, raw_shape):
    """Raise RecipeError unless ``center`` (row, col) lies on a raw frame of ``raw_shape``."""
    if not (0 <= center[0] < raw_shape[0] and 0 <= center[1] < raw_shape[1]):
        raise RecipeError(f"centre ({center[0]:g}, {center[1]:g}) is outside the raw frame of shape "
                          f"{raw_shape}; give (row, col) inside it or use prep.center = 'auto'")


def _load_frame(recipe, spec, key, raw_shape):
    if not spec:
        return None
    path, sep, dataset = spec.partition("::")
    image = load_image(str(recipe.path(path)) + sep + dataset)
    if image.shape != raw_shape:
        raise SourceError(f"{key} {spec!r} has shape {image.shape}; raw frames are {raw_shape}")
    return image.astype(np.float32)
