"""Real APS pinSAXS files (NeXus NXsas) through the ``hdf5`` source into ScanAnalysis.

Geometry comes from each file's header.  The header's beam centre is a pixel index
(pixel centres at integers, its "x" along the 195-pixel rows axis, as the rings
show); pyFAI's PONI is measured from the detector's corner, hence ``+ 0.5``
(``demo.write_poni``).
"""

import h5py
import numpy as np
import pytest
from scipy.signal import find_peaks

from ptyprep.saxs.integrate import load_poni

from ptyprep.saxs.qgrid import make_qgrid
from ptyprep.saxs import Detector, ScanAnalysis
from ptyprep.saxs.demo import write_poni

pytestmark = pytest.mark.realdata

PIXEL = 172e-6
AGBH_D_A = 58.38                        # silver behenate long period, Å


def header_poni(path, h5file, distance, wavelength, center):
    """A .poni from the NXsas header fields (mm, Å, beam centre in pixels)."""
    with h5py.File(h5file, "r") as f:
        g = lambda p: float(np.ravel(f[p][()])[0])  # noqa: E731
        dist_m = g(distance) * 1e-3
        wl_m = g(wavelength) * 1e-10
        row, col = g(center[0]), g(center[1])
    return write_poni(path, (195, 487), dist_m, (row, col), pixel_m=PIXEL, wavelength_m=wl_m)


@pytest.fixture
def nexus(shared_data, tmp_path):
    fn = shared_data / "aps_pinsaxs" / "nexus-example.hdf5"
    if not fn.is_file():
        pytest.skip(f"{fn} not found")
    poni = header_poni(tmp_path / "nexus.poni", fn, "/entry/instrument/detector/distance",
                       "/entry/instrument/monochromator/wavelength",
                       ("/entry/instrument/detector/beam_center_x_pixel",
                        "/entry/instrument/detector/beam_center_y_pixel"))
    return fn, poni


def test_nexus_series_equals_pyfai_and_monitor_applied(nexus, tmp_path):
    fn, poni = nexus
    qgrid = make_qgrid((0.004, 0.2, 0.002))
    det = Detector(dataset="/entry/data/frames", poni=poni)
    options = {"path": str(fn), "incident": "/entry/instrument/control/integral"}
    runs = {}
    for norm in (False, True):
        an = ScanAnalysis(tmp_path / f"an_{norm}.h5", [det], qgrid, 36)
        assert an.import_source("hdf5", options, sample="IN625") == "IN625"
        if not norm:         # the blank (a 2-D dataset beside the frames), no monitor
            an.import_source("hdf5", {"path": str(fn), "frames": "/entry/data/blank",
                                      "single_frame": True}, sample="blank")
        an.process(chunk_frames=4, normalize_monitor=norm)
        with h5py.File(an.fn, "r") as f:
            runs[norm] = {k: f[f"IN625/{k}"][()] for k in ("Iq/merged", "attrs/incident")}
            if not norm:
                runs[norm]["blank"] = f["blank/Iq/merged"][()]
            assert f["IN625/qphi/merged/d"].shape == (10, 36, qgrid.size)
            assert f["IN625/scan/fast"].shape == (10,)

    with h5py.File(fn, "r") as f:
        frame = f["/entry/data/frames"][3]
        monitor = f["/entry/instrument/control/integral"][()]
        blank = f["/entry/data/blank"][()]
    ai = load_poni(poni)
    half = 0.001
    res = ai.integrate1d_ng(frame, qgrid.size, unit="q_A^-1", method=("bbox", "csr", "cython"),
                            radial_range=(qgrid[0] - half, qgrid[-1] + half))
    ours = runs[False]["Iq/merged"][3]
    ok = np.isfinite(ours)
    assert ok.sum() > 0.8 * qgrid.size
    np.testing.assert_allclose(res.radial, qgrid, rtol=1e-6)
    np.testing.assert_allclose(ours[ok], res.intensity[ok], rtol=1e-4)
    ref_blank = ai.integrate1d_ng(blank, qgrid.size, unit="q_A^-1",
                                  method=("bbox", "csr", "cython"),
                                  radial_range=(qgrid[0] - half, qgrid[-1] + half)).intensity
    np.testing.assert_allclose(runs[False]["blank"][0][ok], ref_blank[ok], rtol=1e-4)
    # the monitor is recorded per frame and divides every frame when asked to
    np.testing.assert_array_equal(runs[True]["attrs/incident"], monitor)
    np.testing.assert_allclose(runs[True]["Iq/merged"] * monitor[:, None], runs[False]["Iq/merged"],
                               rtol=1e-5)


def test_nexus_series_through_recipe(nexus, tmp_path):
    from ptyprep.recipe import load_recipe
    from saxs_fixtures import run_procdata

    fn, poni = nexus
    (tmp_path / "nexus.toml").write_text(f"""
[source]
name = "hdf5"
path = "{fn}"
incident = "/entry/instrument/control/integral"
[output]
format = "procdata"
dfile = "nexus_an.h5"
[saxs]
qgrid = [[0.004, 0.2, 0.002]]
nphi = 36
sample = "IN625"
normalize_monitor = true
errors = true
iphi_qrange = [0.02, 0.06]
detectors = [{{dataset = "/entry/data/frames", poni = "{poni.name}"}}]
attrs = [{{name = "int_lowq", func = "iq_mean", data_key = "Iq", kwargs = {{qrange = [0.01, 0.03]}}}}]
maps = ["int_lowq", "incident"]
""")
    out = run_procdata(load_recipe(tmp_path / "nexus.toml"))
    with h5py.File(out, "r") as f:
        d, err = f["IN625/qphi/merged/d"][()], f["IN625/qphi/merged/err"][()]
        assert err.shape == d.shape and np.array_equal(np.isnan(err), np.isnan(d))
        assert np.nanmax(err / np.abs(d)) < 1
        assert f["IN625/Iphi/merged"].shape == (10, 36)
        assert f["IN625/maps/int_lowq/d"].shape == (1, 10)


def test_agbh_peaks_through_hdf5_source(shared_data, tmp_path):
    fn = shared_data / "aps_pinsaxs" / "AgBehenate_228.hdf5"
    if not fn.is_file():
        pytest.skip(f"{fn} not found")
    poni = header_poni(tmp_path / "agbh.poni", fn, "/entry/instrument/detector/distance",
                       "/entry/instrument/monochromator/wavelength",
                       ("/entry/instrument/15ID-D metadata/pin_ccd_center_x_pixel",
                        "/entry/instrument/15ID-D metadata/pin_ccd_center_y_pixel"))
    qgrid = make_qgrid((0.05, 0.4, 0.0005))
    an = ScanAnalysis(tmp_path / "agbh_an.h5", [Detector(dataset="/entry/data/data", poni=poni)],
                      qgrid, 36)
    assert an.import_source("hdf5", {"path": str(fn), "single_frame": True}) == "AgBehenate_228"
    an.process()
    with h5py.File(an.fn, "r") as f:
        iq = f["AgBehenate_228/Iq/merged"][0].astype(float)
    iq = np.nan_to_num(iq)
    peaks, _ = find_peaks(iq, prominence=0.02 * iq.max())
    q1 = 2 * np.pi / AGBH_D_A
    first = qgrid[peaks[0]]
    print("AgBh orders / expected:", [round(float(qgrid[p] / q1), 4) for p in peaks[:3]])
    assert abs(first / q1 - 1) < 0.01, first
    for order in (2, 3):
        near = qgrid[peaks][np.argmin(abs(qgrid[peaks] - order * first))]
        assert abs(near / (order * q1) - 1) < 0.015, (order, near)
