"""Tomography of a known phantom: error bound, centre search, NaN rows, angle axis."""

import numpy as np
import pytest
from skimage.transform import radon

from ptyprep.errors import RecipeError
from ptyprep.saxs.tomo import find_center, is_angle_axis, reconstruct


def phantom(n=41):
    yy, xx = np.mgrid[:n, :n] - n // 2
    img = 1.0 * (xx ** 2 + yy ** 2 <= 14 ** 2)
    img += 1.0 * ((xx - 5) ** 2 + (yy + 4) ** 2 <= 5 ** 2)
    return img


def sino_map(img, angles, shift_px=0.0):
    sino = radon(img, theta=angles, circle=True).T          # (n_angles, n_trans)
    step = 0.05
    trans = 3.0 + step * (np.arange(img.shape[0]) - img.shape[0] // 2) + shift_px * step
    return sino, trans, step


@pytest.mark.parametrize("algorithm, bound", [("fbp", 0.06), ("sart", 0.08)])
def test_reconstruct_phantom_error_bound(algorithm, bound):
    img = phantom()
    angles = np.linspace(0, 180, 60, endpoint=False)
    sino, trans, _ = sino_map(img, angles)
    rec, coords, cen = reconstruct(sino, angles, trans, algorithm=algorithm)
    assert cen == pytest.approx(3.0, abs=0.01)
    assert rec.shape == (len(coords), len(coords))
    inside = np.isfinite(rec)
    assert not inside[0, 0]                                  # circle mask
    k = (rec.shape[0] - img.shape[0]) // 2                   # centre-aligned crop
    rec = rec[k:k + img.shape[0], k:k + img.shape[1]]
    err = np.sqrt(np.nanmean((rec - img) ** 2)) / img.max()
    assert err < bound


def test_centre_search_and_nan_rows():
    img = phantom()
    angles = np.linspace(0, 180, 40, endpoint=False)
    sino, trans, step = sino_map(img, angles)
    off = trans + 0.12                                      # motor offset: centre moves to 3.12
    assert find_center(sino, angles, off) == pytest.approx(3.12, abs=0.01)
    sino = sino.copy()
    sino[5, 3] = np.nan                                      # incomplete angle row is dropped
    rec, coords, cen = reconstruct(sino, angles, off)
    assert coords[len(coords) // 2] == pytest.approx(cen)
    core = rec[len(coords) // 2 - 5:len(coords) // 2 + 5, len(coords) // 2 - 5:len(coords) // 2 + 5]
    assert np.nanmean(core) == pytest.approx(img[15:25, 15:25].mean(), rel=0.1)


def test_bad_inputs():
    with pytest.raises(RecipeError, match="at least 3"):
        reconstruct(np.full((5, 9), np.nan), np.arange(5.0), np.arange(9.0))
    with pytest.raises(RecipeError, match="algorithm"):
        reconstruct(np.ones((5, 9)), np.arange(5.0), np.arange(9.0), algorithm="art")
    assert is_angle_axis("ss_rot") and is_angle_axis("theta") and is_angle_axis("ss.rx")
    assert not is_angle_axis("ss_x") and not is_angle_axis("ss_y")
