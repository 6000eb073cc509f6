"""Exports: the shared geometry and guesses, the writer's commit, the cxi format, ``ptyprep export``.

The other codes' readers prove their formats in tests/test_export_<format>.py; here the
CXI file is read back with h5py and with ptyprep's own ``cxi`` source (a round trip).
"""

import h5py
import numpy as np
import pytest
from export_helpers import demo_ptyd, demo_recipe, serial_and_mpi

import ptyprep
from ptyprep.errors import WriteFault
from ptyprep.exports import cxi as C
from ptyprep.exports import cxi_layout as L
from ptyprep.exports.geometry import HC_KEV_M, ScanGeometry
from ptyprep.exports.guesses import initial_probe, mean_pattern, object_extent
from ptyprep.exports.sink import ScanSummary

META = {"shape": np.array([64, 64]), "center": np.array([32.0, 32.0]),
        "psize": np.array([75e-6, 75e-6]), "energy": 8.0, "distance": 5.0}


# -- pure parts ---------------------------------------------------------------------------------

def test_geometry_from_meta_in_every_unit():
    g = ScanGeometry.from_meta(META)
    assert g.shape == (64, 64) and g.center == (32.0, 32.0) and g.psize_m == (75e-6, 75e-6)
    assert g.wavelength_m == pytest.approx(1.5498025e-10, rel=1e-7)
    assert g.energy_eV == 8000.0
    assert g.energy_J == pytest.approx(8000 * 1.602176634e-19, rel=1e-12)
    # λz/(N psize) = 1.5498e-10 * 5 / (64 * 75e-6) = 161.4 nm
    assert g.sample_pixel_m[0] == pytest.approx(HC_KEV_M / 8.0 * 5.0 / (64 * 75e-6), rel=1e-12)
    assert g.propagation == "farfield"


def test_the_probe_guess_has_the_mean_pattern_as_far_field():
    rng = np.random.default_rng(1)
    mean = rng.gamma(2.0, 10.0, size=(32, 32))
    center = (14, 17)
    probe = initial_probe(mean, center)
    assert probe.dtype == np.complex64 and probe.shape == (32, 32)
    assert np.sum(np.abs(probe) ** 2) == pytest.approx(mean.sum(), rel=1e-5)
    far = np.abs(np.fft.fft2(np.fft.ifftshift(probe), norm="ortho")) ** 2
    # the far field's zero frequency is the pattern's optical axis
    np.testing.assert_allclose(np.roll(far, center, axis=(0, 1)), mean, rtol=1e-4)


def test_mean_pattern_counts_only_valid_frames():
    total = np.array([[10.0, 0.0], [6.0, 3.0]])
    count = np.array([[2, 0], [3, 1]])
    np.testing.assert_array_equal(mean_pattern(total, count), [[5.0, 0.0], [2.0, 3.0]])


def test_the_object_covers_every_probe_footprint():
    positions = np.array([[-1e-6, 2e-6], [3e-6, -4e-6], [0.5e-6, 0.0]])
    shape, center = object_extent(positions, (16, 16), (0.1e-6, 0.2e-6), margin_px=2)
    assert center == pytest.approx((1e-6, -1e-6))
    # spans 40 and 30 pixels, plus the probe (16) and the margins (2 × 2)
    assert shape == (60, 50)
    rows = (positions[:, 0] - center[0]) / 0.1e-6 + shape[0] / 2
    cols = (positions[:, 1] - center[1]) / 0.2e-6 + shape[1] / 2
    assert (rows - 8 >= 0).all() and (rows + 8 <= shape[0]).all()
    assert (cols - 8 >= 0).all() and (cols + 8 <= shape[1]).all()


def test_summary_union_and_intersection_of_invalid_pixels():
    s = ScanSummary((2, 2))
    valid = np.array([[[True, False], [True, True]], [[True, False], [False, True]]])
    s.add([0, 1], np.full((2, 2, 2), 4.0), valid, np.zeros((2, 2)))
    np.testing.assert_array_equal(s.bad_pixels(), [[False, True], [True, False]])
    np.testing.assert_array_equal(s.never_valid(), [[False, True], [False, False]])
    np.testing.assert_array_equal(s.mean(), [[4.0, 0.0], [4.0, 4.0]])
    assert s.num_frames == 2 and s.indices.tolist() == [0, 1]


