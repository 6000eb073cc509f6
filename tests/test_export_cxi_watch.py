"""``ptyprep watch`` grows a CXI file beside a growing ``.ptyd`` (format = ["ptyd", "cxi"]).

The grown file is compared with ``ptyprep export`` of the finished ``.ptyd`` (the same
arrays: its frames are a virtual dataset over the ``.ptyd``'s part files), also while the
scan is acquired (a consistent prefix) and under a real ``mpiexec -n 2``.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import ptyprep

README = Path(__file__).resolve().parents[1] / "README.md"
PY = sys.executable


def live_recipe(folder, formats='["ptyd", "cxi"]'):
    """The README's on-the-fly recipe, writing ``formats``."""
    text = README.read_text()
    start = text.index("<!-- run: file live.toml -->")
    block = text[start:].split("```")[1].split("\n", 1)[1]
    block = block.replace('save = "link"', f'save = "link"\nformat = {formats}')
    (folder / "live.toml").write_text(block)
    return folder / "live.toml"


def acquire(folder, frames, rate):
    return subprocess.Popen([PY, "-m", "ptyprep.acquire", "hdf5", str(folder / "scan_0042.h5"),
                             "--frames", str(frames), "--rate", str(rate)])


def read_cxi(path):
    with h5py.File(path, "r") as f:
        out = {"data": f["entry_1/data_1/data"][()],
               "translation": f["entry_1/sample_1/geometry_1/translation"][()],
               "mask": f["entry_1/instrument_1/detector_1/mask"][()],
               "probe": f["entry_1/image_1/data"][()], "object": f["entry_1/image_2/data"][()],
               "indexes": f["entry_1/ptychodus/probe_position_indexes"][()],
               "energy": f["entry_1/instrument_1/source_1/energy"][()]}
        complete = int(f["entry_1/ptyprep/complete"][()]) if "entry_1/ptyprep" in f else None
        virtual = f["entry_1/instrument_1/detector_1/data"].is_virtual
    return out, complete, virtual


def assert_same(a, b):
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_watch_grows_the_cxi_file_that_export_writes(tmp_path):
    recipe = live_recipe(tmp_path)
    acq = acquire(tmp_path, 100, 200)
    done = subprocess.run([PY, "-m", "ptyprep", "watch", str(recipe), "--idle-timeout", "10",
                           "--poll", "0.1"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert acq.wait(timeout=60) == 0
    assert done.returncode == 0, done.stderr
    grown, complete, virtual = read_cxi(tmp_path / "prepared" / "scan_0042.cxi")
    assert complete == 1 and virtual
    ptyprep.export(tmp_path / "prepared" / "scan_0042.ptyd", "cxi", out=tmp_path / "export.cxi")
    exported, _, virtual = read_cxi(tmp_path / "export.cxi")
    assert not virtual
    assert_same(exported, grown)
    assert len(grown["data"]) == 100
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir() if "cxi" in p.name) == \
        ["scan_0042.cxi"]                  # no temporary left


def test_a_cxi_file_seen_during_the_scan_is_a_consistent_prefix(tmp_path):
    recipe = live_recipe(tmp_path)
    acq = acquire(tmp_path, 400, 60)
    daemon = subprocess.Popen([PY, "-m", "ptyprep", "watch", str(recipe), "--idle-timeout",
                               "20", "--poll", "0.1"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    cxi = tmp_path / "prepared" / "scan_0042.cxi"
    deadline = time.monotonic() + 60
    while not cxi.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    seen, complete, _ = read_cxi(cxi)     # opened while the watch goes on
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    acq.kill()
    acq.wait()
    assert daemon.returncode == 128 + signal.SIGTERM, err
    assert complete == 0 and 0 < len(seen["data"]) < 400
    scan = ptyprep.read_ptyd(tmp_path / "prepared" / "scan_0042.ptyd")
    n = len(seen["data"])
    np.testing.assert_array_equal(seen["data"], scan.data[:n])
    np.testing.assert_array_equal(seen["indexes"], np.arange(n))
    np.testing.assert_array_equal(seen["translation"][:, :2], scan.positions[:n, ::-1])


def test_ptychodus_reads_the_grown_cxi_file(tmp_path):
    pytest.importorskip("ptychodus.plugins.cxi_file", reason="ptychodus not installed (interop)")
    from ptychodus.plugins.cxi_file import CXIDiffractionFileReader, CXIProductFileIO

    recipe = live_recipe(tmp_path)
    acq = acquire(tmp_path, 64, 300)
    done = subprocess.run([PY, "-m", "ptyprep", "-q", "watch", str(recipe), "--idle-timeout",
                           "10", "--poll", "0.1"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert acq.wait(timeout=60) == 0 and done.returncode == 0, done.stderr
    path = tmp_path / "prepared" / "scan_0042.cxi"
    scan = ptyprep.read_ptyd(tmp_path / "prepared" / "scan_0042.ptyd")
    patterns = np.concatenate([a.get_patterns() for a in CXIDiffractionFileReader().read(path)])
    np.testing.assert_array_equal(patterns, scan.data)
    positions = CXIProductFileIO().read(path).probe_positions
    np.testing.assert_array_equal(positions.get_coordinates_x_m(), scan.positions[:, 1])
    np.testing.assert_array_equal(positions.get_coordinates_y_m(), scan.positions[:, 0])


def test_watch_under_mpi_grows_the_same_cxi_file(tmp_path, run_mpi):
    recipe = live_recipe(tmp_path)
    acq = acquire(tmp_path, 100, 300)
    done = run_mpi(2, ["-m", "ptyprep", "-q", "watch", recipe, "--idle-timeout", "10", "--poll",
                       "0.1"], cwd=tmp_path, timeout=120)
    assert acq.wait(timeout=60) == 0
    assert done.returncode == 0, done.stderr
    grown, complete, _ = read_cxi(tmp_path / "prepared" / "scan_0042.cxi")
    ptyprep.export(tmp_path / "prepared" / "scan_0042.ptyd", "cxi", out=tmp_path / "export.cxi")
    assert complete == 1
    assert_same(read_cxi(tmp_path / "export.cxi")[0], grown)


@pytest.mark.parametrize("formats, said", [
    ('["ptyd", "ptylab"]', "ptyprep watch grows 'ptylab' only when it leads; output.format "
                           "names ['ptyd', 'ptylab']: watch the first and export the others "
                           "after the scan"),
    ('["cxi"]', "ptyprep watch grows a CXI file beside a growing .ptyd: name output.format = "
                "['ptyd', 'cxi']"),
])
def test_what_watch_cannot_grow_is_one_line(tmp_path, formats, said):
    recipe = live_recipe(tmp_path, formats)
    done = subprocess.run([PY, "-m", "ptyprep", "watch", str(recipe), "--idle-timeout", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"ptyprep: error: {said}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.toml"]
