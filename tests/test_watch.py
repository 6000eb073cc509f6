"""ptyprep watch: following a growing scan, surviving kill -9, ending, locking, recovering.

The acquisition is a real subprocess (``python -m ptyprep.acquire``) writing an
HDF5 file in SWMR mode (or a folder of frames) at a controlled rate, with frame
*i* filled with *i*; the daemon is a real subprocess killed with SIGKILL at
random moments (one of them inside a part-file write) and restarted; a reader
thread polls the output the whole time.  The end result must equal a one-shot
``ptyprep run`` with ``save = "link"`` of the finished raw data.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest
from watch_helpers import PollingReader, toml_value, wait_for

import ptyprep
from ptyprep.errors import OutputError, RecipeError
from ptyprep.layout import ptyd as L
from ptyprep.engine.follow import watch
from ptyprep.engine.follower import PART_DELAY_ENV
from ptyprep.engine.lock import OutputLock, recipe_key
from ptyprep.ptycho.publish import recover
from ptyprep.layout.files import part_name
from ptyprep.ptycho.publish import publish_master, read_links

PY = sys.executable
CHUNK = 7


# -- helpers -------------------------------------------------------------------------------
def write_recipe(path, source, prep=None, output=None):
    tables = {"source": source,
              "prep": {"shape": 64, "center": "auto", "saturation": 1e5, **(prep or {})},
              "output": {"dfile": "out/scan.ptyd", "chunk_frames": CHUNK, **(output or {})}}
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                          for k, v in t.items() if v is not None)
                   for name, t in tables.items())
    path.write_text(text)
    return path


def hdf5_source(tmp_path, layout="hdf5", **extra):
    from ptyprep.acquire import source_options

    name = "raw" if layout == "files" else "raw.h5"
    return {**source_options(layout, tmp_path / name), **extra}


def acquire(tmp_path, layout="hdf5", frames=60, rate=40.0, *args):
    name = "raw" if layout == "files" else "raw.h5"
    return subprocess.Popen([PY, "-m", "ptyprep.acquire", layout, str(tmp_path / name),
                             "--kind", "index", "--frames", str(frames), "--rate", str(rate),
                             *map(str, args)])


def daemon(recipe, *flags, part_delay=0.0):
    env = dict(os.environ, **({PART_DELAY_ENV: str(part_delay)} if part_delay else {}))
    return subprocess.Popen([PY, "-m", "ptyprep", "watch", str(recipe), "--poll", "0.05", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out, err


def one_shot(recipe_path, tmp_path, ranks=None):
    """``ptyprep run`` of the finished scan with save = "link", into ref/."""
    recipe = ptyprep.load_recipe(recipe_path, overrides={"output.save": "link",
                                                         "output.dfile": "ref/scan.ptyd"})
    ptyprep.run(recipe)
    return tmp_path / "ref" / "scan.ptyd"


def assert_same_output(path, ref):
    got, want = ptyprep.read_ptyd(path), ptyprep.read_ptyd(ref)
    for key in ("data", "weights", "positions", "indices"):
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got["meta"].keys() == want["meta"].keys()
    for key in want["meta"]:
        np.testing.assert_array_equal(got["meta"][key], want["meta"][key], err_msg=key)
    np.testing.assert_array_equal(got["info"]["raw_center"], want["info"]["raw_center"])
    assert len(read_links(path)[2]) == len(read_links(ref)[2])  # same chunking
    assert got["info"]["complete"] == 1
    return got


class Reader(PollingReader):
    """Polls the output; every look must show meta and an in-order prefix 0..k-1."""

    def look(self):
        scan = ptyprep.read_ptyd(self.path)
        k = len(scan["indices"])
        assert scan["indices"].tolist() == list(range(k)), scan["indices"]
        assert scan["data"].shape[0] == scan["weights"].shape[0] == k
        assert scan["meta"]["num_frames"] >= k
        return (k, scan["data"].reshape(k, -1).sum(axis=1), int(scan["meta"]["num_frames"]),
                int(scan["info"].get("complete", 0)))

    def check(self, ref):
        self.finish()
        want = ptyprep.read_ptyd(ref)["data"]
        want = want.reshape(len(want), -1).sum(axis=1)
        for k, sums, _, _ in self.looks:  # every prefix seen holds the final frames
            np.testing.assert_array_equal(sums, want[:k])
        return [k for k, *_ in self.looks]


def no_tmp_left(folder):
    return not [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".publishing"))]


# -- kill -9 and restart ---------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["hdf5", "files"])
def test_killed_and_restarted_equals_one_shot(tmp_path, layout):
    rng = random.Random(4 if layout == "hdf5" else 5)
    recipe = write_recipe(tmp_path / "r.toml", hdf5_source(tmp_path, layout))
    out = tmp_path / "out"
    master = out / "scan.ptyd"
    writer = acquire(tmp_path, layout, 90, 30.0)
    reader = Reader(master)
    reader.start()
    kills = 0
    # 1: inside a part-file write (the part exists only as .tmp)
    d = daemon(recipe, part_delay=0.3)
    wait_for(lambda: out.exists() and any(p.name.startswith("scan.ptyd.part")
                                          and p.name.endswith(".tmp") for p in out.iterdir()))
    d.send_signal(signal.SIGKILL)
    d.wait()
    kills += 1
    # 2, 3: at random moments once something is published
    for _ in range(2):
        d = daemon(recipe, part_delay=0.05)
        wait_for(master.exists)
        time.sleep(rng.uniform(0.1, 0.8))
        d.send_signal(signal.SIGKILL)
        d.wait()
        kills += 1
    d = daemon(recipe)
    out_text, _ = finish(d)
    assert writer.wait(30) == 0
    assert "complete" in out_text and kills == 3
    assert no_tmp_left(out)
    ref = one_shot(recipe, tmp_path)
    scan = assert_same_output(master, ref)
    assert len(scan["indices"]) == 90 and scan["info"]["end_reason"] == "marker"
    looks = reader.check(ref)
    assert looks and max(looks) == 90
    # the length was unknown until the marker: readers were told to keep waiting, then 90
    assert L.NUM_FRAMES_UNKNOWN in {n for k, _, n, c in reader.looks if not c}
    assert {n for k, _, n, c in reader.looks} <= {L.NUM_FRAMES_UNKNOWN, 90}
    assert not (out / "scan.ptyd.lock").exists()


def test_eiger_master_data_files_appear_one_by_one(tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", hdf5_source(tmp_path, "eiger"))
    writer = acquire(tmp_path, "eiger", 45, 60.0, "--file-frames", 10)
    reader = Reader(tmp_path / "out" / "scan.ptyd")
    reader.start()
    finish(daemon(recipe))
    assert writer.wait(30) == 0
    ref = one_shot(recipe, tmp_path)
    assert_same_output(tmp_path / "out" / "scan.ptyd", ref)
    assert max(reader.check(ref)) == 45


# -- the end of a scan ---------------------------------------------------------------------------
def test_end_by_count_announces_the_length(tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", hdf5_source(tmp_path, end_of_scan=None),
                          prep={"num_frames": 30})
    writer = acquire(tmp_path, "hdf5", 50, 60.0, "--no-marker")
    reader = Reader(tmp_path / "out" / "scan.ptyd")
    reader.start()
    finish(daemon(recipe))
    writer.wait(30)
    ref = one_shot(recipe, tmp_path)
    scan = assert_same_output(tmp_path / "out" / "scan.ptyd", ref)
    assert scan["info"]["end_reason"] == "count" and len(scan["indices"]) == 30
    reader.check(ref)
    assert {n for *_, n, _ in reader.looks} == {30}  # meta/num_frames known from the start


def test_stalled_writer_waits_then_timeout_closes(tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", hdf5_source(tmp_path))
    writer = acquire(tmp_path, "hdf5", 40, 100.0, "--stop-after", 10)  # holds the file open
    try:
        d = daemon(recipe, "--idle-timeout", "2")
        status = tmp_path / "out" / "scan.ptyd.status.json"
        wait_for(lambda: status.exists() and json.loads(status.read_text())["frames_seen"] == 10)
        time.sleep(0.5)
        state = json.loads(status.read_text())
        assert d.poll() is None  # still waiting for the writer
        assert state["state"] == "acquiring" and state["frames_published"] == CHUNK
        assert state["lag_frames"] == 10 - CHUNK and state["lag_s"] > 0
        _, err = finish(d)
    finally:
        writer.kill()
        writer.wait()
    assert "closed by timeout" in err
    scan = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    assert scan["indices"].tolist() == list(range(10))
    assert scan["meta"]["num_frames"] == 10 and scan["info"]["end_reason"] == "timeout"
    assert json.loads(status.read_text())["state"] == "complete"


def test_no_frames_before_timeout_is_an_error(tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", hdf5_source(tmp_path))  # raw.h5 never appears
    d = daemon(recipe, "--idle-timeout", "0.5")
    _, err = d.communicate(timeout=30)
    assert d.returncode == 2
    assert "no frame of the scan appeared" in err and "raw.h5" in err


# -- operability ---------------------------------------------------------------------------------
def test_sigterm_stops_cleanly_and_restart_continues(tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", hdf5_source(tmp_path))
    writer = acquire(tmp_path, "hdf5", 60, 40.0)
    master = tmp_path / "out" / "scan.ptyd"
    d = daemon(recipe, part_delay=0.2)
    wait_for(master.exists)
    d.send_signal(signal.SIGTERM)
    out, err = d.communicate(timeout=60)
    assert d.returncode == 128 + signal.SIGTERM, err     # not 0: the scan is not complete
    assert "stopped" in out and "stopping after the current chunk" in err
    assert no_tmp_left(tmp_path / "out")
    assert not (tmp_path / "out" / "scan.ptyd.lock").exists()
    status = json.loads((tmp_path / "out" / "scan.ptyd.status.json").read_text())
    assert status["state"] == "stopped"
    stopped_at = len(ptyprep.read_ptyd(master)["indices"])
    assert 0 < stopped_at < 60 and stopped_at % CHUNK == 0
    finish(daemon(recipe))
    writer.wait(30)
    assert_same_output(master, one_shot(recipe, tmp_path))


def test_lock_keeps_a_second_daemon_out(tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", {"name": "simulate", "num_frames": 12,
                                                "kind": "index"})
    lock = OutputLock(tmp_path / "out" / "scan.ptyd").acquire()
    try:
        d = daemon(recipe)
        _, err = d.communicate(timeout=30)
    finally:
        lock.release()
    assert d.returncode == 2
    assert f"another ptyprep watch (pid {os.getpid()})" in err
    assert not (tmp_path / "out" / "scan.ptyd").exists()
    finish(daemon(recipe))  # the lock is free again


# -- in-process: save modes, finished outputs, recovery --------------------------------------
def sim_recipe(tmp_path, **output):
    raw = {"source": {"name": "simulate", "num_frames": 23, "kind": "index"},
           "prep": {"shape": 64, "center": "auto", "saturation": 1e5},
           "output": {"dfile": "out/scan.ptyd", "chunk_frames": 5, **output}}
    return ptyprep.load_recipe(raw, base_dir=tmp_path)


def test_finished_source_equals_run_and_complete_output_is_kept(tmp_path):
    result = watch(sim_recipe(tmp_path), poll_s=0.01)
    assert result["complete"] and result["frames"] == 23 and result["end_reason"] == "count"
    ptyprep.run(sim_recipe(tmp_path, save="link", dfile="ref/scan.ptyd"))
    assert_same_output(tmp_path / "out" / "scan.ptyd", tmp_path / "ref" / "scan.ptyd")
    with pytest.raises(OutputError, match="complete scan"):
        watch(sim_recipe(tmp_path), poll_s=0.01)
    assert watch(sim_recipe(tmp_path, overwrite=True), poll_s=0.01)["frames"] == 23


def test_save_modes(tmp_path):
    with pytest.raises(RecipeError, match="save = 'link'"):
        watch(sim_recipe(tmp_path, save="merge"))
    watch(sim_recipe(tmp_path, save="append"), poll_s=0.01)  # the default: published as link
    assert len(read_links(tmp_path / "out" / "scan.ptyd")[2]) == 5


def test_other_recipe_is_not_continued(tmp_path):
    recipe = sim_recipe(tmp_path)
    watch(recipe, poll_s=0.01)
    meta, info, names = read_links(tmp_path / "out" / "scan.ptyd")
    info[L.COMPLETE] = np.int64(0)
    publish_master(tmp_path / "out" / "scan.ptyd", meta, info, names)
    with pytest.raises(OutputError, match="different recipe"):
        watch(sim_recipe(tmp_path, chunk_frames=4), poll_s=0.01)


def test_recover_discards_everything_after_the_complete_prefix(tmp_path):
    recipe = sim_recipe(tmp_path)
    dfile = tmp_path / "out" / "scan.ptyd"
    watch(recipe, poll_s=0.01)
    meta, info, names = read_links(dfile)
    info[L.COMPLETE] = np.int64(0)
    publish_master(dfile, meta, info, names)  # as if killed before the end record
    out = tmp_path / "out"
    (out / (names[4] + ".tmp")).write_bytes(b"half")           # a part being written
    (out / part_name(dfile, 5)).write_bytes(b"never linked")    # renamed, not linked
    (out / ".scan.ptyd.publishing").write_bytes(b"half master")
    os.remove(out / names[3])                                   # a link to a missing part
    key = recipe_key(dataclass_link(recipe).to_dict())
    resume = recover(dfile, key, 5, recipe.output.part_format, overwrite=False)
    assert resume.frames == 15 and resume.part_names == names[:3] and resume.republish
    np.testing.assert_allclose(resume.raw_center, info["raw_center"])
    # part 4 was complete but follows the gap: dropped and redone, like everything unlinked
    assert sorted(p.name for p in out.iterdir() if "part" in p.name) == names[:3]
    assert read_links(dfile)[2] == names[:3]  # no link left to what was dropped
    watch(recipe, poll_s=0.01)
    ptyprep.run(sim_recipe(tmp_path, save="link", dfile="ref/scan.ptyd"))
    assert_same_output(dfile, tmp_path / "ref" / "scan.ptyd")


def dataclass_link(recipe):
    import dataclasses

    return dataclasses.replace(recipe, output=dataclasses.replace(recipe.output, save="link"))


def test_stop_event_leaves_a_resumable_prefix(tmp_path):
    stop = threading.Event()
    stop.set()
    result = watch(sim_recipe(tmp_path), poll_s=0.01, stop=stop)
    assert not result["complete"] and result["frames"] == 0
    assert not (tmp_path / "out" / "scan.ptyd").exists()
    assert json.loads((tmp_path / "out" / "scan.ptyd.status.json").read_text())["state"] == \
        "stopped"


def test_reader_opens_master_while_daemon_publishes(tmp_path):
    """h5py readers with default file locking open every published master."""
    dfile = tmp_path / "m.ptyd"
    meta = {"num_frames": 3, "shape": [4, 4], "center": [2.0, 2.0], "psize": [1.0, 1.0],
            "energy": 1.0, "distance": 1.0}
    publish_master(dfile, meta, {}, [])
    with h5py.File(dfile, "r") as held:  # a reader holding the old version open
        publish_master(dfile, dict(meta, num_frames=5), {}, [])
        assert held["meta/num_frames"][()] == 3
        with h5py.File(dfile, "r") as fresh:
            assert fresh["meta/num_frames"][()] == 5


# -- following sources -------------------------------------------------------------------------
def test_hdf5_available_counts_frames_with_positions_and_sees_the_marker(tmp_path):
    from ptyprep.sources.hdf5 import HDF5Source

    path = tmp_path / "raw.h5"
    with h5py.File(path, "w", libver="latest") as h5:
        frames = h5.create_dataset("/entry/data/data", (0, 4, 4), maxshape=(None, 4, 4), dtype="u2")
        pos = h5.create_dataset("/entry/positions", (0, 2), maxshape=(None, 2), dtype="f8")
        marker = h5.create_dataset("/entry/end", data=0)
        h5.swmr_mode = True
        src = HDF5Source(str(path), positions="/entry/positions", end_of_scan="/entry/end")
        assert src.available() == (0, False)
        frames.resize(5, axis=0)
        frames[:] = np.arange(5)[:, None, None]
        frames.flush()
        pos.resize(3, axis=0)
        pos.flush()
        assert src.available() == (3, False)  # frames 3, 4 have no position yet
        assert src.read_positions().shape == (3, 2)
        np.testing.assert_array_equal(src.read_frames([2])[0], 2)
        pos.resize(5, axis=0)
        marker[()] = 1
        h5.flush()
        assert src.available() == (5, True)
        src.close()
    capped = HDF5Source(str(path), positions="/entry/positions", num_frames=4)
    assert capped.available() == (4, True)  # the known length is reached


def test_hdf5_eiger_frames_stop_at_the_first_missing_data_file(tmp_path):
    from ptyprep.sources.hdf5 import HDF5Source

    with h5py.File(tmp_path / "d1.h5", "w") as f:
        f["data"] = np.zeros((3, 4, 4), np.uint16)
    with h5py.File(tmp_path / "d3.h5", "w") as f:
        f["data"] = np.zeros((3, 4, 4), np.uint16)
    with h5py.File(tmp_path / "master.h5", "w") as f:
        for k in (1, 2, 3):
            f[f"/entry/data/data_{k:06d}"] = h5py.ExternalLink(f"d{k}.h5", "/data")
    src = HDF5Source(str(tmp_path / "master.h5"), frames="/entry/data")
    assert src.available() == (3, False)
    with h5py.File(tmp_path / "d2.h5", "w") as f:
        f["data"] = np.ones((3, 4, 4), np.uint16)
    assert src.available() == (9, False)


def test_files_available_needs_complete_files_and_position_lines(tmp_path):
    from ptyprep.sources.files import FilesSource

    src = FilesSource(pattern=str(tmp_path / "f_*.npy"), positions_file=str(tmp_path / "p.txt"),
                      end_of_scan=str(tmp_path / "done"))
    assert src.available() == (0, False)
    for i in range(3):
        np.save(tmp_path / f"f_{i}.npy", np.full((4, 4), i, np.uint16))
    (tmp_path / "p.txt").write_text("0 0\n1 1\n2 2")  # the last line is not finished
    assert src.available() == (2, False)
    with open(tmp_path / "p.txt", "a") as fh:
        fh.write("\n3 3\n")
    # a frame being written in place: its header and half of its data
    with open(tmp_path / "f_3.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<u2", "fortran_order": False,
                                         "shape": (4, 4)})
        fh.write(b"\0" * 8)
    assert src.available() == (3, False)
    np.testing.assert_array_equal(src.read_frames([2])[0], 2)
    (tmp_path / "done").touch()
    assert src.available() == (3, True)


def test_add_watch_arguments():
    import argparse

    from ptyprep.cli import add_watch_arguments, watch_options

    parser = add_watch_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--idle-timeout", "60", "--poll", "0.2", "--status", "s.json"])
    assert watch_options(args) == {"idle_timeout_s": 60.0, "poll_s": 0.2,
                                   "status_path": "s.json"}
    assert watch_options(parser.parse_args([])) == {"idle_timeout_s": None, "poll_s": 0.5,
                                                    "status_path": None}


def test_ptyprep_watch_command(tmp_path, cli):
    recipe = write_recipe(tmp_path / "r.toml", {"name": "simulate", "num_frames": 12,
                                                "kind": "index"})
    result = cli("watch", recipe)
    assert result.returncode == 0, result.stderr
    scan = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    assert scan["indices"].tolist() == list(range(12)) and scan["info"]["complete"] == 1
    assert not (tmp_path / "out" / "scan.ptyd.lock").exists()
    again = cli("watch", recipe)  # complete: refused like `run` over an existing output
    assert again.returncode == 2 and "already holds the complete scan" in again.stderr
    assert not (tmp_path / "out" / "scan.ptyd.lock").exists()    # no stale lock file
    appended = cli("watch", recipe, "--set", "output.save='append'", "--set",
                   "output.dfile='out/appended.ptyd'")
    assert appended.returncode == 0, appended.stderr
    said = [line for line in appended.stderr.splitlines() if "publishes in link mode" in line]
    assert len(said) == 1 and "output.save = 'append'" in said[0]
    merged = cli("watch", recipe, "--set", "output.save='merge'", "--set",
                 "output.dfile='out/merged.ptyd'")
    assert merged.returncode == 2
    assert merged.stderr.strip().splitlines() == [
        "ptyprep: error: ptyprep watch publishes each chunk as a part file (save = 'link'); "
        "output.save = 'merge' cannot be followed: set output.save = 'link'"]
