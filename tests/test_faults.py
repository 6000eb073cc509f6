"""Faults at run time: one line, the right exit status, and nothing left behind.

Real faults, injected: a gzip chunk overwritten in a real HDF5 file, a full disk (a 2 MiB
tmpfs, as root), a folder the user may not write (run as ``nobody`` with setpriv), a
reader that raises; under a real ``mpiexec -n 2`` where the fault is on one rank.
"""

import subprocess
import sys

import h5py
import numpy as np
import pytest
from fault_helpers import HDF5_RECIPE, corrupt_scan, error_lines, snapshot

import ptyprep


def write_recipe(folder, raw, dfile, name="r.toml", extra=""):
    path = folder / name
    path.write_text(HDF5_RECIPE.format(raw=raw, dfile=dfile) + extra)
    return path


def ptyprep_cmd(*args):
    return [sys.executable, "-m", "ptyprep", *map(str, args)]


def run_cli(*args, cwd=None):
    return subprocess.run(ptyprep_cmd(*args), cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# -- a damaged raw file under MPI -------------------------------------------------------------

@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_a_corrupt_chunk_under_mpi_ends_every_rank_and_leaves_nothing(run_mpi, tmp_path, save):
    raw = corrupt_scan(tmp_path / "raw.h5", bad=13)
    (tmp_path / "out").mkdir()
    recipe = write_recipe(tmp_path, raw, "out/x.ptyd")
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "run", recipe, "--set", f"output.save={save!r}"],
                   cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    # one line, with no MPI_Abort chatter: every rank ended by itself
    assert len(lines) == 1, lines
    assert lines[0].startswith("ptyprep: error: cannot read frame 13 of ")
    assert f"{str(raw)!r} dataset '/entry/data/data'" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []   # no part, no .tmp


def test_an_internal_error_on_one_rank_is_one_line_and_leaves_nothing(run_mpi, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "failing.py").write_text(FAILING_ON_RANK_1)
    (tmp_path / "r.toml").write_text(SIMULATED.format(source="failing-on-rank1"))
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "run", "r.toml"], cwd=tmp_path, timeout=60,
                   env={"PTYPREP_EXPERIMENTS": str(plugins)})
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert lines == ["ptyprep: error: rank 1 failed: RuntimeError: detector went away "
                     "(simulated)"], lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


SIMULATED = """\
[source]
name = "{source}"
num_frames = 40
kind = "index"
[prep]
shape = 32
[output]
dfile = "out/s.ptyd"
save = "link"
chunk_frames = 10
"""

FAILING_ON_RANK_1 = '''
import os
import ptyprep
from ptyprep.sources.simulate import SimulatedSource


class FailingOnRank1(SimulatedSource):
    def read_frames(self, indices, roi=None):
        if os.environ.get("PMI_RANK") == "1" and indices[0] >= 20:
            raise RuntimeError("detector went away (simulated)")
        return super().read_frames(indices, roi)


ptyprep.register_source("failing-on-rank1", FailingOnRank1)
'''


# -- --debug and --log-file ----------------------------------------------------------------------

def test_the_traceback_only_with_debug_and_always_in_the_log_file(tmp_path):
    raw = corrupt_scan(tmp_path / "raw.h5")
    recipe = write_recipe(tmp_path, raw, "out/x.ptyd")
    plain = run_cli("-q", "run", recipe)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(error_lines(plain.stderr)) == 1
    debug = run_cli("run", recipe, "--debug", "-q")     # options also after the command
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "OSError: Can't synchronously read data" in debug.stderr   # h5py's own error
    assert error_lines(debug.stderr)[-1] == error_lines(plain.stderr)[0]
    logged = run_cli("-q", "--log-file", tmp_path / "run.log", "run", recipe)
    assert error_lines(logged.stderr) == error_lines(plain.stderr)
    text = (tmp_path / "run.log").read_text()
    assert "Traceback (most recent call last)" in text and "cannot read frame 13" in text
    assert "prepared" in text or "INFO" in text or "ERROR" in text


