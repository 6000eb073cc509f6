"""Crop on read for chunked, compressed frames: bitshuffle-LZ4 (Eiger's HDF5 filter 32008)
and Blosc2 (HDF5 filter 32026, as written by hdf5plugin).

When frames are stored one per chunk (chunk shape ``(1, H, W)``) and compressed in
independent blocks, a crop needs only the compressed blocks that hold it.
:func:`read_frames_roi` reads each compressed chunk as it is on disk
(``read_direct_chunk``, no HDF5 filter pipeline) and decodes only those blocks.  The
result is bit-identical to ``dset[indices, r0:r1, c0:c1]``.

Chunk format written by the bitshuffle filter (LZ4 flavour)::

    8 bytes  big-endian  uncompressed size of the chunk in bytes
    4 bytes  big-endian  block size in bytes (block size in elements × element size)
    then, for every block of ``block`` elements (the last one holds the remainder
    rounded down to a multiple of 8 elements):
        4 bytes  big-endian  compressed size c
        c bytes              LZ4 block of the bit-shuffled elements
    then the last ``n_elements % 8`` elements, stored as they are

Blocks hold whole rows, so a crop decodes its rows across the full width.

The Blosc2 filter stores every chunk of a multidimensional dataset as a *b2nd* frame:
one Blosc2 chunk of shape ``(1, H, W)`` cut into rectangular blocks (e.g. 256 × 256);
the ``blosc2`` package decodes only the blocks a slice touches.  A chunk that is not
such a frame (older writers) is read through h5py.

The decoders are optional packages (``pip install ptyprep[fast]``: ``bitshuffle``,
``blosc2``), imported lazily; without them, or for any other filter or chunking,
:func:`read_frames_roi` returns None and the caller reads the hyperslab as usual.
"""

import functools
import struct

import h5py
import numpy as np

__all__ = ["BITSHUFFLE_FILTER", "BLOSC2_FILTER", "bitshuffle_lz4_layout", "blosc2_layout",
           "read_frames_roi", "read_hyperslab", "roi_reader"]

BITSHUFFLE_FILTER = 32008
BLOSC2_FILTER = 32026
_LZ4 = 2                        # cd_values[4] of filter 32008: 0/1 none, 2 LZ4, 3 Zstd
_HEADER = struct.Struct(">QI")
_BLOCK = struct.Struct(">I")


def _bitshuffle():
    try:
        import bitshuffle.ext as ext
    except ImportError:
        return None
    return ext


def _blosc2():
    try:
        import blosc2
    except ImportError:
        return None
    return blosc2


def _single_filter_frames(dset, filter_id):
    """``((H, W), cd_values)`` when ``dset`` is (N, H, W) in chunks of one frame, compressed by
    ``filter_id`` alone, with a native numeric dtype; else None."""
    if dset.ndim != 3 or dset.chunks is None:
        return None
    h, w = dset.shape[1:]
    dtype = dset.dtype
    if (dset.chunks != (1, h, w) or dset.is_virtual or dtype.kind not in "uif"
            or not dtype.isnative or dtype.itemsize not in (1, 2, 4, 8)):
        return None
    plist = dset.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return None
    fid, _, cd_values, _ = plist.get_filter(0)
    if fid != filter_id:
        return None
    return (int(h), int(w)), cd_values


def bitshuffle_lz4_layout(dset):
    """``(H, W)`` when ``dset`` is an (N, H, W) stack of bitshuffle-LZ4 chunks of one frame.

    Returns None when the fast path does not apply: another filter (or more than
    one), chunks that are not ``(1, H, W)``, a virtual dataset, a non-native or
    non-numeric dtype, or no ``bitshuffle`` package.
    """
    found = _single_filter_frames(dset, BITSHUFFLE_FILTER)
    if found is None or _bitshuffle() is None:
        return None
    shape, cd_values = found
    if len(cd_values) < 5 or cd_values[4] != _LZ4:
        return None
    if cd_values[2] and cd_values[2] != dset.dtype.itemsize:
        return None
    return shape


def blosc2_layout(dset):
    """``(H, W)`` when ``dset`` is an (N, H, W) stack of Blosc2 chunks of one frame.

    None for anything else (see :func:`bitshuffle_lz4_layout`), or without the ``blosc2``
    package.
    """
    found = _single_filter_frames(dset, BLOSC2_FILTER)   # before the import (~24 MB)
    return None if found is None or _blosc2() is None else found[0]


