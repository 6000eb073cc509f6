"""Detectors described the py4xs/lixtools way (``DetectorConfig`` + ``ExpPara``), both ways.

py4xs places a pixel of its image (column X, row Y, from 0) at the lab point, in pixels,
``v = R · (X − bm_ctr_x, −(Y − bm_ctr_y), 0) − ratioDw·ImageWidth · ẑ`` (sample at the origin,
``R = Rz(sample_normal)·Rz(det_orient + det_phi)·Ry(det_tilt)·Rz(−det_orient)``); then
``q = 4π/λ · sin(θ)``, ``2θ = arcsin(|v_xy| / |v|)``, ``φ = atan2(v_y, v_x)``. Its image is the
stored frame mirrored left-right when ``flip < 0``, then turned ``|flip|`` quarter turns (rot90).
pyFAI places a pixel (row r, column c) of the stored frame at ``t = Rpf · ((r + ½)·p − poni1,
(c + ½)·p − poni2, dist)``, ``2θ = atan2(|t_12|, t3)``, ``χ = atan2(t1, t2)``. Both name the same
point when ``t = (−v_y, v_x, −v_z)`` (so ``χ = −φ``, ptyprep's convention), which fixes every
pyFAI parameter. A mirrored frame (``flip < 0``) is no rotation: its geometry is that of the
frame mirrored left-right (``"fliplr": True``), which the Detector applies to the frames.
Pure numpy (no py4xs, no pyFAI); see ``docs/lixtools-detectors.md``.
"""

from __future__ import annotations

import bz2
import codecs
import importlib
import io
import json
import pickle
import struct

import numpy as np

from ..errors import RecipeError
from ..layout.lix_raw import DETECTORS as LIX_DETECTORS

__all__ = ["EXP_ATTRS", "DET_ATTRS", "PIXEL_SIZE", "dataset_for", "flip_image", "unflip_image",
           "expara_dict", "geometry_from_expara", "expara_from_geometry", "pack_mask",
           "unpack_mask", "read_config", "read_detectors_json", "detector_config_dict"]

#: ExpPara fields a processed file's ``@detectors`` entry holds under ``exp_para`` (py4xs' list).
EXP_ATTRS = ("wavelength", "bm_ctr_x", "bm_ctr_y", "ratioDw", "det_orient", "det_tilt", "det_phi",
             "grazing_incident", "flip", "incident_angle", "sample_normal", "fix_azimuthal_angles")
#: DetectorConfig fields of an entry (besides ``exp_para``).
DET_ATTRS = ("ImageWidth", "ImageHeight", "extension", "fix_scale")
#: Pixel size (m) given to pyFAI when py4xs names none (a Pilatus pixel). q and φ do not depend
#: on it: py4xs works in pixels and ``ratioDw`` fixes distance / width.
PIXEL_SIZE = 172e-6
_DEFAULTS = {"det_orient": 0.0, "det_tilt": 0.0, "det_phi": 0.0, "grazing_incident": False,
             "flip": 0, "incident_angle": 0.2, "sample_normal": 0.0, "fix_azimuthal_angles": False}
_TO_PYFAI = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # t = _TO_PYFAI @ v


def dataset_for(extension):
    """Raw dataset of a LiX extension: ``"_SAXS"`` → ``"pil1M_image"`` (else None)."""
    return {v: k for k, v in LIX_DETECTORS.items()}.get(extension)


# --------------------------------------------------------------------------- orientation

def flip_image(img, flip):
    """A stored frame (…, H, W) in py4xs' orientation: mirror left-right if ``flip < 0``, then
    ``|flip|`` counter-clockwise quarter turns (the last two axes)."""
    img = np.asarray(img)
    if flip < 0:
        img = img[..., ::-1]
    return np.rot90(img, abs(int(flip)) % 4, axes=(-2, -1))


