"""Read faults named: which frame of which file and dataset could not be read.

A damaged or truncated raw file surfaces as an ``OSError`` or ``ValueError`` deep in
h5py, numpy or fabio, naming neither the file nor the frame.  :func:`read_frames`
turns it into one :class:`~ptyprep.errors.SourceError` (bad input: exit status 2) that
says where it happened (:meth:`~ptyprep.sources.base.ScanSource.where`), the first frame
that cannot be read, and what to do.
"""

import numpy as np

from ..errors import PtyprepError, SourceError


def read_frames(source, indices, roi=None):
    """``source.read_frames(indices, roi)``, a read fault raised as a SourceError naming
    the first frame that cannot be read."""
    try:
        return source.read_frames(indices, roi)
    except PtyprepError:
        raise
    except (OSError, ValueError) as exc:   # h5py, numpy, fabio: damaged or truncated data
        raise SourceError(read_fault(source, indices, roi, exc)) from exc


def read_fault(source, indices, roi, exc):
    """The one-line message of a failed read of frames ``indices``: the first frame that
    cannot be read (found by reading them one at a time), where it is, and what to do."""
    bad = next((int(i) for i in indices if not _readable(source, i, roi)), None)
    which = (f"frame {bad}" if bad is not None
             else f"frames {int(indices[0])}-{int(indices[-1])}")
    return (f"cannot read {which} of {source.where()}: {exc}; the raw data is damaged or "
            "truncated: check the file (h5ls -r, or copy it again), or prepare only the frames "
            "before it (num_frames)")


def _readable(source, index, roi):
    try:
        source.read_frames(np.array([index]), roi)
        return True
    except Exception:  # noqa: BLE001  any failure marks the frame
        return False