def _decode_roi(ext, buf, dtype, shape, roi):
    """Decode the rows of ``roi`` from one compressed chunk; None if the chunk looks wrong."""
    h, w = shape
    r0, r1, c0, c1 = roi
    item = dtype.itemsize
    n_elem = h * w
    if len(buf) < _HEADER.size:
        return None
    total, block_bytes = _HEADER.unpack_from(buf, 0)
    if total != n_elem * item or block_bytes <= 0 or block_bytes % (8 * item):
        return None
    block = block_bytes // item
    e0 = r0 * w + c0                        # first element of the ROI
    e1 = (r1 - 1) * w + c1                  # one past its last element
    k0 = e0 // block
    k1 = -(-e1 // block)
    n_full = n_elem // block
    off, end = _HEADER.size, len(buf)
    for _ in range(k0):
        off += _BLOCK.size + _BLOCK.unpack_from(buf, off)[0]
    if e1 <= n_full * block:                # ends inside the full blocks
        size = (k1 - k0) * block
        end = off
        for _ in range(k1 - k0):
            end += _BLOCK.size + _BLOCK.unpack_from(buf, end)[0]
    else:                                   # reaches the short last block and the raw tail
        size = n_elem - k0 * block
    if end > len(buf):
        return None
    stream = np.frombuffer(buf, dtype=np.uint8, count=end - off, offset=off)
    decoded = ext.decompress_lz4(stream, (size,), dtype, block)
    first = decoded[e0 - k0 * block:]
    return np.lib.stride_tricks.as_strided(first, shape=(r1 - r0, c1 - c0),
                                           strides=(w * item, item), writeable=False)


def _decode_roi_blosc2(blosc2, buf, dtype, shape, roi):
    """The ``roi`` of one Blosc2 b2nd frame, decoding only its blocks; None if not such a frame."""
    r0, r1, c0, c1 = roi
    try:
        frame = blosc2.ndarray_from_cframe(buf, copy=False)
    except Exception:  # noqa: BLE001  (not a b2nd frame: a plain Blosc2 chunk of an old writer)
        return None
    if tuple(frame.shape) != (1,) + tuple(shape) or frame.dtype.itemsize != dtype.itemsize:
        return None
    return np.ascontiguousarray(frame[0, r0:r1, c0:c1]).view(dtype)


def roi_reader(dset):
    """The crop-on-read function of ``dset``, or None when no fast path applies.

    Decided once per dataset (the filter pipeline is not read again per call): a source
    keeps the result and calls ``reader(indices, roi, out=None)`` with the arguments of
    :func:`read_frames_roi`.
    """
    shape = bitshuffle_lz4_layout(dset)
    if shape is not None:
        decode = functools.partial(_decode_roi, _bitshuffle())
    else:
        shape = blosc2_layout(dset)
        if shape is None:
            return None
        decode = functools.partial(_decode_roi_blosc2, _blosc2())
    return functools.partial(_read_roi, dset, tuple(int(v) for v in shape), decode)


def read_frames_roi(dset, indices, roi, out=None):
    """Read ``dset[indices, r0:r1, c0:c1]`` decoding only the compressed blocks the ROI needs.

    Parameters
    ----------
    dset : h5py.Dataset
        ``(N, H, W)`` frames, chunked ``(1, H, W)``, bitshuffle-LZ4 (HDF5 filter 32008) or
        Blosc2 (32026).
    indices : (M,) int array_like
        Frame indices within ``dset`` (any order; repeats allowed).
    roi : (row0, row1, col0, col1)
        Half-open window inside the frame, not empty.
    out : (M, row1 - row0, col1 - col0) ndarray of ``dset.dtype``, optional
        Filled in place (e.g. a slice of a larger stack).

    Returns
    -------
    (M, row1 - row0, col1 - col0) ndarray, or None
        None when this fast path does not apply (see :func:`bitshuffle_lz4_layout`,
        :func:`blosc2_layout`);
        the caller then reads the hyperslab.  Frames whose chunk is not stored
        (fill value) or does not parse are read through h5py, so a non-None result
        is always complete and identical to the plain read.

    Examples
    --------
    >>> stack = read_frames_roi(f["/entry/data/data"], [0, 1], (100, 356, 200, 456))  # doctest: +SKIP
    >>> stack = stack if stack is not None else f["/entry/data/data"][[0, 1], 100:356, 200:456]  # doctest: +SKIP
    """
    reader = roi_reader(dset)
    return None if reader is None else reader(indices, roi, out)


def _read_roi(dset, shape, decode, indices, roi, out=None):
    """:func:`read_frames_roi` for a dataset whose layout and decoder are known."""
    r0, r1, c0, c1 = (int(v) for v in roi)
    if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
        raise ValueError(f"roi {tuple(roi)} is empty or outside the frame of shape {shape}; "
                         "clip it to the frame first (frames.clip_window)")
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    dtype = dset.dtype
    if out is None:
        out = np.empty((idx.size, r1 - r0, c1 - c0), dtype=dtype)
    elif out.shape != (idx.size, r1 - r0, c1 - c0) or out.dtype != dtype:
        raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; expected "
                         f"{(idx.size, r1 - r0, c1 - c0)} and {dtype}")
    n = dset.shape[0]
    for j, i in enumerate(idx.tolist()):
        if not 0 <= i < n:
            raise IndexError(f"frame index {i} is outside the dataset of {n} frames")
        frame = None
        try:
            mask, buf = dset.id.read_direct_chunk((i, 0, 0))
        except (KeyError, OSError, RuntimeError, ValueError):   # chunk not allocated
            buf = None
        if buf is not None:
            if mask & 1:                                         # filter skipped: raw chunk
                if len(buf) == shape[0] * shape[1] * dtype.itemsize:
                    frame = np.frombuffer(buf, dtype=dtype).reshape(shape)[r0:r1, c0:c1]
            else:
                frame = decode(buf, dtype, shape, (r0, r1, c0, c1))
        if frame is None:
            dset.read_direct(out, np.s_[i, r0:r1, c0:c1], np.s_[j])
        else:
            out[j] = frame
    return out


def read_hyperslab(dset, start, out):
    """Read the block of ``dset`` at ``start`` with the shape of ``out`` into ``out``.

    HDF5's hyperslab read without h5py's selection objects (``read_direct`` spends
    ~10 µs per call building them).  ``out`` must be C-contiguous; HDF5 converts
    the dtype if it differs.
    """
    space = dset.id.get_space()
    space.select_hyperslab(tuple(start), out.shape)
    dset.id.read(h5py.h5s.create_simple(out.shape), space, out)
