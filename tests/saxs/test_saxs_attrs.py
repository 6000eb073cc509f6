"""get_roi and hop on analytic q-φ patterns."""

import numpy as np
import pytest

from ptyprep.errors import RecipeError
from ptyprep.saxs.qgrid import phi_centres
from ptyprep.saxs import get_roi, hop, iq_mean
from ptyprep.saxs.attrs import orientation_angle, symmetrize

PHI = phi_centres(36)
Q = np.array([0.01, 0.02, 0.03, 0.04])


def pattern(profile):
    return np.repeat(np.asarray(profile, float)[:, None], len(Q), axis=1)


def test_phi_centres_convention():
    assert PHI[0] == pytest.approx(-175.0) and PHI[-1] == pytest.approx(175.0)


def test_symmetrize_nan_aware():
    m = pattern(np.arange(36.0))
    m[0] = np.nan
    s = symmetrize(m)
    assert s[0, 0] == 18.0 and s[18, 0] == 18.0          # NaN bin takes its partner
    assert s[1, 0] == pytest.approx((1 + 19) / 2)


def test_get_roi_exact_window():
    m = np.zeros((36, 4))
    m[:, 1:3] = 2.0
    m[10, 1] = 6.0   # bin at phi=-125 and its partner at 55 average to 4
    out = get_roi(m[None], [0.02, 0.03, -180, 180], q=Q, phi=PHI)
    assert out.shape == (1,)
    assert out[0] == pytest.approx((2.0 * 71 + 6.0) / 72)
    with pytest.raises(RecipeError, match="contains no bin centre"):
        get_roi(m, [0.5, 0.6, -180, 180], q=Q, phi=PHI)


@pytest.mark.parametrize("phi0", [0.0, 35.0, -90.0])
def test_hop_cos2_profile(phi0):
    m = pattern(np.cos(np.radians(PHI - phi0)) ** 2)
    assert hop(m, [0.01, 0.04], q=Q, phi=PHI) == pytest.approx(0.5, abs=1e-9)
    assert hop(m, [0.01, 0.04], q=Q, phi=PHI, definition="lix") == pytest.approx(0.25, abs=1e-9)
    assert orientation_angle(m[:, 0], PHI) == pytest.approx((phi0 + 90) % 180 - 90, abs=1e-6)


def test_hop_limits_and_nan():
    iso = pattern(np.ones(36))
    assert hop(iso, [0.01, 0.04], q=Q, phi=PHI) == pytest.approx(0.0, abs=1e-12)
    line = np.zeros(36)
    line[[17, 35]] = 1.0   # phi = -5 and 175: one line through the centre
    assert hop(pattern(line), [0.01, 0.04], q=Q, phi=PHI) == pytest.approx(1.0)
    m = pattern(np.cos(np.radians(PHI)) ** 2)
    m[20:26] = np.nan                                 # uncovered bins are ignored
    f = hop(m, [0.01, 0.04], q=Q, phi=PHI)
    assert 0.4 < f < 0.6


def test_orientation_angle_of_cos2():
    prof = np.cos(np.radians(PHI - 40.0)) ** 2
    assert orientation_angle(prof, PHI) == pytest.approx(40.0, abs=1e-6)


def test_iq_mean_and_bad_definition():
    assert iq_mean(np.array([[1.0, 2.0, np.nan, 4.0]]), [0.015, 0.04], q=Q)[0] == pytest.approx(3.0)
    with pytest.raises(RecipeError, match="not one of"):
        hop(pattern(np.ones(36)), [0.01, 0.04], q=Q, phi=PHI, definition="3d")
