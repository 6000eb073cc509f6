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


@pytest.fixture
def small_disk():
    """A 2 MiB ``tmpfs`` folder, to fill up (a full disk); needs root, else the test skips."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a small tmpfs mount, which needs root")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ptyprep-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)
        folder.rmdir()


@pytest.fixture
def as_user():
    """``as_user(cmd, **run_kwargs)`` runs ``cmd`` as the unprivileged user ``nobody``
    (``setpriv``), since root ignores permission bits; skips unless we are root with setpriv.
    Its files must be in a folder ``nobody`` can enter: see :func:`open_folder`."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running as an unprivileged user needs root and setpriv")

    def run(cmd, **kwargs):
        kwargs.setdefault("env", dict(os.environ, HOME=str(kwargs.get("cwd") or "/tmp")))
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               *map(str, cmd)], capture_output=True, text=True, timeout=120,
                              **kwargs)

    return run


@pytest.fixture
def open_folder():
    """A new folder under /tmp that every user can enter and read (tmp_path's parents are
    private to root); removed afterwards."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ptyprep-open-"))
    folder.chmod(0o755)
    yield folder
    for sub in folder.rglob("*"):
        if sub.is_dir():
            sub.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)
