"""Publishing a growing link-mode ``.ptyd`` scan (``ptyprep watch``), and reading it back.

A reader may open the master at any moment.  The master is therefore never modified in
place: every update writes a whole new master under a temporary name and renames it over
the old one (atomic on POSIX; a reader holding the old file open keeps reading the old,
consistent version, and HDF5's file lock never stands between writer and reader).  Part
files are written as ``<part>.tmp`` and renamed before the master that links them.
"""

import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import LayoutError, OutputError
from ..layout import files as F
from ..layout import ptyd as L
from .h5rw import dict_group, write_info, write_meta
from .chunks import write_chunk_arrays
from ..sources.ptyd import open_ptyd


def write_part(path, arrays, filters, before_rename=None):
    """Write one link-mode part file atomically: ``<path>.tmp``, then rename to ``path``.

    Parameters
    ----------
    path : Path
        Final part file (next to its master).
    arrays : tuple
        ``(data (M, N, N), weights (M, N, N) uint8, positions (M, 2), indices (M,))``.
    filters : dict
        h5py compression keywords of the frame datasets.
    before_rename : callable, optional
        Called after the temporary file is closed, before the rename (tests).
    """
    path = Path(path)
    tmp = F.tmp_name(path)
    with h5py.File(tmp, "w") as part:
        write_chunk_arrays(part, *arrays, filters)
    if before_rename is not None:
        before_rename()
    os.replace(tmp, path)
    return path


def publish_master(path, meta, info, part_names):
    """Write the master of a link-mode scan whole and rename it into place (atomic).

    Parameters
    ----------
    path : Path
        Final master file.
    meta : dict
        ``meta/`` content (``num_frames`` first; see :func:`ptyprep.layout.ptyd.write_meta`).
    info : dict
        ``info/`` content (provenance and the end-of-scan record).
    part_names : list of str
        Bare file names of the parts, in scan order: ``chunks/<k>`` links to ``part_names[k]``.
    """
    path = Path(path)
    tmp = F.publishing_name(path)
    with h5py.File(tmp, "w", libver="latest") as h5:
        write_meta(h5, meta)
        chunks = dict_group(h5, L.CHUNKS)
        for k, name in enumerate(part_names):
            if Path(name).name != name:
                raise OutputError(f"part name {name!r} is not a bare file name")
            chunks[L.chunk_name(k)] = h5py.ExternalLink(name, "/")
        write_info(h5, info)
    os.replace(tmp, path)


def read_links(path):
    """``(meta, info, part_names)`` of a link-mode master (part names in chunk order).

    Raises
    ------
    LayoutError
        The file is not a ``.ptyd`` or holds chunks that are not external links.
    """
    with open_ptyd(Path(path)) as (h5, meta, info):
        names = []
        for name in sorted(h5[L.CHUNKS], key=int):
            link = h5[L.CHUNKS].get(name, getlink=True)
            if not isinstance(link, h5py.ExternalLink):
                raise LayoutError(f"{str(path)!r} chunk {name} is not a link-mode part; "
                                  "it was not written by ptyprep watch or save = 'link'")
            names.append(link.filename)
    return meta, info, names


def read_part_indices(path):
    """Scan indices held by a part file, or None if it is missing or unreadable."""
    try:
        with h5py.File(path, "r") as part:
            return np.asarray(part[L.INDICES][()], dtype=np.int64)
    except (OSError, KeyError):
        return None
