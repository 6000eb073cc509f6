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
from . import py4xs as P
from .integrate import StackIntegrator, as_integrator, geometry_dict

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
    poni : str or os.PathLike or dict or pyFAI AzimuthalIntegrator
        Geometry of the frames as they are stored in ``dataset``: a pyFAI calibration
        (``.poni``) file, a dict of pyFAI's fields (``dist``, ``poni1``, ``poni2``, ``rot1..3``,
        ``wavelength``, ``pixel1``, ``pixel2``, optional ``shape``, ``fliplr``; see
        :func:`~ptyprep.saxs.integrate.as_integrator`) or an integrator (copied).
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
    fliplr : bool, optional
        True: the geometry describes the frames mirrored left-right (a py4xs ``flip < 0``);
        ``valid``, ``dark`` and ``flat`` stay in the stored orientation and the frames are
        mirrored before integration. Default: the geometry dict's ``"fliplr"``, else False.

    Raises
    ------
    RecipeError
        Missing or invalid poni; mask or image of the wrong shape; unknown shape.
    """

    def __init__(self, dataset="pil1M_image", poni="saxs.poni", valid=None, scale=1.0, name=None,
                 solid_angle=True, polarization_factor=None, dark=None, flat=None, shape=None,
                 fliplr=None):
        self.dataset = str(dataset)
        self.name = default_name(self.dataset) if name is None else str(name)
        is_file = isinstance(poni, (str, os.PathLike))
        self.poni = os.fspath(poni) if is_file else None
        self._label = repr(self.poni) if is_file else "the geometry"
        self.ai = as_integrator(poni)
        if fliplr is None:
            fliplr = bool(poni.get("fliplr", False)) if isinstance(poni, dict) else False
        self.fliplr = bool(fliplr)
        #: ExpPara fields ptyprep does not use (flip, incident_angle, fix_azimuthal_angles), kept
        #: for :meth:`to_py4xs`; set by :meth:`from_py4xs`.
        self.py4xs_options = None
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
                                  f"{poni_shape} in {self._label}; drop shape= or fix the poni")
            return poni_shape
        if shape is not None:
            return tuple(int(v) for v in shape)
        if valid is not None:
            return tuple(load_image(valid, f"detector {self.name} valid mask").shape)
        raise RecipeError(f"detector {self.name}: {self._label} gives no detector shape; pass "
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
        flip = (lambda a: None if a is None else np.ascontiguousarray(a[:, ::-1])) if self.fliplr \
            else (lambda a: a)
        integ = StackIntegrator(self.ai, qgrid, nphi, valid=flip(self.valid), split=split,
                                solid_angle=self.solid_angle,
                                polarization_factor=self.polarization_factor,
                                dark=flip(self.dark), flat=flip(self.flat))
        return _Mirrored(integ) if self.fliplr else integ

    def to_json(self):
        """JSON-ready description for the processed file's ``@detectors`` attribute (the geometry
        inline; ``poni_file`` is None when it came from a dict or an integrator)."""
        return {"name": self.name, "dataset": self.dataset, "poni_file": self.poni,
                **geometry_dict(self.ai), "shape": list(self.shape), "fliplr": self.fliplr,
                "valid": self.valid_source, "scale": self.scale, "solid_angle": self.solid_angle,
                "polarization_factor": self.polarization_factor,
                "dark": self.dark is not None, "flat": self.flat is not None}

    # -- py4xs / lixtools
    @classmethod
    def from_py4xs(cls, config, dataset=None, mask=None, pixel_size=P.PIXEL_SIZE, **kwargs):
        """A Detector from lixtools' description of it (py4xs ``DetectorConfig`` / ``ExpPara``).

        Parameters
        ----------
        config : DetectorConfig-like object or dict, a ``@detectors`` entry, or an ExpPara alone
            See :func:`ptyprep.saxs.py4xs.read_config`.
        dataset : str, optional
            Raw dataset; default from ``extension`` (``_SAXS`` → ``pil1M_image``, ``_WAXS1`` →
            ``pilW1_image``, ``_WAXS2`` → ``pilW2_image``).
        mask : (H, W) array or py4xs ``Mask``, optional
            py4xs sense (**True = masked**, in py4xs' flipped orientation); default the config's
            ``exp_para.mask``. Becomes ``valid`` (True = usable, stored-frame orientation).
        pixel_size : float
            Pixel size given to pyFAI, m; q and φ do not depend on it.
        **kwargs
            Passed to :class:`Detector` (``name`` defaults to the extension; ``scale`` to
            ``1 / fix_scale``; ``valid`` replaces the mask).
        """
        return cls._from_config(P.read_config(config), dataset, mask, pixel_size, **kwargs)

    @classmethod
    def _from_config(cls, cfg, dataset=None, mask=None, pixel_size=P.PIXEL_SIZE, **kwargs):
        e, ext = cfg["exp"], cfg["extension"]
        if dataset is None:
            dataset = P.dataset_for(ext)
            if dataset is None:
                raise RecipeError(f"py4xs extension {ext!r} names no LiX dataset (_SAXS, _WAXS1, "
                                  "_WAXS2); pass dataset= (the frames' dataset in the raw files)")
        masked = cfg["masked"] if mask is None else P.unpack_mask(mask)
        if mask is not None and kwargs.get("valid") is not None:
            raise RecipeError("give either mask= (py4xs sense, True = masked) or valid= "
                              "(True = usable), not both")
        if masked is not None and kwargs.get("valid") is None:
            if masked.shape != (e["ImageHeight"], e["ImageWidth"]):
                raise RecipeError(f"py4xs mask shape {masked.shape} differs from (ImageHeight, ImageWidth)"
                                  f" = {(e['ImageHeight'], e['ImageWidth'])}; give this detector's mask")
            kwargs["valid"] = np.ascontiguousarray(~P.unflip_image(masked, e["flip"]))
        kwargs.setdefault("name", ext or None)
        kwargs.setdefault("scale", 1.0 / cfg["fix_scale"])
        det = cls(dataset=dataset, poni=P.geometry_from_expara(e, pixel_size=pixel_size), **kwargs)
        if masked is not None and det.valid_source == "array":
            det.valid_source = "py4xs mask"
        det.py4xs_options = {k: e[k] for k in ("flip", "incident_angle", "fix_azimuthal_angles")}
        return det

    @classmethod
    def from_lixtools_json(cls, text_or_list):
        """Detectors of a processed file's ``@detectors`` (JSON text or list of py4xs dicts).

        An entry written by ptyprep (:meth:`to_py4xs`) is rebuilt from its ``"ptyprep"``
        description (geometry, dataset, name, scale, corrections) with the valid pixels of its
        py4xs mask; any other entry goes through :meth:`from_py4xs`. Returns a list of Detector.
        """
        out = []
        for cfg in P.read_detectors_json(text_or_list):
            info = cfg["ptyprep"]
            if not isinstance(info, dict):
                out.append(cls._from_config(cfg))
                continue
            e, masked = cfg["exp"], cfg["masked"]
            valid = None if masked is None else np.ascontiguousarray(~P.unflip_image(masked, e["flip"]))
            det = cls(dataset=info.get("dataset", P.dataset_for(cfg["extension"])), poni=info,
                      valid=valid, scale=info.get("scale", 1.0 / cfg["fix_scale"]),
                      name=info.get("name"), solid_angle=info.get("solid_angle", True),
                      polarization_factor=info.get("polarization_factor"),
                      fliplr=info.get("fliplr", False))
            if valid is not None:
                det.valid_source = "py4xs mask"
            det.py4xs_options = {k: e[k] for k in ("flip", "incident_angle", "fix_azimuthal_angles")}
            out.append(det)
        return out

    def to_py4xs(self):
        """This detector as one lixtools ``@detectors`` entry (py4xs ``pack_dict`` schema, with
        :meth:`to_json` under ``"ptyprep"``); see :func:`ptyprep.saxs.py4xs.detector_config_dict`."""
        return P.detector_config_dict(self)

    def __repr__(self):
        where = self.poni if self.poni is not None else "inline"
        return f"Detector(dataset={self.dataset!r}, poni={where!r}, name={self.name!r}, shape={self.shape})"


class _Mirrored:
    """A StackIntegrator built for frames mirrored left-right, applied to the stored frames."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    @property
    def valid(self):
        """(H, W) bool: usable pixels in the stored orientation."""
        return self._inner.valid[:, ::-1].copy()

    @property
    def qphi_matrix(self):
        """(nphi·Nq, H·W) csr_matrix over the stored frame's pixels."""
        h, w = self._inner.shape
        return self._inner.qphi_matrix[:, np.arange(h * w).reshape(h, w)[:, ::-1].ravel()]

    def qphi(self, frames, monitor=None):
        return self._inner.qphi(np.asarray(frames)[..., ::-1], monitor)

    def iq(self, frames, monitor=None):
        return self._inner.iq(np.asarray(frames)[..., ::-1], monitor)

    def qphi_iq(self, frames, monitor=None):
        return self._inner.qphi_iq(np.asarray(frames)[..., ::-1], monitor)

    def qphi_var(self, frames, monitor=None):
        return self._inner.qphi_var(np.asarray(frames)[..., ::-1], monitor)