def unflip_image(img, flip):
    """Inverse of :func:`flip_image`: an array in py4xs' orientation back to the stored frame's."""
    img = np.rot90(np.asarray(img), -(abs(int(flip)) % 4), axes=(-2, -1))
    return img[..., ::-1] if flip < 0 else img


def _raw_from_py4xs(flip, raw_shape):
    """Offset o (2,) and signed permutation J (2, 2): stored (r, c) = o + J · (Y, X) of py4xs."""
    rr, cc = (flip_image(a, flip) for a in np.indices(raw_shape))
    o = np.array([rr[0, 0], cc[0, 0]], float)
    jac = np.array([[rr[1, 0] - rr[0, 0], rr[0, 1] - rr[0, 0]],
                    [cc[1, 0] - cc[0, 0], cc[0, 1] - cc[0, 0]]], float)
    return o, jac


def _rot(axis, rad):
    """Right-handed rotation by ``rad`` about axis 0 (x), 1 (y) or 2 (z)."""
    c, s = np.cos(rad), np.sin(rad)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = c
    r[j, i], r[i, j] = s, -s
    return r


def _pyfai_rotation(rot1, rot2, rot3):
    """pyFAI's ``rotation_matrix`` (radians): its rotations 1 and 2 are left-handed."""
    return _rot(2, rot3) @ _rot(1, -rot2) @ _rot(0, -rot1)


# --------------------------------------------------------------------------- ExpPara fields

def _get(obj, name, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def expara_dict(params, shape=None):
    """The ExpPara fields of ``params`` (an ExpPara-like object or dict) as a plain dict.

    ``params`` needs ``wavelength`` (Å), ``bm_ctr_x``, ``bm_ctr_y`` (pixels of py4xs' image) and
    ``ratioDw`` (distance / image width); the other :data:`EXP_ATTRS` take py4xs' defaults.
    ``shape`` (H, W) of the stored frames gives ``ImageWidth``/``ImageHeight`` when it has none.
    Returns the :data:`EXP_ATTRS` plus ``ImageWidth``, ``ImageHeight`` (py4xs' image, pixels).
    """
    out = {}
    for name in EXP_ATTRS:
        value = _get(params, name, _DEFAULTS.get(name))
        if value is None:
            raise RecipeError(f"py4xs ExpPara field {name!r} is missing; give it (wavelength in Å, "
                              "bm_ctr_x/bm_ctr_y in pixels, ratioDw = distance / detector width)")
        out[name] = value
    try:
        for name in ("wavelength", "bm_ctr_x", "bm_ctr_y", "ratioDw", "det_orient", "det_tilt",
                     "det_phi", "incident_angle", "sample_normal"):
            out[name] = float(out[name])
        out["flip"] = int(out["flip"])
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"py4xs ExpPara has a non-numeric field ({exc}); give numbers") from exc
    out["grazing_incident"], out["fix_azimuthal_angles"] = (bool(out["grazing_incident"]),
                                                           bool(out["fix_azimuthal_angles"]))
    if out["grazing_incident"]:
        raise RecipeError("py4xs ExpPara grazing_incident = True is not supported: ptyprep integrates "
                          "transmission q-φ only; set grazing_incident = False")
    if not (out["wavelength"] > 0 and out["ratioDw"] > 0):
        raise RecipeError(f"py4xs ExpPara wavelength = {out['wavelength']}, ratioDw = {out['ratioDw']}: "
                          "both must be positive (Å; distance / detector width)")
    w, h = _get(params, "ImageWidth"), _get(params, "ImageHeight")
    if shape is not None:
        shape = tuple(int(v) for v in shape)
        flipped = shape if out["flip"] % 2 == 0 else shape[::-1]
        if w is not None and h is not None and (int(h), int(w)) != flipped:
            raise RecipeError(f"py4xs ImageHeight, ImageWidth = {h}, {w} do not match frames of shape "
                              f"{shape} turned by flip = {out['flip']}; fix ImageWidth/ImageHeight or flip")
        h, w = flipped
    if w is None or h is None:
        raise RecipeError("py4xs ExpPara has no ImageWidth/ImageHeight; give them or the frame shape")
    out["ImageWidth"], out["ImageHeight"] = int(w), int(h)
    return out


