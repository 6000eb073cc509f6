"""StackIntegrator against pyFAI's own integrate2d_ng / integrate1d_ng, grids, φ sense, merging."""

import numpy as np
import pytest
from pyFAI.detectors import Detector as PyFAIDetector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ptyprep.errors import RecipeError
from ptyprep.saxs.integrate import StackIntegrator
from ptyprep.saxs.merge import merge_maps
from ptyprep.saxs.qgrid import make_qgrid, phi_centres, phi_edges, q_bin_bounds, q_edges, q_segments

H, W = 64, 80
RTOL = 1e-4


def make_ai(dist=0.1, poni1=30e-4, shape=(H, W)):
    det = PyFAIDetector(pixel1=1e-4, pixel2=1e-4, max_shape=shape)
    # beam centre between rows 29/30 and on the edge between cols 44/45
    return AzimuthalIntegrator(dist=dist, poni1=poni1, poni2=45e-4, detector=det, wavelength=1e-10)


@pytest.fixture(scope="module")
def ai():
    return make_ai()


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    return (rng.random((3, H, W)) * 100 + 10).astype(np.float32)


@pytest.fixture(scope="module")
def valid():
    v = np.ones((H, W), dtype=bool)
    v[10:20, 10:30] = False
    v[:, 60] = False
    return v


QGRID = make_qgrid((0.05, 0.25, 0.01))
HALF = 0.005


def outside(ai, lo, hi, split, shape=(H, W), mask=None):
    """``mask`` plus the pixels that reach no part of q in [lo, hi] (1/Å).

    pyFAI's CSR engines put such pixels into the first or last bin of ``radial_range``;
    ptyprep's bins hold only pixels inside them (by the centre without splitting, by any
    part of the pixel with it), so pyFAI's reference is given them masked.
    """
    if split == "no":
        qmin = qmax = ai.center_array(shape, unit="q_A^-1")
    else:
        corners = ai.array_from_unit(shape, "corner", unit="q_A^-1")[..., 0]
        qmin, qmax = corners.min(axis=-1), corners.max(axis=-1)
    tol = 1e-6 * (hi - lo)
    out = (qmax < lo - tol) | (qmin > hi + tol)
    return out if mask is None else out | mask


def pyfai_qphi(ai, frame, qgrid, nphi, split, **kw):
    """pyFAI's map on the same bins, its χ axis reversed into φ; zeros where empty."""
    half = (qgrid[1] - qgrid[0]) / 2
    kw["mask"] = outside(ai, qgrid[0] - half, qgrid[-1] + half, split, frame.shape, kw.get("mask"))
    res = ai.integrate2d_ng(frame, qgrid.size, nphi, unit="q_A^-1", method=(split, "csr", "cython"),
                            radial_range=(qgrid[0] - half, qgrid[-1] + half),
                            azimuth_range=(-180, 180), **kw)
    np.testing.assert_allclose(res.radial, qgrid, rtol=1e-6)
    np.testing.assert_allclose(res.azimuthal, -phi_centres(nphi)[::-1], atol=1e-4)
    return res.intensity[::-1]


def assert_rel(ours, ref, coverage):
    assert np.all(np.isnan(ours[..., ~coverage]))
    assert np.all(ref[..., ~coverage] == 0)
    np.testing.assert_allclose(ours[..., coverage], ref[..., coverage], rtol=RTOL)


# ----------------------------------------------------------------------------- pyFAI agreement

@pytest.mark.parametrize("split", ["no", "bbox"])
@pytest.mark.parametrize("options", [
    {},
    {"polarization_factor": 0.95},
    {"polarization_factor": -0.5, "solid_angle": False},
], ids=["solid-angle", "polarisation", "no-solid-angle"])
def test_qphi_equals_pyfai(ai, frames, valid, split, options):
    integ = StackIntegrator(ai, QGRID, 12, valid=valid, split=split, **options)
    ours = integ.qphi(frames)
    assert ours.shape == (3, 12, QGRID.size) and ours.dtype == np.float32
    kw = {"mask": ~valid, "correctSolidAngle": options.get("solid_angle", True),
          "polarization_factor": options.get("polarization_factor")}
    for i in range(3):
        assert_rel(ours[i], pyfai_qphi(ai, frames[i], QGRID, 12, split, **kw), integ.coverage)


