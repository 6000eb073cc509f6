"""Generic sources (hdf5, files) feeding ScanAnalysis; Iphi; the Poisson error cube."""

import h5py
import numpy as np
import pytest
import saxs_fixtures as F

from ptyprep.saxs.integrate import StackIntegrator

from ptyprep.saxs.merge import merge_maps, merge_var

from ptyprep.saxs.qgrid import make_qgrid
from ptyprep.saxs import Detector, ScanAnalysis, demo

QGRID = make_qgrid(*F.QSEGS)
ROWS = slice(0, 4)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """Scan A of the LiX fixture, written as a plain HDF5 file and as .npy files + a table."""
    folder = tmp_path_factory.mktemp("generic")
    truth = demo.simulate_scan(F.ANGLES[ROWS], n_trans=F.N_TRANS, center=0.5, step=0.1, seed=0)
    frames = {k: demo.detector_frames(truth, k, spec=spec, pixel_m=F.PIXEL)
              for k, spec in F.SPECS.items()}
    ponis = {k: demo.write_poni(folder / f"{k}.poni", spec[0], spec[1], spec[2], pixel_m=F.PIXEL)
             for k, spec in F.SPECS.items()}
    h5 = folder / "generic.h5"
    with h5py.File(h5, "w") as f:
        for k, fr in frames.items():
            f[f"/entry/{k}"] = fr
        f["/entry/i0"], f["/entry/it"] = truth["incident"], truth["transmitted"]
        f["/entry/rot"], f["/entry/x"] = truth["slow"], truth["fast"]
        f["/entry/shape"] = np.array(truth["shape"])
    (folder / "frames").mkdir()
    for i, fr in enumerate(frames["saxs"]):
        np.save(folder / "frames" / f"saxs_{i}.npy", fr)
    rows = np.stack([truth["slow"], truth["fast"], truth["incident"], truth["transmitted"]], 1)
    np.savetxt(folder / "scan.txt", rows, header="ss_rot ss_x I0 It")
    return {"folder": folder, "truth": truth, "frames": frames, "ponis": ponis, "h5": h5}


def check_maps(fn, sn, truth):
    with h5py.File(fn, "r") as f:
        np.testing.assert_allclose(f[f"{sn}/maps/transmission/d"][()],
                                   F.truth_map(truth["transmitted"] / truth["incident"], truth),
                                   rtol=1e-12)
        g = f[f"{sn}/maps"]
        np.testing.assert_allclose(g.attrs["yc"], F.ANGLES[ROWS])
        np.testing.assert_allclose(g.attrs["xc"], 0.5 + 0.1 * (np.arange(F.N_TRANS) - 4))
        assert g.attrs["yc_label"] == "ss_rot" and g.attrs["xc_label"] == "ss_x"


def test_hdf5_source_two_detectors(scan, tmp_path):
    dets = [Detector(dataset=f"/entry/{k}", poni=scan["ponis"][k]) for k in F.SPECS]
    an = ScanAnalysis(tmp_path / "an.h5", dets, QGRID, F.NPHI)
    opts = {"path": str(scan["h5"]), "incident": "/entry/i0", "transmitted": "/entry/it",
            "scan_shape": "/entry/shape", "motors": ["ss_rot", "ss_x"],
            "motor_positions": ["/entry/rot", "/entry/x"], "snaking": True}
    assert an.import_raw_data([{"name": "hdf5", "sample": "gen", **opts}]) == ["gen"]
    an.process(chunk_frames=10, errors=True)
    an.extract_iphi("gen", [0.03, 0.1])
    an.make_map_from_attr(["transmission"], save_overall=False)
    check_maps(an.fn, "gen", scan["truth"])
    integs = [d.integrator(QGRID, F.NPHI) for d in dets]
    frames = [scan["frames"][k] for k in F.SPECS]
    cube = merge_maps([i.qphi(fr) for i, fr in zip(integs, frames)])
    err = np.sqrt(merge_var([i.qphi_var(fr) for i, fr in zip(integs, frames)]))
    with h5py.File(an.fn, "r") as f:
        np.testing.assert_array_equal(f["gen/qphi/merged/d"][()], cube)
        np.testing.assert_allclose(f["gen/qphi/merged/err"][()], err, rtol=1e-6)
        g = f["gen/Iphi"]
        assert g.attrs["NX_class"] == "NXdata" and list(g.attrs["axes"]) == [".", "phi"]
        np.testing.assert_allclose(g["merged"].attrs["qrange"], [0.03, 0.1])
        sel = (QGRID >= 0.03) & (QGRID <= 0.1)
        np.testing.assert_allclose(g["merged"][()], np.nanmean(cube[..., sel], axis=-1), rtol=1e-6)
        assert f["gen"].attrs["source"] == str(scan["h5"])
    # Iphi is a data key of its own: attributes can read it
    an.extract_attr("gen", "iphi_max", lambda prof: np.nanmax(prof), "Iphi", "merged")


