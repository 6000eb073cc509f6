"""Helpers of the ``ptyprep view`` tests: a served page, a real headless browser, clicks at
data coordinates, and small proc_data files written through the store."""

import io
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

PY = sys.executable
DRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]

#: JavaScript: the view of the model named ``arguments[0]`` (searched through every root).
FIND_VIEW = """
const doc = Bokeh.documents[0];
const model = doc.get_model_by_name(arguments[0]);
function find(v) {
  if (v.model.id === model.id) return v;
  for (const c of (v.child_views ?? [])) { const f = find(c); if (f) return f; }
  return null;
}
let view = null;
for (const r of Bokeh.index.roots) { view = find(r); if (view) break; }
"""


def chromium():
    """Path of the Chromium binary, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser():
    """A headless Chromium driven by Selenium through Debian's chromedriver; skips the test
    (saying why) when Selenium, the browser or the driver is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    if chromium() is None or not Path(DRIVER).exists():
        pytest.skip("chromium and chromium-driver are not installed "
                    "(apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


class ViewServer:
    """``python -m ptyprep view FILE --port 0 --no-browser`` in a subprocess; ``url`` is the
    page's address, read from the line it prints."""

    def __init__(self, path, *flags, timeout=60):
        self.proc = subprocess.Popen([PY, "-m", "ptyprep", "view", str(path), "--port", "0",
                                      "--no-browser", *flags], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        t0 = time.monotonic()
        while not self.lines:
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                self.proc.kill()
                raise AssertionError(f"ptyprep view did not start: {self.proc.stderr.read()}")
            time.sleep(0.05)
        self.url = re.search(r"http://\S+/", self.lines[0]).group(0)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self, signum=signal.SIGTERM, timeout=20):
        """Send ``signum``; return ``(exit status, stdout lines, stderr)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        time.sleep(0.1)
        return self.proc.returncode, list(self.lines), self.proc.stderr.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()


def wait_js(driver, script, *args, timeout=30, every=0.05):
    """The first truthy value ``script`` returns, tried every ``every`` seconds."""
    t0 = time.monotonic()
    while True:
        try:
            value = driver.execute_script(script, *args)
        except Exception:  # noqa: BLE001  the page is still loading
            value = None
        if value:
            return value
        assert time.monotonic() - t0 < timeout, f"timed out waiting for: {script}"
        time.sleep(every)


def open_page(driver, url, name):
    """Load ``url`` and wait until the model ``name`` is drawn."""
    driver.get(url)
    wait_js(driver, "return window.Bokeh !== undefined && Bokeh.documents.length > 0 && "
                    "Bokeh.index.roots.length > 0 && "
                    "Bokeh.documents[0].get_model_by_name(arguments[0]) != null", name)
    open_page_drawn(driver, name)


def open_page_drawn(driver, name, timeout=30):
    """Wait until the figure named ``name`` of the page loaded is laid out and painted."""
    wait_js(driver, FIND_VIEW + "return view != null && view.frame.bbox.width > 0 && "
                                "!view._needs_paint", name, timeout=timeout)


def model(driver, name, expression):
    """Value of the JavaScript ``expression`` of ``m``, the document's model named ``name``."""
    return driver.execute_script(
        f"const m = Bokeh.documents[0].get_model_by_name(arguments[0]); return {expression};",
        name)


def column(driver, source, key):
    """A column of a ColumnDataSource as float64 (NaN sent as null comes back NaN)."""
    values = model(driver, source, f"Array.from(m.data[{key!r}])")
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def image(driver, source):
    """The image of an ``image`` glyph's source as a 2-D float64 array."""
    flat = model(driver, source, "Array.from(m.data.image[0])")
    shape = model(driver, source, "m.data.image[0].shape ?? [m.data.image[0].length]")
    return np.array([np.nan if v is None else v for v in flat], np.float64).reshape(shape)


def screen_point(driver, plot, x, y):
    """Where data coordinates ``(x, y)`` of figure ``plot`` are in the window (pixels), from
    the plot's own scales, after scrolling the figure into view."""
    driver.execute_script(FIND_VIEW + "view.el.scrollIntoView({block: 'center'});", plot)
    time.sleep(0.2)
    return driver.execute_script(FIND_VIEW + """
        const box = view.el.getBoundingClientRect();
        return [box.left + view.frame.x_scale.compute(arguments[1]),
                box.top + view.frame.y_scale.compute(arguments[2])];""", plot, x, y)


def click_at(driver, plot, x, y):
    """A real mouse click on figure ``plot`` at data coordinates ``(x, y)``."""
    click_screen(driver, *screen_point(driver, plot, x, y))


def click_screen(driver, sx, sy):
    """A real pointer move to window pixel ``(sx, sy)`` and a click there."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(sx)), int(round(sy)))
    actions.pointer_action.click()
    actions.perform()
    ActionChains(driver).reset_actions()


def requested_urls(driver):
    """Every URL the page loaded (the document and its resources)."""
    return driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource')"
        ".map(e => e.name))")


def screenshot(driver, path, colours=128):
    """Save the page as a small palette PNG at ``path``."""
    from PIL import Image

    png = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    png = png.quantize(colours, method=Image.Quantize.MEDIANCUT)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    png.save(path, optimize=True)
    return Path(path)


def make_procdata(path, shape=(3, 4), snake=True, nphi=4, seed=0):
    """A small proc_data file written through the store: sample ``grid`` (a snaking raster
    ``shape`` with q-φ maps, I(q), attributes ``transmission`` and ``peak`` and their maps)
    and sample ``line`` (one row of 5 points).  The q grid has two segments."""
    from ptyprep.saxs import store as W
    from ptyprep.saxs.maps import attr_to_map
    from ptyprep.saxs.qgrid import make_qgrid

    rng = np.random.default_rng(seed)
    qgrid = make_qgrid((0.01, 0.05, 0.01), (0.5, 0.8, 0.1))
    with h5py.File(path, "w") as f:
        W.init_root(f, [], qgrid, nphi)
        for sn, sh, sk in (("grid", shape, snake), ("line", (1, 5), False)):
            n = sh[0] * sh[1]
            slow, fast = 10.0 * np.arange(sh[0]), 0.5 + 0.25 * np.arange(sh[1])
            W.write_sample(f, sn, "none", {}, {
                "shape": list(sh), "snake": sk, "n_frames": n, "slow_motor": "theta",
                "fast_motor": "x", "slow_positions": slow.tolist(),
                "fast_positions": fast.tolist(), "prec": 0.001})
            qphi = rng.random((n, nphi, len(qgrid))).astype(np.float32) + 0.5
            qphi[:, 0, 1] = np.nan
            W.write_rows(W.create_qphi(f, sn, n, qgrid, nphi), 0, qphi)
            W.write_rows(W.create_iq(f, sn, n, qgrid), 0, np.nanmean(qphi, axis=1))
            for name in ("transmission", "peak"):
                values = rng.random(n)
                W.write_attr(f, sn, name, values)
                W.write_map(f, sn, name, attr_to_map(values, sh, sk), slow, fast, "theta", "x")
    return Path(path)
