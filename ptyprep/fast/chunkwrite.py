"""Frame datasets written as pre-compressed HDF5 chunks.

HDF5's own deflate costs ~1.7 ms per 256² uint32 frame here and runs wherever
``h5py`` writes (in append/merge mode: rank 0 only).  For the filters any HDF5
reader decodes without plugins (``shuffle`` and ``gzip``/deflate, or none),
ptyprep encodes each frame itself, on the rank that prepared it, and hands HDF5
the finished chunk with ``write_direct_chunk``:

* HDF5's **shuffle** filter is a byte transpose of the chunk: view it as
  ``(n_elements, itemsize)`` bytes, transpose, ravel (nothing for 1-byte types);
* HDF5's **deflate** filter stores a standard zlib stream (RFC 1950), which
  :func:`ptyprep.fast.deflate.deflate` makes with ISA-L when installed, else zlib.

The dataset is created with exactly those filters and chunks of ``K`` frames
``(K, H, W)``, so h5py, the C library, MATLAB ... decode it with their built-in
filters, bit-identical to the frames.  Other filters (lzf, bitshuffle, blosc2, …)
go through HDF5's filter pipeline as before (:func:`chunk_codec` returns None).

``K`` (:func:`frames_per_chunk`) is the largest of 8, 4, 2, 1 whose chunk stays within
HDF5's default chunk cache (1 MiB, so a reader going frame by frame decodes each chunk
once): 4 frames of 256² uint32.  Encoding and writing a chunk costs a fixed ~10 µs
besides its bytes, so 4 frames a chunk are ~30 % cheaper to make than 1.  A chunk
never spans two ranks' shares: ``K`` also divides every share boundary of the chunk
group.  The last chunk of a dataset may hold fewer frames; it is encoded padded with
zeros to ``K`` frames, as HDF5 stores edge chunks.
"""

from dataclasses import dataclass

import numpy as np

from .deflate import deflate_parts, plane_modes
from .shuffle import shuffle_frame

#: h5py's default gzip level when ``compression_opts`` is not given.
H5PY_DEFAULT_GZIP_LEVEL = 4
#: Largest chunk :func:`frames_per_chunk` makes: HDF5's default chunk cache per dataset.
MAX_CHUNK_BYTES = 1 << 20
#: Most frames in one chunk.
MAX_FRAMES_PER_CHUNK = 8


def frames_per_chunk(frame_nbytes, n_frames, boundaries=()):
    """Frames ``K`` per HDF5 chunk of a frame dataset of ``n_frames`` frames.

    The largest of 8, 4, 2, 1 with ``K × frame_nbytes ≤`` :data:`MAX_CHUNK_BYTES`,
    ``K ≤ n_frames`` (HDF5 chunks fit in a fixed-size dataset) and ``K`` dividing every
    one of ``boundaries`` (the first frame of each rank's share, so that every rank
    encodes whole chunks).

    Parameters
    ----------
    frame_nbytes : int
        Bytes of one frame.
    n_frames : int
        Frames in the dataset.
    boundaries : sequence of int
        Frame offsets a chunk must start at.

    Returns
    -------
    int, ≥ 1
    """
    k = MAX_FRAMES_PER_CHUNK
    while k > 1 and (k * frame_nbytes > MAX_CHUNK_BYTES or k > n_frames
                     or any(int(b) % k for b in boundaries)):
        k //= 2
    return k


def share_boundaries(counts):
    """First frame of every non-empty share in a chunk group of ``counts`` frames per rank."""
    counts = np.asarray(counts, dtype=np.int64)
    return (np.cumsum(counts) - counts)[counts > 0].tolist()


@dataclass(frozen=True)
class Codec:
    """What ptyprep does to a frame to make the chunk HDF5 expects.

    Attributes
    ----------
    level : int or None
        zlib level of the deflate filter; None when the dataset has no deflate.
    shuffle : bool
        HDF5's byte shuffle before deflate.
    """

    level: object = None
    shuffle: bool = False

    def encode(self, frame, modes=None):
        """The stored bytes of one chunk holding ``frame`` (any array; made C-contiguous)."""
        parts = self.encode_parts(frame, modes)
        return parts[0] if self.level is None else b"".join(parts)

    def encode_parts(self, frame, modes=None):
        """:meth:`encode` as a list of bytes-like pieces (joined once for many frames).

        ``modes``: how to write each byte plane (:meth:`plane_modes` of the stack), or
        None to decide from this frame.
        """
        frame = np.ascontiguousarray(frame)
        if self.shuffle and frame.dtype.itemsize > 1:
            raw = shuffle_frame(frame)
        else:
            raw = frame.reshape(-1).view(np.uint8)
        if self.level is None:
            return [raw]
        planes = frame.dtype.itemsize if self.shuffle else 1
        return deflate_parts(raw, self.level, planes, modes)

    def plane_modes(self, frames):
        """The ``modes`` argument of :meth:`encode` for every frame of stack ``frames``."""
        if self.level is None:
            return None
        return plane_modes(frames, frames.dtype.itemsize if self.shuffle else 1)


