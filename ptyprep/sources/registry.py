"""Look-up of sources by name: built-ins, entry points and ``experiments/`` modules.

A beamline registers its reader with :func:`register_source`; an installed
package can do the same through the entry-point group ``ptyprep.sources``
(see :mod:`ptyprep.sources.plugins`).
"""

import inspect
from pathlib import Path

from ..errors import RecipeError
from .base import ScanSource
from .plugins import Registry

SOURCES = Registry("source", ScanSource, {
    "hdf5": "ptyprep.sources.hdf5:HDF5Source",
    "files": "ptyprep.sources.files:FilesSource",
    "cxi": "ptyprep.sources.cxi:CXISource",
    "ptyd": "ptyprep.sources.ptyd:PtydSource",
    "simulate": "ptyprep.sources.simulate:SimulatedSource",
    "nsls2-lix": "ptyprep.sources.nsls2_lix:LixSource",
}, group="ptyprep.sources", hint="(see `ptyprep sources`)")


def register_source(name, cls):
    """Make ``cls`` (a :class:`~ptyprep.ScanSource` subclass) available as ``[source] name``."""
    return SOURCES.register(name, cls)


def source_names():
    """Sorted names of every registered source."""
    return SOURCES.names()


def get_source(name):
    """The source class registered as ``name``."""
    return SOURCES.get(name)


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


def open_source(recipe):
    """Instantiate the recipe's source (options checked, paths resolved)."""
    return make_source(recipe.source.name, recipe.source.options, base_dir=recipe.base_dir)
