"""HDF5Source: layouts, compression, ROI reads, positions, masks, geometry, errors."""

import os
import subprocess
import sys

import h5py
import hdf5plugin
import numpy as np
import pytest

from ptyprep.errors import RecipeError, SourceError
from ptyprep.sources.registry import make_source
from ptyprep.sources.hdf5 import HDF5Source, contiguous_runs

N, H, W = 12, 6, 5


def stack(n=N, dtype=np.uint16):
    """Frame i holds i * 1000 + a pattern that tells pixels apart."""
    pattern = np.arange(H * W).reshape(H, W)
    return (np.arange(n)[:, None, None] * 1000 + pattern).astype(dtype)


def positions(n=N):
    return np.stack([np.arange(n) * 1e-6, -np.arange(n) * 2e-6], axis=1)


def write(path, data=None, **kw):
    data = stack() if data is None else data
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=data, chunks=(1, H, W), **kw)
        f["/entry/sample/pos"] = positions(len(data))
        f["/entry/sample/y"] = positions(len(data))[:, 0] * 1e3
        f["/entry/sample/y"].attrs["units"] = "mm"
        f["/entry/sample/x"] = positions(len(data))[:, 1] * 1e3
        f["/entry/inst/energy"] = np.array([8000.0])
        f["/entry/inst/energy"].attrs["units"] = "eV"
        f["/entry/inst/wavelength"] = 1.0
        f["/entry/inst/wavelength"].attrs["units"] = "Angstrom"
        f["/entry/inst/distance"] = 5000.0
        f["/entry/inst/distance"].attrs["units"] = "mm"
        f["/entry/inst/dist_nounit"] = 7.0
        f["/entry/inst/psize"] = [75.0, 55.0]
        f["/entry/inst/psize"].attrs["units"] = "um"
        f["/entry/inst/cy"] = 3.0
        f["/entry/inst/cx_mm"] = 0.15
        f["/entry/inst/cx_mm"].attrs["units"] = "mm"
        mask = np.ones((H, W), np.uint8)
        mask[0, 0] = 0
        f["/entry/inst/mask"] = mask
    return path


@pytest.fixture
def single(tmp_path):
    return str(write(tmp_path / "scan.h5"))


def test_contiguous_runs():
    assert contiguous_runs([0, 1, 2, 5, 6, 9]) == [(0, 3), (3, 5), (5, 6)]
    assert contiguous_runs([]) == []


def test_single_file_full_and_subset(single):
    with HDF5Source(single, positions="/entry/sample/pos") as src:
        meta = src.read_meta()
        assert (meta.num_frames, meta.frame_shape, meta.dtype) == (N, (H, W), np.uint16)
        assert meta.label == "scan"
        np.testing.assert_array_equal(src.read_frames(np.arange(N)), stack())
        idx = np.array([0, 1, 2, 7, 8, 11])
        got = src.read_frames(idx)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, stack()[idx])
        np.testing.assert_allclose(src.read_positions(), positions())
        assert src.read_valid() is None


@pytest.mark.parametrize("roi", [(0, H, 0, W), (1, 4, 2, 5), (5, 6, 0, 1)])
def test_roi_equals_crop(single, roi):
    with HDF5Source(single) as src:
        idx = np.array([1, 2, 3, 6, 10])
        got = src.read_frames(idx, roi)
        r0, r1, c0, c1 = roi
        np.testing.assert_array_equal(got, stack()[idx][:, r0:r1, c0:c1])
        assert got.shape == (5, r1 - r0, c1 - c0) and got.flags.c_contiguous


def test_multi_file_concatenates_in_order(tmp_path):
    full = stack()
    paths = [str(write(tmp_path / f"p{k}.h5", full[a:b])) for k, (a, b) in
             enumerate([(0, 5), (5, 6), (6, N)])]
    with HDF5Source(paths) as src:
        assert src.read_meta().num_frames == N
        np.testing.assert_array_equal(src.read_frames(np.arange(N)), full)
        idx = np.array([3, 4, 5, 6, 7, 11])          # runs cross both file boundaries
        np.testing.assert_array_equal(src.read_frames(idx, (1, 3, 1, 4)), full[idx, 1:3, 1:4])