def chunk_codec(filters):
    """The :class:`Codec` that reproduces h5py keywords ``filters``, or None.

    None means ptyprep cannot make these chunks itself (a plugin filter, lzf,
    fletcher32, scale-offset ...): write through HDF5's filter pipeline.
    """
    f = dict(filters or {})
    comp = f.pop("compression", None)
    opts = f.pop("compression_opts", None)
    shuffle = bool(f.pop("shuffle", False))
    if f:
        return None
    if comp is None:
        return Codec(None, shuffle) if opts is None else None
    if comp in ("gzip", 1):
        level = H5PY_DEFAULT_GZIP_LEVEL if opts is None else int(opts)
        return Codec(level, shuffle) if 0 <= level <= 9 else None
    return None


def dataset_codec(dset):
    """The :class:`Codec` of an existing dataset's filter pipeline, or None.

    Only a pipeline of HDF5's built-in shuffle and/or deflate (in that order) qualifies.
    """
    import h5py

    plist = dset.id.get_create_plist()
    level, shuffle = None, False
    for k in range(plist.get_nfilters()):
        code, _flags, values, _name = plist.get_filter(k)
        if code == h5py.h5z.FILTER_SHUFFLE and level is None and not shuffle:
            shuffle = True
        elif code == h5py.h5z.FILTER_DEFLATE and level is None:
            level = int(values[0]) if len(values) else H5PY_DEFAULT_GZIP_LEVEL
        else:
            return None
    return Codec(level, shuffle)


def frames_encodable(codec, shape):
    """True when frames of ``(M, H, W, ...)`` shape can be written as direct chunks."""
    return codec is not None and len(shape) >= 2 and all(s > 0 for s in shape[1:])


def encode_stacks(stacks, codec, modes=None, frames_per_chunk=1):
    """Encode chunk ``i`` (frames ``i·K … i·K + K − 1``) of every stack into one buffer.

    Parameters
    ----------
    stacks : sequence of (M, ...) ndarrays
        Same M.  A stack broadcast along its first axis (stride 0) is encoded once.
    codec : Codec
    modes : sequence, optional
        For every stack, how to write each byte plane (:meth:`Codec.plane_modes`),
        e.g. decided on the first part of a chunk and kept for the rest; default:
        decided here for each stack.
    frames_per_chunk : int
        ``K``; the last chunk is padded with zero frames to ``K`` when ``M`` is not a
        multiple of it (HDF5 stores edge chunks whole).

    Returns
    -------
    buf : (total,) uint8 ndarray
        Chunks in the order chunk 0 of stack 0, chunk 0 of stack 1, …, chunk 1 of stack 0, …
    sizes : (ceil(M / K), len(stacks)) int64 ndarray
        Bytes of every chunk.
    """
    pieces, sizes = encode_pieces(stacks, codec, modes, frames_per_chunk)
    return join_pieces(pieces), sizes


def join_pieces(pieces):
    """One uint8 buffer of the bytes-like ``pieces`` (one copy)."""
    return np.frombuffer(b"".join(pieces), dtype=np.uint8) if pieces else np.zeros(0, np.uint8)


class RepeatedChunks:
    """Encoded chunks of stacks that repeat one frame (a static mask's weights), kept from
    call to call of :func:`encode_pieces`: such a chunk is encoded once per scan, not once
    per batch, as long as the frame, ``K`` and the plane modes stay the same."""

    def __init__(self):
        self._entries = {}

    def get(self, key, frame, k, modes):
        entry = self._entries.get(key)
        if entry is not None and entry[1] == k and entry[2] == modes and \
                np.array_equal(entry[0], frame):
            return entry[3]
        return None

    def put(self, key, frame, k, modes, pieces):
        self._entries[key] = (np.array(frame), k, modes, [bytes(p) for p in pieces])