def test_qphi_partial_coverage_is_nan(ai, frames, valid):
    qgrid = make_qgrid((0.02, 0.6, 0.02))            # beyond the detector corners at high q
    integ = StackIntegrator(ai, qgrid, 36, valid=valid, split="bbox")
    assert integ.coverage.any() and not integ.coverage.all()
    assert not integ.coverage[:, -1].any()           # q = 0.6 is beyond every pixel
    ref = pyfai_qphi(ai, frames[0], qgrid, 36, "bbox", mask=~valid)
    assert_rel(integ.qphi(frames[:1])[0], ref, integ.coverage)


@pytest.mark.parametrize("split", ["no", "bbox"])
def test_iq_equals_pyfai(ai, frames, valid, split):
    integ = StackIntegrator(ai, QGRID, 12, valid=valid, split=split, polarization_factor=0.9)
    ours = integ.iq(frames)
    assert ours.shape == (3, QGRID.size) and ours.dtype == np.float32
    for i in range(3):
        res = ai.integrate1d_ng(frames[i], QGRID.size, unit="q_A^-1", method=(split, "csr", "cython"),
                                radial_range=(QGRID[0] - HALF, QGRID[-1] + HALF),
                                mask=outside(ai, QGRID[0] - HALF, QGRID[-1] + HALF, split,
                                             mask=~valid), polarization_factor=0.9)
        np.testing.assert_allclose(res.radial, QGRID, rtol=1e-6)
        np.testing.assert_allclose(ours[i], res.intensity, rtol=RTOL)
    qphi, iq = integ.qphi_iq(frames)
    np.testing.assert_array_equal(iq, ours)
    np.testing.assert_array_equal(qphi, integ.qphi(frames))


def test_large_frame_bands_equal_pyfai(ai, frames, valid, monkeypatch):
    """Frames above WHOLE_FRAME_PIXELS are binned in pixel bands: still pyFAI's result."""
    from ptyprep.fast import sparsebins

    whole = StackIntegrator(ai, QGRID, 12, valid=valid, split="bbox", polarization_factor=0.9)
    monkeypatch.setattr(sparsebins, "WHOLE_FRAME_PIXELS", 1000)
    monkeypatch.setattr(sparsebins, "BAND_PIXELS", 700)          # 8 bands of 64 × 80 pixels
    integ = StackIntegrator(ai, QGRID, 12, valid=valid, split="bbox", polarization_factor=0.9)
    assert len(integ._qphi.bands) == 8 and len(whole._qphi.bands) == 1
    qphi, iq = integ.qphi_iq(frames)
    np.testing.assert_allclose(qphi, whole.qphi(frames), rtol=2e-6)
    np.testing.assert_allclose(integ.qphi_var(frames), whole.qphi_var(frames), rtol=2e-6)
    for i in range(3):
        kw = {"mask": ~valid, "polarization_factor": 0.9}
        assert_rel(qphi[i], pyfai_qphi(ai, frames[i], QGRID, 12, "bbox", **kw), integ.coverage)
        kw["mask"] = outside(ai, QGRID[0] - HALF, QGRID[-1] + HALF, "bbox", mask=~valid)
        res = ai.integrate1d_ng(frames[i], QGRID.size, unit="q_A^-1",
                                method=("bbox", "csr", "cython"),
                                radial_range=(QGRID[0] - HALF, QGRID[-1] + HALF), **kw)
        np.testing.assert_allclose(iq[i], res.intensity, rtol=RTOL)


def test_dark_flat_equal_pyfai(ai, frames, valid):
    rng = np.random.default_rng(3)
    dark = (rng.random((H, W)) * 5).astype(np.float32)
    flat = (0.8 + 0.4 * rng.random((H, W))).astype(np.float32)
    integ = StackIntegrator(ai, QGRID, 12, valid=valid, split="bbox", dark=dark, flat=flat)
    ours = integ.qphi(frames)
    ref = pyfai_qphi(ai, frames[1], QGRID, 12, "bbox", mask=~valid, dark=dark, flat=flat)
    assert_rel(ours[1], ref, integ.coverage)
    res = ai.integrate1d_ng(frames[1], QGRID.size, unit="q_A^-1", method=("bbox", "csr", "cython"),
                            radial_range=(QGRID[0] - HALF, QGRID[-1] + HALF),
                            mask=outside(ai, QGRID[0] - HALF, QGRID[-1] + HALF, "bbox", mask=~valid),
                            dark=dark, flat=flat)
    np.testing.assert_allclose(integ.iq(frames)[1], res.intensity, rtol=RTOL)


