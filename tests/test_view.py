"""``ptyprep view``: the readers (exact values, one slice per click), the pages in a real
headless browser (real clicks on a map pixel and a scan position, checked through Bokeh's
own document state), a page following a real ``ptyprep watch`` run, bad input on the
command line, and the screenshots of the README (``docs/img/view-*.png``)."""

import json
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import view_helpers as V
from export_helpers import demo_ptyd
from watch_helpers import toml_value

import ptyprep
from ptyprep.errors import LayoutError, SourceError
from ptyprep.layout import procdata as L
from ptyprep.view import heatmap as H
from ptyprep.view.files import file_kind, status_text
from ptyprep.view.procdata_reader import (ProcdataReader, cell_of_frame, frame_of_cell,
                                          iphi_of)
from ptyprep.view.ptyd_reader import PtydReader

PY = sys.executable
IMG = V.ROOT / "docs" / "img"


@pytest.fixture(scope="module")
def saxs_demo(tmp_path_factory):
    """The SAXS demo's proc_data file: two snaking scans, maps, ``overall``, tomograms."""
    from ptyprep.demo import run_saxs_demo

    return run_saxs_demo(tmp_path_factory.mktemp("saxsdemo"))["procdata"]


@pytest.fixture(scope="module")
def ptyd(tmp_path_factory):
    return demo_ptyd(tmp_path_factory.mktemp("ptyddemo"), frames=60)


@pytest.fixture
def small(tmp_path):
    return V.make_procdata(tmp_path / "small_an.h5")


