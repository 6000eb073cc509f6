"""Detectors from py4xs/lixtools descriptions: ptyprep's pyFAI geometry gives py4xs' q and φ.

The reference below is written from py4xs' formulas (ExpParaLiX, Yang, J. Synchrotron Rad. 20
(2013) 211): pixel (X = column, Y = row) of py4xs' image sits at
R·(X − bm_ctr_x, −(Y − bm_ctr_y), 0) − ratioDw·ImageWidth·ẑ with R = Rz(orient + phi)·
Ry(tilt)·Rz(−orient); 2θ = arcsin(|v_xy|/|v|), q = 4π sin θ / λ, φ = atan2(v_y, v_x) +
sample_normal. py4xs' image is the stored frame mirrored (flip < 0) then turned |flip|
quarter turns (numpy rot90); lixtools brings its maps back with the inverse (unflip_array).
"""

import bz2
import json
import pickle
import sys
import types
import warnings

import numpy as np
import pytest
from pyFAI.detectors import Detector as PyFAIDetector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ptyprep.errors import RecipeError
from ptyprep.saxs import py4xs as P
from ptyprep.saxs.detector import Detector
from ptyprep.saxs.qgrid import make_qgrid


# --------------------------------------------------------------------------- reference

def ref_flip(img, flip):
    """py4xs' orientation of a stored frame (flip_array)."""
    if flip < 0:
        img = np.fliplr(img)
    return np.rot90(img, abs(flip))


def ref_unflip(img, flip):
    """The stored orientation of a py4xs-oriented array (unflip_array)."""
    img = np.rot90(img, 4 - abs(flip))
    return np.fliplr(img) if flip < 0 else img