def test_files_source_table_with_named_columns(scan, tmp_path):
    det = Detector(dataset=str(scan["folder"] / "frames" / "saxs_*.npy"), poni=scan["ponis"]["saxs"])
    an = ScanAnalysis(tmp_path / "an.h5", [det], QGRID, F.NPHI)
    opts = {"positions_file": "scan.txt", "monitor_columns": {"incident": "I0", "transmitted": "It"},
            "motors": ["ss_rot", "ss_x"], "scan_shape": [4, F.N_TRANS], "snaking": True}
    assert an.import_source("files", opts, sample="npy", base_dir=scan["folder"]) == "npy"
    an.process(chunk_frames=16)
    an.make_map_from_attr(["transmission"], save_overall=False)
    check_maps(an.fn, "npy", scan["truth"])
    with h5py.File(an.fn, "r") as f:
        expected = det.integrator(QGRID, F.NPHI).iq(scan["frames"]["saxs"])
        np.testing.assert_array_equal(f["npy/Iq/merged"][()], expected)


def test_files_source_recipe(scan):
    from ptyprep.recipe import load_recipe
    from saxs_fixtures import run_procdata

    folder = scan["folder"]
    (folder / "files.toml").write_text(f"""
[source]
name = "files"
positions_file = "scan.txt"
monitor_columns = {{incident = "I0", transmitted = "It"}}
motors = ["ss_rot", "ss_x"]
scan_shape = [4, {F.N_TRANS}]
snaking = true
[output]
format = "procdata"
dfile = "files_an.h5"
[saxs]
qgrid = {[list(s) for s in F.QSEGS]}
nphi = {F.NPHI}
sample = "npy"
iphi_qrange = [0.03, 0.1]
detectors = [{{dataset = "frames/saxs_*.npy", poni = "saxs.poni"}}]
attrs = [{{name = "int_saxs", func = "get_roi", kwargs = {{qphirange = [0.03, 0.1, -180, 180]}}}}]
maps = ["transmission", "int_saxs"]
""")
    out = run_procdata(load_recipe(folder / "files.toml"))
    check_maps(out, "npy", scan["truth"])
    with h5py.File(out, "r") as f:
        assert f["npy/Iphi/merged"].shape == (36, F.NPHI)
        assert f["overall/maps/int_saxs/d"].shape == (4, F.N_TRANS)


def test_qphi_var_explicit(tmp_path):
    shape = (12, 14)
    poni = demo.write_poni(tmp_path / "t.poni", shape, 0.1, (5.3, 6.6), pixel_m=F.PIXEL)
    qgrid = make_qgrid((0.05, 0.6, 0.05))
    integ = StackIntegrator(str(poni), qgrid, 8, split="no", polarization_factor=0.9)
    rng = np.random.default_rng(0)
    frames = rng.poisson(50, (2,) + shape).astype(np.int32)
    monitor = np.array([2.0, 4.0])
    var = integ.qphi_var(frames, monitor=monitor)
    mat = integ.qphi_matrix
    weight = integ._weight
    expected = np.full((2, mat.shape[0]), np.nan)
    for r in range(mat.shape[0]):
        lo, hi = mat.indptr[r], mat.indptr[r + 1]
        idx, c = mat.indices[lo:hi], mat.data[lo:hi].astype(float)
        norm = (c * weight[idx]).sum()
        if norm > 0:
            for i in range(2):
                expected[i, r] = (c ** 2 * frames[i].ravel()[idx]).sum() / norm ** 2 / monitor[i] ** 2
    np.testing.assert_allclose(var.reshape(2, -1), expected, rtol=1e-5)
    qphi = integ.qphi(frames, monitor=monitor)
    assert np.array_equal(np.isnan(var), np.isnan(qphi))
    # merging two detectors' variances: mean of k covering maps → Σ var / k²
    v = merge_var([var, var], [1.0, 2.0])
    np.testing.assert_allclose(v, var * 5 / 4, rtol=1e-6)


def test_example_recipe_parses():
    from pathlib import Path

    from ptyprep.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "experiments" / "aps_pinsaxs_example.toml")
    assert recipe.source.name == "hdf5" and recipe.section("saxs").errors and recipe.section("saxs").iphi_qrange == (0.02, 0.06)