def geometry_from_expara(params, shape=None, pixel_size=PIXEL_SIZE):
    """pyFAI geometry of the stored frames from an ExpPara description.

    Parameters
    ----------
    params : ExpPara-like object or dict (see :func:`expara_dict`)
    shape : (H, W) tuple, optional;  pixel_size : float, m (square pixels given to pyFAI)

    Returns
    -------
    dict
        ``dist``, ``poni1``, ``poni2`` (m), ``rot1``, ``rot2``, ``rot3`` (rad, pyFAI's), ``wavelength``
        (m), ``pixel1``, ``pixel2`` (m), ``shape`` [H, W] of the stored frames (pyFAI orientation 3),
        ``fliplr`` (True: the geometry is of the frames mirrored left-right, for ``flip < 0``).
    """
    e = expara_dict(params, shape)
    h, w = e["ImageHeight"], e["ImageWidth"]
    raw_shape = (h, w) if e["flip"] % 2 == 0 else (w, h)
    o_, t_, p_, n_ = np.radians([e["det_orient"], e["det_tilt"], e["det_phi"], e["sample_normal"]])
    rot = _rot(2, n_ + o_ + p_) @ _rot(1, t_) @ _rot(2, -o_)
    o, jac = _raw_from_py4xs(e["flip"], raw_shape)
    inv = jac.T                                        # (Y, X) = J^T · ((r, c) − o)
    y0, x0 = inv @ (-o)
    dr = e["ratioDw"] * w
    t0 = _TO_PYFAI @ (rot @ np.array([x0 - e["bm_ctr_x"], -(y0 - e["bm_ctr_y"]), 0.0])
                      - np.array([0.0, 0.0, dr]))
    a = _TO_PYFAI @ rot @ np.array([inv[1, 0], -inv[0, 0], 0.0])    # per stored row
    b = _TO_PYFAI @ rot @ np.array([inv[1, 1], -inv[0, 1], 0.0])    # per stored column
    mirrored = float(np.cross(a, b) @ t0) < 0
    if mirrored:                                       # describe the frame mirrored left-right
        t0, b = t0 + (raw_shape[1] - 1) * b, -b
    n = np.cross(a, b)
    r = np.column_stack([a, b, n])
    rot2 = float(np.arcsin(np.clip(r[2, 0], -1.0, 1.0)))
    rot1, rot3 = float(np.arctan2(-r[2, 1], r[2, 2])), float(np.arctan2(r[1, 0], r[0, 0]))
    p = float(pixel_size)
    return {"dist": float(n @ t0) * p, "poni1": (0.5 - float(a @ t0)) * p,
            "poni2": (0.5 - float(b @ t0)) * p, "rot1": rot1, "rot2": rot2, "rot3": rot3,
            "wavelength": e["wavelength"] * 1e-10, "pixel1": p, "pixel2": p,
            "shape": [int(v) for v in raw_shape], "fliplr": bool(mirrored)}