def test_eiger_master_with_external_links(tmp_path, monkeypatch):
    full = stack()
    for k, (a, b) in enumerate([(0, 4), (4, 8), (8, N)], start=1):
        with h5py.File(tmp_path / f"m_data_{k:06d}.h5", "w") as f:
            f["/entry/data/data"] = full[a:b]
    with h5py.File(tmp_path / "m_master.h5", "w") as f:
        g = f.create_group("/entry/data")
        for k in (3, 1, 2):                           # created out of order on purpose
            g[f"data_{k:06d}"] = h5py.ExternalLink(f"m_data_{k:06d}.h5", "/entry/data/data")
    monkeypatch.chdir(tmp_path.parent)              # links resolve next to the master
    with HDF5Source(str(tmp_path / "m_master.h5"), frames="/entry/data") as src:
        assert src.read_meta().num_frames == N
        assert src.read_meta().extra["frame_datasets"] == 3
        idx = np.array([2, 3, 4, 5, 9])
        np.testing.assert_array_equal(src.read_frames(idx), full[idx])
        np.testing.assert_array_equal(src.read_frames(idx, (0, 2, 0, 2)), full[idx, :2, :2])


def test_virtual_dataset(tmp_path):
    full = stack()
    layout = h5py.VirtualLayout(shape=full.shape, dtype=full.dtype)
    for k, (a, b) in enumerate([(0, 6), (6, N)]):
        name = tmp_path / f"v{k}.h5"
        with h5py.File(name, "w") as f:
            f["d"] = full[a:b]
        layout[a:b] = h5py.VirtualSource(str(name), "d", shape=(b - a, H, W))
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("/entry/data/data", layout)
    with HDF5Source(str(tmp_path / "vds.h5")) as src:
        np.testing.assert_array_equal(src.read_frames(np.array([4, 5, 6, 7]), (1, 5, 0, 3)),
                                      full[4:8, 1:5, 0:3])


@pytest.mark.parametrize("codec", [hdf5plugin.Bitshuffle(), hdf5plugin.Blosc2()],
                         ids=["bitshuffle-lz4", "blosc2"])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.float32])
def test_compressed_equals_plain(tmp_path, codec, dtype):
    plain = write(tmp_path / "plain.h5", stack(dtype=dtype))
    packed = write(tmp_path / "packed.h5", stack(dtype=dtype), **codec)
    idx = np.array([0, 3, 4, 5, 11])
    with HDF5Source(str(plain)) as a, HDF5Source(str(packed)) as b:
        assert b.read_meta().dtype == dtype
        np.testing.assert_array_equal(b.read_frames(idx, (2, 6, 1, 4)), a.read_frames(idx)[:, 2:6, 1:4])


def test_split_positions_with_units(single):
    # y has a units attribute ("mm"); x has none, so positions_unit decides for both
    with HDF5Source(single, positions_y="/entry/sample/y", positions_x="/entry/sample/x") as src:
        np.testing.assert_allclose(src.read_positions(), positions())
    with HDF5Source(single, positions_y="/entry/sample/y", positions_x="/entry/sample/x",
                    positions_unit="um") as src:
        np.testing.assert_allclose(src.read_positions(), positions() * 1e-3)
    with HDF5Source(single, positions="/entry/sample/pos", positions_unit="nm") as src:
        np.testing.assert_allclose(src.read_positions(), positions() * 1e-9)


def test_num_frames_prefix(single):
    with HDF5Source(single, positions="/entry/sample/pos", num_frames=5) as src:
        assert src.read_meta().num_frames == 5
        assert src.read_positions().shape == (5, 2)
        with pytest.raises(SourceError, match="outside the scan of 5"):
            src.read_frames(np.array([5]))


def test_mask_polarity_and_other_file(single, tmp_path):
    with HDF5Source(single, mask="/entry/inst/mask") as src:
        valid = src.read_valid()
        assert valid.dtype == bool and valid.shape == (H, W)
        assert not valid[0, 0] and valid.sum() == H * W - 1
    with HDF5Source(single, mask="/entry/inst/mask", mask_valid_value=0) as src:
        valid = src.read_valid()
        assert valid[0, 0] and valid.sum() == 1
    np.save(tmp_path / "m.npy", np.eye(H, W, dtype=np.int8))
    with HDF5Source(single, mask=str(tmp_path / "m.npy")) as src:
        np.testing.assert_array_equal(src.read_valid(), np.eye(H, W, dtype=bool))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["bad"] = np.eye(H, W, dtype=np.uint8)[None]   # (1, H, W) is accepted
    with HDF5Source(single, mask=f"{other}::/bad", mask_valid_value=0) as src:
        np.testing.assert_array_equal(src.read_valid(), ~np.eye(H, W, dtype=bool))


