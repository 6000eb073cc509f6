"""ptyprep watch under a real ``mpiexec -n 2``: the same prepared scan as a serial run."""

import subprocess
import sys
from pathlib import Path

import numpy as np

import ptyprep
from ptyprep.acquire import source_options
from ptyprep.ptycho.publish import read_links

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_watch import CHUNK, Reader, write_recipe  # noqa: E402


def test_two_ranks_follow_a_growing_file_like_serial(tmp_path, run_mpi):
    recipe = write_recipe(tmp_path / "r.toml", source_options("hdf5", tmp_path / "raw.h5"))
    writer = subprocess.Popen([sys.executable, "-m", "ptyprep.acquire", "hdf5", "--kind", "index",
                               str(tmp_path / "raw.h5"), "--frames", "50", "--rate", "40"])
    master = tmp_path / "out" / "scan.ptyd"
    reader = Reader(master)
    reader.start()
    result = run_mpi(2, ["-m", "ptyprep", "watch", recipe, "--poll", "0.05"], timeout=120)
    assert result.returncode == 0, result.stderr
    assert writer.wait(30) == 0
    # the two-rank one-shot run has the same chunking (each chunk split in two parts)
    ref2 = run_mpi(2, ["-m", "ptyprep", "run", recipe, "--set", "output.save=link",
                       "--set", "output.dfile=ref2/scan.ptyd"])
    assert ref2.returncode == 0, ref2.stderr
    ptyprep.run(ptyprep.load_recipe(recipe, overrides={"output.save": "link",
                                                       "output.dfile": "ref1/scan.ptyd"}))
    got = ptyprep.read_ptyd(master)
    for ref in ("ref1", "ref2"):
        want = ptyprep.read_ptyd(tmp_path / ref / "scan.ptyd")
        for key in ("data", "weights", "positions", "indices"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{ref} {key}")
        for key in want["meta"]:
            np.testing.assert_array_equal(got["meta"][key], want["meta"][key])
    names = read_links(master)[2]
    assert names == read_links(tmp_path / "ref2" / "scan.ptyd")[2]
    assert len(names) == 2 * (50 // CHUNK) + 1  # two parts a chunk; the last (1 frame) one
    assert got["info"]["end_reason"] == "marker"
    assert max(reader.check(tmp_path / "ref1" / "scan.ptyd")) == 50
