"""The MPI path under a real ``mpiexec``: identity with serial output, failures end the job."""

import textwrap
import time

import numpy as np
import pytest

import ptyprep

pytestmark = pytest.mark.mpi

RECIPE = """\
[source]
name = "simulate"
num_frames = 37
photons = 1e5
[prep]
shape = 96
center = "auto"
rebin = 2
orientation = 5
saturation = 500000.0
[output]
dfile = "{dfile}"
save = "{save}"
chunk_frames = 10
"""

KEYS = ("data", "weights", "positions", "indices")


def write(tmp_path, name, save):
    path = tmp_path / f"{name}.toml"
    path.write_text(RECIPE.format(dfile=f"{name}.ptyd", save=save))
    return path


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    ptyprep.run(ptyprep.load_recipe(write(tmp, "serial", "append")))
    return ptyprep.read_ptyd(tmp / "serial.ptyd")


@pytest.mark.parametrize("nprocs", [2, 3])
@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_mpi_output_identical_to_serial(run_mpi, serial, tmp_path, nprocs, save):
    recipe = write(tmp_path, "par", save)
    proc = run_mpi(nprocs, ["-m", "ptyprep", "-q", "run", recipe], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    par = ptyprep.read_ptyd(tmp_path / "par.ptyd")
    for key in KEYS:
        np.testing.assert_array_equal(par[key], serial[key], err_msg=key)
    for key in ("shape", "center", "psize", "num_frames"):
        np.testing.assert_array_equal(par["meta"][key], serial["meta"][key])
    np.testing.assert_array_equal(par["info"]["raw_center"], serial["info"]["raw_center"])
    if save == "link":
        # 4 chunks split over ranks: one part file per non-empty share, in scan order
        parts = sorted(p.name for p in tmp_path.glob("par.ptyd.part*"))
        assert len(parts) == 4 * nprocs
        assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*incomplete"))


@pytest.mark.parametrize("save", ["append", "link"])
def test_append_shares_follow_the_ranks_speed_and_the_file_is_the_same(run_mpi, serial, tmp_path,
                                                                       save):
    # append: rank 0 writes the others' frames too, so after the first chunk the shares
    # follow each rank's measured speed (whole HDF5 chunks); link keeps ptypy's equal shares
    recipe = write(tmp_path, "par", save)
    proc = run_mpi(2, ["-m", "ptyprep", "run", recipe], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "frames prepared per rank" in line]
    if save == "link":
        assert said == []
    else:
        assert len(said) == 1                                     # rank 0 only
        per_rank = [int(v) for v in said[0].split("[")[1].split("]")[0].split(",")]
        assert len(per_rank) == 2 and sum(per_rank) == len(serial["indices"])
    par = ptyprep.read_ptyd(tmp_path / "par.ptyd")
    for key in KEYS:
        np.testing.assert_array_equal(par[key], serial[key], err_msg=key)


def test_iter_chunks_under_mpi_gives_each_rank_its_share(run_mpi, tmp_path):
    script = tmp_path / "shares.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        import ptyprep
        from ptyprep.engine.comm import world
        comm = world()
        r = ptyprep.load_recipe({"source": {"name": "simulate", "num_frames": 21, "kind": "index"},
                                 "prep": {"shape": 32}, "output": {"chunk_frames": 7}})
        mine = [c.indices.tolist() for c in ptyprep.iter_chunks(r, comm)]
        everyone = comm.allgather(mine)
        if comm.rank == 0:
            print(json.dumps(everyone))
    """))
    proc = run_mpi(2, [script], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    shares = json.loads(proc.stdout)
    # ptypy's rule for size 2, chunks of 7 (specs/ptyd.md)
    assert shares[0] == [[0, 1, 2], [7, 8, 9, 10], [14, 15, 16]]
    assert shares[1] == [[3, 4, 5, 6], [11, 12, 13], [17, 18, 19, 20]]


FAILING = '''
import os
import ptyprep
from ptyprep.sources.simulate import SimulatedSource


class FailingOnRank1(SimulatedSource):
    def read_frames(self, indices, roi=None):
        if os.environ.get("PMI_RANK") == "1":
            raise RuntimeError("detector file truncated (simulated failure on rank 1)")
        return super().read_frames(indices, roi)


ptyprep.register_source("failing-on-rank1", FailingOnRank1)
'''


@pytest.mark.parametrize("save", ["append", "link"])
def test_failure_on_one_rank_ends_the_job(run_mpi, tmp_path, save):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "failing.py").write_text(FAILING)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(dfile="f.ptyd", save=save).replace('"simulate"',
                                                                       '"failing-on-rank1"'))
    t0 = time.monotonic()
    proc = run_mpi(2, ["-m", "ptyprep", "run", recipe], cwd=tmp_path, timeout=60,
                   env={"PTYPREP_EXPERIMENTS": str(plugins)})
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 30
    assert "simulated failure on rank 1" in proc.stderr
    assert not (tmp_path / "f.ptyd").exists()  # no file a reader would take for complete


def test_bad_input_under_mpi_is_one_line_exit_2(run_mpi, tmp_path):
    recipe = write(tmp_path, "bad", "link")
    proc = run_mpi(3, ["-m", "ptyprep", "run", recipe, "--set", "prep.rebin=7"], cwd=tmp_path,
                   timeout=60)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ptyprep: error:")]
    assert len(errors) == 1 and "does not divide" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("bad.ptyd*"))
