"""lixtools' names on ptyprep: a notebook written for lixtools runs with one changed import.

>>> from ptyprep.saxs.lix import h5xs_scan, get_roi, hop       # doctest: +SKIP

* :class:`h5xs_scan` / :class:`h5xs_an`: lixtools' classes (constructor, ``import_raw_data``,
  ``process``, ``extract_attr``, ``make_map_from_attr``, ``calc_tomo_from_map``,
  ``proc_data``, ``load_data``, ``save_data``, ``samples``), MPI-parallel under ``mpiexec``;
* :func:`get_roi`, :func:`hop`: lixtools' attribute functions, on
* :class:`MatrixWithCoords`: the object lixtools' attribute functions receive;
* :func:`Detector.from_py4xs <ptyprep.saxs.Detector.from_py4xs>` translates py4xs detectors.

Defaults follow lixtools' conventions (no pixel splitting, no solid angle, lixtools'
``hop``); see docs/lixtools.md for what differs and why.
"""

from .functions import get_roi, herman, hop
from .matrix import MatrixWithCoords

__all__ = ["h5xs_an", "h5xs_scan", "get_roi", "hop", "herman", "MatrixWithCoords"]


def __getattr__(name):
    # the classes pull in h5py and pyFAI: import them on first use only
    if name in ("h5xs_an", "h5xs_scan"):
        from . import compat

        return getattr(compat, name)
    raise AttributeError(f"module 'ptyprep.saxs.lix' has no attribute {name!r}")
