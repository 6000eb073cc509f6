"""The MPI and pyFAI boundaries are visible in the file tree (checked by parsing imports).

DESIGN: "only the communicator module and the service loop import mpi4py"; the
communicator is the one that does so (the service loop receives a communicator).
integrate.py is the only pyFAI import.
"""

import ast
from pathlib import Path

import pytest

import ptyprep

PACKAGE = Path(ptyprep.__file__).resolve().parent
ROOT = PACKAGE.parent


def imported_modules(source):
    """Top-level package names imported by ``source`` (import, from-import, import_module)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (fname in ("import_module", "__import__") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value.split(".")[0])
    return names


def importers(package_name):
    """Package-relative paths (``ptyprep/x.py``) of the modules importing ``package_name``."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if package_name in imported_modules(path.read_text(encoding="utf-8")):
            found.add(path.relative_to(ROOT).as_posix())
    return found


@pytest.mark.parametrize("snippet", [
    "import mpi4py",
    "import mpi4py.MPI as MPI",
    "from mpi4py import MPI",
    "from mpi4py.util import dtlib",
    "def f():\n    from mpi4py import MPI\n",
    "import importlib\nimportlib.import_module('mpi4py.MPI')",
    "__import__('mpi4py')",
])
def test_scanner_finds_every_import_form(snippet):
    assert "mpi4py" in imported_modules(snippet)


def test_scanner_ignores_mentions_and_relative_imports():
    assert "mpi4py" not in imported_modules('"""mpi4py is only imported in comm.py"""\nx = "mpi4py"')
    assert imported_modules("from . import comm\nfrom .comm import world") == set()


def test_package_files_are_scanned():
    files = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    assert {"ptyprep/engine/comm.py", "ptyprep/ptycho/frames.py", "ptyprep/engine/shares.py"} <= files


def test_only_comm_imports_mpi4py():
    assert importers("mpi4py") == {"ptyprep/engine/comm.py"}


def test_only_integrate_imports_pyfai():
    # Holds whether or not integrate.py exists yet: nobody else may import pyFAI.
    assert importers("pyFAI") <= {"ptyprep/saxs/integrate.py"}


def test_integrate_is_the_pyfai_module():
    if not (PACKAGE / "saxs" / "integrate.py").exists():
        pytest.skip("ptyprep/saxs/integrate.py does not exist yet")
    assert importers("pyFAI") == {"ptyprep/saxs/integrate.py"}
