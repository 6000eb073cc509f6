"""Pure map functions: snapping, de-snaking, stitching, transmission, absorption."""

import numpy as np
import pytest

from ptyprep.errors import RecipeError
from ptyprep.saxs import maps as M


def test_snap_positions_step_and_offset():
    out = M.snap_positions([1.0004, 1.1002, 1.1996, 1.3001], prec=0.001)
    np.testing.assert_array_equal(out, [1.0, 1.1, 1.2, 1.3])
    # offset snapped to 10*prec: 0.0137 -> 0.01
    assert M.snap_positions([0.0137, 0.0237], prec=0.001)[0] == pytest.approx(0.01)


def test_partial_scans_compare_exactly():
    a = M.snap_positions(0.3 + 0.05 * np.arange(5) + [1e-4, -2e-4, 0, 3e-4, 1e-4], 0.001)
    b = M.snap_positions(0.3 + 0.05 * np.arange(5) + [-3e-4, 2e-4, 1e-4, 0, -1e-4], 0.001)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("snake", [False, True])
def test_attr_to_map_row_by_row(snake):
    values = np.arange(12 + 2)            # two extra frames are ignored
    grid = M.attr_to_map(values, (3, 4), snake)
    expected = np.arange(12.0).reshape(3, 4)
    if snake:
        expected[1] = expected[1, ::-1]
    np.testing.assert_array_equal(grid, expected)


def test_attr_to_map_vector_and_short():
    grid = M.attr_to_map(np.arange(12).reshape(6, 2), (2, 3), snake=False)
    assert grid.shape == (2, 2, 3)
    np.testing.assert_array_equal(grid[1], [[1, 3, 5], [7, 9, 11]])
    with pytest.raises(RecipeError, match="needs 6 frames"):
        M.attr_to_map(np.arange(5), (2, 3), snake=False)


def test_stitch_union_grid_overlap_mean_and_empty_nan():
    a = np.array([[1.0, 2.0], [3.0, np.nan]])
    b = np.array([[5.0, 6.0]])
    overall, slow, fast = M.stitch([a, b], [np.array([0.0, 1.0]), np.array([1.0])],
                                   [np.array([0.0, 0.1]), np.array([0.1, 0.2])], prec=0.001)
    np.testing.assert_array_equal(slow, [0.0, 1.0])
    np.testing.assert_allclose(fast, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(overall[0], [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(overall[1], [3.0, 5.0, 6.0])   # 3 alone, NaN+5 -> 5, 6


def test_transmission_absorption_reference():
    i0 = np.array([100.0, 100.0, 100.0, 100.0, 0.0])
    it = np.array([20.0, 20.0, 10.0, 5.0, 0.0])
    t = M.transmission(i0, it)
    np.testing.assert_allclose(t[:4], [0.2, 0.2, 0.1, 0.05])
    assert np.isnan(t[4])
    assert M.reference_transmission(t) == pytest.approx(0.2)
    mu = M.absorption(t, 0.2)
    np.testing.assert_allclose(mu[:4], [0.0, 0.0, np.log(2), np.log(4)])
    assert M.absorption([0.3], 0.2)[0] == 0.0          # clipped at 0


def test_transmission_correction_masks_beam_off():
    values = np.array([2.0, 4.0, 6.0, 8.0])
    tr = np.array([1.0, 2.0, 3.0, 0.0])
    i0 = np.array([10.0, 10.0, 10.0, 0.1])
    out = M.transmission_correction(values, tr, i0)
    np.testing.assert_allclose(out[:3], [4.0, 4.0, 4.0])        # mean(transmitted) = 2
    assert np.isnan(out[3])
