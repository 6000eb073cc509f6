"""A separate venv with the real lixtools and py4xs, for the interop tests (not collected).

lixtools and py4xs (PyPI 2023.1.23.0, the last releases of both) predate numpy 2
(``np.int``), py4xs's metadata is rejected by pip ≥ 24.1 (``scipy>-=1.6``), and lixtools
imports ``tomopy`` (conda only).  :func:`lixtools_python` builds, once per machine, a venv
with numpy 1.26 and what the two import, pip < 24.1 installing both ``--no-deps``, and a
stub ``tomopy`` on ``PYTHONPATH`` (only tomograms need it; these tests make none there).
:func:`run_lixtools` runs a script in it and gives back the JSON it emits.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

LIX_PACKAGES = ["lixtools==2023.1.23.0", "py4xs==2023.1.23.0"]
#: What py4xs/lixtools import at import time, with cp311 wheels for numpy 1.26.
PINS = ["pip>=23.1,<24.1", "numpy==1.26.4", "scipy==1.11.4", "h5py==3.10.0",
        "matplotlib==3.8.4", "pillow==10.4.0", "fabio==2024.4.0", "fast-histogram==0.14"]
VERSION = "lix2023.1.23.0-np1.26.4-v1-py{}{}".format(*sys.version_info[:2])
STUBS = {"tomopy/__init__.py": '''\
"""Stub of tomopy (conda only): lixtools.hdf.scan imports it; tomograms are not made here."""


def _missing(*args, **kwargs):
    raise NotImplementedError("tomopy is a stub in the ptyprep test venv")


find_center = recon = circ_mask = _missing
'''}
MARKER = "ptyprep-lixtools-env.json"
BUILD_TIMEOUT = 420
#: Prepended to every script: ``emit(obj)`` writes the JSON result to the real stdout,
#: everything else lixtools prints goes to stderr.
PRELUDE = '''\
import json as _json, sys as _sys
import numpy as _np
_STDOUT, _sys.stdout = _sys.stdout, _sys.stderr


def _plain(obj):
    if isinstance(obj, _np.ndarray):
        return obj.tolist()
    if isinstance(obj, _np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode()
    raise TypeError(f"cannot emit {type(obj).__name__}")


def emit(obj):
    _STDOUT.write(_json.dumps(obj, default=_plain))
    _STDOUT.flush()

'''
_outcome = {}


def cache_root():
    """Folder of the cached venvs: ``$PTYPREP_TEST_CACHE`` or ``~/.cache/ptyprep-tests``."""
    env = os.environ.get("PTYPREP_TEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ptyprep-tests"


def _env(stubs):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=str(stubs), PYTHONNOUSERSITE="1", MPLBACKEND="Agg",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               PYTHONWARNINGS="ignore")
    return env


def _step(cmd, what, env, timeout):
    """Run one build step; a failure to get something skips, with pip's own words."""
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _Skip(f"lixtools venv: {what} timed out after {timeout} s (no network?)")
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines()
                 if "is ignored: it is neither" not in ln]     # pip's noise about local indexes
        tail = "\n".join(lines[-6:])
        raise _Skip(f"lixtools venv: {what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


class _Skip(Exception):
    pass


def _build(final):
    """Build the venv in a temporary folder beside ``final`` and rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=final.parent))
    try:
        stubs = tmp / "stubs"
        for rel, text in STUBS.items():
            (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
            (stubs / rel).write_text(text)
        env = _env(stubs)
        _step([sys.executable, "-m", "venv", tmp / "venv"], "python -m venv", env, 120)
        py = tmp / "venv" / "bin" / "python"
        pip = [py, "-m", "pip", "install", "-q", "--only-binary=:all:"]
        _step(pip + PINS, "pip install " + " ".join(PINS[1:]), env, BUILD_TIMEOUT)
        _step(pip + ["--no-deps"] + LIX_PACKAGES, "pip install --no-deps " + " ".join(LIX_PACKAGES),
              env, BUILD_TIMEOUT)
        check = ("import json, numpy, lixtools, py4xs.hdf, lixtools.hdf\n"
                 "print(json.dumps({'numpy': numpy.__version__, "
                 "'lixtools': lixtools.__version__}))")
        proc = subprocess.run([py, "-c", check], capture_output=True, text=True, env=env,
                              timeout=120)
        if proc.returncode != 0:      # a broken recipe is a failure, not a skip
            pytest.fail(f"lixtools venv built but lixtools does not import:\n{proc.stderr}")
        (tmp / MARKER).write_text(json.dumps({"version": VERSION, **json.loads(proc.stdout)}))
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _complete(folder):
    try:
        return json.loads((folder / MARKER).read_text())["version"] == VERSION
    except (OSError, ValueError, KeyError):
        return False


def lixtools_python():
    """Path of the lixtools venv's python, building the venv once per machine.

    The venv lives in ``cache_root()/lixtools-venv-<VERSION>``; it is built in a
    temporary folder and renamed when complete, under a file lock, so an interrupted
    or concurrent build is never used.  ``PTYPREP_NO_LIXTOOLS=1`` skips.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    pytest.skip.Exception
        When a package cannot be got (no network, no wheel), with pip's reason.
    """
    if os.environ.get("PTYPREP_NO_LIXTOOLS"):
        pytest.skip("lixtools interop tests disabled (PTYPREP_NO_LIXTOOLS is set)")
    if "skip" in _outcome:
        pytest.skip(_outcome["skip"])
    if "python" not in _outcome:
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"lixtools-venv-{VERSION}"
        with open(root / "lixtools-venv.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not _complete(final):
                    shutil.rmtree(final, ignore_errors=True)
                    for old in root.glob(f"{final.name}.tmp-*"):   # interrupted builds
                        shutil.rmtree(old, ignore_errors=True)
                    _build(final)
            except _Skip as exc:
                _outcome["skip"] = str(exc)
                pytest.skip(str(exc))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        _outcome["python"] = final / "venv" / "bin" / "python"
        _outcome["stubs"] = final / "stubs"
    return _outcome["python"]


def run_lixtools(script_text, *args, cwd, timeout=300):
    """Run ``script_text`` with the lixtools venv's python; its ``emit(obj)`` JSON, parsed.

    Parameters
    ----------
    script_text : str
        Python source; :data:`PRELUDE` (``emit``) is prepended and ``sys.argv[1:]``
        holds ``args`` as strings.  Whatever else it prints goes to stderr.
    *args
        Command-line arguments.
    cwd : str or Path
        Working directory (the script is written there).
    timeout : float
        Seconds.

    Returns
    -------
    object
        The emitted JSON (NaN allowed).  A script that fails, times out or emits
        nothing fails the test with its stderr.
    """
    python = lixtools_python()
    script = Path(cwd) / "lixtools_script.py"
    script.write_text(PRELUDE + textwrap.dedent(script_text))
    try:
        proc = subprocess.run([str(python), str(script), *map(str, args)], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout,
                              env=_env(_outcome["stubs"]))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"lixtools script timed out after {timeout} s:\n{exc.stderr}")
    if proc.returncode != 0:
        pytest.fail(f"lixtools script failed (exit {proc.returncode}):\n{proc.stderr[-8000:]}",
                    pytrace=False)
    if not proc.stdout.strip():
        pytest.fail(f"lixtools script emitted nothing:\n{proc.stderr[-8000:]}", pytrace=False)
    return json.loads(proc.stdout)
