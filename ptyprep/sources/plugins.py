"""Named plugins: built-ins, entry points and the modules of ``experiments/``.

Sources (``[source] name``) and formats (``[output] format``) are looked up by name
in a :class:`Registry` each.  A name comes from, in this order of precedence: a call
of the registry's ``register`` (e.g. by a beamline module in ``experiments/``, or by
a user), an installed package's entry point in the registry's group, a built-in.
The beamline modules are imported once, for both registries, the first time any
name is looked up (:func:`load_experiments`).
"""

import importlib
import importlib.util
import logging
import os
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import RecipeError

log = logging.getLogger(__name__)

_experiments_loaded = False


def experiment_dirs():
    """Folders whose ``*.py`` beamline modules are imported: the repository's
    ``experiments/`` and those listed in ``PTYPREP_EXPERIMENTS`` (``os.pathsep``-separated)."""
    folders = [Path(__file__).resolve().parents[2] / "experiments"]
    folders += [Path(p) for p in os.environ.get("PTYPREP_EXPERIMENTS", "").split(os.pathsep) if p]
    return [f for f in folders if f.is_dir()]


_loading = None                   # the experiments module being imported, while it is


def load_experiments():
    """Import every ``experiments/*.py`` module once (they register sources and formats).

    A broken module is skipped with a warning; a module that registers a name ptyprep
    has built in, or that imported another ``ptyprep`` than this one, is an error
    (RecipeError naming the file), never a silent replacement.
    """
    global _experiments_loaded, _loading
    if _experiments_loaded:
        return
    _experiments_loaded = True
    for path in sorted(p for folder in experiment_dirs() for p in folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"ptyprep_experiments.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        _loading = path
        try:
            spec.loader.exec_module(module)
        except RecipeError:
            raise
        except Exception as exc:  # a broken beamline file must not break the others
            log.warning("skipping experiments/%s: %s", path.name, exc)
        finally:
            _loading = None
        check_same_ptyprep(path, module)


def check_same_ptyprep(path, module):
    """RecipeError when ``module`` holds a ``ptyprep`` module from another installation."""
    here = Path(__file__).resolve().parents[1]
    for value in vars(module).values():
        name, file = getattr(value, "__name__", ""), getattr(value, "__file__", None)
        if isinstance(value, type(os)) and name.split(".")[0] == "ptyprep" and file:
            if here not in Path(file).resolve().parents and Path(file).resolve().parent != here:
                raise RecipeError(f"{path} imported {name} from {file}, not from {here}: another "
                                  "ptyprep is on the path (a ptyprep/ folder in the working "
                                  "directory?); run from another folder or fix PYTHONPATH")


class Registry:
    """Classes registered by name.

    Parameters
    ----------
    kind : str
        What is registered, for messages (``"source"``, ``"format"``).
    base : type
        Every registered class subclasses it.
    builtins : dict
        ``{name: "module:attribute"}``, imported on first use.
    group : str
        Entry-point group of installed plugins (``ptyprep.sources``, ``ptyprep.formats``).
    hint : str
        Where the user sees the names (appended to the unknown-name error).
    """

    def __init__(self, kind, base, builtins, group, hint):
        self.kind, self.base, self.builtins, self.group, self.hint = kind, base, builtins, group, hint
        self._classes = {}
        self._discovered = False

    def register(self, name, cls):
        """Make ``cls`` available under ``name``.

        A call from user code replaces a built-in of that name; one from an
        ``experiments/`` module may not (RecipeError).
        """
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"register_{self.kind}({name!r}, ...) needs a "
                            f"{self.base.__name__} subclass, got {cls!r}")
        if _loading is not None and name in self.builtins:
            raise RecipeError(f"{_loading} registers {self.kind} {name!r}, which ptyprep has "
                              f"built in; give the {self.kind} in that file another name")
        self._classes[name] = cls
        return cls

    def _discover(self):
        if self._discovered:
            return
        self._discovered = True
        for name, target in self.builtins.items():
            self._classes.setdefault(name, target)
        for ep in entry_points(group=self.group):
            self._classes.setdefault(ep.name, ep.value)
        load_experiments()

    def names(self):
        """Sorted names of every registered class."""
        self._discover()
        return sorted(self._classes)

    def get(self, name):
        """The class registered as ``name``; RecipeError listing the known names otherwise."""
        self._discover()
        if name not in self._classes:
            raise RecipeError(f"unknown {self.kind} {name!r}; known {self.kind}s: "
                              f"{', '.join(self.names())} {self.hint}")
        cls = self._classes[name]
        if isinstance(cls, str):
            module, _, attr = cls.partition(":")
            cls = self._classes[name] = getattr(importlib.import_module(module), attr)
        return cls
