"""FilesSource: ptypy tutorial folders and image series."""

import fabio
import fabio.edfimage
import fabio.tifimage
import numpy as np
import pytest

from ptyprep.errors import RecipeError, SourceError
from ptyprep.sources.registry import make_source
from ptyprep.sources.files import FilesSource

N, H, W = 11, 6, 7
WRITERS = {"tif": fabio.tifimage.TifImage, "edf": fabio.edfimage.EdfImage}


def frame(i, dtype=np.int32):
    return (i * 1000 + np.arange(H * W).reshape(H, W)).astype(dtype)


def positions():
    return np.stack([np.arange(N) * 1e-6, np.arange(N)[::-1] * 2e-6], axis=1)


@pytest.fixture
def tutorial(tmp_path):
    """ptypy's tutorial layout, frames in a sub-folder, listed out of name order."""
    (tmp_path / "ccd").mkdir()
    lines = ["# filename y x", ""]
    for i in range(N):
        np.save(tmp_path / "ccd" / f"diffraction_{i:04d}.npy", frame(i))
        lines.append(f"ccd/diffraction_{i:04d}.npy {positions()[i, 0]:.6e} {positions()[i, 1]:.6e}")
    (tmp_path / "positions.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "geometry.txt").write_text("distance 7.0\nenergy 6.2\npsize 1.72e-4\nshape 6\n")
    return tmp_path


def test_tutorial_folder(tutorial):
    with FilesSource(folder=str(tutorial)) as src:
        m = src.read_meta()
        assert (m.num_frames, m.frame_shape, m.dtype) == (N, (H, W), np.int32)
        assert (m.energy_keV, m.distance_m, m.psize_m) == (6.2, 7.0, (1.72e-4, 1.72e-4))
        np.testing.assert_allclose(src.read_positions(), positions(), rtol=1e-6)
        idx = np.array([0, 4, 5, 10])
        want = np.stack([frame(i) for i in idx])
        np.testing.assert_array_equal(src.read_frames(idx), want)
        np.testing.assert_array_equal(src.read_frames(idx, (1, 4, 2, 7)), want[:, 1:4, 2:7])
        assert src.read_valid() is None


def test_options_override_geometry(tutorial):
    with FilesSource(folder=str(tutorial), energy_keV=9.0, psize_m=[1e-4, 2e-4],
                     beam_center=[3, 3.5], num_frames=4) as src:
        m = src.read_meta()
        assert (m.energy_keV, m.distance_m, m.psize_m, m.beam_center, m.num_frames) == \
            (9.0, 7.0, (1e-4, 2e-4), (3.0, 3.5), 4)
        assert src.read_positions().shape == (4, 2)


@pytest.mark.parametrize("ext", ["tif", "edf", "npy"])
def test_image_series_natural_order(tmp_path, ext):
    (tmp_path / "frames").mkdir()
    for i in range(N):
        name = tmp_path / "frames" / f"img_{i}.{ext}"       # img_10 sorts after img_9
        if ext == "npy":
            np.save(name, frame(i))
        else:
            WRITERS[ext](data=frame(i)).write(str(name))
    np.savetxt(tmp_path / "pos.txt", np.column_stack([np.arange(N), positions() * 1e3]),
               header="index y_mm x_mm")
    src = make_source("files", {"pattern": f"frames/*.{ext}", "positions_file": "pos.txt",
                                "positions_columns": [1, 2], "positions_unit": "mm"},
                      base_dir=str(tmp_path))
    with src:
        assert src.read_meta().num_frames == N
        idx = np.array([2, 9, 10])
        got = src.read_frames(idx, (0, 3, 1, 2))
        np.testing.assert_array_equal(got, np.stack([frame(i) for i in idx])[:, 0:3, 1:2])
        np.testing.assert_allclose(src.read_positions(), positions())


def test_mask_polarity(tutorial):
    m = np.ones((H, W), np.uint8)
    m[2, 3] = 0
    np.save(tutorial / "mask.npy", m)
    with FilesSource(folder=str(tutorial), mask=str(tutorial / "mask.npy")) as src:
        v = src.read_valid()
        assert v.dtype == bool and not v[2, 3] and v.sum() == H * W - 1
    with FilesSource(folder=str(tutorial), mask=str(tutorial / "mask.npy"), mask_valid_value=0) as src:
        assert src.read_valid().sum() == 1


def test_bad_input(tutorial, tmp_path):
    with pytest.raises(RecipeError, match="folder.*pattern"):
        FilesSource()
    with pytest.raises(RecipeError, match="positions_columns"):
        FilesSource(folder="x", positions_columns=[1])
    with pytest.raises(RecipeError, match="furlong"):
        FilesSource(folder="x", positions_unit="furlong")
    with pytest.raises(SourceError, match="positions.txt.*does not exist"):
        FilesSource(folder=str(tmp_path / "nowhere")).read_meta()
    with pytest.raises(SourceError, match="no file matches pattern"):
        FilesSource(pattern=str(tmp_path / "*.tif")).read_meta()
    np.save(tutorial / "bigmask.npy", np.ones((H + 1, W)))
    with pytest.raises(SourceError, match=r"mask.*shape \(7, 7\).*\(6, 7\)"):
        FilesSource(folder=str(tutorial), mask=str(tutorial / "bigmask.npy")).read_meta()
    text = (tutorial / "positions.txt").read_text()
    (tutorial / "positions.txt").write_text(text + "ccd/extra.npy 1.0\n")
    with pytest.raises(SourceError, match="expected 'filename y x'"):
        FilesSource(folder=str(tutorial)).read_meta()
    (tutorial / "positions.txt").write_text(text.replace("ccd/diffraction_0003.npy 3", "ccd/x.npy 3"))
    src = FilesSource(folder=str(tutorial))
    with pytest.raises(SourceError, match="x.npy.*does not exist"):
        src.read_frames([3])
    (tutorial / "positions.txt").write_text(text.replace("3.000000e-06", "nan"))
    with pytest.raises(SourceError, match="NaN.*index 3"):
        FilesSource(folder=str(tutorial)).read_positions()


def test_series_positions_count(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"f{i}.npy", frame(i))
    np.savetxt(tmp_path / "p.txt", np.zeros((2, 2)))
    with pytest.raises(SourceError, match="2 positions.*3 frames"):
        FilesSource(pattern=str(tmp_path / "f*.npy"),
                    positions_file=str(tmp_path / "p.txt")).read_positions()
    np.save(tmp_path / "f3.npy", np.zeros((H + 1, W), np.int32))
    with pytest.raises(SourceError, match="shape.*all frames must match"):
        FilesSource(pattern=str(tmp_path / "f*.npy")).read_frames([0, 3])


@pytest.mark.realdata
def test_real_pilatus_tif(shared_data):
    path = shared_data / "ceo2_pilatus1m" / "CeO2_Pilatus1M.tif"
    with FilesSource(pattern=str(path), psize_m=172e-6) as src:
        m = src.read_meta()
        assert (m.num_frames, m.frame_shape, m.dtype) == (1, (1043, 981), np.int32)
        ref = fabio.open(str(path)).data
        np.testing.assert_array_equal(src.read_frames([0], (100, 356, 200, 456))[0],
                                      ref[100:356, 200:456])


def test_table_with_named_columns_monitors_and_motors(tmp_path):
    (tmp_path / "frames").mkdir()
    for i in range(N):
        np.save(tmp_path / "frames" / f"f_{i}.npy", frame(i))
    rot, x = np.repeat([0.0, 90.0], 6)[:N], np.tile(np.arange(6) * 0.5, 2)[:N]
    table = np.column_stack([x * 1e-3, rot, x, np.arange(N) + 100.0, np.arange(N) + 7.0])
    np.savetxt(tmp_path / "scan.csv", table, delimiter=",", header="y_m, theta, x, I0, It")
    src = make_source("files", {"pattern": "frames/*.npy", "positions_file": "scan.csv",
                                "positions_columns": ["y_m", "y_m"],
                                "monitor_columns": {"incident": "I0", "transmitted": "It"},
                                "motors": ["theta", "x"], "scan_shape": [2, 6], "snaking": True},
                      base_dir=str(tmp_path))
    with src:
        np.testing.assert_allclose(src.read_positions()[:, 0], x * 1e-3)
        mon = src.read_monitors()
        np.testing.assert_array_equal(mon["incident"], np.arange(N) + 100.0)
        np.testing.assert_array_equal(mon["transmitted"], np.arange(N) + 7.0)
        geo = src.read_scan_geometry()
        assert geo["shape"] == [2, 6] and geo["motors"] == ["theta", "x"] and geo["snaking"]
        np.testing.assert_array_equal(geo["positions"], np.column_stack([rot, x]))
    plain = make_source("files", {"pattern": "frames/*.npy"}, base_dir=str(tmp_path))
    assert plain.read_monitors() is None and plain.read_scan_geometry() is None


def test_named_column_without_header(tmp_path):
    np.save(tmp_path / "f_0.npy", frame(0))
    np.savetxt(tmp_path / "pos.txt", [[1.0, 2.0, 3.0]])
    src = make_source("files", {"pattern": "f_*.npy", "positions_file": "pos.txt",
                                "monitor_columns": ["I0"]}, base_dir=str(tmp_path))
    with pytest.raises(SourceError, match="no header line naming its columns"):
        src.read_monitors()
    with pytest.raises(RecipeError, match="give positions_file too"):
        FilesSource(pattern="f_*.npy", monitor_columns=["I0"])
