"""ptyprep.saxs.detector.Detector: eager loading and validation, names, masks, JSON."""

import json

import numpy as np
import pytest
from pyFAI.detectors import Detector as PyFAIDetector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ptyprep.errors import RecipeError
from ptyprep.saxs.integrate import StackIntegrator
from ptyprep.saxs.qgrid import make_qgrid
from ptyprep.saxs.detector import Detector, default_name

H, W = 32, 40


@pytest.fixture
def poni(tmp_path):
    """A poni file whose detector knows its shape (H, W)."""
    det = PyFAIDetector(pixel1=1e-4, pixel2=1e-4, max_shape=(H, W))
    ai = AzimuthalIntegrator(dist=0.1, poni1=15e-4, poni2=20e-4, detector=det, wavelength=1e-10)
    path = tmp_path / "saxs.poni"
    ai.write(str(path))
    return path


@pytest.fixture
def poni_noshape(tmp_path):
    """An old-style poni without a detector shape (like the CeO2 calibration)."""
    path = tmp_path / "old.poni"
    path.write_text("PixelSize1: 0.0001\nPixelSize2: 0.0001\nDistance: 0.1\nPoni1: 0.0015\n"
                    "Poni2: 0.002\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 1e-10\n")
    return path


def valid_mask():
    v = np.ones((H, W), dtype=bool)
    v[:3] = False
    return v


@pytest.mark.parametrize("dataset, name", [("pil1M_image", "_SAXS"), ("pilW2_image", "_WAXS2"),
                                           ("pilW1_image", "_WAXS1"), ("eiger_image", "eiger_image")])
def test_default_names(poni, dataset, name):
    assert default_name(dataset) == name
    assert Detector(dataset=dataset, poni=poni).name == name
    assert Detector(dataset=dataset, poni=poni, name="mine").name == "mine"


def test_shape_from_poni_and_all_valid(poni):
    det = Detector(poni=poni)
    assert det.shape == (H, W)
    assert det.valid.shape == (H, W) and det.valid.all()


@pytest.mark.parametrize("kind", ["array", "npy", "edf", "tif", "h5"])
def test_valid_sources(poni, tmp_path, kind):
    v = valid_mask()
    if kind == "array":
        spec = v
    elif kind == "npy":
        spec = tmp_path / "valid.npy"
        np.save(spec, v)
    elif kind in ("edf", "tif"):
        import fabio

        img = (fabio.edfimage.EdfImage if kind == "edf" else fabio.tifimage.TifImage)(
            data=v.astype(np.uint8))
        spec = str(tmp_path / f"valid.{kind}")
        img.write(spec)
    else:
        import h5py

        path = tmp_path / "mask.h5"
        with h5py.File(path, "w") as fh:
            fh["entry/valid"] = v.astype(np.int8)
        spec = f"{path}::/entry/valid"
    det = Detector(poni=poni, valid=spec)
    np.testing.assert_array_equal(det.valid, v)
    assert det.valid.dtype == bool
    info = json.loads(json.dumps(det.to_json()))
    assert info["valid"] == ("array" if kind == "array" else str(spec))


def test_missing_and_invalid_poni(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        Detector(poni=tmp_path / "nope.poni")
    bad = tmp_path / "bad.poni"
    bad.write_text("hello world\n")
    with pytest.raises(RecipeError, match="bad.poni"):
        Detector(poni=bad)


def test_mask_shape_mismatch(poni, poni_noshape):
    with pytest.raises(RecipeError, match=r"valid mask shape \(31, 40\)"):
        Detector(poni=poni, valid=np.ones((H - 1, W), dtype=bool))
    with pytest.raises(RecipeError, match="valid mask shape"):
        Detector(poni=poni_noshape, valid=np.ones((H - 1, W), dtype=bool), shape=(H, W))
    with pytest.raises(RecipeError, match="differs from the shape"):
        Detector(poni=poni, shape=(10, 10))
    with pytest.raises(RecipeError, match="dark shape"):
        Detector(poni=poni, dark=np.zeros((2, 2)))


def test_shape_for_poni_without_one(poni_noshape):
    with pytest.raises(RecipeError, match="shape="):
        Detector(poni=poni_noshape)
    assert Detector(poni=poni_noshape, shape=(H, W)).shape == (H, W)
    assert Detector(poni=poni_noshape, valid=valid_mask()).shape == (H, W)


def test_bad_scale_and_polarisation(poni):
    with pytest.raises(RecipeError, match="scale"):
        Detector(poni=poni, scale="big")
    with pytest.raises(RecipeError, match="polarization_factor"):
        Detector(poni=poni, polarization_factor=2)


def test_to_json(poni):
    det = Detector(dataset="pilW2_image", poni=poni, scale=2.5, polarization_factor=0.99)
    info = json.loads(json.dumps(det.to_json()))
    assert info["name"] == "_WAXS2" and info["dataset"] == "pilW2_image"
    assert info["shape"] == [H, W] and info["valid"] == "all pixels" and info["scale"] == 2.5
    assert info["dist"] == pytest.approx(0.1) and info["poni1"] == pytest.approx(15e-4)
    assert info["pixel1"] == pytest.approx(1e-4) and info["wavelength"] == pytest.approx(1e-10)
    for key in ("poni2", "rot1", "rot2", "rot3", "detector", "pixel2", "polarization_factor"):
        assert key in info


def test_integrator_matches_direct(poni, poni_noshape):
    rng = np.random.default_rng(0)
    frames = rng.random((2, H, W)).astype(np.float32)
    dark = np.full((H, W), 0.1)
    qgrid = make_qgrid((0.05, 0.2, 0.01))
    for path, kw in ((poni, {}), (poni_noshape, {"shape": (H, W)})):
        det = Detector(poni=path, valid=valid_mask(), polarization_factor=0.9, dark=dark, **kw)
        integ = det.integrator(qgrid, 8, split="no")
        direct = StackIntegrator(str(path), qgrid, 8, valid=valid_mask(), split="no",
                                 polarization_factor=0.9, dark=dark)
        np.testing.assert_array_equal(integ.qphi(frames), direct.qphi(frames))
        assert integ.shape == (H, W)
