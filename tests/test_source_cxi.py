"""CXISource: CXI paths, unit conversions, (x, y, z) → (y, x), mask rule, geometry
(corner_position, basis_vectors) after the CXI 1.6 specification, errors."""

import h5py
import numpy as np
import pytest

import cxi_spec_examples as spec
from ptyprep.errors import RecipeError, SourceError
from ptyprep.ptycho.frames import orient
from ptyprep.sources.cxi import CXISource
from ptyprep.sources.cxi_geometry import (axis_from_corner, default_basis, orientation_from_basis,
                                          psize_from_basis, stored_roi, valid_from_cxi_mask)

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
            # CXI 1.6 default basis: pixel (r, k) centre = corner + (r + 0.5) * (0, -py, 0)
            # + (k + 0.5) * (-px, 0, 0).  For the optical axis (x = y = 0) at (row, col) =
            # (2, 3): corner_y = (2 + 0.5) * py, corner_x = (3 + 0.5) * px.
            det["corner_position"] = [3.5 * 55e-6, 2.5 * 75e-6, 2.5]
        if mask:
            m = np.zeros((H, W), np.uint32)
            m[1, 2] = 1            # CXI_PIXEL_IS_INVALID
            m[3, 4] = 0x10000      # no standard meaning in a CXI Detector mask: treated as bad
            m[5, 0] = 0x1000       # CXI_PIXEL_HAS_SIGNAL, informational: still valid
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
        # from corner_position (3.5 px, 2.5 py, 2.5) with the CXI default basis:
        # row = corner_y / py - 0.5 = 2.5 - 0.5 = 2.0,
        # col = corner_x / px - 0.5 = 3.5 - 0.5 = 3.0
        assert m.beam_center == pytest.approx((2.0, 3.0))
        assert m.extra["corner_position_m"] == pytest.approx([3.5 * 55e-6, 2.5 * 75e-6, 2.5])
        assert "basis_vectors_m" not in m.extra
        assert m.label == "scan"
        pos = src.read_positions()
        np.testing.assert_allclose(pos[:, 0], -3e-6 * np.arange(N))   # y
        np.testing.assert_allclose(pos[:, 1], 1e-6 * np.arange(N))    # x
        valid = src.read_valid()
        assert not valid[1, 2] and not valid[3, 4] and valid.sum() == H * W - 2
        assert valid[5, 0]
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


# -- CXI 1.6 geometry: corner_position, basis_vectors ------------------------------------

@pytest.mark.parametrize("basis", [False, True])
def test_cxi_spec_figure_beam_centre(tmp_path, basis):
    """The spec's figure: a 2 x 2 detector with corner_position (pixel width, pixel
    height, distance) and the default basis has pixel (0, 0) at +x, +y, (1, 0) at -y and
    (0, 1) at -x, so the z axis crosses its middle: (row, col) = (0.5, 0.5)."""
    with CXISource(spec.write_spec_figure_cxi(tmp_path / "fig.cxi", basis=basis)) as src:
        m = src.read_meta()
        assert m.beam_center == pytest.approx((0.5, 0.5))
        assert (m.frame_shape, m.psize_m) == ((2, 2), (spec.PY, spec.PX))
        np.testing.assert_array_equal(src.read_frames([0, 1]),
                                      np.arange(8, dtype=np.float32).reshape(2, 2, 2))
        if basis:
            assert m.extra["reoriented"] == [False, False, False]
            assert m.extra["basis_vectors_m"] == [[0.0, -spec.PY, 0.0], [-spec.PX, 0.0, 0.0]]


@pytest.mark.parametrize("row_step, col_step, triple", spec.ORIENTATIONS)
def test_cxi_basis_vectors_reorient_to_the_default(tmp_path, row_step, col_step, triple):
    """Every axis-aligned layout of the same physical detector reads as the default
    orientation: frames, ROI reads, valid pixels, shape, pixel size (y, x) and centre."""
    path = spec.write_oriented_cxi(tmp_path / "o.cxi", row_step, col_step)
    truth = spec.default_frames()
    with CXISource(path) as src:
        m = src.read_meta()
        assert m.frame_shape == spec.DEFAULT_SHAPE == (5, 4)
        assert m.psize_m == pytest.approx((spec.PY, spec.PX))
        assert m.beam_center == pytest.approx(spec.DEFAULT_CENTER)   # (1.0, 1.75)
        assert m.extra["reoriented"] == list(triple)
        np.testing.assert_array_equal(src.read_frames([0, 1, 2]), truth)
        np.testing.assert_array_equal(src.read_frames([1, 2], (1, 4, 0, 3)),
                                      truth[1:, 1:4, 0:3])
        np.testing.assert_array_equal(src.read_frames([0], (0, 2, 1, 4)), truth[:1, 0:2, 1:4])
        np.testing.assert_array_equal(src.read_valid(), spec.default_valid())
        assert src.read_frames([0]).flags.c_contiguous