def test_cxi_corner_puts_the_optical_axis_at_zero():
    g = ScanGeometry.from_meta(dict(META, center=np.array([30.0, 35.0])))
    x, y, z = L.corner_position(g)
    # CXI default basis: pixel (r, c) centre at corner + (r + 0.5)(0, -py) + (c + 0.5)(-px, 0)
    assert y - (30 + 0.5) * 75e-6 == pytest.approx(0.0, abs=1e-15)
    assert x - (35 + 0.5) * 75e-6 == pytest.approx(0.0, abs=1e-15)
    assert z == 5.0
    t = L.translation(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(t, [[2.0, 1.0, 0.0], [4.0, 3.0, 0.0]])


# -- the cxi format -----------------------------------------------------------------------------

def read_cxi(path):
    with h5py.File(path, "r") as f:
        det = f["entry_1/instrument_1/detector_1"]
        return {"data": f["entry_1/data_1/data"][()], "mask": det["mask"][()],
                "translation": f["entry_1/sample_1/geometry_1/translation"][()],
                "energy_J": f["entry_1/instrument_1/source_1/energy"][()],
                "distance": det["distance"][()], "psize": (det["y_pixel_size"][()],
                                                           det["x_pixel_size"][()]),
                "probe": f["entry_1/image_1/data"][()], "object": f["entry_1/image_2/data"][()],
                "indexes": f["entry_1/ptychodus/probe_position_indexes"][()]}


def assert_same_cxi(a, b):
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_cxi_holds_the_prepared_scan(tmp_path):
    ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "cxi")))
    scan = ptyprep.read_ptyd(tmp_path / "scan.ptyd")
    got = read_cxi(tmp_path / "scan.cxi")
    np.testing.assert_array_equal(got["data"], scan.data)
    assert got["data"].dtype == scan.data.dtype
    np.testing.assert_array_equal(got["translation"][:, 0], scan.positions[:, 1])   # x
    np.testing.assert_array_equal(got["translation"][:, 1], scan.positions[:, 0])   # y
    np.testing.assert_array_equal(got["translation"][:, 2], 0.0)
    np.testing.assert_array_equal(got["mask"] != 0, ~scan.weights.all(axis=0))
    assert set(np.unique(got["mask"])) == {0, L.CXI_PIXEL_IS_INVALID}
    assert got["energy_J"] == pytest.approx(scan.meta["energy"] * 1e3 * 1.602176634e-19)
    assert got["distance"] == scan.meta["distance"]
    assert got["psize"] == tuple(np.broadcast_to(scan.meta["psize"], (2,)))
    np.testing.assert_array_equal(got["indexes"], scan.indices)
    assert got["probe"].shape == scan.data.shape[1:] and got["object"].ndim == 3


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_export_from_a_ptyd_equals_the_one_pass_run(tmp_path, save):
    one = tmp_path / "one"
    one.mkdir()
    ptyprep.run(demo_recipe(one, formats=("ptyd", "cxi"), save=save))
    ptyd = demo_ptyd(tmp_path, save=save)
    result = ptyprep.export(ptyd, "cxi", out=tmp_path / "later.cxi")
    assert result == {"path": str(tmp_path / "later.cxi"), "frames": 60}
    assert_same_cxi(read_cxi(one / "scan.cxi"), read_cxi(tmp_path / "later.cxi"))


