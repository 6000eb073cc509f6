"""Pictures of proc_data files: labelled colour bars and axes, titles inside, series as curves."""

import h5py
import matplotlib.image
import numpy as np
import pytest
import saxs_fixtures as F
from matplotlib.lines import Line2D

from ptyprep.layout import procdata as L
from ptyprep.saxs import Detector, ScanAnalysis, demo
from ptyprep.saxs import store as W
from ptyprep.saxs.plot import maps_figure, plot_procdata, qphi_figure
from ptyprep.saxs.qgrid import make_qgrid

QGRID = make_qgrid(*F.QSEGS)
LONG = "a_remarkably_long_sample_name_from_the_beamline_logbook_" * 2


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Two LiX sinogram scans: maps, overall, an absorption tomogram, a subtracted q-φ cube."""
    folder = tmp_path_factory.mktemp("plotgrid")
    files, _, dets = F.make_scans(folder)
    an = ScanAnalysis(folder / "an.h5", dets, QGRID, F.NPHI)
    an.import_raw_data(files)
    an.process(chunk_frames=14)
    an.extract_attr(None, "int_saxs", "get_roi", qphirange=[0.03, 0.1, -180, 180])
    an.extract_attr(None, "hop", "hop", xrange=[0.03, 0.1])
    an.make_map_from_attr(["transmission", "absorption", "int_saxs", "hop"], save_overall=True)
    an.calc_tomo_from_map(["absorption", "int_saxs"])
    an.subtract_background(["spec_A"], "spec_B", data_key="qphi")
    return an.fn


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A time series: plain HDF5 frames with monitors and no scan geometry → scan (1, 9)."""
    folder = tmp_path_factory.mktemp("plotseries")
    truth = demo.simulate_scan(F.ANGLES[:1], n_trans=F.N_TRANS, center=0.5, step=0.1)
    spec = F.SPECS["saxs"]
    raw = folder / "series.h5"
    with h5py.File(raw, "w") as f:
        f["/entry/frames"] = demo.detector_frames(truth, "saxs", spec=spec, pixel_m=F.PIXEL)
        f["/entry/i0"], f["/entry/it"] = truth["incident"], truth["transmitted"]
    poni = demo.write_poni(folder / "saxs.poni", spec[0], spec[1], spec[2], pixel_m=F.PIXEL)
    an = ScanAnalysis(folder / "series_an.h5", [Detector(dataset="/entry/frames", poni=poni)],
                      QGRID, F.NPHI)
    an.import_source("hdf5", {"path": str(raw), "incident": "/entry/i0",
                              "transmitted": "/entry/it"}, sample="ser")
    an.process(chunk_frames=5)
    an.extract_attr(None, "int_saxs", "get_roi", qphirange=[0.03, 0.1, -180, 180])
    an.make_map_from_attr(["transmission", "int_saxs"], save_overall=False)
    return an.fn


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """Written through the store: a long sample name, axes with units, a one-column map."""
    fn = tmp_path_factory.mktemp("plotnamed") / "named_an.h5"
    slow, fast = np.arange(5) * 36.0, 0.3 + 0.05 * np.arange(11)
    scan = {"shape": [5, 11], "snake": False, "slow_motor": "theta", "fast_motor": "stage_x",
            "slow_positions": slow, "fast_positions": fast}
    rng = np.random.default_rng(1)
    with h5py.File(fn, "w") as f:
        W.init_root(f, [], QGRID, F.NPHI)
        for sn, shape in ((LONG, (5, 11)), ("column", (5, 1))):
            sc = dict(scan, shape=list(shape), fast_positions=fast[:shape[1]])
            W.write_sample(f, sn, "none", {}, sc)
            for name in ("int_saxs", f"orientation_of_the_{LONG}", "peak_q"):
                W.write_map(f, sn, name, rng.random(shape), slow, fast[:shape[1]], "theta",
                            "stage_x")
                f[L.map_group(sn, name)][L.AXIS_X].attrs[L.ATTR_UNITS] = "mm"
            f[L.map_group(sn, "peak_q")].attrs[L.ATTR_UNITS] = "1/angstrom"
        W.write_tomo(f, LONG, "int_saxs", rng.random((11, 11)), fast, "stage_x", 0.55, "fbp")
        f[L.tomo_group(LONG, "int_saxs")][L.AXIS_X].attrs[L.ATTR_UNITS] = "mm"
        f[L.tomo_group(LONG, "int_saxs")][L.AXIS_Y].attrs[L.ATTR_UNITS] = "mm"
        ds = W.create_qphi(f, LONG, 3, QGRID, F.NPHI)
        W.write_rows(ds, 0, rng.random(ds.shape) + 0.1)
    return fn


