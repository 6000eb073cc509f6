"""ptyprep.saxs.lix on small exact data: MatrixWithCoords, odd Nphi, hop, conventions, files."""

import json
import shutil
import types

import h5py
import numpy as np
import pytest
import saxs_fixtures as F

from ptyprep.errors import RecipeError
from ptyprep.saxs import attrs as A
from ptyprep.saxs.lix import MatrixWithCoords, get_roi, herman, hop
from ptyprep.saxs.qgrid import make_qgrid, phi_centres, phi_edges

QGRID = make_qgrid(*F.QSEGS)


def qphi_matrix(values, nphi, q=(0.04, 0.05, 0.06)):
    """A MatrixWithCoords q-φ map whose every q column is ``values`` (Nphi,)."""
    d = np.repeat(np.asarray(values, float)[:, None], len(q), axis=1)
    return MatrixWithCoords(d, q, phi_centres(nphi), "q", "phi")


# ------------------------------------------------------------------ MatrixWithCoords
def test_roi_line_profile_and_flatten():
    d = np.arange(12.0).reshape(3, 4)
    d[1, 2] = np.nan
    m = MatrixWithCoords(d, xc=[1, 2, 3, 4], yc=[10, 20, 30], xc_label="q", yc_label="phi")
    sub = m.roi(2, 3, 15, 30)
    np.testing.assert_array_equal(sub.d, [[5, np.nan], [9, 10]])
    np.testing.assert_array_equal(sub.xc, [2, 3]) and np.testing.assert_array_equal(sub.yc, [20, 30])
    x, v, e = m.line_profile("x", yrange=[10, 20])          # I(x) over the rows y in [10, 20]
    np.testing.assert_array_equal(x, [1, 2, 3, 4])
    np.testing.assert_allclose(v, [2, 3, 2, 5])              # NaN skipped: (2) alone at x = 3
    assert e is None
    y, v, _ = m.line_profile("y", xrange=[3, 3])
    np.testing.assert_allclose(v, [2, 0, 10])                # a line without any value gives 0
    np.testing.assert_array_equal(y, [10, 20, 30])
    assert m.val(2.5, 20, 1.0, 0.0) == pytest.approx(5.0)


def test_apply_symmetry_even_is_the_half_turn_and_odd_interpolates_the_half_bin():
    even = qphi_matrix(np.arange(6.0), 6)
    np.testing.assert_allclose(even.apply_symmetry().d[:, 0], [1.5, 2.5, 3.5, 1.5, 2.5, 3.5])
    phi = phi_centres(61)
    lin = qphi_matrix(phi, 61)                                # values linear in φ
    half = A.half_turn(lin.d)[:, 0]
    inner = (np.abs(phi) < 170) & (np.abs(phi) > 10)   # φ or φ + 180° away from the seam
    expected = np.where(phi < 0, phi + 180, phi - 180)        # value at φ + 180°, exactly
    np.testing.assert_allclose(half[inner], expected[inner], atol=1e-12)
    holes = np.arange(61.0)
    holes[10:20] = np.nan                                     # a missing sector is filled
    sym = A.symmetrize(holes[:, None])[:, 0]
    assert np.isfinite(sym).all()
    np.testing.assert_allclose(sym[10:20], 0.5 * (holes[40:50] + holes[41:51]))


