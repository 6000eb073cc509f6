"""The layers of the package, checked by parsing its source (docs/architecture.md).

From the top: the face (cli, validate, inspect, plot, demo, acquire, recipe) → the
formats (``ptycho/`` and ``saxs/``, siblings) → the engine → the sources → the layout →
the tuned code (``fast/``); ``errors`` and ``_version`` sit below them all.  A module
imports only its own layer and the layers below; mpi4py is imported only by
``engine/comm.py``, pyFAI only by ``saxs/integrate.py``; collective calls happen only
in the engine; ``layout/`` names things and imports no h5py at module level; ``fast/``
imports no other ptyprep module; no module is much over 400 lines.
"""

import ast
from pathlib import Path

import pytest

import ptyprep

PACKAGE = Path(ptyprep.__file__).resolve().parent
ROOT = PACKAGE.parent


LAYERS = {"fast": 0, "errors": 1, "_version": 1, "orientation": 1, "layout": 2, "sources": 3,
          "engine": 4, "ptycho": 5, "saxs": 5, "exports": 5.5, "cli": 6, "convert": 6, "validate": 6, "inspect": 6, "plot": 6, "demo": 6,
          "acquire": 6, "recipe": 6, "__init__": 6, "__main__": 6, "view": 6}
SIBLINGS = {"ptycho", "saxs"}
MAX_LINES = 400
COLLECTIVES = {"bcast", "allgather", "gather", "barrier", "allreduce", "reduce", "alltoall",
               "Bcast", "Allgather", "Allgatherv", "Gatherv", "Barrier", "Allreduce", "Reduce",
               "Alltoall", "Abort", "Split", "Dup"}


def module_name(path):
    """Dotted name of a package file: ``ptyprep/engine/run.py`` → ``ptyprep.engine.run``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ptyprep_imports(path):
    """Dotted ptyprep modules (or names in them) that the file at ``path`` imports."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            if node.module:
                found.add(".".join(base + [node.module]))
            else:
                found.update(".".join(base + [alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ptyprep"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ptyprep")
    return found


def unit(module):
    """The layer unit of a dotted module: ``ptyprep.engine.run`` → ``engine``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_files():
    return sorted(PACKAGE.rglob("*.py"))


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


def test_every_module_has_a_layer():
    assert {unit(module_name(p)) for p in package_files()} <= set(LAYERS)


def upward_imports(files):
    """``(importer, imported)`` pairs that go to a higher layer or across the two siblings."""
    bad = []
    for path in files:
        me = unit(module_name(path))
        for target in ptyprep_imports(path):
            other = unit(target)
            if other == me or other not in LAYERS:
                continue
            if LAYERS[other] > LAYERS[me] or (me in SIBLINGS and other in SIBLINGS):
                bad.append((module_name(path), target))
    return bad


def test_layer_scanner_sees_relative_and_absolute_imports(tmp_path):
    engine = PACKAGE / "engine" / "run.py"
    assert "ptyprep.engine.formats" in ptyprep_imports(engine)
    assert unit("ptyprep.ptycho.job") == "ptycho" and unit("ptyprep") == "__init__"


def test_no_module_imports_a_higher_layer_or_its_sibling():
    assert upward_imports(package_files()) == []


def test_fast_imports_no_other_ptyprep_module():
    files = sorted((PACKAGE / "fast").glob("*.py"))
    assert files and {t for p in files for t in ptyprep_imports(p)
                      if unit(t) != "fast"} == set()


def top_level_imports(source):
    """Names imported at module level (not inside functions)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_layout_names_things_without_h5py():
    for path in sorted((PACKAGE / "layout").glob("*.py")):
        assert "h5py" not in top_level_imports(path.read_text(encoding="utf-8")), path.name
        assert {unit(t) for t in ptyprep_imports(path)} <= {"layout", "errors"}, path.name


def collective_calls(source):
    """Lines of ``x.bcast(...)``-like calls (MPI collectives and communicator methods)."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in COLLECTIVES]


def test_collective_scanner_finds_communicator_calls():
    assert collective_calls("comm.bcast(x, root=0)\ny = self.comm.Allgatherv(a, b)") == [1, 2]
    assert collective_calls("np.gather = 1\nax.scatter(x, y)") == []


def test_collective_calls_happen_only_in_the_engine():
    outside = {module_name(p): lines for p in package_files()
               if unit(module_name(p)) != "engine"
               and (lines := collective_calls(p.read_text(encoding="utf-8")))}
    assert outside == {}


def test_modules_stay_small():
    sizes = {module_name(p): len(p.read_text(encoding="utf-8").splitlines())
             for p in package_files()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}