def figures(fn, sn):
    """``{key: Figure}`` of every picture of sample ``sn`` that exists."""
    with h5py.File(fn, "r") as f:
        out = {"maps": maps_figure(f, sn, "maps"), "tomo": maps_figure(f, sn, "tomo"),
               "qphi": qphi_figure(f, sn)}
    return {k: v for k, v in out.items() if v is not None}


def images(fig):
    return [a for ax in fig.axes for a in ax.get_images()]


def colorbar_labels(fig):
    """Label of each image's colour bar (every image must have one)."""
    out = {}
    for ax in fig.axes:
        for im in ax.get_images():
            assert im.colorbar is not None, f"image in {ax.get_title()!r} has no colour bar"
            out[ax.get_title().replace("\n", "")] = im.colorbar.ax.get_ylabel().replace("\n", " ")
    return out


def test_every_colour_bar_names_quantity_and_unit(grid):
    found = {}
    for sn in ("overall", "spec_A"):
        for key, fig in figures(grid, sn).items():
            labels = colorbar_labels(fig)
            assert labels and all(v.strip() for v in labels.values()), (sn, key, labels)
            found.update({(key, title.split(" (")[0].split(":")[0]): v
                          for title, v in labels.items()})
    assert found[("maps", "transmission")] == "transmission I_t/I_0"
    assert "ln(T/T_ref)" in found[("maps", "absorption")]
    assert found[("maps", "int_saxs")] == "int_saxs (a.u.)"
    assert "Hermans" in found[("maps", "hop")]
    assert found[("tomo", "int_saxs")] == "int_saxs (a.u.) per pixel"
    assert found[("qphi", "merged")].startswith("log10 I") and "a.u." in found[("qphi", "merged")]
    assert "background" in found[("qphi", "subtracted")]


def test_a_units_attribute_names_the_unit(named):
    fig = figures(named, LONG)["maps"]
    labels = colorbar_labels(fig)
    assert labels["peak_q"] == "peak_q (1/Å)"
    assert labels["int_saxs"] == "int_saxs (a.u.)"
    assert all(ax.get_xlabel() == "stage_x (mm)" and ax.get_ylabel() == "theta (deg)"
               for ax in fig.axes if ax.get_images())


