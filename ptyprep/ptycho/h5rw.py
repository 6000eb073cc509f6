"""Writing ptypy's h5rw encoding: typed groups and values of a ``.ptyd`` (names in the layout)."""

import functools
import json

import h5py
import numpy as np

from ..layout import json_default
from ..layout import ptyd as L


def set_type(node, kind):
    """Mark ``node`` with h5rw's ``type`` attribute: a scalar variable-length UTF-8 string,
    what ``node.attrs["type"] = kind`` writes (made with h5py's low-level API, which skips
    the high-level checks: every chunk group carries five of these)."""
    oid, name = node.id, L.TYPE.encode()
    if h5py.h5a.exists(oid, name):
        h5py.h5a.delete(oid, name)
    attr = h5py.h5a.create(oid, name, _vlen_str_type(), _scalar_space())
    attr.write(np.array(kind, dtype=h5py.string_dtype()))


@functools.lru_cache(maxsize=1)
def _vlen_str_type():
    return h5py.h5t.py_create(h5py.string_dtype(), logical=True)


@functools.lru_cache(maxsize=1)
def _scalar_space():
    return h5py.h5s.create(h5py.h5s.SCALAR)


def dict_group(parent, name):
    """Create (or open) a group that h5rw reads as a dict; members keep creation order."""
    group = parent[name] if name in parent else parent.create_group(name, track_order=True)
    set_type(group, L.DICT)
    return group


def write_value(group, name, value):
    """Write a Python/numpy value with the h5rw type ptypy expects."""
    if name in group:
        del group[name]
    if value is None:
        dset = group.create_dataset(name, data=np.zeros(1, dtype=np.float64))
        set_type(dset, L.NONE)
    elif isinstance(value, str):
        dset = group.create_dataset(name, data=value, dtype=h5py.string_dtype())
        set_type(dset, L.STRING)
    elif np.ndim(value) == 0:
        dset = group.create_dataset(name, data=value)
        set_type(dset, L.SCALAR)
    else:
        dset = group.create_dataset(name, data=np.asarray(value))
        set_type(dset, L.ARRAY)
    return dset


def write_meta(h5, meta):
    """Write ``meta/``; ``num_frames`` goes first, as ptypy's readers expect.

    Parameters
    ----------
    h5 : h5py.File or Group
    meta : dict
        ``num_frames``, ``shape``, ``center``, ``psize``, ``energy``, ``distance``,
        ``label``, ``propagation`` (and optionally more).
    """
    group = dict_group(h5, L.META)
    write_value(group, L.NUM_FRAMES, np.int64(meta[L.NUM_FRAMES]))
    for key in (L.SHAPE,):
        write_value(group, key, np.asarray(meta[key], dtype=np.int64))
    for key in (L.CENTER, L.PSIZE):
        write_value(group, key, np.asarray(meta[key], dtype=np.float64))
    for key in (L.ENERGY, L.DISTANCE):
        write_value(group, key, np.float64(meta[key]))
    write_value(group, L.VERSION, np.float64(L.FORMAT_VERSION))
    write_value(group, L.LABEL, meta.get(L.LABEL) or None)
    write_value(group, L.PROPAGATION, meta.get(L.PROPAGATION, "farfield"))
    return group


def write_info(h5, info):
    """Write the provenance group ``info/`` (readers ignore it).

    ``info`` values that are dicts are stored as JSON strings.
    """
    group = dict_group(h5, L.INFO)
    for key, value in info.items():
        if isinstance(value, (dict, list, tuple)) and not _is_numeric(value):
            value = json.dumps(value, default=json_default)
        write_value(group, key, value)
    return group


def _is_numeric(value):
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (ValueError, TypeError):
        return False


