"""CXISource: CXI paths, unit conversions, (x, y, z) → (y, x), mask rule, errors."""

import h5py
import numpy as np
import pytest

from ptyprep.errors import RecipeError, SourceError
from ptyprep.sources.cxi import CXISource

N, H, W = 7, 8, 6
JOULE_PER_KEV = 1.602176634e-16


def stack():
    return (np.arange(N)[:, None, None] * 100 + np.arange(H * W).reshape(H, W)).astype(np.float32)


def translations():
    """CXI (x, y, z) metres: x = 1 µm * i, y = -3 µm * i."""
    i = np.arange(N)
    return np.stack([i * 1e-6, -3e-6 * i, np.zeros(N)], axis=1)


def write_cxi(path, data_1=False, wavelength=False, corner=True, mask=True, translation=None):
    with h5py.File(path, "w") as f:
        e = f.create_group("entry_1")
        det = e.create_group("instrument_1/detector_1")
        if data_1:
            e["data_1/data"] = stack()
        else:
            det["data"] = stack()
        det["distance"] = 2.5
        det["x_pixel_size"] = 55e-6
        det["y_pixel_size"] = 75e-6
        if corner:
            det["corner_position"] = [-3.5 * 55e-6, -2.5 * 75e-6, 2.5]
        if mask:
            m = np.zeros((H, W), np.uint32)
            m[1, 2] = 1            # bad pixel
            m[3, 4] = 0x10000      # an "informational" bit: also treated as bad
            det["mask"] = m
        src = e.create_group("instrument_1/source_1")
        if wavelength:
            src["wavelength"] = 1e-10
        else:
            src["energy"] = 8.0 * JOULE_PER_KEV
        e["sample_1/geometry_1/translation"] = translations() if translation is None else translation
    return str(path)


def test_cxi_reads_everything(tmp_path):
    with CXISource(write_cxi(tmp_path / "scan.cxi")) as src:
        m = src.read_meta()
        assert (m.num_frames, m.frame_shape, m.dtype) == (N, (H, W), np.float32)
        assert m.energy_keV == pytest.approx(8.0)
        assert m.distance_m == pytest.approx(2.5)
        assert m.psize_m == pytest.approx((75e-6, 55e-6))
        assert m.beam_center == pytest.approx((2.0, 3.0))      # from corner_position
        assert m.label == "scan"
        pos = src.read_positions()
        np.testing.assert_allclose(pos[:, 0], -3e-6 * np.arange(N))   # y
        np.testing.assert_allclose(pos[:, 1], 1e-6 * np.arange(N))    # x
        valid = src.read_valid()
        assert not valid[1, 2] and not valid[3, 4] and valid.sum() == H * W - 2
        idx = np.array([0, 1, 5, 6])
        np.testing.assert_array_equal(src.read_frames(idx), stack()[idx])
        np.testing.assert_array_equal(src.read_frames(idx, (2, 5, 1, 3)), stack()[idx, 2:5, 1:3])


def test_cxi_alternatives_and_overrides(tmp_path):
    path = write_cxi(tmp_path / "alt.cxi", data_1=True, wavelength=True, corner=False, mask=False)
    with CXISource(path) as src:
        m = src.read_meta()
        assert m.energy_keV == pytest.approx(12.398419843320026)
        assert m.beam_center is None
        assert src.read_valid() is None
        np.testing.assert_array_equal(src.read_frames([3]), stack()[[3]])
    with CXISource(path, energy_keV=6.2, distance_m=1, psize_m=[1e-4, 2e-4],
                   beam_center=[4, 3], num_frames=3, label="L") as src:
        m = src.read_meta()
        assert (m.energy_keV, m.distance_m, m.psize_m, m.beam_center, m.num_frames, m.label) == \
            (6.2, 1.0, (1e-4, 2e-4), (4.0, 3.0), 3, "L")
        assert src.read_positions().shape == (3, 2)


def test_cxi_other_entry(tmp_path):
    path = write_cxi(tmp_path / "e.cxi")
    with h5py.File(path, "a") as f:
        f.move("entry_1", "entry_2")
    with CXISource(path, entry="entry_2") as src:
        assert src.read_meta().num_frames == N
    with pytest.raises(SourceError, match="entry_1.*entry="):
        CXISource(path).read_meta()


def test_cxi_bad_input(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        CXISource(str(tmp_path / "missing.cxi")).read_meta()
    nan = translations()
    nan[2, 0] = np.nan
    with pytest.raises(SourceError, match="NaN.*index 2"):
        CXISource(write_cxi(tmp_path / "nan.cxi", translation=nan)).read_positions()
    with pytest.raises(SourceError, match=f"{N - 2} positions.*{N} frames"):
        CXISource(write_cxi(tmp_path / "short.cxi", translation=translations()[:-2])).read_positions()
    path = write_cxi(tmp_path / "nopos.cxi")
    with h5py.File(path, "a") as f:
        del f["entry_1/sample_1"]
    with pytest.raises(SourceError, match="translation"):
        CXISource(path).read_positions()
    with pytest.raises(RecipeError, match="beam_center"):
        CXISource(path, beam_center=[1])
    with pytest.raises(RecipeError, match="energy_keV"):
        CXISource(path, energy_keV="8 keV")