class Reads:
    """Records every ``h5py.Dataset.__getitem__``: ``(dataset name, selection)``."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = h5py.Dataset.__getitem__

        def getitem(ds, key):
            self.calls.append((ds.name, key))
            return original(ds, key)

        monkeypatch.setattr(h5py.Dataset, "__getitem__", getitem)

    def of(self, name):
        return [key for ds, key in self.calls if ds == name]


# -- the readers -------------------------------------------------------------------------------
def test_frame_of_cell_and_back_on_a_snaking_raster(small):
    s = ProcdataReader(small).samples()["grid"]
    cells = [cell_of_frame(s, i) for i in range(12)]
    assert cells[:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3)]     # row 1 runs backwards
    assert [frame_of_cell(s, r, c) for r, c in cells] == list(range(12))
    assert frame_of_cell(s, 3, 0) is None and frame_of_cell(s, 0, 4) is None


def test_every_map_pixel_locates_the_frame_whose_value_it_shows(small):
    r = ProcdataReader(small)
    samples = r.samples()
    with h5py.File(small) as f:
        attr = f[L.attr_path("grid", "transmission")][()]
    im = next(i for i in r.images("grid") if i.name == "transmission")
    for row, y in enumerate(im.y):
        for col, x in enumerate(im.x):
            sn, index = r.locate("grid", x + 0.1, y - 4.0, samples)   # inside the pixel
            assert sn == "grid" and im.d[row, col] == attr[index]
    assert r.locate("grid", 5.0, 0.0, samples) is None                 # outside the raster


def test_overall_pixel_locates_a_frame_of_the_sample_measured_there(saxs_demo):
    r = ProcdataReader(saxs_demo)
    samples = r.samples()
    overall = next(i for i in r.images(L.OVERALL) if i.name == "int_saxs")
    b = samples["fibres_scanB"]
    with h5py.File(saxs_demo) as f:
        attr_b = f[L.attr_path("fibres_scanB", "int_saxs")][()]
    row, col = len(overall.y) - 2, 3                  # a row only scan B measured
    sn, index = r.locate(L.OVERALL, overall.x[col], overall.y[row], samples)
    assert sn == "fibres_scanB" and cell_of_frame(b, index) == (b.shape[0] - 2, col)
    assert overall.d[row, col] == pytest.approx(attr_b[index])


def test_a_click_reads_one_frame_of_the_cube_and_one_row_of_iq(small, monkeypatch):
    reads = Reads(monkeypatch)
    r = ProcdataReader(small)
    frame = r.frame("grid", 7, r.samples()["grid"])
    assert reads.of(L.qphi_path("grid")) == [7] and reads.of(L.iq_path("grid")) == [7]
    with h5py.File(small) as f:
        np.testing.assert_array_equal(frame.qphi, f[L.qphi_path("grid")][7])
        np.testing.assert_array_equal(frame.iq, f[L.iq_path("grid")][7])
        np.testing.assert_array_equal(frame.q_lo, f[L.qphi_group("grid")]["q_lo"][()])
    assert frame.where == {"theta": 10.0, "x": 0.5}       # frame 7 ends row 1, run backwards
    with pytest.raises(LayoutError, match="no frame 12"):
        r.frame("grid", 12)


def test_iphi_is_the_nan_aware_mean_over_the_q_window(small):
    frame = ProcdataReader(small).frame("grid", 2)
    inside = (frame.q >= 0.015) & (frame.q <= 0.045)               # 0.02, 0.03, 0.04
    want = np.nanmean(frame.qphi[:, inside], axis=1)
    np.testing.assert_allclose(iphi_of(frame, (0.045, 0.015)), want, rtol=1e-12)
    assert np.isnan(iphi_of(frame, (0.1, 0.2))).all()              # no bin in the window


def test_ptyd_reader_mean_mask_positions_and_one_frame(ptyd, monkeypatch):
    scan = ptyprep.read_ptyd(ptyd)
    r = PtydReader(ptyd)
    assert r.frames == 60 and r.expected() == 60 and r.complete()
    np.testing.assert_allclose(r.mean_frame(), scan.data.astype(float).mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(r.valid_mask(), scan.weights.all(axis=0))
    np.testing.assert_array_equal(r.positions, scan.positions)
    reads = Reads(monkeypatch)
    data, valid = r.frame(33)
    np.testing.assert_array_equal(data, scan.data[33])
    np.testing.assert_array_equal(valid, scan.weights[33])
    frames = [(name.rsplit("/", 1)[-1], key) for name, key in reads.calls
              if name.rsplit("/", 1)[-1] in ("data", "weights")]
    assert frames == [("data", 13), ("weights", 13)]    # chunk 1 (frames 20..39), one row
    assert r.nearest(*scan.positions[41]) == 41
    keys, values = r.table()
    assert keys[0] == "meta/num_frames" and values[0] == "60" and "info/recipe" in keys
    assert all(len(v) <= 160 for v in values)


def test_ptyd_refresh_reads_only_chunks_not_seen(ptyd, monkeypatch):
    import ptyprep.view.ptyd_reader as R

    r = PtydReader(ptyd)
    calls = []
    original = R._summarise
    monkeypatch.setattr(R, "_summarise", lambda *a: calls.append(a[0]) or original(*a))
    assert r.refresh() is False and calls == []
    del r._chunks["1"]                                   # as if chunk 1 were new
    assert r.refresh() is True and calls == ["1"]


def test_heatmap_bins_image_or_quads_and_colour_ranges():
    lo, hi = H.bounds_of([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lo, [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(hi, [1.5, 2.5, 3.5])
    assert H.evenly_spaced(lo, hi) and H.evenly_spaced(*H.bounds_of([3.0, 2.0, 1.0]))
    assert not H.evenly_spaced(np.array([0.0, 1.0, 5.0]), np.array([1.0, 2.0, 6.0]))
    assert H.value_range([np.nan, 2.0, -1.0]) == (-1.0, 2.0)
    assert H.value_range([np.nan, 2.0, -1.0, 0.0, 8.0], log=True) == (2.0, 8.0)
    assert H.value_range([np.nan]) == (0.0, 1.0) and H.value_range([3.0]) == (2.5, 3.5)
    values = np.arange(6.0).reshape(2, 3)
    even = H.Heatmap(values, [3.0, 2.0, 1.0], [0.0, 1.0], title="t", xlabel="x", ylabel="y",
                     label="v", name="even")
    assert even.as_image
    np.testing.assert_array_equal(even.source.data["image"][0], values[:, ::-1])
    gaps = H.Heatmap(values, (np.array([0.0, 1.0, 5.0]), np.array([1.0, 2.0, 6.0])),
                     [0.0, 1.0], title="t", xlabel="q", ylabel="phi", label="v", name="q")
    assert not gaps.as_image and list(gaps.source.data["left"][:3]) == [0.0, 1.0, 5.0]
    gaps.set_scale("log")
    assert type(gaps.colour_bar.color_mapper).__name__ == "LogColorMapper"


def test_status_text_names_state_frames_rate_and_lag():
    text = status_text({"state": "acquiring", "frames_seen": 30, "frames_prepared": 28,
                        "frames_published": 21, "frames_expected": 60, "rate_fps": 40.0,
                        "lag_frames": 2, "lag_s": 0.05, "end_reason": None})
    assert text == ("ptyprep watch: acquiring — frames seen 30, prepared 28, published 21 of 60;"
                    " 40.0 frames/s; lag 2 frames (0.1 s)")
    assert status_text(None) == ""


def test_file_kind_and_its_errors(tmp_path, small, ptyd):
    assert file_kind(small) == "procdata" and file_kind(ptyd) == "ptyd"
    with pytest.raises(SourceError, match="no file at"):
        file_kind(tmp_path / "nothing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="not an HDF5 file"):
        file_kind(tmp_path / "notes.txt")
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["data"] = np.zeros((2, 3, 3))
    with pytest.raises(LayoutError, match="not a ptyprep output"):
        file_kind(tmp_path / "raw.h5")


# -- the pages without a browser ---------------------------------------------------------------
def test_page_answers_a_tap_and_follows_a_new_version(small, tmp_path):
    from bokeh.document import Document

    from ptyprep.view.app import page_builder

    doc = Document()
    page = page_builder(small, refresh_ms=0)(doc)
    assert doc.get_model_by_name("qphi").title.text == "q-φ map: grid frame 0"
    page.pick("grid", 0.5 + 0.25 * 2, 10.0)                        # row 1, column 2 → frame 5
    assert "frame <b>5</b> of 12" in doc.get_model_by_name("frame_info").text
    with h5py.File(small) as f:
        want = f[L.qphi_path("grid")][5].ravel()
    np.testing.assert_array_equal(doc.get_model_by_name("qphi_source").data["value"], want)
    page.select.value = "line"                                     # a line scan: curves
    assert doc.get_model_by_name("curve_peak") is not None
    page.pick("line", 1.0, 0.0)
    assert "<b>line</b> frame <b>2</b>" in doc.get_model_by_name("frame_info").text
    with h5py.File(small, "a") as f:                               # a new version: new values
        f[L.map_group("line", "peak")]["d"][0, 1] = 42.0
    page.refresh()
    assert doc.get_model_by_name("curve_peak_source").data["value"][1] == 42.0


def test_ptyprep_view_is_callable_and_shows_in_a_notebook(small, monkeypatch):
    import bokeh.io
    from bokeh.document import Document
    from bokeh.resources import INLINE

    shown = {}
    monkeypatch.setattr(bokeh.io, "output_notebook",
                        lambda **kw: shown.setdefault("resources", kw["resources"]))
    monkeypatch.setattr(bokeh.io, "show",
                        lambda app, notebook_url: shown.update(app=app, url=notebook_url))
    ptyprep.view(small, notebook_url="localhost:8890")
    assert shown["resources"] is INLINE and shown["url"] == "localhost:8890"
    doc = Document()
    shown["app"](doc)
    assert doc.get_model_by_name("map_transmission") is not None
    import ptyprep.view as package
    assert callable(package) and package.view is ptyprep.view.view


# -- the command line ------------------------------------------------------------------------
def one_line_error(*args, cwd=None):
    proc = subprocess.run([PY, "-m", "ptyprep", "view", *map(str, args), "--no-browser"],
                          capture_output=True, text=True, timeout=60, cwd=cwd)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("ptyprep: error: ") and proc.stdout == ""
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, small):
    assert "no file at" in one_line_error(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["frames"] = np.zeros((2, 4, 4))
    assert "is not a ptyprep output" in one_line_error(tmp_path / "raw.h5")
    (tmp_path / "notes.txt").write_text("not hdf5")
    assert "is not an HDF5 file" in one_line_error(tmp_path / "notes.txt")
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(small, "--port", port)
    assert f"cannot serve on port {port}" in line and "--port" in line
    assert "must be a port number" in one_line_error(small, "--port", 70000)


def test_demo_prints_the_view_line(tmp_path):
    from ptyprep.demo import run_demo
    from ptyprep.engine.comm import world

    lines = list(run_demo("ptycho", tmp_path / "demo", world()))
    assert f"look:    ptyprep view {tmp_path / 'demo' / 'demo.ptyd'}" in lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_server_stops_cleanly_on_ctrl_c_and_sigterm(small, signum):
    with V.ViewServer(small) as server:
        with socket.create_connection(("localhost", int(server.url.rsplit(":", 1)[1][:-1]))):
            pass                                                   # it listens
        code, lines, err = server.stop(signum)
    assert code == 0 and lines[-1].startswith("stopped serving") and err == ""


# -- the pages in a real browser ---------------------------------------------------------------
@pytest.fixture
def driver():
    d = V.browser()
    yield d
    d.quit()


def assert_offline(driver, url):
    """Every request of the page went to the ptyprep view server (no CDN)."""
    urls = V.requested_urls(driver)
    assert urls and all(u.startswith(url) for u in urls), urls
    assert any("/static/js/bokeh" in u for u in urls)


def test_procdata_page_click_a_map_pixel_shows_its_frame(saxs_demo, driver):
    r = ProcdataReader(saxs_demo)
    sample = r.samples()["fibres_scanA"]
    im = next(i for i in r.images("fibres_scanA") if i.name == "int_saxs")
    with V.ViewServer(saxs_demo) as server:
        V.open_page(driver, server.url, "map_int_saxs")
        assert_offline(driver, server.url)
        assert V.model(driver, "map_int_saxs", "m.title.text") == "int_saxs"
        assert V.model(driver, "map_int_saxs", "m.below[0].axis_label") == "ss_x"
        assert V.model(driver, "map_int_saxs", "m.left[0].axis_label") == "ss_rot (deg)"
        assert V.model(driver, "map_int_saxs", "m.right[0].title") == "int_saxs (a.u.)"
        row, col = 3, 5
        index = frame_of_cell(sample, row, col)                   # 3 * 21 + 15 = 78 (snake)
        V.click_at(driver, "map_int_saxs", im.x[col], im.y[row])
        V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('frame_info').text"
                          ".includes(arguments[0])", f"frame <b>{index}</b>")
        with h5py.File(saxs_demo) as f:
            want = f[L.qphi_path("fibres_scanA")][index].astype(float)
            want_iq = f[L.iq_path("fibres_scanA")][index].astype(float)
        shown = V.column(driver, "qphi_source", "value")
        np.testing.assert_array_equal(shown, want.ravel())
        low, high = V.model(driver, "qphi", "[m.right[0].color_mapper.low, "
                                            "m.right[0].color_mapper.high]")
        assert (low, high) == pytest.approx((np.nanmin(want), np.nanmax(want)))
        assert V.model(driver, "qphi", "m.title.text") == f"q-φ map: fibres_scanA frame {index}"
        assert V.model(driver, "iq", "m.title.text") == f"I(q): fibres_scanA frame {index}"
        iq = V.column(driver, "iq_source", "I")
        np.testing.assert_allclose(iq[np.isfinite(iq)], want_iq[want_iq > 0], rtol=1e-6)
        assert V.model(driver, "iphi", "m.title.text").endswith(f"fibres_scanA frame {index}")
        assert V.model(driver, "map_marker", "[m.data.x[0], m.data.y[0]]") == \
            pytest.approx([im.x[col], im.y[row]])
        V.screenshot(driver, IMG / "view-procdata.png")
        # the log scale, then overall: a click there shows a frame of the sample measured there
        driver.execute_script("Bokeh.documents[0].get_model_by_name('scale').active = 1")
        V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('map_int_saxs')"
                          ".right[0].color_mapper.type == 'LogColorMapper'")
        driver.execute_script("Bokeh.documents[0].get_model_by_name('sample').value = 'overall'")
        overall = next(i for i in r.images(L.OVERALL) if i.name == "int_saxs")
        V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('maps_note').text"
                          ".includes('overall')")
        V.wait_js(driver, V.FIND_VIEW + "return view != null && view.frame.bbox.width > 0",
                  "map_int_saxs")
        V.click_at(driver, "map_int_saxs", overall.x[2], overall.y[-1])
        b = r.samples()["fibres_scanB"]
        V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('frame_info').text"
                          ".includes(arguments[0])",
                  f"<b>fibres_scanB</b> frame <b>{frame_of_cell(b, b.shape[0] - 1, 2)}</b>")
        assert server.stop()[0] == 0


def test_ptyd_page_click_a_position_shows_that_frame_with_its_mask(ptyd, driver):
    scan = ptyprep.read_ptyd(ptyd)
    with V.ViewServer(ptyd) as server:
        V.open_page(driver, server.url, "positions")
        assert_offline(driver, server.url)
        assert V.model(driver, "positions", "m.title.text") == \
            "60 scan positions (colour = frame index)"
        assert V.model(driver, "mean", "m.title.text") == "mean of 60 frames, log10(counts + 1)"
        k = 37
        y, x = scan.positions[k] * 1e6
        V.click_at(driver, "positions", x, y)
        V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('frame_info').text"
                          ".startsWith(arguments[0])", f"frame <b>{k}</b> of 60")
        np.testing.assert_array_equal(V.image(driver, "frame_source"), scan.data[k])
        mask = V.image(driver, "mask_source")
        np.testing.assert_array_equal(np.isnan(mask), scan.weights[k])
        low, high = V.model(driver, "frame", "[m.right[0].color_mapper.low, "
                                             "m.right[0].color_mapper.high]")
        positive = scan.data[k][scan.data[k] > 0]
        assert (low, high) == (positive.min(), positive.max())     # the log scale's range
        assert V.model(driver, "frame", "m.title.text").startswith(f"frame {k} at y = ")
        keys = V.model(driver, "meta_source", "Array.from(m.data.key)")
        assert "meta/energy" in keys and "info/recipe" in keys
        np.testing.assert_allclose(V.image(driver, "mean_source")[scan.weights.all(axis=0)],
                                   np.log10(scan.data.mean(axis=0) + 1)[scan.weights.all(axis=0)])
        V.screenshot(driver, IMG / "view-ptyd.png")


def test_page_follows_a_watch_run(tmp_path, driver):
    from ptyprep.acquire import source_options

    frames, chunk = 60, 6
    tables = {"source": source_options("hdf5", tmp_path / "raw.h5"),
              "prep": {"shape": 32, "center": "auto", "saturation": 1e5},
              "output": {"dfile": "out/scan.ptyd", "chunk_frames": chunk}}
    recipe = tmp_path / "r.toml"
    recipe.write_text("".join(f"[{t}]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                                  for k, v in tab.items())
                              for t, tab in tables.items()))
    writer = subprocess.Popen([PY, "-m", "ptyprep.acquire", "hdf5", str(tmp_path / "raw.h5"),
                               "--kind", "index", "--frames", str(frames), "--rate", "5"])
    daemon = subprocess.Popen([PY, "-m", "ptyprep", "watch", str(recipe), "--poll", "0.05"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    master = tmp_path / "out" / "scan.ptyd"
    t0 = time.monotonic()
    while not master.exists():
        assert time.monotonic() - t0 < 60 and daemon.poll() is None, "no publish"
        time.sleep(0.05)
    counts, states = [], []
    with V.ViewServer(master) as server:
        V.open_page(driver, server.url, "positions")
        while True:
            counts.append(V.model(driver, "positions_source", "m.data.index.length"))
            states.append(V.model(driver, "status", "m.text"))
            if counts[-1] == frames and "complete" in states[-1]:
                break
            assert time.monotonic() - t0 < 120, (counts[-5:], states[-3:])
            time.sleep(0.2)
        out, err = daemon.communicate(timeout=60)
        writer.wait(30)
        assert daemon.returncode == 0, err
        assert counts[0] < frames and counts == sorted(counts)      # it filled in, in order
        assert all(c % chunk == 0 for c in counts)                  # whole chunks published
        assert any("acquiring" in s for s in states)
        assert f"published {frames} of {frames}" in states[-1]
        status = json.loads((tmp_path / "out" / "scan.ptyd.status.json").read_text())
        assert status_text(status) == states[-1]
        assert V.model(driver, "mean", "m.title.text") == f"mean of {frames} frames, " \
                                                          "log10(counts + 1)"
        y, x = ptyprep.read_ptyd(master).positions[frames - 1] * 1e6
        V.click_at(driver, "positions", x, y)
        V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('frame_info').text"
                          ".startsWith(arguments[0])", f"frame <b>{frames - 1}</b>")
