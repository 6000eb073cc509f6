"""One rank's share of a ``.ptyd`` chunk group: encoded batch by batch, then either kept
for the gather on rank 0 or written straight into the file.

Streaming (:class:`ChunkStream`) is what rank 0 does with its own share in append mode
and every rank with its part file in link mode: each batch's chunks go to HDF5 while
they are still in the CPU cache, instead of ~4 MB of encoded share being joined and
written after the last batch.  The frame datasets are created on the first batch (their
length is known from the share counts, their dtype and ``K`` from the first frames);
``positions`` and ``indices`` are written after the last one.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import OutputError
from ..fast import chunkwrite as cw
from ..fast import chunkdatasets as cd
from .chunks import write_positions


@dataclass
class Share:
    """One rank's prepared share of a chunk, as the writer holds it.

    Attributes
    ----------
    dtype : numpy dtype
        Of the prepared frames.
    frame_shape : tuple
        ``(N, N)``.
    positions : (M, 2) float64 ndarray
    indices : (M,) int64 ndarray
    codec : Codec or None
        Set when the frames are encoded: ``buf`` and ``sizes`` hold data and weights
        chunks as :func:`~ptyprep.fast.chunkwrite.encode_stacks` makes them;
        None when ``data`` and ``weights`` hold the arrays (filters HDF5 applies).
    frames_per_chunk : int
        Frames in each encoded chunk (:func:`~ptyprep.fast.chunkwrite.frames_per_chunk`).
    streamed : bool
        The frames are already in the file (:class:`ChunkStream`); ``buf`` is empty.
    """

    dtype: np.dtype
    frame_shape: tuple
    positions: np.ndarray
    indices: np.ndarray
    codec: object = None
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    data: np.ndarray = None
    weights: np.ndarray = None
    frames_per_chunk: int = 1
    streamed: bool = False

    def record(self, busy_s=0.0):
        """The :class:`ShareRecord` every rank all-gathers before the frames are joined
        (``busy_s``: this rank's working seconds since its previous chunk)."""
        return ShareRecord(len(self.indices), self.dtype.str, self.frame_shape, self.sizes,
                           self.positions, self.indices, self.codec is not None,
                           self.frames_per_chunk, self.streamed, float(busy_s))

    def arrays(self):
        """``(data, weights, positions, indices)``, frames as EncodedFrames when encoded."""
        if self.codec is None:
            return self.data, self.weights, self.positions, self.indices
        data, weights = cw.split_encoded(self.buf, self.sizes, [self.frame_shape] * 2,
                                         [self.dtype, np.uint8], self.codec, len(self.indices),
                                         self.frames_per_chunk)
        return data, weights, self.positions, self.indices


@dataclass(frozen=True)
class ShareRecord:
    """What every rank tells the others of its share before the frames are gathered.

    Attributes
    ----------
    n_frames : int
    dtype : str
        ``numpy.dtype.str`` of the prepared frames.
    frame_shape : tuple
    sizes : (n_chunks, 2) int64 ndarray
        Bytes of every encoded data and weights chunk.
    positions : (n_frames, 2) float64 ndarray
    indices : (n_frames,) int64 ndarray
    encoded : bool
        The frames travel as encoded chunks (one uint8 buffer), else as arrays.
    frames_per_chunk : int
    streamed : bool
        The share is in the file already (rank 0's own, streamed): nothing to send.
    busy_s : float
        Seconds the rank worked since the end of its previous chunk (rank 0: writing the
        others' frames of that chunk included), for the balance of the next shares.
    """

    n_frames: int
    dtype: str
    frame_shape: tuple
    sizes: np.ndarray
    positions: np.ndarray
    indices: np.ndarray
    encoded: bool
    frames_per_chunk: int
    streamed: bool
    busy_s: float = 0.0


def gather_arrays(records, mine):
    """The arrays this rank sends to rank 0 of its share ``mine``, given every rank's
    :class:`ShareRecord`.

    Called on every rank with the same records, so an inconsistency raises on all.
    Frames that rank 0 streamed into the file itself are not sent; an empty share
    sends empty arrays of the others' dtype and shape.
    """
    full = [r for r in records if r.n_frames]
    if not full:
        return []
    dtype, frame_shape = np.dtype(full[0].dtype), full[0].frame_shape
    if any(np.dtype(r.dtype) != dtype or r.frame_shape != frame_shape for r in full) or \
            len({r.encoded for r in records}) > 1 or len({r.frames_per_chunk for r in full}) > 1:
        raise OutputError("ranks prepared frames of different dtypes or shapes: "
                          f"{sorted({(r.dtype, r.frame_shape, r.frames_per_chunk) for r in records})}")
    if mine.codec is not None:
        return [mine.buf]
    data, weights = mine.data, mine.weights
    if not len(data):
        data = np.zeros((0,) + frame_shape, dtype)
        weights = np.zeros((0,) + frame_shape, np.uint8)
    return [np.ascontiguousarray(data, dtype=dtype), np.ascontiguousarray(weights)]


def gathered_frames(records, joined, codec):
    """``(data, weights, positions, indices)`` of a chunk on rank 0, from every rank's
    :class:`ShareRecord` and the arrays :func:`gather_arrays` sent (frames as
    EncodedFrames when encoded; those rank 0 streamed itself excluded)."""
    full = [r for r in records if r.n_frames]
    if not full:
        return None, None, np.zeros((0, 2)), np.zeros(0, np.int64)
    positions = np.concatenate([r.positions for r in records]).reshape(-1, 2)
    indices = np.concatenate([r.indices for r in records]).astype(np.int64)
    if not full[0].encoded:
        return joined[0], joined[1], positions, indices
    # frames rank 0 streamed into the file itself come first and are not in buf
    frame_shape, dtype = full[0].frame_shape, np.dtype(full[0].dtype)
    sizes = np.concatenate([r.sizes for r in records])
    done = records[0].n_frames if records[0].streamed else 0
    data, weights = cw.split_encoded(joined[0], sizes, [frame_shape, frame_shape],
                                     [dtype, np.uint8], codec, len(indices) - done,
                                     full[0].frames_per_chunk)
    return data, weights, positions, indices


class ChunkStream:
    """The frame datasets of one chunk group, created on the first batch, written batch by batch.

    Parameters
    ----------
    new_group : callable
        ``new_group(n_frames, frame_shape, dtype, filters, frames_per_chunk)`` returns
        ``(group, data, weights)``: the group to write into (a new ``chunks/<k>`` group,
        or a part file's root) with its empty frame datasets; called once, on the first
        batch.
    n_frames : int
        Frames the datasets hold (this share, or the whole chunk group).
    filters : dict
        h5py keywords of the frame datasets.
    codec : Codec
        What the batches were encoded with (:func:`~ptyprep.fast.chunkwrite.chunk_codec`).
    """

    def __init__(self, new_group, n_frames, filters, codec):
        self.new_group, self.n_frames = new_group, int(n_frames)
        self.filters, self.codec = filters, codec
        self.group = self.data = self.weights = None
        self.written = 0

    def write(self, buf, sizes, n_frames, dtype, frame_shape, frames_per_chunk):
        """Write the next ``n_frames`` frames: ``buf``/``sizes`` as from ``encode_stacks``."""
        data, weights = cw.split_encoded(buf, sizes, [frame_shape] * 2, [dtype, np.uint8],
                                         self.codec, n_frames, frames_per_chunk)
        if self.group is None:
            # made for these frames (dtype, shape, K, filters): no checks needed
            self.group, self.data, self.weights = self.new_group(
                self.n_frames, frame_shape, dtype, self.filters, frames_per_chunk)
        cd.write_chunks(self.data, self.written, data)
        cd.write_chunks(self.weights, self.written, weights)
        self.written += n_frames

    @property
    def started(self):
        """True once the first batch is in the file."""
        return self.group is not None

    def finish(self, positions, indices, data=None, weights=None):
        """The group's ``positions`` and ``indices``, after the frames encoded elsewhere
        (other ranks' :class:`~ptyprep.fast.chunkwrite.EncodedFrames`), if any."""
        if data is not None:
            cd.write_encoded(self.data, self.written, data)
            cd.write_encoded(self.weights, self.written, weights)
            self.written += len(data)
        write_positions(self.group, positions, indices)


def weights_of(stack):
    """``(M, N, N)`` uint8 weights (1 = valid) of a FrameStack; no copy when valid is bool."""
    valid = stack.valid_stack
    if valid.dtype == np.bool_:
        return valid.view(np.uint8)
    return (valid != 0).view(np.uint8)


def encode_share(parts, codec, frames_per_chunk, repeated=None, stream=None):
    """:class:`Share` of consecutive FrameStacks, encoded part by part when the codec allows.

    Chunks of ``K`` frames are encoded as soon as a part completes them; the frames of a
    part beyond its last whole chunk wait for the next part (copied), the last chunk of
    the share may be short.

    Parameters
    ----------
    parts : iterable of FrameStack
    codec : Codec or None
    frames_per_chunk : callable
        ``K`` from the bytes of one prepared frame.
    repeated : RepeatedChunks, optional
        Kept by the writer across shares (a static mask's weights encoded once).
    stream : ChunkStream, optional
        Write every encoded batch into the file right away instead of keeping it.
    """
    pieces, sizes, data, weights, positions, indices = [], [], [], [], [], []
    modes = None                         # how to write each byte plane: from the first part
    k, held = 1, None                    # frames per chunk; frames waiting for a chunk
    part_codec = None

    def encode(stacks):
        more, chunk_sizes = cw.encode_pieces(stacks, part_codec, modes, k, repeated)
        if stream is None:
            pieces.extend(more)
            sizes.append(chunk_sizes)
        else:
            stream.write(cw.join_pieces(more), chunk_sizes, len(stacks[0]), stacks[0].dtype,
                         stacks[0].shape[1:], k)

    for part in parts:
        part_codec = codec if cw.frames_encodable(codec, part.data.shape) else None
        stacks = [part.data, weights_of(part)]
        if part_codec is None:
            data.append(stacks[0])
            weights.append(stacks[1])
        elif len(part):
            if modes is None:
                modes = [part_codec.plane_modes(s) for s in stacks]
                k = frames_per_chunk(part.data[0].nbytes)
            if held is not None:
                stacks = [np.concatenate([h, s]) for h, s in zip(held, stacks)]
            whole = len(stacks[0]) // k * k
            if whole:
                encode([s[:whole] for s in stacks])
            held = [s[whole:].copy() for s in stacks] if whole < len(stacks[0]) else None
        positions.append(part.positions)
        indices.append(part.indices)
    if held is not None:
        encode(held)
    share = Share(part.data.dtype, tuple(part.data.shape[1:]), np.concatenate(positions),
                  np.concatenate(indices), part_codec, frames_per_chunk=k,
                  streamed=stream is not None and stream.started)
    if part_codec is None:
        share.data, share.weights = np.concatenate(data), np.concatenate(weights)
    elif sizes:
        share.buf, share.sizes = cw.join_pieces(pieces), np.concatenate(sizes)
    return share