def expara_from_geometry(geometry, flip=None, **fields):
    """ExpPara fields (plus ImageWidth, ImageHeight) of a pyFAI geometry of the stored frames.

    ``geometry`` is as :func:`geometry_from_expara` returns it (``shape``, pyFAI fields, optional
    ``fliplr``), with ``pixel1 == pixel2``. ``flip`` is the py4xs orientation to describe (default
    0, or −4 = mirror only for a ``fliplr`` geometry; negative exactly when ``fliplr``);
    ``fields`` may set ``incident_angle`` and ``fix_azimuthal_angles``. Returns the
    :data:`EXP_ATTRS` + ``ImageWidth``, ``ImageHeight`` (degrees, Å, ``sample_normal`` 0).
    """
    g = geometry
    fliplr = bool(g.get("fliplr", False))
    flip = (-4 if fliplr else 0) if flip is None else int(flip)
    if (flip < 0) != fliplr:
        raise RecipeError(f"flip = {flip} {'mirrors' if flip < 0 else 'does not mirror'} the frames but "
                          f"the geometry {'is' if fliplr else 'is not'} of mirrored frames; give a "
                          f"{'negative' if fliplr else 'non-negative'} flip")
    p1, p2 = float(g["pixel1"]), float(g["pixel2"])
    if not abs(p1 - p2) <= 1e-9 * max(p1, p2):
        raise RecipeError(f"pixel1 = {p1} m differs from pixel2 = {p2} m: py4xs' ExpPara needs "
                          "square pixels; recalibrate with a square-pixel detector description")
    raw_shape = tuple(int(v) for v in g["shape"])
    rot = _pyfai_rotation(float(g["rot1"]), float(g["rot2"]), float(g["rot3"]))
    a, b, n = rot[:, 0], rot[:, 1], rot[:, 2]
    dist, q1, q2 = float(g["dist"]) / p1, float(g["poni1"]) / p1, float(g["poni2"]) / p1
    t0 = (0.5 - q1) * a + (0.5 - q2) * b + dist * n
    if fliplr:
        t0, b = t0 + (raw_shape[1] - 1) * b, -b
    o, jac = _raw_from_py4xs(flip, raw_shape)
    back = _TO_PYFAI.T
    v0 = back @ (t0 + o[0] * a + o[1] * b)
    dv_dy, dv_dx = back @ (jac[0, 0] * a + jac[1, 0] * b), back @ (jac[0, 1] * a + jac[1, 1] * b)
    ex, ey = dv_dx, -dv_dy
    rpy = np.column_stack([ex, ey, np.cross(ex, ey)])
    lhs = np.array([[ex[0], -ey[0]], [ex[1], -ey[1]]])
    if abs(np.linalg.det(lhs)) < 1e-9:
        raise RecipeError("the direct beam runs parallel to this detector's plane: py4xs' ExpPara "
                          "needs the beam to hit the detector plane; check the geometry")
    cx, cy = np.linalg.solve(lhs, -v0[:2])
    dr = -float(v0[2] + cx * ex[2] - cy * ey[2])
    if not dr > 0:
        raise RecipeError("the direct beam meets this detector's plane behind the sample: py4xs' "
                          "ExpPara cannot describe it; check the geometry's rotations")
    tilt = float(np.degrees(np.arccos(np.clip(rpy[2, 2], -1.0, 1.0))))
    if np.hypot(rpy[0, 2], rpy[1, 2]) > 1e-12:
        alpha = np.degrees(np.arctan2(rpy[1, 2], rpy[0, 2]))
        gamma = np.degrees(np.arctan2(rpy[2, 1], -rpy[2, 0]))
    else:
        alpha = np.degrees(np.arctan2(rpy[1, 0], rpy[0, 0]) if rpy[2, 2] > 0
                           else np.arctan2(-rpy[1, 0], -rpy[0, 0]))
        gamma = 0.0
    phi = (alpha + gamma + 180.0) % 360.0 - 180.0
    h, w = raw_shape if flip % 2 == 0 else raw_shape[::-1]
    out = dict(_DEFAULTS, **{k: fields[k] for k in ("incident_angle", "fix_azimuthal_angles")
                             if k in fields})
    out.update(wavelength=float(g["wavelength"]) * 1e10, bm_ctr_x=float(cx), bm_ctr_y=float(cy),
               ratioDw=dr / w, det_orient=float(-gamma), det_tilt=tilt, det_phi=float(phi),
               flip=flip, grazing_incident=False, sample_normal=0.0, ImageWidth=int(w),
               ImageHeight=int(h))
    return {k: out[k] for k in EXP_ATTRS + ("ImageWidth", "ImageHeight")}


