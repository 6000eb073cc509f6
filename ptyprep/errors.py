"""Exceptions a user can act on.

Every error names the offending value (file, dataset, frame, rank), what was expected
and how to fix it.  The command line turns a :class:`PtyprepError` (bad input) into one
line ``ptyprep: error: ...`` and exit status 2, a :class:`WriteFault` (full disk,
permissions) into one line and exit status 1.
"""

import contextlib
import errno
import os


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


class WriteFault(Exception):
    """An output cannot be written although the input is fine (full disk, no permission,
    read-only file system): one line, exit status 1."""


#: errno values of a file system that refuses a write, and what to do about each.
_WRITE_ADVICE = {
    errno.ENOSPC: "free space there or set output.dfile on another file system",
    errno.EDQUOT: "free space within your quota or set output.dfile elsewhere",
    errno.EACCES: "make it writable for this user or set output.dfile elsewhere",
    errno.EPERM: "make it writable for this user or set output.dfile elsewhere",
    errno.EROFS: "the file system is mounted read-only: set output.dfile elsewhere",
    errno.EIO: "the storage reported an I/O error: check it, or set output.dfile elsewhere",
}


def write_fault(exc, where):
    """The :class:`WriteFault` describing OSError ``exc`` raised while writing ``where``
    (the output file or folder), or None when ``exc`` is not a refused write."""
    if isinstance(exc, (PtyprepError, WriteFault)) or not isinstance(exc, (OSError,
                                                                         RuntimeError)):
        return None
    code = getattr(exc, "errno", None)
    if code is None:    # h5py puts the errno only into the text (RuntimeError on a close)
        code = next((c for c in _WRITE_ADVICE if f"errno = {c}," in str(exc)), None)
    if code not in _WRITE_ADVICE:
        return None
    target = getattr(exc, "filename", None) or where
    return WriteFault(f"cannot write {str(target)!r}: {os.strerror(code)}; "
                      f"{_WRITE_ADVICE[code]} (a previous output is left as it was)")


@contextlib.contextmanager
def writing(where):
    """Context: an OSError of a refused write inside becomes a :class:`WriteFault` naming
    ``where`` (the output being written) unless the error names its own file."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        fault = write_fault(exc, where)
        if fault is None:
            raise
        raise fault from exc


class OtherRankError(RuntimeError):
    """Another MPI rank failed with an error that is not bad input; raised on the ranks
    that did not fail, so none of them waits for it (see :mod:`ptyprep.engine.collective`)."""