def test_cxi_roi_is_read_from_the_stored_frame(tmp_path, monkeypatch):
    """A window of the reoriented frame is read as the matching hyperslab of the file."""
    path = spec.write_oriented_cxi(tmp_path / "t.cxi", ("x", +1), ("y", +1))  # (T, ud, lr)
    with CXISource(path) as src:
        src.read_meta()
        asked = []
        real = src._delegate().read_frames
        monkeypatch.setattr(src._delegate(), "read_frames",
                            lambda idx, roi=None: asked.append(roi) or real(idx, roi))
        out = src.read_frames([0], (1, 4, 0, 3))
        # oriented 5 x 4: undo fliplr (cols 0:3 -> 1:4), flipud (rows 1:4 -> 1:4), transpose
        assert asked == [(1, 4, 1, 4)]
        assert out.shape == (1, 3, 3)
        np.testing.assert_array_equal(out, spec.default_frames()[:1, 1:4, 0:3])


def test_cxi_psize_from_basis_vectors(tmp_path):
    path = spec.write_oriented_cxi(tmp_path / "p.cxi", ("x", -1), ("y", -1), pixel_sizes=False)
    with CXISource(path) as src:
        m = src.read_meta()
        assert m.psize_m == pytest.approx((75e-6, 55e-6))   # |step along y|, |step along x|
        assert m.beam_center == pytest.approx(spec.DEFAULT_CENTER)
    with CXISource(path, psize_m=[1e-4, 2e-4]) as src:       # the option still wins
        assert src.read_meta().psize_m == (1e-4, 2e-4)


@pytest.mark.parametrize("basis, what", [
    ([[0, -75e-6 * np.cos(0.5), 75e-6 * np.sin(0.5)], [-55e-6, 0, 0]], "tilted"),
    ([[-75e-6 * np.sin(0.5), -75e-6 * np.cos(0.5), 0],
      [-55e-6 * np.cos(0.5), 55e-6 * np.sin(0.5), 0]], "rotated"),
    ([[0, -75e-6, 0], [0, -55e-6, 0]], "both steps run along y"),
    ([[0, -75e-6, 0, 0, -55e-6, 0], [0, 0, 0, 0, 0, 0]], r"shape \(2, 6\)"),
    ([[[0, -75e-6, 0], [-55e-6, 0, 0]]] * 2, r"shape \(2, 2, 3\)"),   # a modular detector
    ([[0, 0, 0], [-55e-6, 0, 0]], "no length"),
])
def test_cxi_refuses_a_basis_it_cannot_orient(tmp_path, basis, what):
    path = spec.write_oriented_cxi(tmp_path / "bad.cxi", ("y", -1), ("x", -1), basis=basis)
    with pytest.raises(SourceError, match=rf"basis_vectors in .*bad\.cxi.*{what}.*rewrite"):
        CXISource(path).read_meta()


def test_cxi_pixel_size_must_match_basis_vectors(tmp_path):
    path = spec.write_oriented_cxi(tmp_path / "mm.cxi", ("y", -1), ("x", -1),
                                   basis=[[0, -75e-6, 0], [-60e-6, 0, 0]])
    with pytest.raises(SourceError, match=r"basis_vectors in .*mm\.cxi.*6e-05 m along x.*"
                                          r"5\.5e-05 m.*psize_m"):
        CXISource(path).read_meta()
    with CXISource(path, psize_m=55e-6) as src:               # an explicit pixel size settles it
        assert src.read_meta().psize_m == (55e-6, 55e-6)


