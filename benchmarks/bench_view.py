"""``ptyprep view`` on a 10 000-frame proc_data file: time to open the page, time to answer a click.

Writes a 100 × 100 snaking raster (10 000 frames, 36 φ × 100 q bins in two segments, six
maps) through the proc_data store, then measures

* **open, server side**: building the page in a Bokeh document (the sample record, the six
  100 × 100 maps, frame 0) — best of ``--repeat``;
* **click, server side**: ``pick`` at a random map pixel (one q-φ frame and one I(q) row read,
  the figures updated) — median and worst of ``--clicks``;
* with Debian's chromium and chromium-driver installed, the same in a real headless browser:
  from loading the page to the maps and the frame panel drawn (Selenium's clock; median of
  ``--rounds`` loads), and from a real click on a map
  pixel to the frame drawn (the page's own clock: pointer up → frame line changed → painted).

Targets (issue 17): open < 2 s, click < 0.2 s.

    python benchmarks/bench_view.py [--side 100] [--repeat 3] [--clicks 20] [--rounds 5]
                                    [--keep DIR]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)
import numpy as np

sys.path.insert(0, str(C.ROOT / "tests"))
MAPS = ("transmission", "absorption", "int_saxs", "int_waxs", "hop", "peak_q")


def write_file(path, side, nphi=36):
    """A ``side`` × ``side`` snaking raster written through the store, 500 frames at a time."""
    import h5py

    from ptyprep.saxs import store as W
    from ptyprep.saxs.maps import attr_to_map
    from ptyprep.saxs.qgrid import make_qgrid

    rng = np.random.default_rng(0)
    qgrid = make_qgrid((0.005, 0.25, 0.005), (0.5, 2.5, 0.04))
    n = side * side
    slow, fast = np.arange(side) * 1.0, np.arange(side) * 0.01
    with h5py.File(path, "w") as f:
        W.init_root(f, [], qgrid, nphi)
        W.write_sample(f, "big", "none", {}, {
            "shape": [side, side], "snake": True, "n_frames": n, "slow_motor": "ss_y",
            "fast_motor": "ss_x", "slow_positions": slow.tolist(),
            "fast_positions": fast.tolist(), "prec": 0.001})
        qphi = W.create_qphi(f, "big", n, qgrid, nphi)
        iq = W.create_iq(f, "big", n, qgrid)
        for start in range(0, n, 500):
            rows = rng.random((min(500, n - start), nphi, len(qgrid)), dtype=np.float32)
            W.write_rows(qphi, start, rows)
            W.write_rows(iq, start, rows.mean(axis=1))
        for name in MAPS:
            values = rng.random(n)
            W.write_attr(f, "big", name, values)
            W.write_map(f, "big", name, attr_to_map(values, (side, side), True), slow, fast,
                        "ss_y", "ss_x")
    return path, slow, fast


def server_side(path, slow, fast, repeat, clicks):
    from bokeh.document import Document

    from ptyprep.view.app import page_builder

    def open_page():
        return page_builder(path, refresh_ms=0)(Document())

    open_s = C.best_of(open_page, repeat)
    page = open_page()
    rng = np.random.default_rng(1)
    times = []
    for _ in range(clicks):
        y, x = slow[rng.integers(len(slow))], fast[rng.integers(len(fast))]
        t0 = time.perf_counter()
        page.pick("big", x, y)
        times.append(time.perf_counter() - t0)
    return open_s, statistics.median(times), max(times)


#: JavaScript: the page's own clock of a click — the pointer released, then the frame line
#: changed and the next animation frame painted (Selenium's own overhead left out).
CLICK_CLOCK = """
window.__clock = {};
document.addEventListener('pointerup', () => { window.__clock.up = performance.now(); }, true);
Bokeh.documents[0].get_model_by_name('frame_info').properties.text.change.connect(() => {
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.__clock.painted = performance.now(); }));
});
"""


def in_browser(path, slow, fast, clicks, rounds):
    """``(median open s, worst open s, median click s, worst click s)`` in headless
    chromium (``rounds`` page loads, ``clicks`` clicks), or None without it."""
    import view_helpers as V

    if V.chromium() is None or not Path(V.DRIVER).exists():
        return None
    driver = V.browser()
    try:
        with V.ViewServer(path) as server:
            V.open_page(driver, server.url, "map_transmission")     # warm: BokehJS cached
            opens = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                V.open_page(driver, server.url, "map_transmission")
                V.open_page_drawn(driver, "qphi")                  # the frame panel too
                opens.append(time.perf_counter() - t0)
            driver.execute_script(CLICK_CLOCK)
            times = []
            rng = np.random.default_rng(2)
            for _ in range(clicks):
                row, col = rng.integers(len(slow)), rng.integers(len(fast))
                index = row * len(fast) + (len(fast) - 1 - col if row % 2 else col)
                point = V.screen_point(driver, "map_transmission", fast[col], slow[row])
                driver.execute_script("window.__clock = {}")
                V.click_screen(driver, *point)
                V.wait_js(driver, "return Bokeh.documents[0].get_model_by_name('frame_info')"
                                  ".text.includes(arguments[0]) && window.__clock.painted",
                          f"frame <b>{index}</b> ", timeout=10)
                clock = driver.execute_script("return window.__clock")
                times.append((clock["painted"] - clock["up"]) / 1e3)
        return statistics.median(opens), max(opens), statistics.median(times), max(times)
    finally:
        driver.quit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=100, help="raster side (frames = side²)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="page loads timed in the browser")
    parser.add_argument("--keep", metavar="DIR", help="write the file there and keep it")
    args = parser.parse_args(argv)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_view_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        path, slow, fast = write_file(folder / "big_an.h5", args.side)
        print(f"{args.side ** 2} frames written in {time.perf_counter() - t0:.1f} s "
              f"({path.stat().st_size / 1e6:.0f} MB)")
        open_s, click_med, click_max = server_side(path, slow, fast, args.repeat, args.clicks)
        print(f"server: open {open_s:.3f} s; click median {click_med * 1e3:.1f} ms, "
              f"worst {click_max * 1e3:.1f} ms")
        browser = in_browser(path, slow, fast, args.clicks, args.rounds)
        if browser is None:
            print("browser: skipped (no chromium / chromium-driver)")
        else:
            print(f"browser: open median {browser[0]:.3f} s, worst {browser[1]:.3f} s "
                  f"({args.rounds} loads); click median {browser[2] * 1e3:.0f} ms, "
                  f"worst {browser[3] * 1e3:.0f} ms ({args.clicks} clicks)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