def test_merge_expand_copy():
    a = MatrixWithCoords(np.ones((2, 2)), [0.1, 0.2], [0, 15], "ss_x", "ss_rot")
    b = MatrixWithCoords(np.full((2, 2), 3.0), [0.2, 0.3], [0, 15], "ss_x", "ss_rot")
    m = a.merge([b])
    np.testing.assert_array_equal(m.xc, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(m.d, [[1, 2, 3], [1, 2, 3]])
    c = a.copy()
    c.d[0, 0] = 7
    assert a.d[0, 0] == 1
    with pytest.raises(ValueError, match="labels"):
        a.merge([MatrixWithCoords(np.ones((2, 2)), [0.1, 0.2], [0, 15], "q", "phi")])


# ------------------------------------------------------------------ attribute functions
def test_lix_get_roi_is_the_mean_of_the_symmetrised_window():
    nphi = 12
    vals = np.arange(12.0)
    vals[3] = np.nan                                          # bin 3 takes bin 9's value
    m = qphi_matrix(vals, nphi)
    assert get_roi(m, [0.04, 0.06, -180, 180]) == pytest.approx(
        np.mean(A.symmetrize(vals[:, None])[:, 0]))
    arr = A.get_roi(m.d, [0.04, 0.06, -180, 180], q=m.xc, phi=m.yc)   # ptyprep's own, on arrays
    assert get_roi(m, [0.04, 0.06, -180, 180]) == pytest.approx(float(arr), rel=1e-12)


@pytest.mark.parametrize("nphi", [60, 61])
def test_hop_symmetrises_so_a_missing_quadrant_does_not_bias_it(nphi):
    phi = phi_centres(nphi)
    prof = 1.0 + 0.5 * np.cos(np.radians(phi - 20.0)) ** 2    # centro-symmetric, f2d = 0.1 exactly
    gap = prof.copy()
    gap[(phi >= 0) & (phi < 90)] = np.nan                     # a quadrant no detector covers
    q = np.array([0.04, 0.05])
    full, holed = (np.repeat(p[:, None], 2, 1) for p in (prof, gap))
    exact = nphi % 2 == 0                                     # odd: the filled bins interpolate
    f_full = float(A.hop(full, [0.04, 0.05], q=q, phi=phi))
    f_holed = float(A.hop(holed, [0.04, 0.05], q=q, phi=phi))
    assert f_full == pytest.approx(0.1, abs=1e-3)             # φ0 from binned data: ±0.3 %
    assert f_holed == pytest.approx(f_full, abs=1e-12 if exact else 2e-3)
    # without the symmetrisation the same profile gives a biased number
    w = np.nan_to_num(gap)
    biased = 2 * np.sum(w * np.cos(np.radians(phi - 20.0)) ** 2) / w.sum() - 1
    assert abs(biased - 0.1) > 0.01
    # lixtools' definition is half of it, and lixtools' hop() on the map agrees
    m = MatrixWithCoords(holed, q, phi, "q", "phi")
    assert hop(m, [0.04, 0.05]) == pytest.approx(0.05, abs=2e-3)


def test_herman_finds_phi0_as_lixtools_and_is_half_the_2d_parameter():
    phi = phi_centres(72)
    for phi0 in (0.0, 37.5, -80.0):
        prof = np.cos(np.radians(phi - phi0)) ** 4
        expected = (2 * (5 / 16) / (3 / 8) - 1) / 2             # ⟨cos²⟩ under cos⁴ = 5/6
        assert herman(phi, prof) == pytest.approx(expected, abs=1e-9)
    assert herman(phi, np.ones(72)) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(herman(phi, np.zeros(72)))


# ------------------------------------------------------------------ conventions
def test_lixtools_conventions_in_a_recipe():
    from ptyprep.saxs.recipe import parse_saxs_section

    base = {"detectors": [{"dataset": "pil1M_image", "poni": "p"}], "qgrid": [[0.01, 0.1, 0.01]],
            "attrs": [{"name": "hop", "func": "hop", "kwargs": {"xrange": [0.02, 0.05]}}]}
    lix = parse_saxs_section({**base, "conventions": "lixtools", "nphi": 61})
    assert (lix.split, lix.nphi, lix.conventions) == ("no", 61, "lixtools")
    assert lix.attrs[0]["kwargs"] == {"xrange": [0.02, 0.05], "definition": "lix"}
    own = parse_saxs_section(base)
    assert (own.split, own.attrs[0]["kwargs"]["definition"]) == ("bbox", "2d")
    assert parse_saxs_section({**base, "conventions": "lixtools", "split": "bbox"}).split == "bbox"
    with pytest.raises(RecipeError, match="conventions = 'lix' is not one of ptyprep, lixtools"):
        parse_saxs_section({**base, "conventions": "lix"})


def test_lixtools_conventions_turn_the_solid_angle_off(tmp_path):
    from ptyprep.saxs import ScanAnalysis

    _, _, dets = F.make_scans(tmp_path / "raw")
    an = ScanAnalysis(tmp_path / "an.h5", dets, QGRID, 61, conventions="lixtools")
    assert [d.solid_angle for d in an.detectors] == [False, False]
    assert [d.solid_angle for d in dets] == [True, True]          # the caller's are untouched
    assert an.conventions.split == "no" and an.nphi == 61


def test_phi_labels_are_bin_centres_not_lixtools_linspace():
    edges, centres = phi_edges(61), phi_centres(61)
    np.testing.assert_allclose(centres, (edges[:-1] + edges[1:]) / 2)
    lix_labels = np.linspace(-180, 180, 61)                   # lixtools' @yc
    off = np.abs(lix_labels - centres)
    assert off.max() == pytest.approx(180 / 61)               # half a bin at both ends
    assert lix_labels[0] == edges[0] and lix_labels[-1] == edges[-1]   # labels on the edges


# ------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def lixfile(tmp_path_factory):
    from ptyprep.saxs.lix import h5xs_scan

    folder = tmp_path_factory.mktemp("lixfile") / "legacy"
    files, truths, dets = F.make_scans(folder)
    dt = h5xs_scan(str(folder / "an.h5"), [dets, QGRID], Nphi=12)
    for fn in files:
        dt.import_raw_data(fn)
    dt.process(N=1)
    dt.extract_attr("spec_A", "int_saxs", get_roi, "qphi", "merged", qphirange=[0.03, 0.1, -180, 180])
    dt.extract_attr("spec_B", "int_saxs", get_roi, "qphi", "merged", qphirange=[0.03, 0.1, -180, 180])
    dt.make_map_from_attr(attr_names=["int_saxs"], correct_for_transsmission=False)
    return folder, truths


def test_the_file_carries_what_lixtools_reads(lixfile):
    folder, _ = lixfile
    with h5py.File(folder / "an.h5", "r") as f:
        assert (f.attrs["pre_proc"], int(f.attrs["Nphi"])) == ("2D", 12)
        dets = json.loads(f.attrs["detectors"])
        assert [d["extension"] for d in dets] == ["_SAXS", "_WAXS2"]
        assert all({"ImageWidth", "ImageHeight", "fix_scale", "exp_para", "ptyprep"} <= set(d)
                   for d in dets)
        for sn in ("spec_A", "spec_B"):
            types_ = {k: f[f"{sn}/{k}"].attrs["type"] for k in f[sn]}
            assert types_ == {"qphi": "MatrixWithCoords", "maps": "MatrixWithCoords",
                              "attrs": "ndarray", "Iq": "ndarray", "scan": "ndarray"}
            assert int(f[f"{sn}/qphi/merged"].attrs["len"]) == 36
            assert int(f[f"{sn}/maps/int_saxs"].attrs["len"]) == 1
            scan = json.loads(f[sn].attrs["scan"])
            assert scan["shape"] == [4, F.N_TRANS] and scan["snaking"] is True
            assert scan["fast_axis"]["motor"] == "ss_x" and len(scan["slow_axis"]["pos"]) == 4
        assert f["overall/maps"].attrs["type"] == "MatrixWithCoords"


def test_save_data_and_load_data_round_trip(lixfile, tmp_path):
    from ptyprep.saxs.lix import h5xs_scan

    folder, _ = lixfile
    fn = tmp_path / "an.h5"
    shutil.copy(folder / "an.h5", fn)
    dt = h5xs_scan(str(fn))
    mark = np.arange(36.0)
    dt.add_proc_data("spec_A", "attrs", "mark", mark)
    m = MatrixWithCoords(np.eye(3), [1, 2, 3], [4, 5, 6], "a", "b")
    dt.add_proc_data("spec_A", "maps", "eye", m)
    dt.save_data(save_sns=["spec_A"])
    again = h5xs_scan(str(fn))
    again.load_data(samples="spec_A")
    np.testing.assert_array_equal(again.proc_data["spec_A"]["attrs"]["mark"], mark)
    eye = again.proc_data["spec_A"]["maps"]["eye"]
    np.testing.assert_array_equal(eye.d, np.eye(3))
    with h5py.File(fn, "r") as f:
        assert int(f["spec_A/maps/eye"].attrs["len"]) == 1
        np.testing.assert_array_equal(f["spec_A/maps"].attrs["xc"], [1, 2, 3])


def test_replace_path_finds_moved_raw_files(lixfile, tmp_path):
    from ptyprep.saxs.lix import h5xs_scan

    folder, _ = lixfile
    moved = tmp_path / "proposals"
    shutil.copytree(folder, moved)
    dt = h5xs_scan(str(moved / "an.h5"), replace_path={"legacy": str(moved.name)})
    sources = [dt.attrs[sn]["source"] for sn in dt.samples]
    assert all("proposals" in s and "legacy" not in s for s in sources)
    with h5py.File(moved / "an.h5", "r") as f:
        assert all("proposals" in f[sn].attrs["source"] for sn in ("spec_A", "spec_B"))


def test_attribute_functions_get_a_matrix_and_builtins_get_arrays(lixfile, tmp_path):
    from ptyprep.saxs.lix import h5xs_scan

    folder, _ = lixfile
    fn = tmp_path / "an.h5"
    shutil.copy(folder / "an.h5", fn)
    dt = h5xs_scan(str(fn))
    dt.load_data()
    seen = []

    def width(m, qrange):                      # written for lixtools: uses m.d, m.xc, m.yc
        seen.append((type(m).__name__, m.xc_label, m.yc_label, m.d.shape))
        return np.nansum(m.roi(qrange[0], qrange[1], -180, 180).d) * 0 + len(m.yc)

    dt.extract_attr("spec_A", "nphi", width, "qphi", "merged", qrange=[0.03, 0.1])
    assert seen[0] == ("MatrixWithCoords", "q", "phi", (12, QGRID.size))
    np.testing.assert_array_equal(dt.proc_data["spec_A"]["attrs"]["nphi"], np.full(36, 12.0))
    dt.extract_attr("spec_A", "roi_arrays", A.get_roi, "qphi", "merged",
                    qphirange=[0.03, 0.1, -180, 180])
    np.testing.assert_allclose(dt.proc_data["spec_A"]["attrs"]["roi_arrays"],
                               dt.proc_data["spec_A"]["attrs"]["int_saxs"], rtol=1e-12)


def test_lixtools_options_ptyprep_does_not_offer_are_one_line_errors(lixfile, tmp_path):
    from ptyprep.saxs.lix import h5xs_scan

    folder, _ = lixfile
    fn = tmp_path / "an.h5"
    shutil.copy(folder / "an.h5", fn)
    dt = h5xs_scan(str(fn))
    dt.load_data()
    with pytest.raises(RecipeError, match="pre_proc='1D'"):
        h5xs_scan(str(tmp_path / "new.h5"), pre_proc="1D")
    with pytest.raises(RecipeError, match="apply_symmetry"):
        dt.process(apply_symmetry=True)
    with pytest.raises(RecipeError, match="ref_int_map"):
        dt.make_map_from_attr(attr_names="int_saxs", ref_int_map="int_saxs")
    with pytest.raises(RecipeError, match="algorithm='mlem'"):
        dt.calc_tomo_from_map("int_saxs", algorithm="mlem")
    maps = dt.make_map_from_attr(attr_names="int_saxs", return_dict=True,
                                 correct_for_transsmission=False)
    assert isinstance(maps["overall"], MatrixWithCoords)
    np.testing.assert_allclose(maps["spec_A"].d, dt.proc_data["spec_A"]["maps"]["int_saxs"].d)
    # a py4xs detector look-alike with fix_scale 2 gives scale 1/2
    from ptyprep.saxs import Detector

    cfg = Detector.to_py4xs(dt._file_detectors()[0])
    exp = types.SimpleNamespace(**{k: v for k, v in cfg["exp_para"].items() if k != "mask"},
                                mask=None, ImageWidth=cfg["ImageWidth"], ImageHeight=cfg["ImageHeight"])
    det = Detector.from_py4xs(types.SimpleNamespace(extension="_SAXS", fix_scale=2.0, exp_para=exp))
    assert det.scale == pytest.approx(0.5) and det.dataset == "pil1M_image"
