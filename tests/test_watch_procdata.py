"""ptyprep watch for format = "procdata": a growing scanning-SAXS raster, kill -9, restart.

The acquisition is a real subprocess (``python -m ptyprep.acquire saxs``) growing
one SWMR file with two detectors, monitors and motor positions of a snaking 6×8
raster; the daemon is a real subprocess killed with SIGKILL at random moments (one
of them between writing the next version of the file and renaming it over the
published one) and restarted; a reader thread opens the published file the whole
time.  The end result must equal a one-shot ``ptyprep run`` of the finished scan.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from watch_helpers import PollingReader, toml_value, wait_for

import ptyprep
from ptyprep.acquire import SAXS_RASTER, acquire_saxs, saxs_setup, saxs_source_options
from ptyprep.errors import OutputError, RecipeError
from ptyprep.engine.follow import watch
from ptyprep.engine.follower import PART_DELAY_ENV

PY = sys.executable
CHUNK = 5
N = SAXS_RASTER[0] * SAXS_RASTER[1]
MAPS = ["transmission", "absorption", "int_saxs", "int_waxs", "hop"]


def write_recipe(folder, marker=False, output=None, saxs=None, name="r.toml"):
    dets = saxs_setup(folder)
    tables = {
        "source": saxs_source_options("raw.h5", marker=marker),
        "output": {"format": "procdata", "dfile": "out/an.h5", "chunk_frames": CHUNK,
                   **(output or {})},
        "saxs": {"sample": "fib", "qgrid": [[0.01, 0.09, 0.005], [0.5, 1.5, 0.05]], "nphi": 24,
                 "errors": True, "iphi_qrange": [0.02, 0.06], "detectors": dets,
                 "attrs": [{"name": "int_saxs", "func": "get_roi",
                            "kwargs": {"qphirange": [0.02, 0.06, -180, 180]}},
                           {"name": "int_waxs", "func": "iq_mean", "data_key": "Iq",
                            "kwargs": {"qrange": [0.9, 1.1]}},
                           {"name": "hop", "func": "hop", "kwargs": {"xrange": [0.02, 0.06]}},
                           {"name": "iphi_peak", "func": "iphi_mean", "data_key": "qphi",
                            "kwargs": {"qrange": [0.02, 0.06], "phirange": [-30, 30]}}],
                 "maps": MAPS, "tomo": ["absorption", "int_saxs"], **(saxs or {})}}
    text = "".join(f"[{t}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in tab.items())
                   for t, tab in tables.items())
    path = folder / name
    path.write_text(text)
    return path


def acquire(folder, rate, *flags):
    return subprocess.Popen([PY, "-m", "ptyprep.acquire", "saxs", str(folder / "raw.h5"),
                             "--rate", str(rate), *flags])


def daemon(recipe, *flags, delay=0.0):
    env = dict(os.environ, **({PART_DELAY_ENV: str(delay)} if delay else {}))
    return subprocess.Popen([PY, "-m", "ptyprep", "watch", str(recipe), "--poll", "0.05", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def published_frames(path):
    if not path.exists():
        return 0
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["watch"])["frames_published"]


def one_shot(recipe):
    ptyprep.run(ptyprep.load_recipe(recipe, overrides={"output.dfile": "ref/an.h5"}))
    return recipe.parent / "ref" / "an.h5"


def contents(path):
    """``({dataset path: value}, {(object, attribute): value})`` of a whole HDF5 file."""
    data, attrs = {}, {}
    with h5py.File(path, "r") as f:
        attrs.update({("/", k): v for k, v in f.attrs.items()})

        def visit(name, obj):
            attrs.update({(name, k): v for k, v in obj.attrs.items()})
            if isinstance(obj, h5py.Dataset):
                data[name] = obj[()]

        f.visititems(visit)
    return data, attrs


def assert_same_procdata(path, ref):
    """Every dataset and attribute of the one-shot ``ref`` (q-φ, Iq, err, Iphi, attrs, maps,
    tomograms, scan record) is in ``path`` with the same value; only @watch/@complete are extra."""
    got, got_attrs = contents(path)
    want, want_attrs = contents(ref)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert set(got_attrs) - set(want_attrs) == {("/", "watch"), ("/", "complete")}
    for key, value in want_attrs.items():
        np.testing.assert_array_equal(got_attrs[key], value, err_msg=str(key))
    with h5py.File(path, "r") as f:
        state = json.loads(f.attrs["watch"])
        assert f.attrs["complete"] == 1 and state["complete"] and state["frames_published"] == N
    return state


class Reader(PollingReader):
    """Opens the published file again and again; every look must be a consistent prefix."""

    def look(self):
        with h5py.File(self.path, "r") as f:
            state = json.loads(f.attrs["watch"])
            sn = state["sample"]
            qphi = f[f"{sn}/qphi/merged/d"]
            k = int(qphi.attrs["frames_done"])
            assert k == state["frames_published"] and k % CHUNK == 0 or k == N
            cube = qphi[()]
            assert cube.shape[0] == N
            assert np.isfinite(cube[:k]).any(axis=(1, 2)).all(), "a published frame is empty"
            assert np.isnan(cube[k:]).all(), "a frame past frames_done holds data"
            for name in ("Iq/merged", "qphi/merged/err"):
                rows = f[f"{sn}/{name}"][()]
                assert np.isfinite(rows[:k]).reshape(k, -1).any(axis=1).all()
                assert np.isnan(rows[k:]).all()
            lengths = {a: len(f[f"{sn}/attrs/{a}"]) for a in f[f"{sn}/attrs"]}
            assert set(lengths.values()) == {k}, lengths
            assert len(f[f"{sn}/Iphi/merged"]) == k
            nan_cells = None
            if f"{sn}/maps" in f:
                shapes = {m: f[f"{sn}/maps/{m}/d"].shape for m in f[f"{sn}/maps"]}
                assert set(shapes) == set(MAPS) and set(shapes.values()) == {SAXS_RASTER}, shapes
                tm = f[f"{sn}/maps/transmission/d"][()]
                nan_cells = int(np.isnan(tm).sum())
                assert nan_cells == N - state["maps_frames"], (nan_cells, state)
            sums = np.nansum(cube[:k].reshape(k, -1).astype(np.float64), axis=1)
            return {"k": k, "maps": state["maps_frames"], "nan": nan_cells,
                    "complete": bool(state["complete"]), "sums": sums}

    def check(self, ref):
        self.finish()
        with h5py.File(ref, "r") as f:
            cube = f["fib/qphi/merged/d"][()]
        want = np.nansum(cube.reshape(N, -1).astype(np.float64), axis=1)
        for look in self.looks:  # every prefix seen holds the final frames, none twice or changed
            np.testing.assert_array_equal(look["sums"], want[:look["k"]])
        return self.looks


# -- kill -9 and restart -------------------------------------------------------------------------
def test_killed_and_restarted_equals_one_shot(tmp_path):
    rng = random.Random(11)
    recipe = write_recipe(tmp_path)
    published = tmp_path / "out" / "an.h5"
    writer = acquire(tmp_path, 6.0, "--no-marker")  # ends by count: the raster has 48 frames
    reader = Reader(published)
    reader.start()
    try:
        _kill_restart_compare(tmp_path, recipe, published, writer, reader, rng)
    finally:
        reader.done.set()  # h5py in a thread still running at interpreter exit can deadlock
        reader.join(5)
        writer.kill()


def _kill_restart_compare(tmp_path, recipe, published, writer, reader, rng):
    out = published.parent
    # 1: between writing the next version and renaming it over the published file
    d = daemon(recipe, "--maps-every", "2", delay=0.3)
    wait_for(lambda: published.exists() and (out / ".an.h5.partial").exists())
    kill(d)
    # 2, 3: at random moments once this daemon has published something
    for _ in range(2):
        before = published_frames(published)
        d = daemon(recipe, "--maps-every", "2", delay=0.02)
        wait_for(lambda: published_frames(published) > before)
        time.sleep(rng.uniform(0.0, 0.4))
        kill(d)
    assert published_frames(published) < N  # the last daemon still has work to do
    d = daemon(recipe, "--maps-every", "2")
    text, err = d.communicate(timeout=60)
    assert d.returncode == 0, err
    assert "complete" in text and "resuming" in err
    assert writer.wait(30) == 0
    assert not [p.name for p in out.iterdir() if p.name.endswith((".partial", ".lock"))]
    state = assert_same_procdata(published, one_shot(recipe))
    assert state["end_reason"] == "count" and state["maps_frames"] == N
    looks = reader.check(tmp_path / "ref" / "an.h5")
    assert max(x["k"] for x in looks) == N and looks[-1]["complete"]
    # maps were refreshed while the scan was acquired: NaN where frames were missing
    partial_maps = {x["maps"] for x in looks if x["nan"] and not x["complete"]}
    assert partial_maps and all(0 < m < N for m in partial_maps)
    status = json.loads((out / "an.h5.status.json").read_text())
    assert status["state"] == "complete" and status["frames_published"] == N


def test_two_ranks_killed_and_restarted(tmp_path):
    """mpiexec -n 2: ranks share each chunk; the whole job is killed once and restarted."""
    mpiexec = os.path.join(os.path.dirname(PY), "mpiexec")
    if not os.path.exists(mpiexec):
        pytest.skip("no mpiexec next to the interpreter")
    recipe = write_recipe(tmp_path, marker=True)
    published = tmp_path / "out" / "an.h5"
    cmd = [mpiexec, "-n", "2", PY, "-m", "mpi4py", "-m", "ptyprep", "watch", str(recipe),
           "--poll", "0.05", "--maps-every", "3"]
    writer = acquire(tmp_path, 12.0)
    try:
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        wait_for(lambda: published_frames(published) >= 2 * CHUNK)
        os.killpg(job.pid, signal.SIGKILL)  # mpiexec and both ranks at once
        job.wait()
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        text, err = job.communicate(timeout=60)
        assert job.returncode == 0, err
        assert writer.wait(30) == 0
    finally:
        writer.kill()
    assert "resuming" in err and "complete" in text
    assert_same_procdata(published, one_shot(recipe))


# -- in process: the end by marker, refusals ---------------------------------------------------
@pytest.fixture(scope="module")
def short_scan(tmp_path_factory):
    """A finished raw file whose acquisition stopped after 40 of 48 frames (marker set)."""
    folder = tmp_path_factory.mktemp("short")
    acquire_saxs(folder / "raw.h5", num_frames=40, rate_hz=0)
    return folder


def test_marker_ends_a_short_scan(short_scan, tmp_path):
    recipe = ptyprep.load_recipe(write_recipe(short_scan, marker=True),
                                 overrides={"output.dfile": str(tmp_path / "an.h5")})
    result = watch(recipe, poll_s=0.01, maps_every=100)
    assert result["complete"] and result["frames"] == 40 and result["end_reason"] == "marker"
    with h5py.File(tmp_path / "an.h5", "r") as f:
        state = json.loads(f.attrs["watch"])
        assert state["maps_frames"] == 40 and state["frames_expected"] == N
        assert f["fib/qphi/merged/d"].attrs["frames_done"] == 40
        assert np.isnan(f["fib/qphi/merged/d"][40:]).all()
        for name in MAPS:  # the 8 points never measured stay NaN
            assert np.isnan(f[f"fib/maps/{name}/d"][()]).sum() == N - 40
        assert "tomo" in f["overall"]
    assert not (tmp_path / "an.h5.lock").exists()


def test_refusals(short_scan, tmp_path):
    path = write_recipe(short_scan, marker=True)
    out = {"output.dfile": str(tmp_path / "an.h5")}
    for extra, match in (({"saxs.background": "blank"}, "second sample"),
                         ({"source.name": "nsls2-lix"}, "LiX raw files")):
        with pytest.raises(RecipeError, match=match):
            watch(ptyprep.load_recipe(path, overrides={**out, **extra}))
    recipe = ptyprep.load_recipe(path, overrides=out)
    with pytest.raises(RecipeError, match="maps-every"):
        watch(recipe, maps_every=0)
    assert not (tmp_path / "an.h5").exists()
    from ptyprep.engine.lock import OutputLock

    lock = OutputLock(tmp_path / "an.h5").acquire()
    with pytest.raises(OutputError, match="another ptyprep watch"):
        watch(recipe, poll_s=0.01)
    lock.release()
    assert watch(recipe, poll_s=0.01)["complete"]
    with pytest.raises(OutputError, match="complete scan"):
        watch(recipe, poll_s=0.01)
    with pytest.raises(OutputError, match="different recipe"):
        watch(ptyprep.load_recipe(path, overrides={**out, "saxs.nphi": 12}), poll_s=0.01)
    again = ptyprep.load_recipe(path, overrides={**out, "output.overwrite": True})
    assert watch(again, poll_s=0.01)["frames"] == 40


def test_publish_due():
    from ptyprep.saxs.follow import publish_due

    assert publish_due(5.0, None, 0.0)                      # nothing published yet
    assert not publish_due(10.0, 9.0, 0.5, factor=4)        # 1 s after a 0.5 s publish
    assert publish_due(11.0, 9.0, 0.5, factor=4)            # 2 s: 4 × the cost has passed
    assert publish_due(9.0, 9.0, 0.0, factor=4)             # free publishes: every chunk


def _commits(monkeypatch):
    """Frames of the published file at every publish of the daemon (rank 0)."""
    from ptyprep.saxs import follow as wp

    seen, real = [], wp.ProcdataFollower._commit

    def spy(self):
        pending = self.pending
        real(self)
        if pending:
            seen.append(self.published)

    monkeypatch.setattr(wp.ProcdataFollower, "_commit", spy)
    return seen


def test_costly_publishes_are_spaced_and_change_nothing(short_scan, tmp_path, monkeypatch):
    """A publish copies and fsyncs the whole file: when that is slow, chunks accumulate in the
    private copy between publishes; the published file ends the same."""
    from ptyprep.saxs import follow as wp

    path = write_recipe(short_scan, marker=True)
    commits, results = _commits(monkeypatch), {}
    for factor in (0.0, 1e9):
        monkeypatch.setattr(wp, "PUBLISH_COST_FACTOR", factor)
        out = tmp_path / f"f{factor:g}" / "an.h5"
        recipe = ptyprep.load_recipe(path, overrides={"output.dfile": str(out)})
        assert watch(recipe, poll_s=0.01, maps_every=3)["frames"] == 40
        results[factor] = (list(commits), out)
        commits.clear()
    # and publishing nothing before the end (the private copy starts the file)
    monkeypatch.setattr(wp, "publish_due", lambda *args, **kwargs: False)
    out = tmp_path / "end_only" / "an.h5"
    recipe = ptyprep.load_recipe(path, overrides={"output.dfile": str(out)})
    assert watch(recipe, poll_s=0.01, maps_every=3)["frames"] == 40
    assert commits == [40]
    assert_same_contents(out, results[0.0][1])
    assert results[0.0][0] == list(range(CHUNK, 41, CHUNK))   # every chunk
    assert results[1e9][0] == [CHUNK, 40]                       # the first one, then the end
    assert_same_contents(results[1e9][1], results[0.0][1])


def assert_same_contents(path, ref):
    """Same datasets and attributes (the @watch JSON aside) in two watch outputs."""
    got, want = contents(path), contents(ref)
    assert got[0].keys() == want[0].keys() and got[1].keys() == want[1].keys()
    for key, value in want[0].items():
        np.testing.assert_array_equal(got[0][key], value, err_msg=key)
    for key, value in want[1].items():
        if key != ("/", "watch"):
            np.testing.assert_array_equal(got[1][key], value, err_msg=str(key))
