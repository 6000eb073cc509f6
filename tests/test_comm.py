"""Tests of ptyprep.engine.comm: the serial stand-in, the choice of communicator, and MPIComm under mpiexec."""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ptyprep.engine import comm
from ptyprep.engine.comm import SerialComm, launched_by_mpi, world

LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                      "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD", "SLURM_PMI_SIZE")


@pytest.fixture
def no_launcher(monkeypatch):
    """A process that no MPI launcher started and that has not imported mpi4py.MPI."""
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- SerialComm


def test_serial_rank_and_size():
    c = SerialComm()
    assert (c.rank, c.size) == (0, 1)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.float32])
def test_serial_gatherv_returns_the_array(dtype):
    a = np.arange(12, dtype=dtype).reshape(3, 2, 2)
    out = SerialComm().gatherv(a)
    assert out is a  # already contiguous: no copy
    empty = np.zeros((0, 2, 2), dtype=dtype)
    assert SerialComm().gatherv(empty, root=0).shape == (0, 2, 2)


def test_serial_gatherv_makes_views_contiguous():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2]
    out = SerialComm().gatherv(a)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[0, 2], [4, 6], [8, 10]])


def test_serial_allreduce_sum_copies():
    a = np.arange(4, dtype=np.float64)
    out = SerialComm().allreduce_sum(a)
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0, 3.0])
    assert out is not a and not np.shares_memory(out, a)
    out[0] = 99
    assert a[0] == 0


def test_serial_bcast_allgather_allreduce_max_barrier():
    c = SerialComm()
    obj = {"center": (1.5, 2.0)}
    assert c.bcast(obj) is obj
    assert c.bcast(obj, root=0) is obj
    assert c.allgather(obj) == [obj] and c.allgather(obj)[0] is obj
    assert c.allreduce_max(7) == 7
    assert c.barrier() is None


def test_serial_abort_exits_with_the_code():
    with pytest.raises(SystemExit) as info:
        SerialComm().abort(3)
    assert info.value.code == 3


# --------------------------------------------------------------------------- world()


def test_world_is_serial_without_a_launcher(no_launcher):
    assert not launched_by_mpi()
    c = world()
    assert type(c) is SerialComm
    assert (c.rank, c.size) == (0, 1)
    assert "mpi4py.MPI" not in sys.modules  # world() did not initialise MPI


@pytest.mark.parametrize("name", LAUNCHER_VARIABLES)
def test_launcher_variables_are_detected(no_launcher, name):
    no_launcher.setenv(name, "2")
    assert launched_by_mpi()


def test_imported_mpi4py_counts_as_launched(no_launcher):
    no_launcher.setitem(sys.modules, "mpi4py.MPI", object())
    assert launched_by_mpi()


def test_world_falls_back_to_serial_without_mpi4py(no_launcher, caplog):
    no_launcher.setenv("PMI_SIZE", "2")
    no_launcher.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    with caplog.at_level(logging.WARNING, logger="ptyprep.engine.comm"):
        c = world()
    assert type(c) is SerialComm
    assert "mpi4py is not installed" in caplog.text


def test_world_in_a_clean_subprocess_does_not_import_mpi4py():
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    code = textwrap.dedent("""
        import sys
        import ptyprep
        from ptyprep.engine.comm import world
        c = world()
        print(type(c).__name__, c.rank, c.size, "mpi4py" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SerialComm", "0", "1", "False"]


# --------------------------------------------------------------------------- MPIComm, real mpiexec

MPI_SCRIPT = textwrap.dedent("""
    import numpy as np
    from ptyprep.engine.comm import MPIComm, world

    c = world()
    assert type(c) is MPIComm, type(c)
    rows = [2, 0, 3][c.rank]  # rank 1 contributes no rows
    mine = np.full((rows, 2), 10 * c.rank + 1, dtype=np.uint16)
    got = c.gatherv(mine, root=0)
    total = c.allreduce_sum(np.array([c.rank, 1], dtype=np.int64))
    names = c.allgather(c.rank)
    first = c.bcast("hello" if c.rank == 0 else None)
    if c.rank == 0:
        assert got.dtype == np.uint16 and got.shape == (5, 2), got.shape
        assert got[:, 0].tolist() == [1, 1, 21, 21, 21], got.tolist()
    else:
        assert got is None
    assert total.tolist() == [3, 3], total
    assert names == [0, 1, 2] and first == "hello"
    c.barrier()
    if c.rank == 0:  # one writer: output of several ranks interleaves
        print("ok", c.size)
""")


@pytest.mark.mpi
def test_mpicomm_collectives_under_mpiexec(run_mpi, tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(MPI_SCRIPT)
    out = run_mpi(3, [script], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "3"]


def test_comm_module_has_no_top_level_mpi4py_import():
    # importing ptyprep.engine.comm must work on machines without MPI
    assert "mpi4py" not in vars(comm)
