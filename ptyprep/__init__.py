"""ptyprep: raw scanning-diffraction data to analysis-ready files, in parallel with MPI.

>>> import ptyprep
>>> recipe = ptyprep.load_recipe("scan.toml", overrides={"prep.rebin": 2})   # doctest: +SKIP
>>> ptyprep.run(recipe)                                                      # doctest: +SKIP
"""

from ._version import __version__
from .errors import LayoutError, OtherRankError, OutputError, PtyprepError, RecipeError, SourceError
from .recipe import Recipe, load_recipe
from .sources.registry import get_source, register_source, source_names
from .sources.base import ScanMeta, ScanSource
from .engine.stack import FrameStack

__all__ = [
    "__version__", "load_recipe", "Recipe", "run", "iter_chunks", "read_ptyd", "export",
    "ScanSource", "ScanMeta", "FrameStack", "register_source", "get_source", "source_names",
    "PtyprepError", "RecipeError", "SourceError", "LayoutError", "OutputError", "OtherRankError",
    "Format", "register_format", "format_names", "view",
]

_LAZY = {
    "run": ("ptyprep.engine.run", "run"),
    "iter_chunks": ("ptyprep.engine.run", "iter_chunks"),
    "read_ptyd": ("ptyprep.sources.ptyd", "read_ptyd"),
    "export": ("ptyprep.convert", "export"),
    "Format": ("ptyprep.engine.formats", "Format"),
    "register_format": ("ptyprep.engine.formats", "register_format"),
    "format_names": ("ptyprep.engine.formats", "format_names"),
    "view": ("ptyprep.view", "view"),      # the package is callable too: ptyprep.view(FILE)
}


def __getattr__(name):
    # run/iter_chunks/read_ptyd pull in h5py; import them on first use only.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ptyprep' has no attribute {name!r}")
