"""HDF5 frame datasets that receive chunks encoded by :mod:`ptyprep.fast.chunkwrite`.

:func:`create_frame_dataset` makes a dataset with chunks of ``K`` frames and the
filters of the encoding; :func:`write_encoded` hands HDF5 the finished chunks with
``write_direct_chunk`` (every filter marked applied), so the file holds what HDF5's
own filter pipeline would have written.  :func:`create_like` makes the many small,
identical datasets of chunk groups quickly.
"""

import numpy as np

__all__ = ["create_frame_dataset", "create_like", "write_encoded", "write_chunks"]


def create_frame_dataset(group, name, shape, dtype, filters, resizable=False, frames_per_chunk=1):
    """An empty frame dataset ``(M, H, W)`` with ``filters``, chunks of ``frames_per_chunk``
    frames (at most ``M`` unless ``resizable``)."""
    kwargs = dict(filters)
    if resizable:
        kwargs["maxshape"] = (None,) + tuple(shape[1:])
    chunks = (int(frames_per_chunk),) + tuple(shape[1:])
    if not resizable:
        return create_like(group, name, tuple(shape), dtype, chunks=chunks, **kwargs)
    return group.create_dataset(name, shape=tuple(shape), dtype=dtype, chunks=chunks, **kwargs)


_CREATE_PLISTS = {}


def create_like(group, name, shape, dtype, data=None, **kwargs):
    """``group.create_dataset(name, shape, dtype, data=data, **kwargs)`` for fixed-size datasets
    created again and again (every chunk group's): the first one of each kind in an open file
    is made by h5py, the next ones with its creation property list through the low-level API
    (~3× less Python per dataset; the same dataset).
    """
    import h5py

    dtype = np.dtype(dtype)
    # kept for one open file at a time (HDF5 numbers every file it opens, never twice):
    # bounded (link mode opens a file per part), and a property list never serves a file of
    # another format version (link-mode parts: 1.8)
    if _CREATE_PLISTS.get("file") != group.id.fileno:
        _CREATE_PLISTS.clear()
        _CREATE_PLISTS["file"] = group.id.fileno
    key = (tuple(shape[1:]), dtype.str, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:                   # unhashable keywords: no shortcut
        key = None
    plist = _CREATE_PLISTS.get(key) if key is not None else None
    if plist is None:
        dset = group.create_dataset(name, shape=shape, dtype=dtype, data=data, **kwargs)
        if key is not None:
            _CREATE_PLISTS[key] = dset.id.get_create_plist()
        return dset

    dsid = h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(dtype),
                           h5py.h5s.create_simple(tuple(shape)), dcpl=plist)
    if data is not None:
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data, dtype=dtype))
    return h5py.Dataset(dsid)


def write_encoded(dset, start, encoded):
    """Write the chunks of ``encoded`` as frames ``start, start + 1, …`` of ``dset``.

    ``dset`` must have chunks ``(K, H, W)`` with the ``K`` of ``encoded``, the dtype of
    the frames and the filters of ``encoded.codec``; ``start`` must be a multiple of
    ``K``.  Every filter is marked applied (mask 0).
    """
    k = encoded.frames_per_chunk
    if not len(encoded.sizes):
        return
    if np.dtype(dset.dtype) != encoded.dtype or dset.chunks != (k,) + tuple(encoded.shape[1:]) \
            or start % k:
        raise ValueError(f"dataset {dset.name} ({dset.dtype}, chunks {dset.chunks}) does not "
                         f"match the encoded frames ({encoded.dtype}, {encoded.shape}, {k} a "
                         f"chunk, from frame {start})")
    write_chunks(dset, start, encoded)


def write_chunks(dset, start, encoded):
    """:func:`write_encoded` without its checks (for a dataset made for ``encoded``)."""
    k = encoded.frames_per_chunk
    zeros = (0,) * (len(encoded.shape) - 1)
    write = dset.id.write_direct_chunk
    buf = encoded.buf
    for i, (s, n) in enumerate(zip(encoded.starts.tolist(), encoded.sizes.tolist())):
        write((start + i * k,) + zeros, buf[s:s + n], filter_mask=0)