def ref_q_phi(e):
    """py4xs' per-pixel Q (1/Å) and Phi (degrees) in py4xs' orientation, (ImageHeight, ImageWidth)."""
    w, h = e["ImageWidth"], e["ImageHeight"]

    def rot(axis, deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        if axis == "z":
            return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    o, t, p = e.get("det_orient", 0), e.get("det_tilt", 0), e.get("det_phi", 0)
    r = rot("z", o + p) @ rot("y", t) @ rot("z", -o)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    v = r @ np.vstack([(x - e["bm_ctr_x"]).ravel(), -(y - e["bm_ctr_y"]).ravel(), 0 * x.ravel()])
    v[2] -= e["ratioDw"] * w
    theta = 0.5 * np.arcsin(np.hypot(v[0], v[1]) / np.linalg.norm(v, axis=0))
    q = 4 * np.pi / e["wavelength"] * np.sin(theta)
    phi = np.degrees(np.arctan2(v[1], v[0])) + e.get("sample_normal", 0)
    return q.reshape(h, w), phi.reshape(h, w)


def ref_stored(e):
    """Reference q, φ in the orientation of the stored frames."""
    q, phi = ref_q_phi(e)
    return ref_unflip(q, e.get("flip", 0)), ref_unflip(phi, e.get("flip", 0))


def pyfai_q_phi(det):
    """q (1/Å) and φ = −χ (degrees) of a Detector's pyFAI geometry, stored orientation, float64."""
    ai = det.ai
    d1, d2 = np.indices(det.shape).astype(np.float64)
    if det.fliplr:
        d2 = det.shape[1] - 1 - d2
    q = 4 * np.pi * np.sin(ai.tth(d1, d2, path="tan") / 2) / (ai.wavelength * 1e10)
    return q, -np.degrees(ai.chi(d1, d2, path="numpy"))


def assert_same_q_phi(q, phi, q_ref, phi_ref):
    np.testing.assert_allclose(q, q_ref, rtol=1e-7, atol=0)
    away = np.abs(phi_ref) < 179.0                # off the ±180° seam
    dphi = (phi - phi_ref + 180.0) % 360.0 - 180.0
    assert np.abs(dphi[away]).max() < 1e-7
    assert away.mean() > 0.9


SAXS = dict(wavelength=0.8, bm_ctr_x=21.3, bm_ctr_y=13.6, ratioDw=30.0, ImageWidth=40,
            ImageHeight=30)
GEOMETRIES = {
    "straight": SAXS,
    "tilted": dict(SAXS, det_tilt=12.0, det_phi=30.0),
    "orient": dict(SAXS, det_orient=25.0, det_tilt=-8.0, det_phi=-40.0),
    "sample_normal": dict(SAXS, det_tilt=5.0, sample_normal=7.5),
    "flip1": dict(SAXS, flip=1, det_tilt=6.0, det_phi=10.0),
    "flip2": dict(SAXS, flip=2),
    "flip3": dict(SAXS, flip=3, det_orient=10, det_tilt=4.0),
    "flip-1": dict(SAXS, flip=-1, det_tilt=6.0, det_phi=10.0),
    "flip-2": dict(SAXS, flip=-2, det_orient=-30, det_tilt=9.0, det_phi=50.0),
    "flip-3": dict(SAXS, flip=-3),
    # a WAXS-like detector: beam centre off the chip, strongly tilted (2θ up to ~60°)
    "waxs": dict(wavelength=0.8, bm_ctr_x=-50.0, bm_ctr_y=35.0, ratioDw=2.5, det_orient=45.0,
                 det_tilt=-19.0, det_phi=0.0, flip=1, ImageWidth=60, ImageHeight=40),
}


def config(e, extension="_SAXS", fix_scale=1.0, mask=None):
    """A py4xs pack_dict-style entry."""
    exp = {k: v for k, v in e.items() if k not in ("ImageWidth", "ImageHeight")}
    exp["mask"] = None if mask is None else P.pack_mask(mask)
    return {"ImageWidth": e["ImageWidth"], "ImageHeight": e["ImageHeight"],
            "extension": extension, "fix_scale": fix_scale, "exp_para": exp}


# --------------------------------------------------------------------------- q and φ

@pytest.mark.parametrize("kind", sorted(GEOMETRIES))
def test_geometry_gives_py4xs_q_phi(kind):
    e = GEOMETRIES[kind]
    det = Detector.from_py4xs(config(e))
    q_ref, phi_ref = ref_stored(e)
    assert det.shape == q_ref.shape
    assert det.fliplr == (e.get("flip", 0) < 0)
    assert_same_q_phi(*pyfai_q_phi(det), q_ref, phi_ref)


def test_pyfai_arrays_agree_at_float32_precision():
    e = GEOMETRIES["tilted"]
    det = Detector.from_py4xs(config(e))
    q_ref, _ = ref_stored(e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = det.ai.qArray(det.shape) / 10.0          # 1/nm → 1/Å
    np.testing.assert_allclose(q, q_ref, rtol=1e-4)


@pytest.mark.parametrize("kind", sorted(GEOMETRIES))
def test_round_trip_keeps_q_phi(kind):
    e = GEOMETRIES[kind]
    det = Detector.from_py4xs(config(e, fix_scale=2.0))
    entry = json.loads(json.dumps(det.to_py4xs()))
    assert set(entry) == {"ImageWidth", "ImageHeight", "extension", "fix_scale", "exp_para", "ptyprep"}
    assert set(entry["exp_para"]) == set(P.EXP_ATTRS) | {"mask"}
    exp = dict(entry["exp_para"], ImageWidth=entry["ImageWidth"], ImageHeight=entry["ImageHeight"])
    assert exp["flip"] == e.get("flip", 0)
    assert_same_q_phi(*ref_stored(exp), *ref_stored(e))     # what lixtools computes from it
    del entry["ptyprep"]
    again = Detector.from_py4xs(entry)
    assert_same_q_phi(*pyfai_q_phi(again), *ref_stored(e))
    assert again.scale == 0.5 and entry["fix_scale"] == 2.0


def test_straight_on_fields_survive_exactly():
    e = dict(SAXS, flip=1)
    exp = P.expara_from_geometry(P.geometry_from_expara(e), flip=1)
    for key in ("bm_ctr_x", "bm_ctr_y", "ratioDw", "wavelength"):
        assert exp[key] == pytest.approx(e[key], rel=1e-12)
    assert exp["det_tilt"] == pytest.approx(0, abs=1e-9)
    assert (exp["ImageWidth"], exp["ImageHeight"]) == (40, 30)


def test_straight_on_poni_values():
    g = P.geometry_from_expara(SAXS, pixel_size=1e-4)
    assert g["dist"] == pytest.approx(30.0 * 40 * 1e-4)
    assert g["poni1"] == pytest.approx((13.6 + 0.5) * 1e-4)     # row of the centre, pixel centres at +½
    assert g["poni2"] == pytest.approx((21.3 + 0.5) * 1e-4)
    assert (g["rot1"], g["rot2"], g["rot3"]) == pytest.approx((0, 0, 0), abs=1e-15)
    assert g["wavelength"] == pytest.approx(0.8e-10) and g["shape"] == [30, 40]


# --------------------------------------------------------------------------- scale, mask, JSON

def test_fix_scale_is_inverted():
    det = Detector.from_py4xs(config(SAXS, fix_scale=2.0))
    assert det.scale == 0.5
    assert Detector.from_py4xs(config(SAXS, fix_scale=None)).scale == 1.0
    with pytest.raises(RecipeError, match="fix_scale"):
        Detector.from_py4xs(config(SAXS, fix_scale=0))


@pytest.mark.parametrize("flip", [0, 1, 2, 3, -1, -2, -3])
def test_mask_orientation(flip):
    e = dict(SAXS, flip=flip)
    masked = np.zeros((30, 40), bool)                 # py4xs orientation (ImageHeight, ImageWidth)
    masked[2, 5] = masked[20, 33] = True
    masked[:, 0] = True
    det = Detector.from_py4xs(config(e, mask=masked))
    np.testing.assert_array_equal(det.valid, ~ref_unflip(masked, flip))
    assert det.valid_source == "py4xs mask"
    q_ref, _ = ref_q_phi(e)                           # the masked pixel keeps its q
    q, _ = pyfai_q_phi(det)
    np.testing.assert_allclose(np.sort(q[~det.valid]), np.sort(q_ref[masked]), rtol=1e-9)
    back = P.unpack_mask(det.to_py4xs()["exp_para"]["mask"])
    np.testing.assert_array_equal(back, masked)
    # mask= overrides, in py4xs' sense and orientation
    other = Detector.from_py4xs(config(e, mask=masked), mask=np.zeros((30, 40), bool))
    assert other.valid.all()


def test_mask_pickle_is_a_py4xs_mask():
    """The packed mask unpickles (with py4xs present) as py4xs.mask.Mask; py4xs' own pickles read."""
    masked = np.zeros((3, 5), bool)
    masked[1, 2] = True
    module = types.ModuleType("py4xs.mask")

    class Mask:
        pass

    Mask.__module__, Mask.__qualname__ = "py4xs.mask", "Mask"
    module.Mask = Mask
    saved = {k: sys.modules.get(k) for k in ("py4xs", "py4xs.mask")}
    sys.modules.setdefault("py4xs", types.ModuleType("py4xs"))
    sys.modules["py4xs.mask"] = module
    try:
        obj = pickle.loads(bz2.decompress(bytes(P.pack_mask(masked))))
        assert type(obj) is Mask and (obj.width, obj.height, obj.maskfile) == (5, 3, "")
        assert obj.map.dtype == bool and obj.map.flags.writeable
        np.testing.assert_array_equal(obj.map, masked)
        theirs = Mask()
        theirs.width, theirs.height, theirs.maskfile, theirs.map = 5, 3, "m.txt", masked
        for protocol in (2, 3, 4, 5):
            packed = list(bz2.compress(pickle.dumps(theirs, protocol=protocol)))
            np.testing.assert_array_equal(P.unpack_mask(packed), masked)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    evil = list(bz2.compress(pickle.dumps(print)))
    with pytest.raises(RecipeError, match="mask cannot be read"):
        P.unpack_mask(evil)


def test_from_lixtools_json_of_to_py4xs():
    masked = np.zeros((30, 40), bool)
    masked[3:6, 7] = True
    saxs = Detector.from_py4xs(config(dict(SAXS, flip=1), mask=masked, fix_scale=4.0),
                               polarization_factor=0.95)
    waxs = Detector.from_py4xs(config(GEOMETRIES["waxs"], extension="_WAXS2"))
    mirrored = Detector.from_py4xs(config(GEOMETRIES["flip-2"], extension="_WAXS1"))
    text = json.dumps([d.to_py4xs() for d in (saxs, waxs, mirrored)])
    for strip in (False, True):
        entries = json.loads(text)
        if strip:                                     # as if written by lixtools itself
            for entry in entries:
                del entry["ptyprep"]
        dets = Detector.from_lixtools_json(json.dumps(entries))
        assert [d.dataset for d in dets] == ["pil1M_image", "pilW2_image", "pilW1_image"]
        assert [d.name for d in dets] == ["_SAXS", "_WAXS2", "_WAXS1"]
        assert [d.scale for d in dets] == [0.25, 1.0, 1.0]
        assert dets[0].polarization_factor == (None if strip else 0.95)
        for old, new in zip((saxs, waxs, mirrored), dets):
            assert new.shape == old.shape and new.fliplr == old.fliplr
            np.testing.assert_array_equal(new.valid, old.valid)
            q0, p0 = pyfai_q_phi(old)
            assert_same_q_phi(*pyfai_q_phi(new), q0, p0)
            assert new.py4xs_options["flip"] == old.py4xs_options["flip"]


def test_expara_object_and_config_object():
    class ExpPara:
        pass

    class DetectorConfig:
        def pre_process(self, data):
            return data

    exp = ExpPara()
    for k, v in GEOMETRIES["tilted"].items():
        setattr(exp, k, v)
    exp.mask = types.SimpleNamespace(map=None)
    cfg = DetectorConfig()
    cfg.exp_para, cfg.extension, cfg.fix_scale, cfg.dark, cfg.flat = exp, "_WAXS2", 0.5, None, None
    det = Detector.from_py4xs(cfg)
    assert (det.dataset, det.name, det.scale) == ("pilW2_image", "_WAXS2", 2.0) and det.valid.all()
    assert_same_q_phi(*pyfai_q_phi(det), *ref_stored(GEOMETRIES["tilted"]))
    bare = Detector.from_py4xs(exp, dataset="eiger_image")
    assert bare.name == "eiger_image" and bare.scale == 1.0
    cfg.pre_process = lambda data: data * 2
    with pytest.raises(RecipeError, match="pre_process"):
        Detector.from_py4xs(cfg)


def test_mirrored_detector_integrates_like_the_unmirrored_one():
    rng = np.random.default_rng(1)
    frames = rng.random((2, 30, 40)).astype(np.float32)       # py4xs orientation, flip = 0
    masked = np.zeros((30, 40), bool)
    masked[:4, :9] = True
    plain = Detector.from_py4xs(config(SAXS, mask=masked))
    mirror = Detector.from_py4xs(config(dict(SAXS, flip=-4), mask=masked))
    assert mirror.fliplr and not plain.fliplr
    qgrid = make_qgrid((0.01, 0.1, 0.01))
    a, b = plain.integrator(qgrid, 8, split="no"), mirror.integrator(qgrid, 8, split="no")
    stored = frames[:, :, ::-1]                                # what the raw file holds for flip = -4
    np.testing.assert_allclose(b.qphi(stored), a.qphi(frames), rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(b.qphi_iq(stored)[1], a.iq(frames), rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(b.valid, mirror.valid)
    flat = frames.reshape(2, -1)
    np.testing.assert_allclose(b.qphi_matrix @ stored.reshape(2, -1).T, a.qphi_matrix @ flat.T,
                               rtol=1e-5)


def test_geometry_dict_and_integrator_detectors(tmp_path):
    det = PyFAIDetector(pixel1=1e-4, pixel2=1e-4, max_shape=(30, 40))
    ai = AzimuthalIntegrator(dist=0.1, poni1=1.5e-3, poni2=2e-3, rot1=0.01, rot2=-0.02, rot3=0.3,
                             detector=det, wavelength=1e-10)
    path = tmp_path / "g.poni"
    ai.write(str(path))
    frames = np.random.default_rng(2).random((1, 30, 40))
    qgrid = make_qgrid((0.05, 0.2, 0.01))
    expected = Detector(poni=path).integrator(qgrid, 8, split="no").qphi(frames)
    geometry = Detector(poni=path).to_json()
    for spec in (ai, geometry):
        d = Detector(poni=spec)
        assert d.poni is None and d.shape == (30, 40)
        info = json.loads(json.dumps(d.to_json()))
        assert info["poni_file"] is None and info["dist"] == pytest.approx(0.1)
        assert info["rot3"] == pytest.approx(0.3) and info["fliplr"] is False
        np.testing.assert_allclose(d.integrator(qgrid, 8, split="no").qphi(frames), expected,
                                   rtol=1e-6)
    with pytest.raises(RecipeError, match="lacks dist"):
        Detector(poni={"poni1": 0.0})


# --------------------------------------------------------------------------- refused input

def test_unsupported_options_raise():
    with pytest.raises(RecipeError, match="grazing_incident = True is not supported"):
        Detector.from_py4xs(config(dict(SAXS, grazing_incident=True)))
    with pytest.raises(RecipeError, match="extension '_XRF'.*dataset="):
        Detector.from_py4xs(config(SAXS, extension="_XRF"))
    with pytest.raises(RecipeError, match="'bm_ctr_y' is missing"):
        Detector.from_py4xs({k: v for k, v in SAXS.items() if k != "bm_ctr_y"})
    with pytest.raises(RecipeError, match="ratioDw"):
        Detector.from_py4xs(config(dict(SAXS, ratioDw=-1)))
    with pytest.raises(RecipeError, match="dark is set"):
        Detector.from_py4xs(dict(config(SAXS), dark=np.zeros((30, 40))))
    with pytest.raises(RecipeError, match="mask shape"):
        Detector.from_py4xs(config(SAXS, mask=np.zeros((40, 30), bool)))
    g = P.geometry_from_expara(SAXS)
    with pytest.raises(RecipeError, match="square pixels"):
        P.expara_from_geometry(dict(g, pixel2=2 * g["pixel2"]))
    with pytest.raises(RecipeError, match="non-negative flip"):
        P.expara_from_geometry(g, flip=-1)
    with pytest.raises(RecipeError, match="ImageHeight, ImageWidth"):
        P.geometry_from_expara(SAXS, shape=(30, 41))
    with pytest.raises(RecipeError, match="JSON list"):
        Detector.from_lixtools_json("[]")


# --------------------------------------------------------------------------- real py4xs

REAL_PY4XS = r"""
from py4xs.exp_para import ExpParaLiX
out = {}
for kind, e in json.loads(sys.argv[1]).items():
    ep = ExpParaLiX(e["ImageWidth"], e["ImageHeight"])
    for k, v in e.items():
        setattr(ep, k, v)
    ep.calc_rot_matrix()
    ep.init_coordinates()
    out[kind] = {"Q": ep.Q, "Phi": ep.Phi}          # Phi in degrees
emit(out)
"""


def test_against_real_py4xs(tmp_path):
    """py4xs' own ExpPara (numpy 1.26, in the lixtools test venv) against ptyprep's geometry."""
    from lixtools_env import run_lixtools

    plain = {k: {f: (v.item() if isinstance(v, np.generic) else v) for f, v in e.items()}
             for k, e in GEOMETRIES.items()}
    real = run_lixtools("import json, sys\nimport numpy as np\n" + REAL_PY4XS, json.dumps(plain),
                        cwd=tmp_path)
    assert sorted(real) == sorted(GEOMETRIES)
    for kind, e in GEOMETRIES.items():
        det = Detector.from_py4xs(e, dataset="frames")
        q, phi = pyfai_q_phi(det)
        ref_q, ref_phi = (np.asarray(real[kind][k], dtype=np.float64) for k in ("Q", "Phi"))
        phi_ref = (ref_unflip(ref_phi, e.get("flip", 0)) + 180.0) % 360.0 - 180.0   # fix_azimuthal_angles adds 360°
        assert_same_q_phi(q, phi, ref_unflip(ref_q, e.get("flip", 0)), phi_ref)
