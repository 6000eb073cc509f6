"""The worked example of docs/writing-a-format.md (tests/plugins/npz_format.py) works
with no change to the engine: found through PTYPREP_EXPERIMENTS, it prepares the same
frames as .ptyd does with ``ptyprep run``, under a real ``mpiexec -n 2``, through
``iter_chunks`` and while ``ptyprep watch`` follows a growing scan."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from watch_helpers import toml_value

import ptyprep
from ptyprep.errors import OutputError, RecipeError

PLUGINS = Path(__file__).with_name("plugins")
ENV = {"PTYPREP_EXPERIMENTS": str(PLUGINS)}
CHUNK = 7


@pytest.fixture(scope="module")
def npz():
    """The example module, imported as ``load_experiments`` would (it registers "npz")."""
    spec = importlib.util.spec_from_file_location("npz_format_example", PLUGINS / "npz_format.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_npz(folder):
    """The scan of an npz folder: ``{name: array}`` in scan order, and ``complete``."""
    index = json.loads((Path(folder) / "index.json").read_text())
    files = [np.load(Path(folder) / name) for name in index["files"]]
    out = {k: np.concatenate([f[k] for f in files]) for k in ("data", "weights", "positions",
                                                               "indices")}
    order = np.argsort(out["indices"], kind="stable")
    return {**{k: v[order] for k, v in out.items()}, "complete": index["complete"],
            "files": index["files"]}


def write_recipe(tmp_path, source, fmt="npz", **output):
    tables = {"source": source, "prep": {"shape": 32, "center": "auto"},
              "output": {"dfile": "out/scan.ptyd", "format": fmt, "chunk_frames": CHUNK,
                         **output}}
    path = tmp_path / f"{fmt}.toml"
    path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                                   for k, v in t.items())
                            for name, t in tables.items()))
    return path


def reference(tmp_path, source):
    """What .ptyd's preparation gives for the same scan (iter_chunks of a ptyd recipe)."""
    recipe = ptyprep.load_recipe(write_recipe(tmp_path, source, fmt="ptyd"))
    stacks = list(ptyprep.iter_chunks(recipe))
    return {"data": np.concatenate([s.data for s in stacks]),
            "weights": np.concatenate([s.valid_stack for s in stacks]),
            "positions": np.concatenate([s.positions for s in stacks]),
            "indices": np.concatenate([s.indices for s in stacks])}


def assert_same_scan(got, want):
    for key in ("data", "weights", "positions", "indices"):
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


SIMULATED = {"name": "simulate", "num_frames": 23}


def test_the_example_registers_a_format(npz):
    assert "npz" in ptyprep.format_names()
    from ptyprep.engine.formats import get_format

    assert get_format("npz") is npz.NpzFormat


