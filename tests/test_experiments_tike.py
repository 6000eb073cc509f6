"""experiments/aps_tike.py: the tike-npz source, its registration and the example recipe."""

import bz2
import io
from pathlib import Path

import numpy as np
import pytest

from ptyprep.errors import RecipeError, SourceError
from ptyprep.recipe import load_recipe
from ptyprep.sources.registry import get_source, make_source

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
N, S = 6, 8


@pytest.fixture
def tike_cls():
    return get_source("tike-npz")          # imported and registered by the registry


def write_tike(path, n=N, bz=True, **override):
    data = (np.arange(n)[:, None, None] * 10 + np.arange(S * S).reshape(S, S)).astype(np.float32)
    scan = np.stack([np.arange(n) * 2.0, np.arange(n) * -3.0], axis=1).astype(np.float32)
    arrays = dict(data=data[None], scan=scan[None], probe=np.ones((1, 1, 1, 1, S, S), np.complex64))
    arrays.update(override)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    if bz:
        path.write_bytes(bz2.compress(buf.getvalue()))
    else:
        path.write_bytes(buf.getvalue())
    return str(path), data, scan


def test_synthetic_tike(tmp_path, tike_cls):
    path, data, scan = write_tike(tmp_path / "t.npz.bz2")
    src = tike_cls(path, energy_keV=12.398419843320026, distance_m=2.0, psize_m=[50e-6, 100e-6])
    m = src.read_meta()
    assert (m.num_frames, m.frame_shape, m.dtype, m.label) == (N, (S, S), np.float32, "t")
    dy = 1e-10 * 2.0 / (S * 50e-6)                 # lambda = 1 Å
    dx = 1e-10 * 2.0 / (S * 100e-6)
    np.testing.assert_allclose(m.extra["object_pixel_m"], (dy, dx))
    np.testing.assert_allclose(src.read_positions(), scan * [dy, dx])
    idx = np.array([1, 2, 5])
    np.testing.assert_array_equal(src.read_frames(idx), data[idx])
    got = src.read_frames(idx, (2, 5, 0, 3))
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, data[idx, 2:5, 0:3])
    xy = tike_cls(path, energy_keV=12.398419843320026, distance_m=2.0, psize_m=[50e-6, 100e-6],
                  scan_axes="xy")
    np.testing.assert_allclose(xy.read_positions(), scan[:, ::-1] * [dy, dx])


def test_plain_npz_and_num_frames(tmp_path, tike_cls):
    path, data, _ = write_tike(tmp_path / "t.npz", bz=False)
    src = tike_cls(path, energy_keV=8.0, distance_m=1.0, psize_m=75e-6, num_frames=4)
    assert src.read_meta().num_frames == 4 and src.read_positions().shape == (4, 2)
    with pytest.raises(SourceError, match="outside the scan of 4"):
        src.read_frames([4])


def test_bad_input(tmp_path, tike_cls):
    geo = dict(energy_keV=8.0, distance_m=1.0, psize_m=75e-6)
    with pytest.raises(SourceError, match="does not exist"):
        tike_cls(str(tmp_path / "none.npz.bz2"), **geo).read_meta()
    path, _, _ = write_tike(tmp_path / "noscan.npz.bz2", scan=np.zeros((1, N - 1, 2)))
    with pytest.raises(SourceError, match=f"{N - 1} positions but {N} frames"):
        tike_cls(path, **geo).read_meta()
    nan = np.zeros((1, N, 2))
    nan[0, 3, 1] = np.nan
    path, _, _ = write_tike(tmp_path / "nan.npz.bz2", scan=nan)
    with pytest.raises(SourceError, match="NaN.*index 3"):
        tike_cls(path, **geo).read_positions()
    (tmp_path / "junk.npz.bz2").write_bytes(b"not bz2")
    with pytest.raises(SourceError, match="cannot read"):
        tike_cls(str(tmp_path / "junk.npz.bz2"), **geo).read_meta()
    with pytest.raises(RecipeError, match="scan_axes"):
        tike_cls(path, scan_axes="zy", **geo)
    with pytest.raises(RecipeError, match="energy_keV = -1"):
        tike_cls(path, **dict(geo, energy_keV=-1))
    with pytest.raises(RecipeError, match="needs option"):
        make_source("tike-npz", {"path": path})


def test_example_recipe_parses():
    recipe = load_recipe(EXPERIMENTS / "tike_siemens_star.toml")
    assert recipe.source.name == "tike-npz"
    assert recipe.prep.fftshift is True and recipe.prep.center == "fftshift"
    opts = recipe.source.options
    assert opts["energy_keV"] == 8.8 and opts["psize_m"] == 75e-6


@pytest.mark.realdata
def test_real_tike_file(shared_data):
    recipe = load_recipe(EXPERIMENTS / "tike_siemens_star.toml")
    src = make_source(recipe.source.name, recipe.source.options, base_dir=recipe.base_dir)
    assert Path(src.path).resolve() == (shared_data / "tike_siemens_star" /
                                        "siemens-star-small.npz.bz2").resolve()
    m = src.read_meta()
    assert (m.num_frames, m.frame_shape, m.dtype) == (516, (128, 128), np.float32)
    frames = src.read_frames(np.arange(3))
    assert frames[:, :2, :2].mean() > frames[:, 62:66, 62:66].mean()   # stored FFT-shifted
    pos = src.read_positions()
    assert pos.shape == (516, 2) and np.isfinite(pos).all()
    dx_obj = 12.398419843320026e-10 / 8.8 * 2.0 / (128 * 75e-6)
    assert dx_obj == pytest.approx(29.35e-9, rel=1e-3)
    step_x = np.median(np.abs(np.diff(pos[:, 1])))
    assert step_x == pytest.approx(66.2 * dx_obj, rel=0.02)       # ~66 object pixels per step
    extent = pos.max(axis=0) - pos.min(axis=0)
    np.testing.assert_allclose(extent / dx_obj, [331.9, 328.9], rtol=0.01)


@pytest.mark.realdata
def test_real_tike_prepared_through_the_recipe(shared_data, tmp_path):
    """The FFT-shifted Siemens-star scan through the example recipe: centred frames, metres."""
    import ptyprep

    out = tmp_path / "star.ptyd"
    recipe = load_recipe(EXPERIMENTS / "tike_siemens_star.toml",
                         overrides={"output.dfile": str(out), "prep.num_frames": 64})
    ptyprep.run(recipe)
    scan = ptyprep.read_ptyd(out)
    src = make_source(recipe.source.name, recipe.source.options, base_dir=recipe.base_dir)
    stored = src.read_frames(np.arange(64))
    np.testing.assert_array_equal(scan["data"], np.fft.fftshift(stored, axes=(-2, -1)))
    mean = scan["data"].mean(axis=0)
    # the beam's intensity now sits around the centre instead of in the corners
    assert mean[32:96, 32:96].sum() > 0.8 * mean.sum()
    assert scan["meta"]["center"].tolist() == [64.0, 64.0]
    np.testing.assert_array_equal(scan["positions"], src.read_positions()[:64])
    assert np.ptp(scan["positions"][:, 1]) > 1e-6  # metres: a few µm across