# --------------------------------------------------------------------------- the mask

class _Mask:
    """Stand-in for ``py4xs.mask.Mask`` when reading its pickle (``map``: True = masked)."""


class _MaskUnpickler(pickle.Unpickler):
    """Only what a pickled py4xs Mask holds (numpy 1 or 2, any protocol); nothing else loads."""

    def find_class(self, module, name):
        if (module, name) == ("py4xs.mask", "Mask"):
            return _Mask
        if module == "numpy" and name in ("frombuffer", "reshape", "array", "ndarray", "dtype"):
            return getattr(np, name)
        sub = module.rpartition(".")[2]
        if module in ("numpy.core." + sub, "numpy._core." + sub) and sub in ("multiarray", "numeric") \
                and name in ("_reconstruct", "_frombuffer", "scalar"):
            try:
                return getattr(importlib.import_module(f"numpy._core.{sub}"), name)
            except ImportError:                      # numpy 1.x
                return getattr(importlib.import_module(f"numpy.core.{sub}"), name)
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a py4xs mask")


def _s(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def pack_mask(masked):
    """A py4xs mask as a processed file's ``exp_para.mask``: bz2 of a ``py4xs.mask.Mask`` pickle.

    ``masked`` (H, W) bool: True = masked, py4xs' orientation. Returns a list of int (0…255), the
    compressed bytes as py4xs' ``pack_dict`` writes them.
    """
    masked = np.ascontiguousarray(masked, dtype=bool)
    h, w = masked.shape
    glob = lambda mod, name: b"c" + f"{mod}\n{name}\n".encode()  # noqa: E731
    array = (glob("numpy", "array") + glob("numpy", "reshape") + b"(" + glob("numpy", "frombuffer")
             + b"(B" + struct.pack("<I", masked.size) + masked.tobytes() + _s("|b1") + b"tR"
             + b"(J" + struct.pack("<i", h) + b"J" + struct.pack("<i", w) + b"t" + b"tR"
             + b"\x85R")                           # array(reshape(frombuffer(bytes, bool), (h, w)))
    state = (b"}(" + _s("width") + b"J" + struct.pack("<i", w) + _s("height") + b"J"
             + struct.pack("<i", h) + _s("maskfile") + _s("") + _s("map") + array + b"u")
    stream = b"\x80\x03" + glob("py4xs.mask", "Mask") + b")\x81" + state + b"b."
    return list(bz2.compress(stream))


def unpack_mask(data):
    """True-is-masked (H, W) bool array (py4xs orientation) of a mask, or None (nothing masked).

    ``data`` is what an ``exp_para.mask`` holds: the packed list of :func:`pack_mask` (or py4xs'
    own), bytes of it, a ``Mask``-like object with ``.map``, an array, or None.
    """
    if data is None:
        return None
    if isinstance(data, (list, bytes, bytearray)):
        try:
            data = _MaskUnpickler(io.BytesIO(bz2.decompress(bytes(data)))).load()
        except Exception as exc:  # corrupt stream or foreign pickle
            raise RecipeError(f"py4xs exp_para.mask cannot be read ({exc}); it should be py4xs' "
                              "bz2-compressed pickle of a py4xs.mask.Mask") from exc
    if hasattr(data, "map") or isinstance(data, _Mask):
        data = getattr(data, "map", None)
        if data is None:
            return None
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise RecipeError(f"py4xs mask has shape {arr.shape}, expected a 2-D (H, W) map")
    return arr != 0


# --------------------------------------------------------------------------- configs and JSON

def read_config(config):
    """The parts of a py4xs detector description that ptyprep uses.

    ``config``: a DetectorConfig-like object or dict (``exp_para``, ``extension``, ``fix_scale``),
    a ``@detectors`` entry, or an ExpPara-like object / dict alone. Returns ``exp``
    (:func:`expara_dict`), ``extension``, ``fix_scale`` (1 when None), ``masked`` ((H, W) bool,
    py4xs orientation, or None) and ``ptyprep`` (the embedded description or None).
    """
    exp = _get(config, "exp_para")
    if exp is None and _get(config, "bm_ctr_x") is not None:
        exp, config = config, {}
    if exp is None:
        raise RecipeError("this py4xs detector description has no exp_para; give a DetectorConfig, "
                          "its pack_dict() or an ExpPara")
    for name in ("dark", "flat"):
        if _get(config, name) is not None:
            raise RecipeError(f"py4xs DetectorConfig.{name} is set: lixtools' scanning workflow does not "
                              f"apply it; pass {name}= (stored-frame orientation) to Detector.from_py4xs")
    if not isinstance(config, dict) and "pre_process" in getattr(config, "__dict__", {}):
        raise RecipeError("py4xs DetectorConfig.pre_process was replaced: ptyprep cannot run it; "
                          "pre-process the raw frames, or use dark=/flat=")
    width, height = _get(config, "ImageWidth"), _get(config, "ImageHeight")
    shaped = {k: _get(exp, k) for k in EXP_ATTRS + ("ImageWidth", "ImageHeight")
              if _get(exp, k) is not None}
    for key, value in (("ImageWidth", width), ("ImageHeight", height)):
        if shaped.get(key) is None:
            shaped[key] = value
    e = expara_dict(shaped)
    fix = _get(config, "fix_scale")
    try:
        fix = 1.0 if fix is None else float(fix)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"py4xs fix_scale = {fix!r} is not a number") from exc
    if not fix > 0:
        raise RecipeError(f"py4xs fix_scale = {fix} must be positive (lixtools divides the data by it)")
    masked = unpack_mask(_get(exp, "mask"))
    if masked is not None and masked.shape != (e["ImageHeight"], e["ImageWidth"]):
        raise RecipeError(f"py4xs mask shape {masked.shape} differs from (ImageHeight, ImageWidth) = "
                          f"{(e['ImageHeight'], e['ImageWidth'])}; give the mask of this detector")
    return {"exp": e, "extension": str(_get(config, "extension", "") or ""), "fix_scale": fix,
            "masked": masked, "ptyprep": _get(config, "ptyprep")}


