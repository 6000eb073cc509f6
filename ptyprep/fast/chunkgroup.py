"""``.ptyd`` chunk groups copied whole from a template (HDF5's ``H5Ocopy``).

Every chunk group of a scan is the same five objects: the group and its ``data``,
``weights``, ``positions`` and ``indices``, each with ptypy's ``type`` attribute.
Made one by one they cost ~1.4 ms per group here (most of it the five attributes
growing fresh object headers); copied in one call from an empty, typed template kept
in an in-memory HDF5 file they cost ~0.25 ms (files of HDF5's 1.8 format or later:
the ``.ptyd`` master).  The copy is the same objects: the same
creation properties, attributes and (unallocated) storage as made one by one, so
readers cannot tell the two apart (tests compare them).

A template is made once per kind of group (frames, frame shape, dtypes, filters,
frames per chunk, and the destination's format bounds) with the ordinary writer
functions of :mod:`ptyprep.layout.ptyd`; a scan needs one or two (full chunk groups
and the last, shorter one).
"""

import itertools
from collections import OrderedDict

import h5py
import numpy as np

#: Templates kept at a time (oldest closed first); a scan uses one or two.
MAX_TEMPLATES = 8

_TEMPLATES = OrderedDict()
_NAMES = itertools.count()


def _template(key, make):
    """The open in-memory file of template ``key``, made with ``make(file)`` if new."""
    if key in _TEMPLATES:
        _TEMPLATES.move_to_end(key)
        return _TEMPLATES[key]
    libver = key[0]
    # backing_store=False: nothing touches the disk; the name only has to be unique
    f = h5py.File(f"ptyprep-template-{next(_NAMES)}.h5", "w", driver="core",
                  backing_store=False, libver=libver)
    try:
        make(f)
    except BaseException:
        f.close()
        raise
    _TEMPLATES[key] = f
    while len(_TEMPLATES) > MAX_TEMPLATES:
        _TEMPLATES.popitem(last=False)[1].close()
    return f


def copy_group(parent, name, key, make):
    """Copy the template group ``key`` (made by ``make(file)`` as its ``/t``) to
    ``parent[name]``.

    Parameters
    ----------
    parent : h5py.Group
        Where the copy goes (a new member ``name``).
    name : str
    key : hashable
        Everything the template depends on but the destination's format bounds.
    make : callable
        ``make(file)`` creates the template as ``file["t"]``.

    Returns
    -------
    h5py.Group or None
        The copy; None (nothing copied) in a file of HDF5's earliest format, where a
        copied dataset would carry time stamps the original has not.
    """
    libver = _libver(parent)
    if libver[0] == "earliest":
        return None
    template = _template((libver,) + tuple(key), make)
    h5py.h5o.copy(template.id, b"t", parent.id, name.encode())
    return h5py.Group(h5py.h5g.open(parent.id, name.encode()))


_LIBVER = {}


def _libver(node):
    """The format bounds of ``node``'s file, looked up once per open file (HDF5 numbers
    every file it opens, never twice)."""
    number = node.id.fileno
    if number not in _LIBVER:
        _LIBVER.clear()
        _LIBVER[number] = node.file.libver
    return _LIBVER[number]


def open_dataset(group, name):
    """``group[name]`` without h5py's path lookup (~25 µs less)."""
    return h5py.Dataset(h5py.h5d.open(group.id, name.encode()))


def write_member(group, name, array):
    """Write all of the existing dataset ``group[name]`` from ``array`` (its shape, in the
    dataset's dtype).  Returns False, writing nothing, when there is no such member."""
    key = name.encode()
    if key not in group.id:
        return False
    h5py.h5d.open(group.id, key).write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(array))
    return True


def clear():
    """Close every template (tests; a process may also call it to free the memory)."""
    while _TEMPLATES:
        _TEMPLATES.popitem()[1].close()
