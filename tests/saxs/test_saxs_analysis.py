"""ScanAnalysis on LiX-layout files made here: maps, stitching, transmission, layout, bad input."""

import json
import shutil

import h5py
import numpy as np
import pytest
import saxs_fixtures as F

from ptyprep.errors import LayoutError, PtyprepError, RecipeError, SourceError
from ptyprep.saxs.merge import merge_maps
from ptyprep.saxs.qgrid import make_qgrid, phi_centres
from ptyprep.saxs import ScanAnalysis
from ptyprep.saxs import demo

QGRID = make_qgrid(*F.QSEGS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lix")
    files, truths, dets = F.make_scans(folder)
    fn = folder / "an.h5"
    an = ScanAnalysis(fn, dets, QGRID, F.NPHI)
    assert an.import_raw_data(files) == ["spec_A", "spec_B"]
    an.process(chunk_frames=7)
    an.extract_attr(None, "int_saxs", "get_roi", qphirange=[0.03, 0.1, -180, 180])
    an.extract_attr(None, "hop", "hop", xrange=[0.03, 0.1])
    an.make_map_from_attr(["transmission", "absorption", "int_saxs", "hop"], save_overall=True)
    an.calc_tomo_from_map(["absorption"])
    return {"folder": folder, "files": files, "truths": truths, "dets": dets, "fn": fn, "an": an}


def test_samples_and_monitors(data):
    an, truths = data["an"], data["truths"]
    assert an.samples == ["spec_A", "spec_B"]
    with h5py.File(data["fn"], "r") as f:
        for sn, t in truths.items():          # spec_B's monitors come from their own stream
            np.testing.assert_allclose(f[f"{sn}/attrs/incident"][()], t["incident"], rtol=1e-12)
            np.testing.assert_allclose(f[f"{sn}/attrs/transmission"][()],
                                       t["transmitted"] / t["incident"], rtol=1e-12)


def test_maps_exact_desnaked(data):
    with h5py.File(data["fn"], "r") as f:
        for sn, t in data["truths"].items():
            expected = F.truth_map(t["transmitted"] / t["incident"], t)
            np.testing.assert_allclose(f[f"{sn}/maps/transmission/d"][()], expected, rtol=1e-12)
            # empty-beam points have T = 0.2 exactly, so T_ref = 0.2 and absorption = line integral
            np.testing.assert_allclose(f[f"{sn}/maps/absorption/d"][()], F.truth_map(t["mu_l"], t),
                                       atol=1e-12)
            g = f[f"{sn}/maps"]
            np.testing.assert_allclose(g.attrs["yc"], F.ANGLES[:4] if sn == "spec_A" else F.ANGLES[3:])
            np.testing.assert_allclose(g.attrs["xc"], 0.5 + 0.1 * (np.arange(F.N_TRANS) - 4))
            assert g.attrs["yc_label"] == "ss_rot" and g.attrs["xc_label"] == "ss_x"


def test_overall_stitched_on_union_grid(data):
    ta, tb = data["truths"]["spec_A"], data["truths"]["spec_B"]
    a = F.truth_map(ta["transmitted"] / ta["incident"], ta)
    b = F.truth_map(tb["transmitted"] / tb["incident"], tb)
    with h5py.File(data["fn"], "r") as f:
        g = f["overall/maps/transmission"]
        overall = g["d"][()]
        np.testing.assert_allclose(g["y"][()], F.ANGLES)
        assert g.attrs["NX_class"] == "NXdata"
        assert f["overall/maps/absorption"].attrs["T_ref"] == pytest.approx(0.2)
    assert overall.shape == (7, F.N_TRANS)
    np.testing.assert_allclose(overall[:3], a[:3], rtol=1e-12)
    np.testing.assert_allclose(overall[4:], b[1:], rtol=1e-12)
    np.testing.assert_allclose(overall[3], (a[3] + b[0]) / 2, rtol=1e-12)   # 90° in both scans


def test_qphi_cube_equals_direct_integration(data):
    t = data["truths"]["spec_B"]
    dets = data["dets"]
    maps = [d.integrator(QGRID, F.NPHI).qphi(demo.detector_frames(t, k, spec=F.SPECS[k],
                                                                   pixel_m=F.PIXEL))
            for d, k in zip(dets, F.SPECS)]
    expected = merge_maps(maps)
    with h5py.File(data["fn"], "r") as f:
        cube = f["spec_B/qphi/merged/d"]
        assert cube.dtype == np.float32 and cube.chunks == (1, F.NPHI, len(QGRID))
        assert cube.compression == "gzip"
        np.testing.assert_array_equal(cube[()], expected)
        assert np.isnan(cube[0]).any() and np.isfinite(cube[0]).any()


def test_layout_round_trip(data):
    with h5py.File(data["fn"], "r") as f:
        assert f.attrs["Nphi"] == F.NPHI
        np.testing.assert_allclose(f.attrs["qgrid"], QGRID)
        assert "atan2(-drow, dcol)" in f.attrs["phi_convention"]
        assert [d["ptyprep"]["dataset"] for d in json.loads(f.attrs["detectors"])] == [
        "pil1M_image", "pilW2_image"]
        g = f["spec_A"]
        assert g.attrs["source"] == data["files"][0]
        assert json.loads(g.attrs["header"])["plan_name"] == "raster"
        scan = json.loads(g.attrs["scan"])
        assert scan["shape"] == [4, F.N_TRANS] and scan["snake"] is True
        np.testing.assert_allclose(g["scan/fast"][()], scan["fast_positions"])
        q = g["qphi/merged"]
        assert q.attrs["NX_class"] == "NXdata" and list(q.attrs["axes"]) == [".", "phi", "q"]
        np.testing.assert_allclose(q["phi"][()], phi_centres(F.NPHI))
        np.testing.assert_allclose(q["phi_edges"][()], np.linspace(-180, 180, F.NPHI + 1))
        assert np.all(q["q_lo"][()] < q["q"][()]) and np.all(q["q"][()] < q["q_hi"][()])
        np.testing.assert_allclose(g["qphi"].attrs["yc"], phi_centres(F.NPHI))
        assert list(g["Iq"].attrs["axes"]) == [".", "q"] and g["Iq/merged"].shape == (36, len(QGRID))
        t = f["overall/tomo/absorption"]
        assert t["d"].shape[0] == t["d"].shape[1] == len(t["x"][()])
        assert "rot_cen" in t.attrs and list(t.attrs["axes"]) == ["y", "x"]


def test_hop_map_sees_fibres(data):
    with h5py.File(data["fn"], "r") as f:
        hop_ = f["overall/maps/hop/d"][()]
        fib = F.truth_map(data["truths"]["spec_A"]["fib_l"], data["truths"]["spec_A"])
    assert np.nanmax(hop_) > 0.25 and np.nanmin(hop_) < 0.1
    assert hop_[:3][fib[:3] > 2].min() > hop_[:3][fib[:3] == 0].max()


def test_user_functions_vector_and_errors(data):
    an = data["an"]

    def minmax(frame):
        return [np.nanmin(frame), np.nanmax(frame)]

    an.extract_attr("spec_A", ["imin", "imax"], minmax, "Iq", "merged")
    with h5py.File(data["fn"], "r") as f:
        iq = f["spec_A/Iq/merged"][()]
        np.testing.assert_allclose(f["spec_A/attrs/imax"][()], np.nanmax(iq, axis=1))

    def boom(frame, q):
        if frame[0] > -1 and boom.calls == 3:
            raise ZeroDivisionError("bad frame")
        boom.calls += 1
        return 0.0

    boom.calls = 0
    with pytest.raises(RecipeError, match=r"boom failed on sample 'spec_A' frame 3"):
        an.extract_attr("spec_A", "x", boom, "Iq", "merged")
    with pytest.raises(RecipeError, match="data key"):
        an.extract_attr("spec_A", "x", "get_roi", "maps", "merged")
    with pytest.raises(RecipeError, match="sub key 'subtracted'"):
        an.extract_attr("spec_A", "x", "iq_mean", "Iq", "subtracted", qrange=[0.03, 0.1])
    an.make_map_from_attr(["imax"], save_overall=False, samples=["spec_A"])
    with h5py.File(data["fn"], "a") as f:
        f["spec_A/maps/imax/y"].attrs["long_name"] = "ss_y"
    with pytest.raises(RecipeError, match="not a rotation angle"):
        an.calc_tomo_from_map(["imax"], sample="spec_A")


def test_background_subtraction(data):
    an = data["an"]
    an.subtract_background(["spec_A"], "spec_B", data_key="Iq", bkg_frames=[0, 1])
    with h5py.File(data["fn"], "r") as f:
        two = f["spec_B/Iq/merged"][:2].astype(float)
        bkg = np.where(np.isfinite(two).any(0), np.nansum(two, 0) / np.isfinite(two).sum(0).clip(1), np.nan)
        np.testing.assert_allclose(f["spec_A/Iq/subtracted"][()],
                                   f["spec_A/Iq/merged"][()] - bkg, rtol=1e-5, atol=1e-6)


def test_bad_inputs(data, tmp_path):
    files, dets = data["files"], data["dets"]
    with pytest.raises(RecipeError, match="integer >= 2"):
        ScanAnalysis(tmp_path / "x.h5", dets, QGRID, nphi=1)
    missing = [dets[0], type(dets[0])(dataset="pilW1_image", poni=dets[0].poni)]
    an = ScanAnalysis(tmp_path / "m.h5", missing, QGRID, F.NPHI)
    with pytest.raises(SourceError, match="detector dataset 'pilW1_image' missing"):
        an.import_raw_data(files[:1])
    bad = tmp_path / "bad.h5"
    shutil.copy(files[0], bad)
    with h5py.File(bad, "a") as f:
        start = json.loads(f["spec_A"].attrs["start"])
        start["shape"] = [5, F.N_TRANS]
        f["spec_A"].attrs["start"] = json.dumps(start)
    an = ScanAnalysis(tmp_path / "s.h5", dets, QGRID, F.NPHI)
    with pytest.raises(SourceError, match=r"needs 45 frames, the raw file holds 36"):
        an.import_raw_data([str(bad)])
    with pytest.raises(LayoutError, match="cannot continue"):
        ScanAnalysis(data["fn"], dets, QGRID, nphi=F.NPHI + 2)
    assert issubclass(SourceError, PtyprepError)


def test_replace_path_and_resume(data, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    for fn in data["files"]:
        shutil.copy(fn, moved)
    fn = tmp_path / "resume.h5"
    an = ScanAnalysis(fn, data["dets"], QGRID, F.NPHI)
    an.import_raw_data(data["files"])
    an.process(chunk_frames=7, samples=["spec_A"])
    with h5py.File(fn, "a") as f:
        ds = f["spec_A/qphi/merged/d"]
        ds.attrs["frames_done"] = 7
        ds[7:] = np.nan
    old = str(data["folder"])
    an2 = ScanAnalysis(fn, data["dets"], replace_path=(old, str(moved)))
    assert an2.nphi == F.NPHI
    an2.process(chunk_frames=10)
    with h5py.File(fn, "r") as f, h5py.File(data["fn"], "r") as ref:
        assert f["spec_B"].attrs["source"].startswith(str(moved))
        np.testing.assert_array_equal(f["spec_A/qphi/merged/d"][()], ref["spec_A/qphi/merged/d"][()])
        np.testing.assert_array_equal(f["spec_B/qphi/merged/d"][()], ref["spec_B/qphi/merged/d"][()])


def test_lix_source_registered(data):
    from ptyprep.sources.registry import make_source

    src = make_source("nsls2-lix", {"path": data["files"][1], "detector": "pilW2_image"})
    meta = src.read_meta()
    assert meta.num_frames == 36 and meta.frame_shape == (24, 28) and meta.label == "spec_B"
    t = data["truths"]["spec_B"]
    np.testing.assert_allclose(src.read_positions(), np.stack([t["slow"], t["fast"]], 1))
    frames = src.read_frames(np.array([2, 3, 7]), roi=None)
    assert frames.shape == (3, 24, 28)
    assert src.read_frames(np.array([2, 3, 7]), roi=(0, 5, 1, 4)).shape == (3, 5, 3)
    src.close()
