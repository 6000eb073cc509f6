"""One scattering detector: its raw dataset, pyFAI geometry, valid pixels and corrections.

Named after lixtools' ``Detector`` so LiX users recognise it. Everything is loaded and
checked when the object is made, so a bad ``.poni`` or a mask of the wrong shape fails
before any frame is read.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import RecipeError
from ..layout.lix_raw import DETECTORS as LIX_DETECTORS
from .integrate import StackIntegrator, geometry_dict, load_poni

__all__ = ["Detector", "default_name", "load_image"]


def default_name(dataset):
    """Short detector name from its dataset: ``pil1M_image`` → ``_SAXS`` (LiX), else the dataset name."""
    return LIX_DETECTORS.get(dataset, dataset)


def load_image(spec, what="image"):
    """Read a 2-D array from an array, ``.npy``, an HDF5 ``"file.h5::/path"`` or any fabio image.

    Parameters
    ----------
    spec : ndarray or str or os.PathLike
    what : str
        Name used in error messages.

    Returns
    -------
    image : (H, W) ndarray
    """
    if not isinstance(spec, (str, os.PathLike)):
        arr = np.asarray(spec)
    else:
        spec = os.fspath(spec)
        path, _, dset = spec.partition("::")
        if not os.path.isfile(path):
            raise RecipeError(f"{what} file {path!r} does not exist; give a .npy, TIFF/EDF or "
                              "'file.h5::/dataset' path")
        try:
            if dset:
                import h5py

                with h5py.File(path, "r") as fh:
                    arr = fh[dset][()]
            elif path.lower().endswith(".npy"):
                arr = np.load(path, allow_pickle=False)
            else:
                import fabio

                arr = fabio.open(path).data
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise RecipeError(f"{what} {spec!r} cannot be read ({exc}); give a .npy, TIFF/EDF or "
                              "'file.h5::/dataset' holding a 2-D array") from exc
    if arr.ndim != 2:
        raise RecipeError(f"{what} {spec if isinstance(spec, str) else 'array'} has shape {arr.shape}, "
                          "expected a 2-D (H, W) image")
    return arr


class Detector:
    """A scattering detector of a scan.

    Parameters
    ----------
    dataset : str
        Name of the detector's frames in the raw data (e.g. ``"pil1M_image"``).
    poni : str or os.PathLike
        pyFAI calibration file, for the frames as they are stored in ``dataset``.
    valid : (H, W) bool ndarray or str, optional
        Usable pixels: **True / non-zero = usable** (the opposite of a pyFAI mask). An array,
        a ``.npy`` file, a TIFF/EDF image (read with fabio) or ``"file.h5::/dataset"``.
        Default: every pixel.
    scale : float
        Factor applied to this detector's maps when detectors are merged.
    name : str, optional
        Default from ``dataset``: pil1M_image → ``_SAXS``, pilW1_image → ``_WAXS1``,
        pilW2_image → ``_WAXS2``, otherwise the dataset name.
    solid_angle : bool;  polarization_factor : float, optional
        Corrections, as in pyFAI.
    dark, flat : (H, W) ndarray or path, optional
        Subtracted from each frame / folded into the normalisation.
    shape : (H, W) tuple, optional
        Detector shape when the poni does not give one (old poni files); otherwise
        taken from the poni (or from ``valid``).

    Raises
    ------
    RecipeError
        Missing or invalid poni; mask or image of the wrong shape; unknown shape.
    """

    def __init__(self, dataset="pil1M_image", poni="saxs.poni", valid=None, scale=1.0, name=None,
                 solid_angle=True, polarization_factor=None, dark=None, flat=None, shape=None):
        self.dataset = str(dataset)
        self.name = default_name(self.dataset) if name is None else str(name)
        self.poni = os.fspath(poni)
        self.ai = load_poni(self.poni)
        try:
            self.scale = float(scale)
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"detector {self.name}: scale = {scale!r} is not a number") from exc
        self.solid_angle = bool(solid_angle)
        self.polarization_factor = None if polarization_factor is None else float(polarization_factor)
        if self.polarization_factor is not None and not -1 <= self.polarization_factor <= 1:
            raise RecipeError(f"detector {self.name}: polarization_factor = {polarization_factor} is "
                              "outside [-1, 1]; use e.g. 0.99 for a horizontally polarised beam")
        self.shape = self._shape(shape, valid)
        if valid is None:
            self.valid, self.valid_source = np.ones(self.shape, dtype=bool), "all pixels"
        else:
            self.valid = load_image(valid, f"detector {self.name} valid mask") != 0
            self.valid_source = os.fspath(valid) if isinstance(valid, (str, os.PathLike)) else "array"
            self._check_shape(self.valid, "valid mask")
        self.dark = self._image(dark, "dark")
        self.flat = self._image(flat, "flat")

    def _shape(self, shape, valid):
        det = self.ai.detector
        poni_shape = det.shape if det.shape is not None else det.max_shape
        if poni_shape is not None:
            poni_shape = tuple(int(v) for v in poni_shape)
            if shape is not None and tuple(shape) != poni_shape:
                raise RecipeError(f"detector {self.name}: shape={tuple(shape)} differs from the shape "
                                  f"{poni_shape} in {self.poni!r}; drop shape= or fix the poni")
            return poni_shape
        if shape is not None:
            return tuple(int(v) for v in shape)
        if valid is not None:
            return tuple(load_image(valid, f"detector {self.name} valid mask").shape)
        raise RecipeError(f"detector {self.name}: {self.poni!r} gives no detector shape; pass "
                          "shape=(H, W) or a valid mask")

    def _check_shape(self, arr, what):
        if arr.shape != self.shape:
            raise RecipeError(f"detector {self.name}: {what} shape {arr.shape} differs from the detector "
                              f"shape {self.shape}; give a {what} made for this detector")

    def _image(self, spec, what):
        if spec is None:
            return None
        arr = load_image(spec, f"detector {self.name} {what}")
        self._check_shape(arr, what)
        return arr

    def integrator(self, qgrid, nphi, split="bbox"):
        """A :class:`~ptyprep.saxs.integrate.StackIntegrator` for this detector's geometry and corrections.

        Parameters
        ----------
        qgrid : (Nq,) array_like, 1/Å;  nphi : int, even;  split : {"bbox", "no", "full"}
        """
        return StackIntegrator(self.ai, qgrid, nphi, valid=self.valid, split=split,
                               solid_angle=self.solid_angle,
                               polarization_factor=self.polarization_factor,
                               dark=self.dark, flat=self.flat)

    def to_json(self):
        """JSON-ready description for the processed file's ``@detectors`` attribute."""
        return {"name": self.name, "dataset": self.dataset, "poni_file": self.poni,
                **geometry_dict(self.ai), "shape": list(self.shape), "valid": self.valid_source,
                "scale": self.scale, "solid_angle": self.solid_angle,
                "polarization_factor": self.polarization_factor,
                "dark": self.dark is not None, "flat": self.flat is not None}

    def __repr__(self):
        return f"Detector(dataset={self.dataset!r}, poni={self.poni!r}, name={self.name!r}, shape={self.shape})"
