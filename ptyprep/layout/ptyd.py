"""The ``.ptyd`` layout (ptypy's prepared-data file): names and h5rw encoding.

Every path and attribute name of a ``.ptyd`` lives here.  Nodes carry ptypy's
h5rw ``type`` attribute so that ptypy's ``PtydScan`` reads the file unchanged:
groups ``'dict'``, arrays ``'array'``, 0-d numbers ``'scalar'``, 0-d strings
``'string'``, index lists ``'arraylist'`` and None as a (1,) float64 dataset of
type ``'None'``.
"""

import functools
import json

import h5py
import numpy as np

from ..writers import chunkgroup
from ..writers import chunkwrite as cw
from . import json_default

META = "meta"
CHUNKS = "chunks"
INFO = "info"
TYPE = "type"
DATA, WEIGHTS, POSITIONS, INDICES = "data", "weights", "positions", "indices"
CHUNK_ARRAYS = (DATA, WEIGHTS, POSITIONS, INDICES)
FORMAT_VERSION = 0.1

# The end-of-scan record and the restart state of an on-the-fly output (under info/).
COMPLETE = "complete"              # int64 0-d: 1 once the scan has ended and every frame is published
END_REASON = "end_reason"          # string: "count", "marker" or "timeout" ("" while acquiring)
FRAMES_WRITTEN = "frames_written"  # int64 0-d: frames published
RAW_CENTER = "raw_center"          # float64 (2,): raw-frame centre (row, col), reused on restart
RECIPE = "recipe"                  # JSON string of the recipe
NUM_FRAMES_KNOWN = "num_frames_known"  # int64 0-d: 1 if meta/num_frames is the scan's true length
END_REASONS = ("count", "marker", "timeout")
#: meta/num_frames while the scan's length is unknown: PtydScan then keeps waiting for frames.
NUM_FRAMES_UNKNOWN = 2**31 - 1

CONVENTIONS = (
    "coordinates (row, col) = (y, x); positions in metres, one row per frame, (y, x); "
    "weights > 0 marks a valid pixel; orientation applied as transpose, flipud, fliplr; "
    "meta/center is the optical axis in the prepared frame (row, col); psize in metres after rebin; "
    "energy in keV; distance in metres"
)


def set_type(node, kind):
    """Mark ``node`` with h5rw's ``type`` attribute: a scalar variable-length UTF-8 string,
    what ``node.attrs["type"] = kind`` writes (made with h5py's low-level API, which skips
    the high-level checks: every chunk group carries five of these)."""
    oid, name = node.id, TYPE.encode()
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
    set_type(group, "dict")
    return group


def write_value(group, name, value):
    """Write a Python/numpy value with the h5rw type ptypy expects."""
    if name in group:
        del group[name]
    if value is None:
        dset = group.create_dataset(name, data=np.zeros(1, dtype=np.float64))
        set_type(dset, "None")
    elif isinstance(value, str):
        dset = group.create_dataset(name, data=value, dtype=h5py.string_dtype())
        set_type(dset, "string")
    elif np.ndim(value) == 0:
        dset = group.create_dataset(name, data=value)
        set_type(dset, "scalar")
    else:
        dset = group.create_dataset(name, data=np.asarray(value))
        set_type(dset, "array")
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
    group = dict_group(h5, META)
    write_value(group, "num_frames", np.int64(meta["num_frames"]))
    for key in ("shape",):
        write_value(group, key, np.asarray(meta[key], dtype=np.int64))
    for key in ("center", "psize"):
        write_value(group, key, np.asarray(meta[key], dtype=np.float64))
    for key in ("energy", "distance"):
        write_value(group, key, np.float64(meta[key]))
    write_value(group, "version", np.float64(FORMAT_VERSION))
    write_value(group, "label", meta.get("label") or None)
    write_value(group, "propagation", meta.get("propagation", "farfield"))
    return group


def write_info(h5, info):
    """Write the provenance group ``info/`` (readers ignore it).

    ``info`` values that are dicts are stored as JSON strings.
    """
    group = dict_group(h5, INFO)
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


def chunk_name(number):
    """Group name of chunk ``number`` under ``chunks/`` (decimal, no padding)."""
    return str(int(number))