def test_geometry_numbers(single):
    with HDF5Source(single, energy_keV=8.0, distance_m=5, psize_m=[75e-6, 55e-6],
                    beam_center=[3, 2.5], label="x") as src:
        m = src.read_meta()
        assert (m.energy_keV, m.distance_m, m.psize_m, m.beam_center, m.label) == \
            (8.0, 5.0, (75e-6, 55e-6), (3.0, 2.5), "x")
    with HDF5Source(single, psize_m=172e-6) as src:
        assert src.read_meta().psize_m == (172e-6, 172e-6)


def test_geometry_from_paths_with_units(single):
    with HDF5Source(single, energy_keV="/entry/inst/energy", distance_m="/entry/inst/distance",
                    psize_m="/entry/inst/psize",
                    beam_center=["/entry/inst/cy", "/entry/inst/cx_mm"]) as src:
        m = src.read_meta()
        assert m.energy_keV == pytest.approx(8.0)
        assert m.distance_m == pytest.approx(5.0)
        assert m.psize_m == pytest.approx((75e-6, 55e-6))
        assert m.beam_center == pytest.approx((3.0, 0.15e-3 / 55e-6))   # mm -> pixels
    with HDF5Source(single, energy_keV="/entry/inst/wavelength",
                    distance_m="/entry/inst/dist_nounit [mm]") as src:
        m = src.read_meta()
        assert m.energy_keV == pytest.approx(12.398419843320026)
        assert m.distance_m == pytest.approx(7e-3)
    with HDF5Source(single, distance_m="/entry/inst/dist_nounit") as src:
        assert src.read_meta().distance_m == 7.0        # no unit: metres


def test_registry_resolves_relative_paths(single, tmp_path):
    src = make_source("hdf5", {"path": "scan.h5", "positions": "/entry/sample/pos",
                               "mask": "/entry/inst/mask"}, base_dir=str(tmp_path))
    with src:
        assert src.read_meta().num_frames == N and src.read_valid().sum() == H * W - 1
    with pytest.raises(RecipeError, match="unknown option"):
        make_source("hdf5", {"path": "scan.h5", "bogus": 1}, base_dir=str(tmp_path))


# -- bad input ------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="nope.h5.*does not exist"):
        HDF5Source(str(tmp_path / "nope.h5")).read_meta()


def test_missing_dataset(single):
    with pytest.raises(SourceError, match="'/entry/nothing' not found"):
        HDF5Source(single, frames="/entry/nothing").read_meta()
    with pytest.raises(SourceError, match="/entry/sample/missing"):
        HDF5Source(single, positions="/entry/sample/missing").read_positions()
    with pytest.raises(SourceError, match="energy_keV.*/entry/inst/none"):
        HDF5Source(single, energy_keV="/entry/inst/none").read_meta()


def test_dangling_eiger_link_stops_frames(tmp_path):
    with h5py.File(tmp_path / "d_000001.h5", "w") as f:
        f["/entry/data/data"] = stack(4)
    with h5py.File(tmp_path / "master.h5", "w") as f:
        f["/entry/data/data_000001"] = h5py.ExternalLink("d_000001.h5", "/entry/data/data")
        f["/entry/data/data_000002"] = h5py.ExternalLink("d_000002.h5", "/entry/data/data")
    with HDF5Source(str(tmp_path / "master.h5"), frames="/entry/data") as src:
        assert src.read_meta().num_frames == 4


def test_frames_not_3d(tmp_path):
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["/entry/data/data"] = stack(1)[0]
    with pytest.raises(SourceError, match=r"shape \(6, 5\), expected a 3-D.*single_frame"):
        HDF5Source(str(tmp_path / "img.h5")).read_meta()
    with HDF5Source(str(tmp_path / "img.h5"), single_frame=True) as src:
        assert src.read_meta().num_frames == 1
        np.testing.assert_array_equal(src.read_frames([0], (1, 3, 0, 2)), stack(1)[:, 1:3, 0:2])


def test_positions_count_and_nan(tmp_path):
    path = write(tmp_path / "bad.h5")
    with h5py.File(path, "a") as f:
        f["/entry/sample/short"] = positions(N - 1)
        p = positions()
        p[4, 1] = np.nan
        f["/entry/sample/nan"] = p
        f["/entry/sample/flat"] = positions().ravel()
        f["/entry/inst/bigmask"] = np.ones((H + 1, W))
    with pytest.raises(SourceError, match=f"{N - 1} positions.*{N} frames"):
        HDF5Source(str(path), positions="/entry/sample/short").read_positions()
    with pytest.raises(SourceError, match="NaN.*index 4"):
        HDF5Source(str(path), positions="/entry/sample/nan").read_positions()
    with pytest.raises(SourceError, match=r"shape \(24,\), expected \(N, 2\)"):
        HDF5Source(str(path), positions="/entry/sample/flat").read_positions()
    with pytest.raises(SourceError, match=r"mask.*shape \(7, 5\).*\(6, 5\)"):
        HDF5Source(str(path), mask="/entry/inst/bigmask").read_meta()


