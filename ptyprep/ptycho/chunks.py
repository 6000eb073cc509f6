"""The chunk groups of a ``.ptyd``: ``data``, ``weights``, ``positions``, ``indices`` written
whole, streamed batch by batch, copied from a template, or appended (merge mode)."""

import numpy as np

from ..fast import chunkgroup
from ..fast import chunkwrite as cw
from ..fast import chunkdatasets as cd
from ..layout import ptyd as L
from .h5rw import set_type


def write_chunk_arrays(group, data, weights, positions, indices, filters, resizable=False):
    """Write one chunk's four arrays into ``group`` (a ``chunks/<k>`` group or a part file's root).

    With the filters any HDF5 reader has built in (``gzip``/``shuffle`` or none) the
    frames are encoded by ptyprep and written as finished chunks of a few frames,
    ``(K, N, N)`` (:mod:`ptyprep.fast.chunkwrite`); other filters go through HDF5's
    pipeline in chunks of one frame.

    Parameters
    ----------
    data : (M, N, N) ndarray, or EncodedFrames (chunks made on another rank)
    weights : (M, N, N) uint8 ndarray (1 = valid pixel), or EncodedFrames
    positions : (M, 2) float64 metres
    indices : (M,) int64
    filters : dict
        h5py ``create_dataset`` keywords for the frame datasets (compression).
    resizable : bool
        Make the first axis unlimited (merge mode).
    """
    set_type(group, L.DICT)
    codec = cw.chunk_codec(filters)
    arrays = {L.DATA: data, L.WEIGHTS: weights, L.POSITIONS: positions, L.INDICES: indices}
    for name, array in arrays.items():
        if isinstance(array, cw.EncodedFrames) or (
                array.ndim == 3 and len(array) and cw.frames_encodable(codec, array.shape)):
            if not isinstance(array, cw.EncodedFrames):
                k = 1 if resizable else cw.frames_per_chunk(array[0].nbytes, len(array))
                array = cw.encode_frames(array, codec, k)
            dset = cd.create_frame_dataset(group, name, array.shape, array.dtype, filters,
                                           resizable=resizable,
                                           frames_per_chunk=array.frames_per_chunk)
            cd.write_encoded(dset, 0, array)
        else:
            kwargs = {}
            if resizable:
                kwargs["maxshape"] = (None,) + array.shape[1:]
                kwargs["chunks"] = (1,) + array.shape[1:] if array.ndim == 3 else True
            elif array.ndim == 3 and len(array):
                kwargs["chunks"] = (1,) + array.shape[1:]
            if array.ndim == 3 and len(array):
                kwargs.update(filters)
            dset = group.create_dataset(name, data=array, **kwargs)
        set_type(dset, L.ARRAYLIST if name == L.INDICES else L.ARRAY)


def create_frame_datasets(group, n_frames, frame_shape, dtype, filters, frames_per_chunk):
    """Empty ``data`` and ``weights`` of a chunk group (typed, the group marked a dict) for
    encoded chunks written later, batch by batch
    (:func:`ptyprep.fast.chunkdatasets.write_encoded`); ``positions`` and ``indices``
    follow with :func:`write_positions`.

    Returns
    -------
    (data, weights) : h5py.Dataset
    """
    set_type(group, L.DICT)
    dsets = []
    for name, dt in ((L.DATA, dtype), (L.WEIGHTS, np.uint8)):
        dset = cd.create_frame_dataset(group, name, (n_frames,) + tuple(frame_shape), dt,
                                       filters, frames_per_chunk=frames_per_chunk)
        set_type(dset, L.ARRAY)
        dsets.append(dset)
    return tuple(dsets)


def create_chunk_group(parent, name, n_frames, frame_shape, dtype, filters, frames_per_chunk):
    """A new chunk group ``parent[name]`` of ``n_frames`` frames: typed, with the empty
    frame datasets of :func:`create_frame_datasets` and empty typed ``positions`` (M, 2)
    float64 and ``indices`` (M,) int64 for :func:`write_positions`.

    The group is copied whole from a template made with these same functions
    (:mod:`ptyprep.fast.chunkgroup`: ~4× cheaper than five objects and five
    attributes made one by one); in a file of HDF5's earliest format, or with filters
    that cannot key a template, the objects are made one by one.

    Returns
    -------
    (group, data, weights) : h5py.Group, h5py.Dataset, h5py.Dataset
    """
    def make(file):
        template = file.create_group("t")
        create_frame_datasets(template, n_frames, frame_shape, dtype, filters, frames_per_chunk)
        for member, shape, dt, kind in ((L.POSITIONS, (n_frames, 2), np.float64, L.ARRAY),
                                        (L.INDICES, (n_frames,), np.int64, L.ARRAYLIST)):
            set_type(template.create_dataset(member, shape, dt), kind)

    key = (int(n_frames), tuple(frame_shape), np.dtype(dtype).str,
           tuple(sorted(filters.items())), int(frames_per_chunk))
    try:
        hash(key)
    except TypeError:                       # unhashable filter options: no template
        group = None
    else:
        group = chunkgroup.copy_group(parent, name, key, make)
    if group is None:
        group = parent.create_group(name)
        return (group,) + create_frame_datasets(group, n_frames, frame_shape, dtype, filters,
                                                frames_per_chunk)
    return group, chunkgroup.open_dataset(group, L.DATA), chunkgroup.open_dataset(group, L.WEIGHTS)


def write_positions(group, positions, indices):
    """``positions`` (M, 2) and ``indices`` (M,) of a chunk group, typed: into the empty
    datasets of :func:`create_chunk_group` where the group has them, else new ones."""
    for name, array, kind in ((L.POSITIONS, positions, L.ARRAY), (L.INDICES, indices, L.ARRAYLIST)):
        array = np.asarray(array, dtype=np.float64 if name == L.POSITIONS else np.int64)
        if not chunkgroup.write_member(group, name, array):
            set_type(cd.create_like(group, name, array.shape, array.dtype, data=array), kind)


def append_chunk_arrays(group, data, weights, positions, indices):
    """Append frames to the resizable datasets of a merge-mode chunk.

    ``data`` and ``weights`` may be EncodedFrames made for the datasets' filters.
    """
    n = len(indices)
    for name, array in ((L.DATA, data), (L.WEIGHTS, weights), (L.POSITIONS, positions),
                        (L.INDICES, indices)):
        dset = group[name]
        start = dset.shape[0]
        dset.resize(start + n, axis=0)
        if not isinstance(array, cw.EncodedFrames) and array.ndim == 3 and n:
            codec = cw.dataset_codec(dset)
            if dset.chunks == (1,) + array.shape[1:] and cw.frames_encodable(codec, array.shape):
                array = cw.encode_frames(np.asarray(array, dtype=dset.dtype), codec)
        if isinstance(array, cw.EncodedFrames):
            cd.write_encoded(dset, start, array)
        else:
            dset[start:] = array