def write_chunk_arrays(group, data, weights, positions, indices, filters, resizable=False):
    """Write one chunk's four arrays into ``group`` (a ``chunks/<k>`` group or a part file's root).

    With the filters any HDF5 reader has built in (``gzip``/``shuffle`` or none) the
    frames are encoded by ptyprep and written as finished chunks of a few frames,
    ``(K, N, N)`` (:mod:`ptyprep.writers.chunkwrite`); other filters go through HDF5's
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
    set_type(group, "dict")
    codec = cw.chunk_codec(filters)
    arrays = {DATA: data, WEIGHTS: weights, POSITIONS: positions, INDICES: indices}
    for name, array in arrays.items():
        if isinstance(array, cw.EncodedFrames) or (
                array.ndim == 3 and len(array) and cw.frames_encodable(codec, array.shape)):
            if not isinstance(array, cw.EncodedFrames):
                k = 1 if resizable else cw.frames_per_chunk(array[0].nbytes, len(array))
                array = cw.encode_frames(array, codec, k)
            dset = cw.create_frame_dataset(group, name, array.shape, array.dtype, filters,
                                           resizable=resizable,
                                           frames_per_chunk=array.frames_per_chunk)
            cw.write_encoded(dset, 0, array)
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
        set_type(dset, "arraylist" if name == INDICES else "array")


def create_frame_datasets(group, n_frames, frame_shape, dtype, filters, frames_per_chunk):
    """Empty ``data`` and ``weights`` of a chunk group (typed, the group marked a dict) for
    encoded chunks written later, batch by batch
    (:func:`ptyprep.writers.chunkwrite.write_encoded`); ``positions`` and ``indices``
    follow with :func:`write_positions`.

    Returns
    -------
    (data, weights) : h5py.Dataset
    """
    set_type(group, "dict")
    dsets = []
    for name, dt in ((DATA, dtype), (WEIGHTS, np.uint8)):
        dset = cw.create_frame_dataset(group, name, (n_frames,) + tuple(frame_shape), dt,
                                       filters, frames_per_chunk=frames_per_chunk)
        set_type(dset, "array")
        dsets.append(dset)
    return tuple(dsets)


def create_chunk_group(parent, name, n_frames, frame_shape, dtype, filters, frames_per_chunk):
    """A new chunk group ``parent[name]`` of ``n_frames`` frames: typed, with the empty
    frame datasets of :func:`create_frame_datasets` and empty typed ``positions`` (M, 2)
    float64 and ``indices`` (M,) int64 for :func:`write_positions`.

    The group is copied whole from a template made with these same functions
    (:mod:`ptyprep.writers.chunkgroup`: ~4× cheaper than five objects and five
    attributes made one by one); in a file of HDF5's earliest format, or with filters
    that cannot key a template, the objects are made one by one.

    Returns
    -------
    (group, data, weights) : h5py.Group, h5py.Dataset, h5py.Dataset
    """
    def make(file):
        template = file.create_group("t")
        create_frame_datasets(template, n_frames, frame_shape, dtype, filters, frames_per_chunk)
        for member, shape, dt, kind in ((POSITIONS, (n_frames, 2), np.float64, "array"),
                                        (INDICES, (n_frames,), np.int64, "arraylist")):
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
    return group, chunkgroup.open_dataset(group, DATA), chunkgroup.open_dataset(group, WEIGHTS)


def write_positions(group, positions, indices):
    """``positions`` (M, 2) and ``indices`` (M,) of a chunk group, typed: into the empty
    datasets of :func:`create_chunk_group` where the group has them, else new ones."""
    for name, array, kind in ((POSITIONS, positions, "array"), (INDICES, indices, "arraylist")):
        array = np.asarray(array, dtype=np.float64 if name == POSITIONS else np.int64)
        if not chunkgroup.write_member(group, name, array):
            set_type(cw.create_like(group, name, array.shape, array.dtype, data=array), kind)


def append_chunk_arrays(group, data, weights, positions, indices):
    """Append frames to the resizable datasets of a merge-mode chunk.

    ``data`` and ``weights`` may be EncodedFrames made for the datasets' filters.
    """
    n = len(indices)
    for name, array in ((DATA, data), (WEIGHTS, weights), (POSITIONS, positions),
                        (INDICES, indices)):
        dset = group[name]
        start = dset.shape[0]
        dset.resize(start + n, axis=0)
        if not isinstance(array, cw.EncodedFrames) and array.ndim == 3 and n:
            codec = cw.dataset_codec(dset)
            if dset.chunks == (1,) + array.shape[1:] and cw.frames_encodable(codec, array.shape):
                array = cw.encode_frames(np.asarray(array, dtype=dset.dtype), codec)
        if isinstance(array, cw.EncodedFrames):
            cw.write_encoded(dset, start, array)
        else:
            dset[start:] = array


def read_chunk_arrays(group):
    """The four arrays of one chunk group (or part file root) as numpy arrays."""
    return {name: group[name][()] for name in CHUNK_ARRAYS}


def read_value(node):
    """Decode an h5rw-typed dataset."""
    kind = node.attrs.get(TYPE)
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == "None":
        return None
    value = node[()]
    if kind == "string" or isinstance(value, bytes):
        return value.decode() if isinstance(value, bytes) else str(value)
    return value