def test_piecewise_grid_equals_pyfai_per_segment(ai, frames, valid):
    qgrid = make_qgrid((0.05, 0.1, 0.01), (0.12, 0.24, 0.02))
    integ = StackIntegrator(ai, qgrid, 8, valid=valid, split="bbox")
    ours = integ.qphi(frames[:1])[0]
    ref = np.concatenate([ai.integrate2d_ng(frames[0], b - a, 8, unit="q_A^-1",
                                            method=("bbox", "csr", "cython"),
                                            radial_range=(qgrid[a] - s / 2, qgrid[b - 1] + s / 2),
                                            azimuth_range=(-180, 180),
                                            mask=outside(ai, qgrid[a] - s / 2, qgrid[b - 1] + s / 2,
                                                         "bbox", mask=~valid)).intensity[::-1]
                          for a, b, s in q_segments(qgrid)], axis=1)
    assert_rel(ours, ref, integ.coverage)


@pytest.mark.parametrize("split", ["no", "bbox"])
def test_pixels_outside_the_q_range_are_left_out(ai, frames, split):
    """pyFAI's CSR adds pixels below ``radial_range`` to the first bin; ptyprep does not."""
    qgrid = make_qgrid((0.1, 0.2, 0.01))                 # the beam centre is on the detector
    integ = StackIntegrator(ai, qgrid, 4, split=split, solid_angle=False)
    ours = integ.qphi(frames[:1])[0]
    res = ai.integrate2d_ng(frames[0], qgrid.size, 4, unit="q_A^-1", method=(split, "csr", "cython"),
                            radial_range=(0.095, 0.205), azimuth_range=(-180, 180),
                            correctSolidAngle=False)
    assert not np.allclose(ours[:, 0], res.intensity[::-1][:, 0], rtol=1e-3)   # pyFAI's clipping
    if split == "no":          # no splitting: each bin is the plain mean of the pixels inside it
        q = ai.center_array((H, W), unit="q_A^-1")
        phi = -np.degrees(ai.center_array((H, W), unit="chi_rad"))
        for k in range(4):
            inside = (q >= 0.095) & (q < 0.105) & (phi >= -180 + 90 * k) & (phi < -90 + 90 * k)
            assert ours[k, 0] == pytest.approx(frames[0][inside].mean(), rel=1e-5)


# ----------------------------------------------------------------------------- stacks, dtypes, monitor

def test_stack_equals_single_frames_and_dtypes(ai, frames, valid):
    integ = StackIntegrator(ai, QGRID, 12, valid=valid)
    stack = integ.qphi(frames)
    for i in range(3):
        np.testing.assert_array_equal(integ.qphi(frames[i:i + 1])[0], stack[i])
    ints = np.rint(frames).astype(np.int32)
    for dtype in (np.uint16, np.int32, np.uint32, np.float64):
        np.testing.assert_array_equal(integ.qphi(ints.astype(dtype)), integ.qphi(ints.astype(np.float32)))


