"""What a file given to ``ptyprep view`` is, and the daemon status beside it.

:func:`file_kind` tells a ``.ptyd`` from a proc_data file and refuses anything else
with one line naming the file; :func:`read_status` reads the JSON status file that
``ptyprep watch`` rewrites beside its output (``<file>.status.json``) and
:func:`status_text` turns it into the line the page shows.
"""

import json
import os
from pathlib import Path

from ..errors import LayoutError, PtyprepError, SourceError
from ..layout import procdata as P
from ..layout.files import status_name
from ..layout.ptyd import is_ptyd

PTYD, PROCDATA = "ptyd", "procdata"


class ViewError(PtyprepError):
    """``ptyprep view`` cannot serve as asked (the port is taken, several MPI ranks)."""


def file_kind(path):
    """``"ptyd"`` or ``"procdata"`` for the file at ``path``.

    Raises
    ------
    SourceError
        There is no file at ``path``, or it is not an HDF5 file.
    LayoutError
        It is an HDF5 file but neither a ``.ptyd`` nor a proc_data file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no file at {str(path)!r}; give a .ptyd or a proc_data file "
                          "written by ptyprep")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise SourceError(f"{str(path)!r} is not an HDF5 file ({exc}); give a .ptyd or a "
                          "proc_data file written by ptyprep") from exc
    with h5:
        if is_ptyd(h5):
            return PTYD
        attrs = h5.attrs
        if attrs.get(P.ATTR_LAYOUT) == P.LAYOUT_NAME or (P.ATTR_QGRID in attrs
                                                         and P.ATTR_NPHI in attrs):
            return PROCDATA
    raise LayoutError(f"{str(path)!r} is not a ptyprep output (neither a .ptyd with meta/ and "
                      "chunks/ nor a proc_data file); ptyprep view shows the files that "
                      "ptyprep run and ptyprep watch write (ptyprep plot draws raw files)")


def file_stamp(path):
    """``(inode, mtime_ns, size)`` of ``path`` (None when it is gone): it changes whenever a
    daemon publishes a new version (written beside it and renamed over it)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Version:
    """The version of a file that a page shows: :meth:`is_new` is true once per publish.

    Parameters
    ----------
    path : str or Path
        A file ``ptyprep watch`` may replace (see :func:`file_stamp`).
    """

    def __init__(self, path):
        self.path, self.stamp = path, file_stamp(path)

    def is_new(self):
        """True when the file changed since the last look (and remember it); False when it
        is the same or gone."""
        stamp = file_stamp(self.path)
        if stamp is None or stamp == self.stamp:
            return False
        self.stamp = stamp
        return True

    def forget(self):
        """Read it again at the next look (it was replaced while being read)."""
        self.stamp = None


def read_status(path):
    """The status dict of a ``ptyprep watch`` daemon, or None when the file is absent or
    cannot be read as JSON (it is replaced whole, so that is only ever a missing file)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def default_status_path(path):
    """The status file ``ptyprep watch`` writes for output ``path`` by default."""
    return status_name(path)


def status_text(status):
    """One line of a daemon's status: state, frames seen / prepared / published (of the
    expected), rate and lag; ``""`` without a status."""
    if not status:
        return ""
    expected = status.get("frames_expected")
    of = f" of {expected}" if expected else ""
    text = (f"ptyprep watch: {status.get('state', '?')} — frames seen {status.get('frames_seen', 0)}"
            f", prepared {status.get('frames_prepared', 0)}, published "
            f"{status.get('frames_published', 0)}{of}; {float(status.get('rate_fps', 0)):.1f} "
            f"frames/s; lag {status.get('lag_frames', 0)} frames "
            f"({float(status.get('lag_s', 0)):.1f} s)")
    if status.get("end_reason"):
        text += f"; ended by {status['end_reason']}"
    if status.get("error"):
        text += f"; error: {status['error']}"
    return text