def test_cxi_read_back_by_the_cxi_source_is_the_scan_written(tmp_path):
    ptyd = demo_ptyd(tmp_path)
    ptyprep.export(ptyd, "cxi")
    again = tmp_path / "again"
    again.mkdir()
    ptyprep.run(ptyprep.load_recipe({
        "source": {"name": "cxi", "path": str(tmp_path / "scan.cxi")},
        "prep": {"shape": 128},          # centre from corner_position: the whole frame
        "output": {"dfile": str(again / "scan.ptyd")}}))
    a, b = ptyprep.read_ptyd(ptyd), ptyprep.read_ptyd(again / "scan.ptyd")
    for key in ("data", "weights", "positions", "indices"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("energy", "distance", "psize", "center", "shape"):
        np.testing.assert_allclose(a.meta[key], b.meta[key], rtol=1e-12, err_msg=key)
    assert "CXISource" in str(b.info["source"])      # read through the cxi source


def test_cxi_under_mpi_is_the_serial_file(tmp_path, run_mpi):
    serial, parallel = serial_and_mpi(tmp_path, run_mpi, ("ptyd", "cxi"))
    assert_same_cxi(read_cxi(serial / "scan.cxi"), read_cxi(parallel / "scan.cxi"))
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "export", "scan.ptyd", "--to", "cxi", "--out",
                       "exported.cxi"], cwd=parallel)
    assert proc.returncode == 0, proc.stderr
    assert_same_cxi(read_cxi(serial / "scan.cxi"), read_cxi(parallel / "exported.cxi"))


def test_a_failed_export_keeps_the_previous_file(tmp_path, monkeypatch):
    ptyd = demo_ptyd(tmp_path)
    ptyprep.export(ptyd, "cxi")
    before = (tmp_path / "scan.cxi").read_bytes()

    def fail(self, summary):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(C.CxiFile, "write_end", fail)
    with pytest.raises(WriteFault, match="No space left on device"):
        ptyprep.export(ptyd, "cxi", overwrite=True)
    assert (tmp_path / "scan.cxi").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if "cxi" in p.name) == ["scan.cxi"]


# -- ptyprep export: bad input is one line, before anything is written ------------------------

@pytest.mark.parametrize("args, said", [
    (["scan.ptyd", "--to", "mat"], "--to 'mat' is not an export format; choose one of cxi, "
                                   "ptychodus, ptylab, fold_slice"),
    (["missing.ptyd", "--to", "cxi"], "no .ptyd file at 'missing.ptyd'"),
    (["scan.toml", "--to", "cxi"], "/scan.toml' is not a readable HDF5 file"),
    (["scan.ptyd", "--to", "cxi", "--out", "old.cxi"], "output"),
])
def test_export_bad_input_is_one_line(tmp_path, cli, args, said):
    demo_ptyd(tmp_path)
    (tmp_path / "old.cxi").write_text("previous")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = cli("export", *args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptyprep: error: ") and said in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "old.cxi").read_text() == "previous"


def test_export_command_writes_beside_the_ptyd(tmp_path, cli):
    demo_ptyd(tmp_path)
    done = cli("export", "scan.ptyd", "--to", "cxi", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {tmp_path / 'scan.cxi'} (60 frames)"
    again = cli("export", "scan.ptyd", "--to", "cxi", cwd=tmp_path)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    assert cli("export", "scan.ptyd", "--to", "cxi", "--overwrite", cwd=tmp_path).returncode == 0


def test_watch_of_an_export_says_to_watch_ptyd_then_export(tmp_path, cli):
    demo_recipe(tmp_path)
    done = cli("watch", "scan.toml", "--set", "output.format='ptylab'", "--idle-timeout", "1",
               cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ptyprep: error: format 'ptylab' is not grown while a scan is acquired: watch with "
        "output.format = 'ptyd', then `ptyprep export demo.ptyd --to ptylab` (or `ptyprep "
        "run` after the scan)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.toml"]


def test_validate_refuses_what_an_export_cannot_hold(tmp_path, cli):
    demo_recipe(tmp_path)
    args = ("scan.toml", "--set", 'output.format=["ptyd", "fold_slice"]', "--set", "prep.shape=127")
    said = [cli(command, *args, cwd=tmp_path) for command in ("validate", "run")]
    assert [d.returncode for d in said] == [2, 2]
    lines = [[x for x in d.stderr.splitlines() if x.startswith("ptyprep: error: ")] for d in said]
    assert lines[0] == lines[1] and len(lines[0]) == 1 and "fold_slice" in lines[0][0], lines
    assert len(said[0].stderr.strip().splitlines()) == 1      # validate says only that
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.toml"]