def test_geometry_helpers_follow_the_spec():
    b = default_basis((75e-6, 55e-6))
    np.testing.assert_array_equal(b, [[0, -75e-6, 0], [-55e-6, 0, 0]])
    assert orientation_from_basis(b) == (False, False, False)
    for row_step, col_step, triple in spec.ORIENTATIONS:
        unit = {"x": np.array([1.0, 0, 0]), "y": np.array([0, 1.0, 0])}
        pitch = {"x": 55e-6, "y": 75e-6}
        basis = [row_step[1] * pitch[row_step[0]] * unit[row_step[0]],
                 col_step[1] * pitch[col_step[0]] * unit[col_step[0]]]
        assert orientation_from_basis(basis) == triple
        assert psize_from_basis(basis) == pytest.approx((75e-6, 55e-6))
    # default basis: row = corner_y / py - 0.5, col = corner_x / px - 0.5
    assert axis_from_corner([3.5 * 55e-6, 2.5 * 75e-6, 1.0], b) == pytest.approx((2.0, 3.0))
    # transposed (rows along -x): row = corner_x / px - 0.5, col = corner_y / py - 0.5
    assert axis_from_corner([3.5 * 55e-6, 2.5 * 75e-6, 1.0], b[::-1]) == \
        pytest.approx((3.0, 2.0))
    # flipped rows (+y): the centre of pixel r is at corner_y + (r + 0.5) py = 0
    assert axis_from_corner([0.0, -4.5 * 75e-6, 1.0], [[0, 75e-6, 0], [-55e-6, 0, 0]]) == \
        pytest.approx((4.0, -0.5))
    # any basis whose steps span x-y: c + 2.5 b_row + 1.5 b_col = 0 for
    # b_row = (0.6, -0.8), b_col = (-0.8, -0.6), c = (-0.3, 2.9) -> (row, col) = (2.0, 1.0)
    assert axis_from_corner([-0.3, 2.9, 0], [[0.6, -0.8, 0], [-0.8, -0.6, 0]]) == \
        pytest.approx((2.0, 1.0))
    with pytest.raises(ValueError, match="parallel"):
        axis_from_corner([0, 0, 0], [[0, -1, 0], [0, -2, 0]])


def test_stored_roi_inverts_orient():
    stored = np.arange(5 * 4).reshape(1, 5, 4)
    for triple in [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]:
        oriented = orient(stored, triple)
        shape = oriented.shape[1:]
        for roi in [(0, shape[0], 0, shape[1]), (1, 3, 0, 2), (0, 1, 1, shape[1])]:
            r0, r1, c0, c1 = stored_roi(roi, shape, triple)
            np.testing.assert_array_equal(orient(stored[:, r0:r1, c0:c1], triple),
                                          oriented[:, roi[0]:roi[1], roi[2]:roi[3]])
    assert stored_roi((1, 4, 0, 3), (5, 4), (True, True, True)) == (1, 4, 1, 4)
    assert stored_roi((1, 4, 0, 3), (5, 4), (False, False, True)) == (1, 4, 1, 4)
    assert stored_roi((0, 2, 1, 3), (5, 4), (False, True, False)) == (3, 5, 1, 3)
    assert stored_roi((0, 2, 1, 3), (5, 4), (True, False, False)) == (1, 3, 0, 2)


# -- CXI 1.6 mask bits ---------------------------------------------------------------------

def test_cxi_mask_bits_follow_the_spec(tmp_path):
    """CXI 1.6 Detector mask: 0x1 invalid, 0x2 saturated, 0x4 hot, 0x8 dead, 0x10 shadowed,
    0x80 bad, 0x200 missing, 0x400 noisy are bad; 0x1000 (signal above background) is
    informational; bits without a standard meaning count as bad."""
    bad_bits = [0x1, 0x2, 0x4, 0x8, 0x10, 0x80, 0x200, 0x400, 0x20, 0x10000, 0x80000000]
    values = bad_bits + [0, 0x1000, 0x1000 | 0x2]
    expected = [False] * len(bad_bits) + [True, True, False]
    np.testing.assert_array_equal(valid_from_cxi_mask(np.array(values, np.uint32)), expected)
    np.testing.assert_array_equal(valid_from_cxi_mask(np.array([0x1000, -1, 0], np.int32)),
                                  [True, False, True])
    path = write_cxi(tmp_path / "bits.cxi")
    m = np.zeros((H, W), np.int32)
    m.flat[:len(values)] = np.array(values, np.uint32).view(np.int32)
    with h5py.File(path, "a") as f:
        del f["entry_1/instrument_1/detector_1/mask"]
        f["entry_1/instrument_1/detector_1/mask"] = m[None]     # a leading length-1 axis
    with CXISource(path) as src:
        valid = src.read_valid()
        assert valid.shape == (H, W) and valid.dtype == bool
        np.testing.assert_array_equal(valid.flat[:len(values)], expected)
        assert valid.sum() == H * W - len(bad_bits) - 1
        assert src.read_meta().extra["mask_rule"] == (
            "valid = (CXI mask & ~0x1000) == 0; 0x1000 (signal above background) is "
            "informational, every other set bit counts as bad")


def test_cxi_mask_of_another_shape(tmp_path):
    path = write_cxi(tmp_path / "shape.cxi")
    with h5py.File(path, "a") as f:
        del f["entry_1/instrument_1/detector_1/mask"]
        f["entry_1/instrument_1/detector_1/mask"] = np.zeros((W, H), np.uint32)
    with pytest.raises(SourceError, match=r"mask .*detector_1/mask in .*shape\.cxi.*\(6, 8\)"):
        CXISource(path).read_meta()