def test_monitor_divides_each_frame(ai, frames, valid):
    integ = StackIntegrator(ai, QGRID, 12, valid=valid, dark=np.full((H, W), 2.0))
    mon = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(integ.qphi(frames, monitor=mon),
                               integ.qphi(frames) / mon[:, None, None].astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(integ.iq(frames, monitor=mon), integ.iq(frames) / mon[:, None], rtol=1e-6)
    with pytest.raises(ValueError, match="monitor"):
        integ.qphi(frames, monitor=[1.0, 2.0])
    with pytest.raises(ValueError, match="stack"):
        integ.qphi(frames[0])


# ----------------------------------------------------------------------------- φ convention

def _mean_phi(profile, nphi):
    ang = np.radians(phi_centres(nphi))
    p = np.nan_to_num(profile)
    return np.degrees(np.arctan2((p * np.sin(ang)).sum(), (p * np.cos(ang)).sum()))


@pytest.mark.parametrize("where, expected", [("above", 90.0), ("right", 0.0), ("below", -90.0),
                                             ("left", 180.0)])
def test_phi_sense(ai, where, expected):
    img = np.zeros((1, H, W), dtype=np.float32)
    # spots symmetric about the beam centre (row 30, col 45 are pixel edges)
    spots = {"above": (slice(5, 15), slice(40, 50)), "below": (slice(45, 55), slice(40, 50)),
             "right": (slice(25, 35), slice(65, 75)), "left": (slice(25, 35), slice(15, 25))}
    img[(0, *spots[where])] = 1000.0
    integ = StackIntegrator(ai, QGRID, 36, split="no", solid_angle=False)
    profile = np.nansum(integ.qphi(img)[0], axis=1)
    mean = _mean_phi(profile, 36)
    assert abs((mean - expected + 180) % 360 - 180) < 1.0
    peak = integ.phi[np.argmax(profile)]
    assert abs((peak - expected + 180) % 360 - 180) <= 5.0 + 1e-9     # within the half-bin width


# ----------------------------------------------------------------------------- grids

def test_make_qgrid_and_segments():
    q = make_qgrid((0.01, 0.03, 0.01), (0.05, 0.09, 0.02))
    np.testing.assert_allclose(q, [0.01, 0.02, 0.03, 0.05, 0.07, 0.09])
    assert [(a, b) for a, b, _ in q_segments(q)] == [(0, 3), (3, 6)]
    np.testing.assert_allclose([s for *_, s in q_segments(q)], [0.01, 0.02])
    lo, hi = q_bin_bounds(q)
    np.testing.assert_allclose(lo, [0.005, 0.015, 0.025, 0.04, 0.06, 0.08])
    np.testing.assert_allclose(hi, [0.015, 0.025, 0.035, 0.06, 0.08, 0.10])
    assert hi[2] < lo[3]                                  # the gap between segments
    with pytest.raises(RecipeError, match="q_bin_bounds"):
        q_edges(q)
    np.testing.assert_allclose(q_edges(make_qgrid((0.1, 0.5, 0.1))), [0.05, 0.15, 0.25, 0.35, 0.45, 0.55])


def test_lix_style_grid_has_no_overlap():
    q = np.hstack([np.arange(0.005, 0.0499, 0.001), np.arange(0.05, 0.0999, 0.002),
                   np.arange(0.1, 3.2, 0.005)])
    lo, hi = q_bin_bounds(q)
    assert np.all(lo < q) and np.all(q < hi) and np.all(hi[:-1] <= lo[1:] + 1e-12)
    assert len(q_segments(q)) == 3


@pytest.mark.parametrize("bad", [[0.1, 0.2, 0.2, 0.3], [0.3, 0.2, 0.1], [0.1], [0.1, np.nan]])
def test_bad_qgrid(bad):
    with pytest.raises(RecipeError, match="q grid"):
        q_bin_bounds(bad)


def test_bad_segments():
    with pytest.raises(RecipeError, match="not above"):
        make_qgrid((0.1, 0.3, 0.1), (0.3, 0.5, 0.1))
    with pytest.raises(RecipeError, match="step"):
        make_qgrid((0.1, 0.3, 0))


def test_phi_edges_and_centres():
    np.testing.assert_allclose(phi_edges(4), [-180, -90, 0, 90, 180])
    np.testing.assert_allclose(phi_centres(4), [-135, -45, 45, 135])
    c = phi_centres(36)
    assert c.shape == (36,) and c[0] == -175 and c[-1] == 175
    np.testing.assert_allclose(np.roll(c, 18), (c + 180 + 180) % 360 - 180)    # 180° roll is exact
    np.testing.assert_allclose(phi_edges(3), [-180, -60, 60, 180])     # odd counts too (61)
    for nphi in (1, 0, 2.0, True):
        with pytest.raises(RecipeError, match="integer >= 2"):
            phi_edges(nphi)


def test_integrator_bad_input(ai, valid):
    with pytest.raises(RecipeError, match="integer >= 2"):
        StackIntegrator(ai, QGRID, 1)
    with pytest.raises(RecipeError, match="strictly increasing"):
        StackIntegrator(ai, QGRID[::-1], 36)
    with pytest.raises(RecipeError, match="outside"):
        StackIntegrator(ai, make_qgrid((50.0, 60.0, 1.0)), 36)
    with pytest.raises(RecipeError, match="shape"):
        StackIntegrator(ai, QGRID, 36, valid=valid[:-1])
    with pytest.raises(RecipeError, match="split"):
        StackIntegrator(ai, QGRID, 36, split="pseudo")


# ----------------------------------------------------------------------------- merging

def test_merge_maps_exact():
    nan = np.nan
    a = np.array([[[1.0, 2.0, nan, nan]]])
    b = np.array([[[nan, 4.0, 6.0, nan]]])
    merged = merge_maps([a, b], scales=[1.0, 0.5])
    np.testing.assert_array_equal(merged, np.array([[[1.0, 2.0, 3.0, nan]]], dtype=np.float32))
    assert merged.dtype == np.float32
    with pytest.raises(ValueError, match="shapes"):
        merge_maps([a, b[..., :3]])


def test_merge_two_detectors():
    qgrid = make_qgrid((0.01, 0.8, 0.01))
    far = StackIntegrator(make_ai(dist=0.5), qgrid, 12)                  # q < 0.075 only
    near = StackIntegrator(make_ai(dist=0.1, poni1=-10e-4), qgrid, 12)   # beam off the detector: q > 0.06
    lo_only = far.coverage & ~near.coverage
    hi_only = near.coverage & ~far.coverage
    both = far.coverage & near.coverage
    none = ~(far.coverage | near.coverage)
    assert lo_only.any() and hi_only.any() and both.any() and none.any()
    frames = np.ones((2, H, W), dtype=np.float32)
    frames[1] *= 3
    a, b = far.qphi(frames), near.qphi(frames)
    merged = merge_maps([a, b], scales=[2.0, 1.0])
    np.testing.assert_allclose(merged[:, lo_only], 2 * a[:, lo_only], rtol=1e-6)
    np.testing.assert_allclose(merged[:, hi_only], b[:, hi_only], rtol=1e-6)
    np.testing.assert_allclose(merged[:, both], (2 * a[:, both] + b[:, both]) / 2, rtol=1e-6)
    assert np.all(np.isnan(merged[:, none]))


# ----------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_ceo2_pilatus_peaks(shared_data):
    fabio = pytest.importorskip("fabio")
    from scipy.signal import find_peaks

    folder = shared_data / "ceo2_pilatus1m"
    data = fabio.open(str(folder / "CeO2_Pilatus1M.tif")).data[::-1]
    valid = data >= 0
    ai = __import__("pyFAI").load(str(folder / "CeO2_Pilatus1M.poni"))
    lam_A = ai.wavelength * 1e10
    tth, ref_i = np.loadtxt(folder / "CeO2_Pilatus1M.xy", unpack=True)
    ref_q = 4 * np.pi * np.sin(np.radians(tth) / 2) / lam_A
    step = 0.005
    qgrid = make_qgrid((0.1, 6.0, step))
    integ = StackIntegrator(ai, qgrid, 4, valid=valid, split="bbox")
    ours = integ.iq(data[None])[0]

    lo, hi = qgrid[0] - step / 2, qgrid[-1] + step / 2
    res = ai.integrate1d_ng(data, qgrid.size, unit="q_A^-1", method=("bbox", "csr", "cython"),
                            radial_range=(lo, hi), mask=outside(ai, lo, hi, "bbox", data.shape, ~valid))
    cov = integ.iq_coverage
    np.testing.assert_allclose(ours[cov], res.intensity[cov], rtol=RTOL)

    def strongest(q, i, k=4):
        peaks, props = find_peaks(np.nan_to_num(i), prominence=0)
        top = peaks[np.argsort(props["prominences"])[::-1][:k]]
        return np.sort(q[top])

    mine, theirs = strongest(qgrid, ours), strongest(ref_q, ref_i)
    np.testing.assert_allclose(mine, theirs, atol=step)


def test_merge_inputs_are_checked_for_both_merges():
    from ptyprep.saxs.merge import merge_var

    a = np.ones((1, 2, 3), np.float32)
    for merge in (merge_maps, merge_var):
        with pytest.raises(ValueError, match="at least one map"):
            merge([])
        with pytest.raises(ValueError, match="different shapes"):
            merge([a, np.ones((1, 2, 4))])
        with pytest.raises(ValueError, match="1 scales given for 2 maps"):
            merge([a, a], scales=[2.0])