def test_axes_are_motors_and_tomogram_axes_are_positions(grid, named):
    figs = figures(grid, "overall")
    for ax in (a for a in figs["maps"].axes if a.get_images()):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("ss_x", "ss_rot (deg)")
    tomo = [a for a in figs["tomo"].axes if a.get_images()]
    assert len(tomo) == 2
    for ax in tomo:                                     # positions along ss_x, not pixel indices
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (ss_x units)", "y (ss_x units)")
        assert ax.get_aspect() == 1.0
        with h5py.File(grid, "r") as f:
            x = f[L.tomo_group("overall", ax.get_title().split(" (")[0])][L.AXIS_X][()]
        half = (x[1] - x[0]) / 2
        np.testing.assert_allclose(ax.get_xlim(), [x[0] - half, x[-1] + half])
        np.testing.assert_allclose(ax.get_ylim(), [x[-1] + half, x[0] - half])
        assert x[0] - half != -0.5
    ax = [a for a in figures(named, LONG)["tomo"].axes if a.get_images()][0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (mm)", "y (mm)")
    ax = [a for a in figures(grid, "spec_A")["qphi"].axes if a.get_images()][0]
    assert ax.get_xlabel().startswith("q (1/Å)") and ax.get_ylabel() == "φ (deg)"


def test_no_text_leaves_the_figure_and_titles_do_not_collide(grid, named):
    figs = list(figures(named, LONG).values()) + list(figures(grid, "overall").values())
    figs += list(figures(named, "column").values())
    assert len(figs) == 6
    for fig in figs:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        kind, sn = fig.texts[0].get_text().split(":", 1)     # the suptitle: "what: sample"
        sn = sn.replace("\n", "").strip()
        assert kind.startswith(("maps (", "tomograms", "q-φ map", "series of 5 points"))
        assert sn in ("overall", "column") or LONG.startswith(sn.rstrip("…"))
        drawn = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.texts]
        drawn += [(ax.get_title() or ax.get_ylabel(), ax.get_tightbbox(renderer))
                  for ax in fig.axes]                   # titles, labels, tick labels, colour bars
        for what, e in drawn:
            assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1, what
            assert e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, what
        titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
        for i, a in enumerate(titles):
            assert not any(a.overlaps(b) for b in titles[i + 1:]), fig.texts[0].get_text()


def test_one_row_series_is_curves_against_the_frame_index(series, tmp_path):
    with h5py.File(series, "r") as f:
        assert f["ser/maps/int_saxs/d"].shape == (1, F.N_TRANS)
        fig = maps_figure(f, "ser")
    assert not images(fig)
    curves = {ax.get_title(loc="left"): [ln for ln in ax.get_lines() if isinstance(ln, Line2D)]
              for ax in fig.axes}
    assert set(curves) == {"transmission", "int_saxs"}
    for lines in curves.values():
        assert len(lines) == 1 and len(lines[0].get_xdata()) == F.N_TRANS
        np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(F.N_TRANS))
    assert fig.axes[-1].get_xlabel() == "frame index"
    assert {ax.get_title(loc="left"): ax.get_ylabel().replace("\n", " ") for ax in fig.axes} == \
        {"transmission": "transmission I_t/I_0", "int_saxs": "int_saxs (a.u.)"}
    pngs = plot_procdata(series, tmp_path / "s.png")
    assert [p.name for p in pngs] == ["s_ser_maps.png", "s_ser_qphi.png"]


def test_one_column_map_is_curves_against_the_slow_motor(named):
    fig = figures(named, "column")["maps"]
    assert not images(fig) and len(fig.axes) == 3
    for ax in fig.axes:
        (line,) = ax.get_lines()
        np.testing.assert_array_equal(line.get_xdata(), np.arange(5) * 36.0)
    assert fig.axes[-1].get_xlabel() == "theta (deg)"


def test_plot_procdata_writes_readable_pictures(grid, tmp_path):
    pngs = plot_procdata(grid, tmp_path / "g.png")
    assert [p.name for p in pngs] == [
        "g_overall_maps.png", "g_overall_tomo.png", "g_spec_A_maps.png", "g_spec_A_qphi.png",
        "g_spec_B_maps.png", "g_spec_B_qphi.png"]
    sizes = {p.name: matplotlib.image.imread(p).shape[:2] for p in pngs}
    h, w = sizes["g_spec_B_qphi.png"]
    assert w >= 640 and h >= 480                            # one q-φ panel
    h2, w2 = sizes["g_spec_A_qphi.png"]
    assert h2 == h and w2 >= 1.8 * w                        # merged and subtracted
    assert sizes["g_overall_maps.png"][1] >= 3 * 400        # 4 maps: 3 columns, 2 rows
    only = plot_procdata(grid, tmp_path / "o.png", sample="spec_B", what="qphi")
    assert [p.name for p in only] == ["o_spec_B_qphi.png"]