def test_an_internal_error_is_one_line_that_says_how_to_see_more(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text(BROKEN_SOURCE)
    (tmp_path / "r.toml").write_text(SIMULATED.format(source="broken"))
    env_run = subprocess.run(ptyprep_cmd("-q", "run", "r.toml"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env=dict(__import__("os").environ, PTYPREP_EXPERIMENTS=str(plugins)))
    assert env_run.returncode == 1
    assert error_lines(env_run.stderr) == [
        "ptyprep: error: internal error: ZeroDivisionError: division by zero; rerun with "
        "--debug for the traceback and please report it"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


BROKEN_SOURCE = '''
import ptyprep
from ptyprep.sources.simulate import SimulatedSource


class Broken(SimulatedSource):
    def read_frames(self, indices, roi=None):
        if indices[0] >= 20:
            return 1 / 0
        return super().read_frames(indices, roi)


ptyprep.register_source("broken", Broken)
'''


# -- a full disk: the previous output stays as it was ------------------------------------------

def _previous_output(folder, tmp_path, save):
    """A finished small output in ``folder`` (the one a failing overwrite must keep)."""
    raw = corrupt_scan(tmp_path / "good.h5", bad=None, n=10)
    recipe = write_recipe(tmp_path, raw, folder / "x.ptyd", name="prev.toml",
                          extra="")
    done = run_cli("-q", "run", recipe, "--set", f"output.save={save!r}")
    assert done.returncode == 0, done.stderr
    return snapshot(folder)


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_a_full_disk_is_one_line_exit_1_and_keeps_the_previous_output(small_disk, tmp_path,
                                                                        save):
    before = _previous_output(small_disk, tmp_path, save)
    (tmp_path / "big.toml").write_text(BIG.format(dfile=small_disk / "x.ptyd", save=save))
    done = run_cli("-q", "run", tmp_path / "big.toml")
    assert done.returncode == 1, done.stderr
    assert error_lines(done.stderr) == [
        f"ptyprep: error: cannot write {str(small_disk / 'x.ptyd')!r}: No space left on device; "
        "free space there or set output.dfile on another file system (a previous output is "
        "left as it was)"]
    assert snapshot(small_disk) == before


def test_a_full_disk_under_mpi_in_link_mode(small_disk, tmp_path, run_mpi):
    before = _previous_output(small_disk, tmp_path, "link")
    (tmp_path / "big.toml").write_text(BIG.format(dfile=small_disk / "x.ptyd", save="link"))
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "run", tmp_path / "big.toml"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "No space left on device" in lines[0], lines
    assert snapshot(small_disk) == before


BIG = """\
[source]
name = "simulate"
num_frames = 200
frame_shape = [256, 256]
[prep]
shape = 256
center = "geometric"
[output]
dfile = "{dfile}"
save = "{save}"
compression = "none"
chunk_frames = 20
overwrite = true
"""


# -- overwrite replaces only when done ----------------------------------------------------------

def test_a_failed_overwrite_keeps_the_previous_link_output_and_its_parts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = _previous_output(out, tmp_path, "link")
    assert sorted(before) == ["x.ptyd", "x.ptyd.part000", "x.ptyd.part001"]
    raw = corrupt_scan(tmp_path / "raw.h5")
    recipe = write_recipe(tmp_path, raw, out / "x.ptyd")
    done = run_cli("-q", "run", recipe, "--set", "output.save='link'",
                   "--set", "output.overwrite=true")
    assert done.returncode == 2 and "cannot read frame 13" in done.stderr
    assert snapshot(out) == before
    scan = ptyprep.read_ptyd(out / "x.ptyd")
    assert scan["data"].shape == (10, 64, 64)


# -- an output folder the user may not write --------------------------------------------------

def test_an_output_folder_without_permission_is_one_line(as_user, open_folder):
    raw = corrupt_scan(open_folder / "raw.h5", bad=None, n=10)
    locked = open_folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    recipe = write_recipe(open_folder, raw, locked / "x.ptyd")
    open_folder.joinpath("r.toml").chmod(0o644)
    raw.chmod(0o644)
    for command in ("validate", "run", "watch"):
        done = as_user(ptyprep_cmd("-q", command, recipe), cwd=open_folder)
        assert done.returncode == 2, done.stderr
        assert error_lines(done.stderr) == [
            f"ptyprep: error: output directory {str(locked)!r} is not writable; choose "
            "another output.dfile"]
    assert list(locked.iterdir()) == []
    # a folder that cannot be created because a file stands in its place
    (open_folder / "afile").write_text("")
    done = run_cli("-q", "run", recipe, "--set", f"output.dfile='{open_folder}/afile/x.ptyd'")
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"ptyprep: error: cannot create the output folder: {str(open_folder / 'afile')!r} is "
        "a file; choose another output.dfile"]


def test_a_scanning_saxs_watch_into_a_folder_without_permission_is_one_line(as_user,
                                                                           open_folder):
    from ptyprep.acquire import acquire_saxs, saxs_setup, saxs_source_options

    acquire_saxs(open_folder / "raw.h5", rate_hz=0)
    detectors = saxs_setup(open_folder)
    locked = open_folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    recipe = ptyprep.load_recipe({
        "source": saxs_source_options(open_folder / "raw.h5", marker=True),
        "output": {"format": "procdata", "dfile": str(locked / "an.h5")},
        "saxs": {"qgrid": [[0.01, 0.15, 0.005]], "nphi": 12, "detectors": detectors[:1]}},
        base_dir=open_folder)
    path = open_folder / "saxs.toml"
    path.write_text(toml_of(recipe.to_dict()))
    for item in open_folder.iterdir():
        if item.is_file():
            item.chmod(0o644)
    for command in ("validate", "run", "watch"):
        done = as_user(ptyprep_cmd("-q", command, path), cwd=open_folder)
        assert done.returncode == 2, done.stderr
        assert error_lines(done.stderr)[-1:] == [
            f"ptyprep: error: output directory {str(locked)!r} is not writable; choose "
            "another output.dfile"], done.stderr
    assert list(locked.iterdir()) == []


def toml_of(tables):
    """TOML text of a recipe dict (tables of scalars, lists and inline tables)."""
    import json

    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items()
                  if v is not None and v != [] and v != () and v != ""]
    return "\n".join(lines) + "\n"


# -- bad values in the raw file ----------------------------------------------------------------

def _raw_with(path, frames, psize=75e-6, energy=8.0):
    with h5py.File(path, "w") as f:
        f["entry/data/data"] = frames
        f["entry/positions"] = np.zeros((len(frames), 2))
        f["entry/psize"] = psize
        f["entry/energy"] = energy
    return path


GEOMETRY_FROM_FILE = """\
[source]
name = "hdf5"
path = "raw.h5"
frames = "/entry/data/data"
positions = "/entry/positions"
energy_keV = "/entry/energy"
distance_m = 5.0
psize_m = "/entry/psize"
[prep]
shape = 16
center = "geometric"
[output]
dfile = "out/x.ptyd"
"""


@pytest.mark.parametrize("psize, energy, match", [
    (0.0, 8.0, "pixel size [0.0, 0.0] m (read for "),
    (-75e-6, 8.0, "pixel size [-7.5e-05, -7.5e-05] m (read for "),
    (75e-6, np.nan, "energy nan keV (read for "),
    (75e-6, np.inf, "energy inf keV (read for "),
])
def test_geometry_from_the_raw_file_must_be_finite_and_positive(tmp_path, psize, energy, match):
    _raw_with(tmp_path / "raw.h5", np.ones((4, 20, 20), np.uint16), psize, energy)
    (tmp_path / "r.toml").write_text(GEOMETRY_FROM_FILE)
    done = run_cli("-q", "run", "r.toml", cwd=tmp_path)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and match in lines[0], lines
    assert "is not finite and positive" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", ["bool", "complex64", "S4"])
def test_frames_that_are_not_counts_are_refused(tmp_path, dtype):
    _raw_with(tmp_path / "raw.h5", np.ones((4, 20, 20)).astype(dtype))
    (tmp_path / "r.toml").write_text(GEOMETRY_FROM_FILE)
    done = run_cli("-q", "run", "r.toml", cwd=tmp_path)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "which is not detector counts or intensities" in lines[0]
    assert f"are of type {np.dtype(dtype)}" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "uint32",
                                   "int64", "uint64", "float16", "float32", "float64"])