def test_ptyprep_run_writes_what_ptyd_prepares(tmp_path):
    env = dict(os.environ, **ENV)
    recipe = write_recipe(tmp_path, SIMULATED)
    done = subprocess.run([sys.executable, "-m", "ptyprep", "run", str(recipe)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = read_npz(tmp_path / "out" / "scan_npz")
    assert got["complete"] is True and len(got["files"]) == 4  # 23 frames in chunks of 7
    assert_same_scan(got, reference(tmp_path, SIMULATED))
    again = subprocess.run([sys.executable, "-m", "ptyprep", "run", str(recipe)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "exists; set output.overwrite" in again.stderr


def test_two_ranks_write_their_own_shares(tmp_path, run_mpi):
    recipe = write_recipe(tmp_path, SIMULATED)
    done = run_mpi(2, ["-m", "ptyprep", "run", recipe], env=ENV)
    assert done.returncode == 0, done.stderr
    got = read_npz(tmp_path / "out" / "scan_npz")
    assert len(got["files"]) == 8  # every chunk split between the two ranks
    assert_same_scan(got, reference(tmp_path, SIMULATED))


def test_iter_chunks_prepares_through_the_example(npz, tmp_path):
    recipe = ptyprep.load_recipe(write_recipe(tmp_path, SIMULATED))
    stacks = list(ptyprep.iter_chunks(recipe))
    assert [len(s.indices) for s in stacks] == [7, 7, 7, 2]
    got = {"data": np.concatenate([s.data for s in stacks]),
           "weights": np.concatenate([s.valid_stack for s in stacks]),
           "positions": np.concatenate([s.positions for s in stacks]),
           "indices": np.concatenate([s.indices for s in stacks])}
    assert_same_scan(got, reference(tmp_path, SIMULATED))


def test_npz_with_ptyd_in_one_recipe_prepares_once_and_writes_both(tmp_path):
    recipe = write_recipe(tmp_path, SIMULATED, fmt="ptyd")
    done = subprocess.run([sys.executable, "-m", "ptyprep", "run", str(recipe), "--set",
                           'output.format=["ptyd", "npz"]'], env=dict(os.environ, **ENV),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == f"wrote {tmp_path / 'out' / 'scan_npz'}"
    ptyd = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    got = read_npz(tmp_path / "out" / "scan_npz")
    np.testing.assert_array_equal(got["data"], ptyd["data"])
    np.testing.assert_array_equal(got["weights"], ptyd["weights"] > 0)


def test_a_format_that_cannot_lead_says_so(npz, tmp_path):
    class Passive(ptyprep.Format):
        def check(self):
            pass

        def writer(self, job, comm):
            raise AssertionError("not reached")

    ptyprep.register_format("passive-example", Passive)
    recipe = ptyprep.load_recipe(write_recipe(tmp_path, SIMULATED, fmt="passive-example"))
    with pytest.raises(RecipeError, match="cannot lead a recipe"):
        ptyprep.run(recipe)


def test_watch_grows_the_folder_of_a_growing_scan(npz, tmp_path):
    from ptyprep.acquire import source_options
    from ptyprep.engine.follow import watch

    env = dict(os.environ, **ENV)
    source = source_options("hdf5", tmp_path / "raw.h5")
    recipe = write_recipe(tmp_path, source)
    acq = subprocess.Popen([sys.executable, "-m", "ptyprep.acquire", "hdf5", "--kind", "index",
                            str(tmp_path / "raw.h5"), "--frames", "30", "--rate", "60"])
    daemon = subprocess.run([sys.executable, "-m", "ptyprep", "watch", str(recipe), "--poll",
                             "0.05", "--idle-timeout", "3"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert acq.wait(timeout=60) == 0
    assert daemon.returncode == 0, daemon.stderr
    got = read_npz(tmp_path / "out" / "scan_npz")
    assert got["complete"] is True and got["indices"].tolist() == list(range(30))
    assert len(got["files"]) == 5  # chunk by chunk: 7 + 7 + 7 + 7 + 2 frames
    assert_same_scan(got, reference(tmp_path, source))
    with pytest.raises(OutputError, match="holds a complete scan"):
        watch(ptyprep.load_recipe(recipe), idle_timeout_s=0.1)


def test_ptyprep_formats_lists_the_example_with_what_it_can_do():
    done = subprocess.run([sys.executable, "-m", "ptyprep", "formats"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, **ENV))
    assert done.returncode == 0, done.stderr
    blocks = {b.split()[0]: b for b in done.stdout.split("\n") if b and not b.startswith(" ")}
    assert {"npz", "ptyd", "procdata"} <= set(blocks)
    lines = done.stdout.splitlines()
    npz_at = next(i for i, line in enumerate(lines) if line.startswith("npz "))
    assert "npz_format_example" not in lines[npz_at]  # loaded as an experiments module
    assert lines[npz_at + 1].strip().startswith("Prepared frames as .npz files")  # its description
    block = _block(lines, npz_at)
    assert ["preparation", "ptycho"] in block and ["watch", "yes"] in block
    procdata_at = next(i for i, line in enumerate(lines) if line.startswith("procdata "))
    assert ["recipe", "table", "[saxs]"] in _block(lines, procdata_at)


def _block(lines, start):
    """The split lines of one format's block of ``ptyprep formats``, after its name line."""
    block = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        block.append(line.split())
    return block


def test_the_guide_quotes_the_example_verbatim():
    guide = (Path(__file__).parents[1] / "docs" / "writing-a-format.md").read_text()
    source = (PLUGINS / "npz_format.py").read_text()
    blocks = guide.split("```python\n")[1:]
    assert len(blocks) >= 4
    for block in blocks:
        assert block.split("```")[0] in source