def read_detectors_json(text_or_list):
    """The entries of a processed file's ``@detectors`` (JSON text, bytes or the parsed list),
    each through :func:`read_config`."""
    entries = text_or_list
    if isinstance(entries, (bytes, str)):
        try:
            entries = json.loads(entries.decode() if isinstance(entries, bytes) else entries)
        except ValueError as exc:
            raise RecipeError(f"@detectors is not JSON ({exc}); give the attribute's text") from exc
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        raise RecipeError("@detectors should be a JSON list of py4xs DetectorConfig dicts")
    return [read_config(entry) for entry in entries]


def detector_config_dict(detector):
    """One ``@detectors`` entry, as py4xs' ``DetectorConfig.pack_dict`` writes it, for a Detector.

    Returns ``ImageWidth``, ``ImageHeight``, ``extension`` (the detector's name), ``fix_scale``
    (1 / scale), ``exp_para`` (:data:`EXP_ATTRS` + ``mask``: :func:`pack_mask` of the invalid
    pixels, py4xs' orientation) and ``ptyprep`` (``detector.to_json()``).
    """
    info = detector.to_json()
    extra = dict(getattr(detector, "py4xs_options", None) or {})
    exp = expara_from_geometry(info, flip=extra.pop("flip", None), **extra)
    masked = flip_image(~np.asarray(detector.valid, dtype=bool), exp["flip"])
    entry = {"ImageWidth": exp.pop("ImageWidth"), "ImageHeight": exp.pop("ImageHeight"),
             "extension": detector.name, "fix_scale": 1.0 / detector.scale}
    entry["exp_para"] = dict(exp, mask=pack_mask(masked))
    entry["ptyprep"] = info
    return entry