def encode_pieces(stacks, codec, modes=None, frames_per_chunk=1, repeated_chunks=None):
    """:func:`encode_stacks` as a list of bytes-like pieces (joined once for many calls).

    ``repeated_chunks``: a :class:`RepeatedChunks` kept by the caller across calls.
    """
    m = len(stacks[0]) if stacks else 0
    k = int(frames_per_chunk)
    n_chunks = -(-m // k)
    sizes = np.zeros((n_chunks, len(stacks)), dtype=np.int64)
    pieces = []
    for j, stack in enumerate(stacks):
        if len(stack) != m:
            raise ValueError(f"stacks of {m} and {len(stack)} frames encoded together")
    repeated = [s.ndim > 0 and s.strides[0] == 0 for s in stacks]
    if modes is None:
        modes = [codec.plane_modes(s) if m else None for s in stacks]
    cache = repeated_chunks if repeated_chunks is not None else RepeatedChunks()
    reused = {}                                  # stack → its repeated chunk, found once a call
    for i in range(n_chunks):
        for j, stack in enumerate(stacks):
            frames = stack[i * k:(i + 1) * k]
            if len(frames) < k:                  # the edge chunk, padded as HDF5 stores it
                frames = np.concatenate([frames, np.zeros((k - len(frames),) + frames.shape[1:],
                                                          frames.dtype)])
                enc = codec.encode_parts(frames, modes[j])
            elif not repeated[j]:
                enc = codec.encode_parts(frames, modes[j])
            elif j in reused:
                enc = reused[j]
            else:
                enc = cache.get(j, frames[0], k, modes[j])
                if enc is None:
                    enc = codec.encode_parts(frames, modes[j])
                    cache.put(j, frames[0], k, modes[j], enc)
                reused[j] = enc
            pieces += enc
            sizes[i, j] = sum(memoryview(p).nbytes for p in enc)
    return pieces, sizes


@dataclass
class EncodedFrames:
    """Chunks of one frame dataset, ready for ``write_direct_chunk``.

    Attributes
    ----------
    buf : (total,) uint8 ndarray
        Holds the chunks (possibly of several stacks, interleaved).
    starts, sizes : (ceil(M / K),) int64 ndarrays
        Chunk ``i`` is ``buf[starts[i]:starts[i] + sizes[i]]``.
    shape : tuple
        ``(M, H, W)`` of the frames.
    dtype : numpy dtype
    codec : Codec
    frames_per_chunk : int
        ``K``: chunk ``i`` holds frames ``i·K … i·K + K − 1``.
    """

    buf: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    shape: tuple
    dtype: np.dtype
    codec: Codec
    frames_per_chunk: int = 1

    def __len__(self):
        return self.shape[0]

    @property
    def ndim(self):
        return len(self.shape)

    def chunk(self, i):
        return self.buf[self.starts[i]:self.starts[i] + self.sizes[i]]


def split_encoded(buf, sizes, frame_shapes, dtypes, codec, n_frames=None, frames_per_chunk=1):
    """:class:`EncodedFrames` of every stack of a buffer made by :func:`encode_stacks`.

    Parameters
    ----------
    buf : (total,) uint8 ndarray
    sizes : (C, k) int64 ndarray
        Bytes of every chunk of every stack.
    frame_shapes : k tuples ``(H, W)``
    dtypes : k numpy dtypes
    codec : Codec
    n_frames : int, optional
        ``M``, frames in the ``C`` chunks; default ``C`` (one frame per chunk).
    frames_per_chunk : int
        ``K`` of :func:`encode_stacks`.
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, len(dtypes))
    flat = sizes.reshape(-1)
    starts = (np.cumsum(flat) - flat).reshape(sizes.shape)
    if flat.sum() != buf.size:
        raise ValueError(f"encoded buffer holds {buf.size} bytes, sizes add up to {flat.sum()}")
    k = int(frames_per_chunk)
    m = sizes.shape[0] if n_frames is None else int(n_frames)
    if -(-m // k) != sizes.shape[0]:
        raise ValueError(f"{sizes.shape[0]} chunks cannot hold {m} frames at {k} a chunk")
    return [EncodedFrames(buf, starts[:, j], sizes[:, j], (m,) + tuple(frame_shapes[j]),
                          np.dtype(dtypes[j]), codec, k) for j in range(len(dtypes))]


def encode_frames(frames, codec, frames_per_chunk=1):
    """:class:`EncodedFrames` of one stack, ``frames_per_chunk`` frames a chunk."""
    buf, sizes = encode_stacks([frames], codec, frames_per_chunk=frames_per_chunk)
    return split_encoded(buf, sizes, [frames.shape[1:]], [frames.dtype], codec,
                         len(frames), frames_per_chunk)[0]