@pytest.mark.parametrize("kwargs, match", [
    (dict(path=""), "path"),
    (dict(path="a.h5", positions="/p", positions_y="/y", positions_x="/x"), "not both"),
    (dict(path="a.h5", positions_y="/y"), "together"),
    (dict(path="a.h5", positions_unit="furlong"), "furlong"),
    (dict(path="a.h5", num_frames=-1), "num_frames"),
    (dict(path="a.h5", energy_keV=[1, 2]), "energy_keV"),
    (dict(path="a.h5", beam_center=5), "beam_center"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(RecipeError, match=match):
        HDF5Source(**kwargs)


def test_bad_unit_attribute(single):
    with h5py.File(single, "a") as f:
        f["/entry/inst/distance"].attrs["units"] = "parsec"
    with pytest.raises(RecipeError, match="parsec"):
        HDF5Source(single, distance_m="/entry/inst/distance").read_meta()


# -- real data ------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_eiger2_roi(shared_data):
    path = shared_data / "biocat_eiger2" / "vac_007_data_000001.h5"
    with HDF5Source(str(path)) as src:
        meta = src.read_meta()
        assert (meta.num_frames, meta.frame_shape, meta.dtype) == (2, (3262, 3108), np.uint32)
        roi = (1500, 1756, 1400, 1656)
        got = src.read_frames(np.array([0, 1]), roi)
        with h5py.File(path, "r") as f:
            full = f["/entry/data/data"][:]
        assert got.shape == (2, 256, 256)
        np.testing.assert_array_equal(got, full[:, 1500:1756, 1400:1656])
        assert (full == 2**32 - 1).any()          # gap pixels really are there


@pytest.mark.realdata
def test_real_aps_nexus_geometry(shared_data):
    path = shared_data / "aps_pinsaxs" / "nexus-example.hdf5"
    det = "/entry/instrument/detector/"
    with HDF5Source(str(path), frames="/entry/data/frames",
                    energy_keV="/entry/instrument/monochromator/wavelength",
                    distance_m=det + "distance", psize_m=[det + "y_pixel_size", det + "x_pixel_size"],
                    beam_center=[det + "beam_center_y_pixel", det + "beam_center_x_pixel"]) as src:
        m = src.read_meta()
        assert (m.num_frames, m.frame_shape) == (10, (195, 487))
        assert m.energy_keV == pytest.approx(12.398419843320026 / 0.59040224)
        assert m.distance_m == pytest.approx(0.5408)
        assert m.psize_m == pytest.approx((172e-6, 172e-6))
        assert m.beam_center == pytest.approx((-5.65, 99.95))
        with h5py.File(path, "r") as f:
            ref = f["/entry/data/frames"][[2, 3, 9]]
        np.testing.assert_array_equal(src.read_frames([2, 3, 9], (10, 50, 0, 100)),
                                      ref[:, 10:50, :100])
        assert np.all(src.read_positions() == 0)


@pytest.mark.realdata
def test_real_aps_single_frame(shared_data):
    path = shared_data / "aps_pinsaxs" / "AgBehenate_228.hdf5"
    det = "/entry/instrument/detector/"
    with HDF5Source(str(path), single_frame=True, distance_m=det + "distance [mm]",
                    energy_keV="/entry/instrument/monochromator/energy",
                    psize_m=det + "x_pixel_size [mm]") as src:
        m = src.read_meta()
        assert (m.num_frames, m.frame_shape, m.dtype) == (1, (195, 487), np.int32)
        assert m.distance_m == pytest.approx(0.5138)
        assert m.energy_keV == pytest.approx(16.90014329)
        assert m.psize_m == pytest.approx((172e-6, 172e-6))
        with h5py.File(path, "r") as f:
            ref = f["/entry/data/data"][()]
        np.testing.assert_array_equal(src.read_frames([0])[0], ref)


def test_registry_resolves_other_file_specs(single, tmp_path):
    """A relative ``file::path`` in any path-valued option is taken from the recipe folder."""
    src = make_source("hdf5", {"path": "scan.h5", "positions": "scan.h5::/entry/sample/pos",
                               "distance_m": "scan.h5::/entry/inst/distance",
                               "psize_m": 75e-6, "beam_center": [1, 2]}, base_dir=str(tmp_path))
    with src:
        assert src.read_meta().distance_m == pytest.approx(5.0)
        assert src.read_meta().beam_center == (1.0, 2.0)
        np.testing.assert_allclose(src.read_positions(), positions())


def test_quoted_number_is_rejected():
    with pytest.raises(RecipeError, match="quoted number"):
        HDF5Source("a.h5", energy_keV="8.8")


def write_scan_extras(path):
    with h5py.File(path, "a") as f:
        f["/entry/mon/i0"] = np.arange(N) + 100.0
        f["/entry/mon/it"] = np.arange(N) + 10.0
        f["/entry/scan/shape"] = np.array([3, 4])
        f["/entry/scan/rot"] = np.repeat([0.0, 30.0, 60.0], 4)
        f["/entry/scan/x"] = np.tile(np.arange(4) * 0.1, 3)


def test_monitors_and_scan_geometry(single):
    write_scan_extras(single)
    with HDF5Source(single, incident="/entry/mon/i0", transmitted="/entry/mon/it",
                    scan_shape="/entry/scan/shape", motors=["rot", "x"], snaking=True,
                    motor_positions=["/entry/scan/rot", "/entry/scan/x"]) as src:
        mon = src.read_monitors()
        np.testing.assert_array_equal(mon["incident"], np.arange(N) + 100.0)
        np.testing.assert_array_equal(mon["transmitted"], np.arange(N) + 10.0)
        geo = src.read_scan_geometry()
        assert geo["shape"] == [3, 4] and geo["motors"] == ["rot", "x"] and geo["snaking"] is True
        np.testing.assert_array_equal(geo["positions"][:, 0], np.repeat([0.0, 30.0, 60.0], 4))
    with HDF5Source(single, scan_shape=[3, 4]) as src:           # no positions: grid indices
        assert src.read_monitors() is None
        geo = src.read_scan_geometry()
        np.testing.assert_array_equal(geo["positions"][4], [1, 0])
    with HDF5Source(single, positions_y="/entry/scan/rot", positions_x="/entry/scan/x") as src:
        np.testing.assert_array_equal(src.read_scan_geometry()["positions"][:, 1],
                                      np.tile(np.arange(4) * 0.1, 3))    # raw values, not metres
    with HDF5Source(single) as src:
        assert src.read_scan_geometry() is None


@pytest.mark.parametrize("kw, match", [({"scan_shape": [3, "4"]}, "scan_shape"),
                                       ({"motors": ["rot"]}, "motors"),
                                       ({"incident": 5}, "incident"),
                                       ({"snaking": "yes"}, "snaking")])
def test_bad_scan_options(kw, match):
    with pytest.raises(RecipeError, match=match):
        HDF5Source("a.h5", **kw)


def test_missing_monitor_dataset(single):
    with HDF5Source(single, incident="/entry/mon/nope") as src:
        with pytest.raises(SourceError, match="'/entry/mon/nope' not found"):
            src.read_monitors()


def test_the_lix_reader_is_part_of_the_package(tmp_path):
    # as after `pip install ptyprep` (a wheel): no experiments/ folder, run from another folder
    # that holds a ptyprep/ directory of its own
    (tmp_path / "ptyprep").mkdir()
    code = ("import ptyprep.sources.plugins as p; p._experiments_loaded = True; "
            "from ptyprep.sources.registry import get_source; "
            "cls = get_source('nsls2-lix'); print(cls.__module__, cls.Raw.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ptyprep.sources.nsls2_lix", "LixRaw"]


SHADOWING = """
import ptyprep
from ptyprep.sources.hdf5 import HDF5Source

class Mine(HDF5Source):
    pass

ptyprep.register_source("hdf5", Mine)
"""

OTHER_PTYPREP = """
import importlib.util, pathlib
spec = importlib.util.spec_from_file_location(
    "ptyprep", pathlib.Path(__file__).parent / "other" / "ptyprep" / "__init__.py")
ptyprep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ptyprep)
"""


@pytest.mark.parametrize("code, message", [
    (SHADOWING, "registers source 'hdf5', which ptyprep has built in; give the source"),
    (OTHER_PTYPREP, "another ptyprep is on the path")], ids=["built-in name", "other ptyprep"])
def test_an_experiments_module_that_shadows_is_one_line(tmp_path, code, message):
    folder = tmp_path / "beamline"
    (folder / "other" / "ptyprep").mkdir(parents=True)
    (folder / "other" / "ptyprep" / "__init__.py").write_text("")
    (folder / "mine.py").write_text(code)
    done = subprocess.run([sys.executable, "-m", "ptyprep", "sources"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PTYPREP_EXPERIMENTS": str(folder)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptyprep: error: ") and message in lines[0]
    assert str(folder / "mine.py") in lines[0]
