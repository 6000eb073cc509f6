"""Shared fixtures: the real beamline data folder and a real ``mpiexec``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("PTYPREP_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def shared_data():
    """Folder of the real beamline files; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real beamline data not found at {SHARED_DATA} (set PTYPREP_SHARED_DATA)")
    return SHARED_DATA


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


@pytest.fixture
def run_mpi():
    """Run ``python -m mpi4py <args>`` under a real ``mpiexec -n N``.

    Returns a function ``run(n, args, cwd=None, timeout=120)`` giving the
    CompletedProcess (stdout/stderr as text).
    """
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec not found; `pip install -e .[test]` installs MPICH")

    def run(n, args, cwd=None, timeout=120, env=None):
        cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "mpi4py", *map(str, args)]
        full_env = dict(os.environ, **(env or {}))
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=full_env)

    return run


def run_cli(*args, cwd=None, timeout=120):
    """Run ``python -m ptyprep <args>`` in a subprocess and return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "ptyprep", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    """``cli(*args, cwd=None)`` runs ``python -m ptyprep`` in a subprocess."""
    return run_cli
