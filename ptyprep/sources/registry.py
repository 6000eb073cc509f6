"""Look-up of sources by name: built-ins, entry points and ``experiments/`` modules.

A beamline registers its reader with :func:`register_source`; an installed
package can do the same through the entry-point group ``ptyprep.sources``.
"""

import importlib
import importlib.util
import inspect
import logging
import os
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import RecipeError
from .base import ScanSource

log = logging.getLogger(__name__)

_SOURCES = {}
_BUILTINS = {
    "hdf5": "ptyprep.sources.hdf5:HDF5Source",
    "files": "ptyprep.sources.files:FilesSource",
    "cxi": "ptyprep.sources.cxi:CXISource",
    "ptyd": "ptyprep.sources.ptyd:PtydSource",
    "simulate": "ptyprep.sources.simulate:SimulatedSource",
}
_discovered = False


def register_source(name, cls):
    """Make ``cls`` (a :class:`~ptyprep.ScanSource` subclass) available as ``[source] name``."""
    if not (isinstance(cls, type) and issubclass(cls, ScanSource)):
        raise TypeError(f"register_source({name!r}, ...) needs a ScanSource subclass, got {cls!r}")
    _SOURCES[name] = cls
    return cls


def _load(target):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def experiment_dirs():
    """Folders whose ``*.py`` beamline modules are imported: the repository's
    ``experiments/`` and those listed in ``PTYPREP_EXPERIMENTS`` (``os.pathsep``-separated)."""
    folders = [Path(__file__).resolve().parents[2] / "experiments"]
    folders += [Path(p) for p in os.environ.get("PTYPREP_EXPERIMENTS", "").split(os.pathsep) if p]
    return [f for f in folders if f.is_dir()]


def _import_experiments():
    for path in sorted(p for folder in experiment_dirs() for p in folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"ptyprep_experiments.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a broken beamline file must not break the others
            log.warning("skipping experiments/%s: %s", path.name, exc)


def _discover():
    global _discovered
    if _discovered:
        return
    _discovered = True
    for name, target in _BUILTINS.items():
        _SOURCES.setdefault(name, target)
    for ep in entry_points(group="ptyprep.sources"):
        _SOURCES.setdefault(ep.name, ep.value)
    _import_experiments()


def source_names():
    """Sorted names of every registered source."""
    _discover()
    return sorted(_SOURCES)


def get_source(name):
    """The source class registered as ``name``."""
    _discover()
    if name not in _SOURCES:
        raise RecipeError(f"unknown source {name!r}; known sources: {', '.join(source_names())} "
                          "(see `ptyprep sources`)")
    cls = _SOURCES[name]
    if isinstance(cls, str):
        cls = _SOURCES[name] = _load(cls)
    return cls


def source_options(cls):
    """``{option: default}`` of a source class (``inspect.Parameter.empty`` if required)."""
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items()
            if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def make_source(name, options, base_dir=None):
    """Instantiate source ``name`` with ``options``, checking the option names.

    Relative paths among the class's ``path_options`` are taken relative to ``base_dir``.
    """
    cls = get_source(name)
    valid = source_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise RecipeError(f"unknown option(s) {', '.join(unknown)} for source {name!r}; "
                          f"valid options: {', '.join(sorted(valid))}")
    missing = [k for k, d in valid.items() if d is inspect.Parameter.empty and k not in options]
    if missing:
        raise RecipeError(f"source {name!r} needs option(s) {', '.join(missing)} in [source]")
    options = dict(options)
    if base_dir is not None:
        for key in cls.path_options:
            if key in options:
                options[key] = _resolve(options[key], base_dir)
    try:
        return cls(**options)
    except TypeError as exc:
        raise RecipeError(f"source {name!r}: {exc}") from exc


def _resolve(value, base_dir):
    if isinstance(value, (list, tuple)):
        return [_resolve(v, base_dir) for v in value]
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(Path(base_dir) / value)
    return value