def test_every_counts_or_intensity_type_prepares(tmp_path, dtype):
    frames = (np.arange(4 * 20 * 20) % 97).reshape(4, 20, 20).astype(dtype)
    _raw_with(tmp_path / "raw.h5", frames)
    (tmp_path / "r.toml").write_text(GEOMETRY_FROM_FILE)
    for rebin, save in ((1, "append"), (2, "link")):
        done = run_cli("-q", "run", "r.toml", "--set", f"prep.rebin={rebin}", "--set",
                       f"output.save={save!r}", "--set", "output.overwrite=true", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        scan = ptyprep.read_ptyd(tmp_path / "out" / "x.ptyd")
        expect = frames[:, 2:18, 2:18].astype(np.float64)
        if rebin == 2:
            expect = expect.reshape(4, 8, 2, 8, 2).sum(axis=(2, 4))
        np.testing.assert_array_equal(scan["data"].astype(np.float64), expect)


def test_non_finite_pixels_come_out_invalid_and_are_counted(tmp_path):
    frames = np.full((4, 20, 20), 3.0, np.float32)
    frames[0, 5, 6] = np.nan
    frames[2, 10, 10] = np.inf
    frames[3, 7, 7] = -np.inf
    frames[1, 0, 0] = np.nan            # outside the 16² crop: not read, not counted
    _raw_with(tmp_path / "raw.h5", frames)
    (tmp_path / "r.toml").write_text(GEOMETRY_FROM_FILE)
    done = subprocess.run(ptyprep_cmd("run", "r.toml"), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("frames 0-3: 3 non-finite pixel values (NaN, ±inf) in the raw data made invalid "
            "(weight 0)") in done.stderr
    scan = ptyprep.read_ptyd(tmp_path / "out" / "x.ptyd")
    assert np.isfinite(scan["data"]).all()
    bad = np.argwhere(scan["weights"] == 0).tolist()
    assert bad == [[0, 3, 4], [2, 8, 8], [3, 5, 5]]
    assert (scan["data"][scan["weights"] == 0] == 0).all()
    assert (scan["data"][scan["weights"] == 1] == 3.0).all()


def test_a_wrong_raw_path_is_reported_before_output_exists(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.ptyd").write_text("previous")
    recipe = write_recipe(tmp_path, tmp_path / "missing.h5", out / "x.ptyd")
    for command in ("validate", "run"):
        done = run_cli("-q", command, recipe)
        assert done.returncode == 2
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and "missing.h5" in lines[0] and "exists" not in lines[0], lines


@pytest.mark.parametrize("fault, said", [
    ('[source]\nmask = "/entry/mask"', "mask '/entry/mask' has shape (96, 99) but frames are (96, 100)"),
    ('[prep]\ndark = "dark.npy"', "prep.dark 'dark.npy' has shape (96, 99); raw frames are (96, 100)"),
    ('[prep]\nflat = "dark.npy"', "prep.flat 'dark.npy' has shape (96, 99); raw frames are (96, 100)"),
    ("empty", "raw.h5' dataset '/entry/data/data' has no frames to prepare"),
])
def test_masks_darks_flats_of_another_shape_and_an_empty_scan_are_refused(tmp_path, fault, said):
    raw = corrupt_scan(tmp_path / "raw.h5", bad=None)
    with h5py.File(raw, "a") as f:
        f["entry/mask"] = np.ones((96, 99), dtype=np.uint8)
        if fault == "empty":    # a file the detector created but wrote no frame into
            del f["entry/data/data"], f["entry/positions"]
            f.create_dataset("entry/data/data", shape=(0, 96, 100), maxshape=(None, 96, 100),
                             chunks=(1, 96, 100), dtype=np.uint32, compression="gzip")
            f["entry/positions"] = np.zeros((0, 2))
    fault = "[source]\n" if fault == "empty" else fault
    np.save(tmp_path / "dark.npy", np.zeros((96, 99), dtype=np.float32))
    table, key_value = fault.split("\n")
    text = HDF5_RECIPE.format(raw=raw, dfile="out/x.ptyd").replace(table, f"{table}\n{key_value}")
    (tmp_path / "r.toml").write_text(text)
    for command in ("validate", "run"):
        done = run_cli("-q", command, "r.toml", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and lines[0].startswith("ptyprep: error: ") and said in lines[0], lines
    assert not (tmp_path / "out").exists()     # checked before any output is touched
