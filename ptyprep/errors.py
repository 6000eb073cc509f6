"""Exceptions raised for bad input.

Every error names the offending value, what was expected and how to fix it.
The command line turns a :class:`PtyprepError` into one line
``ptyprep: error: ...`` and exit status 2.
"""


class PtyprepError(Exception):
    """Base class of every error caused by bad input (recipe, options, raw data)."""


class RecipeError(PtyprepError, ValueError):
    """A recipe key or value is invalid."""


class SourceError(PtyprepError, OSError):
    """Raw data cannot be read as described (missing file, dataset, wrong shape)."""


class LayoutError(PtyprepError):
    """An HDF5 file does not follow the layout it claims (.ptyd, proc_data)."""


class OutputError(PtyprepError, OSError):
    """The output cannot be written (exists without overwrite, not writable)."""


class OtherRankError(RuntimeError):
    """Another MPI rank failed with an error that is not bad input; raised on the ranks
    that did not fail, so none of them waits for it (see :mod:`ptyprep.engine.collective`)."""
