"""Writing and reading ``.ptyd`` files in append, link and merge mode.

* ``append``: ``chunks/<k>`` groups inside the master file (rank 0 writes).
* ``link``: every rank writes the part files of its own share; the master holds
  ``chunks/<k>`` = external link to ``(<bare part name>, '/')``.
* ``merge``: one chunk ``chunks/0`` whose datasets grow as frames arrive.

A run writes its master under a hidden temporary name (``.<name>.incomplete``)
and renames it at the end, so a failed run leaves nothing a reader would take
for a complete file.  Part files are written as ``<part>.tmp`` and renamed.
"""

import contextlib
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from ..layout.filters import dataset_filters
from ..errors import LayoutError, OutputError, SourceError
from ..layout import ptyd as L
from .h5rw import dict_group, write_info, write_meta
from .chunks import append_chunk_arrays, create_chunk_group, create_frame_datasets, write_chunk_arrays
from ..engine.stack import FrameStack
from ..fast import chunkwrite as cw
from .share import ChunkStream, encode_share

log = logging.getLogger(__name__)


#: Chunks written through one open master before it is closed and reopened (append/merge).
REOPEN_EVERY = 16


def incomplete_name(path):
    """Temporary name of a master file while it is being written."""
    path = Path(path)
    return path.with_name(f".{path.name}.incomplete")


def part_name(dfile, part, part_format="{dfile}.part{part:03d}"):
    """Bare file name of part number ``part`` of master ``dfile`` (no folder)."""
    name = part_format.format(dfile=Path(dfile).name, part=part)
    if Path(name).name != name or name in ("", ".", ".."):
        raise OutputError(f"output.part_format gives {name!r}; it must be a bare file name "
                          "so links resolve next to the master file")
    return name


def check_output(path, overwrite):
    """Raise OutputError if ``path`` cannot be written (before anything is touched)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"output {str(path)!r} exists; set output.overwrite = true "
                          "(or --set output.overwrite=true) or choose another output.dfile")
    if path.is_dir():
        raise OutputError(f"output {str(path)!r} is a directory; output.dfile must name a file")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create the output folder: {str(parent)!r} is a file; "
                          "choose another output.dfile")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {str(parent)!r} is not writable; "
                          "choose another output.dfile")


def part_numbers(counts_per_chunk, first_part=0):
    """Part number of every non-empty (chunk, rank) share, in scan order.

    Parameters
    ----------
    counts_per_chunk : list of (size,) int arrays
        Frames each rank holds in each chunk.

    Returns
    -------
    list of (size,) int arrays, -1 where a share is empty.
    """
    numbers, nxt = [], first_part
    for counts in counts_per_chunk:
        row = np.full(len(counts), -1, dtype=np.int64)
        for r, c in enumerate(counts):
            if c:
                row[r] = nxt
                nxt += 1
        numbers.append(row)
    return numbers


class PtydWriter:
    """Collective writer of one ``.ptyd`` file.

    Every rank constructs it and calls :meth:`write_share` for every chunk (with
    its own, possibly empty, share) and then :meth:`close`.

    Parameters
    ----------
    path : str or Path
        Final master file.
    meta : dict
        ``meta/`` content (see :func:`ptyprep.layout.ptyd.write_meta`).
    info : dict
        Provenance written under ``info/``.
    comm : communicator
    save : {"append", "link", "merge"}
    compression : str
    part_format : str
    """

    def __init__(self, path, meta, info, comm, save="append", compression="gzip",
                 overwrite=False, part_format="{dfile}.part{part:03d}"):
        self.path = Path(path)
        self.meta, self.info, self.comm = meta, info, comm
        self.save, self.part_format = save, part_format
        self.filters = dataset_filters(compression)
        self.codec = cw.chunk_codec(self.filters)
        self.overwrite = overwrite
        self.tmp = incomplete_name(self.path)
        self.parts_written = []
        self.next_part = 0
        self.frames_written = 0
        self._repeated = cw.RepeatedChunks()    # a static mask's weights: encoded once
        self._h5 = None
        self._chunks_group = self._chunks_of = None
        self._open()

    def _open(self):
        if self.comm.rank == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.tmp.exists():
                self.tmp.unlink()
            self._h5 = h5py.File(self.tmp, "w", libver="latest")
            write_meta(self._h5, self.meta)
            dict_group(self._h5, L.CHUNKS)
            self._h5.flush()
        self.comm.barrier()

    @property
    def _chunks(self):
        """The master's ``chunks/`` group, looked up once per opening of the master."""
        if self._chunks_of is not self._h5:
            self._chunks_group = h5py.Group(h5py.h5g.open(self._h5.id, L.CHUNKS.encode()))
            self._chunks_of = self._h5
        return self._chunks_group

    def write_share(self, chunk, stack, counts):
        """Write this rank's share of chunk number ``chunk``.

        In append and merge mode every rank encodes (compresses) its own frames and
        rank 0 receives the finished chunks and only writes them; in link mode every
        rank writes its own part file.  Rank 0's own share (append) and a part file
        (link) are written batch by batch as they are encoded (:class:`ChunkStream`).

        Parameters
        ----------
        chunk : int
            Chunk number (0, 1, ...), the same on every rank.
        stack : FrameStack, or iterable of FrameStack
            This rank's prepared share (may hold zero frames), or its consecutive
            parts: each is encoded as soon as it comes, while its frames are still
            in the CPU cache (see :func:`ptyprep.service.run`).
        counts : (size,) int array
            Frames held by each rank in this chunk.
        """
        parts = [stack] if isinstance(stack, FrameStack) else stack
        stream = self._stream(chunk, counts)
        try:
            share = encode_share(parts, self.codec,
                                 lambda nbytes: self._frames_per_chunk(nbytes, counts),
                                 self._repeated, stream)
        except BaseException:
            if stream is not None and self.save == "link" and stream.started:
                path = stream.group.filename
                stream.group.close()                   # the part file being written
                Path(path).unlink(missing_ok=True)
            raise
        if self.save == "link":
            self._write_link(share, counts, stream)
        else:
            gathered = self._gather(share)
            if self.comm.rank == 0 and len(gathered[3]):
                self._write_master(chunk, gathered, stream)
        self.frames_written += int(np.sum(counts))

    def _frames_per_chunk(self, frame_nbytes, counts):
        """Frames per HDF5 chunk of this chunk group's frame datasets (same on every rank)."""
        if self.save == "merge":             # appended at any offset: one frame a chunk
            return 1
        if self.save == "link":              # every share is a part file of its own
            return cw.frames_per_chunk(frame_nbytes, int(counts[self.comm.rank]))
        return cw.frames_per_chunk(frame_nbytes, int(np.sum(counts)), cw.share_boundaries(counts))

    def _stream(self, chunk, counts):
        """The :class:`ChunkStream` this rank writes its share into as it is encoded, or None."""
        if self.codec is None or self.save == "merge" or not counts[self.comm.rank]:
            return None
        if self.save == "link":
            number = part_numbers([counts], self.next_part)[0][self.comm.rank]
            name = part_name(self.path, number, self.part_format)
            tmp = self.path.parent / (name + ".tmp")
            def new_part(*shape_and_filters):
                part = h5py.File(tmp, "w")
                return (part,) + create_frame_datasets(part, *shape_and_filters)

            return ChunkStream(new_part, counts[self.comm.rank], self.filters, self.codec)
        if self.comm.rank == 0:
            return ChunkStream(lambda *shape_and_filters: create_chunk_group(
                self._chunks, L.chunk_name(chunk), *shape_and_filters),
                int(np.sum(counts)), self.filters, self.codec)
        return None

    def _gather(self, share):
        """Every rank's share on rank 0: frames as encoded chunks when the filters allow.

        Collectives: one allgather of small per-rank records (frame count, dtype,
        chunk sizes, positions, indices) and one Gatherv of a uint8 buffer (the
        encoded chunks) — or, for filters ptyprep cannot encode, a Gatherv each of
        the raw data and weights.  Returns ``(data, weights, positions, indices)``
        on rank 0 (data and weights as :class:`~ptyprep.fast.chunkwrite.EncodedFrames`
        or arrays), Nones elsewhere.
        """
        codec = share.codec
        records = self.comm.allgather((len(share.indices), share.dtype.str, share.frame_shape,
                                       share.sizes, share.positions, share.indices,
                                       codec is not None, share.frames_per_chunk,
                                       share.streamed))
        full = [r for r in records if r[0]]
        if not full:
            return None, None, np.zeros((0, 2)), np.zeros(0, np.int64)
        dtype, frame_shape = np.dtype(full[0][1]), full[0][2]
        # every rank sees the same records, so all of them raise (no rank left in a collective)
        if any(np.dtype(r[1]) != dtype or r[2] != frame_shape for r in full) or \
                len({r[6] for r in records}) > 1 or len({r[7] for r in full}) > 1:
            raise OutputError("ranks prepared frames of different dtypes or shapes: "
                              f"{sorted({(r[1], r[2], r[7]) for r in records})}")
        if codec is not None:
            buf = self.comm.gatherv(share.buf)
        else:
            data, weights = share.data, share.weights
            if not len(data):
                data = np.zeros((0,) + frame_shape, dtype)
                weights = np.zeros((0,) + frame_shape, np.uint8)
            buf = (self.comm.gatherv(np.ascontiguousarray(data, dtype=dtype)),
                   self.comm.gatherv(np.ascontiguousarray(weights)))
        if self.comm.rank != 0:
            return None, None, None, None
        positions = np.concatenate([r[4] for r in records]).reshape(-1, 2)
        indices = np.concatenate([r[5] for r in records]).astype(np.int64)
        if codec is None:
            return buf[0], buf[1], positions, indices
        # frames rank 0 streamed into the file itself come first and are not in buf
        sizes = np.concatenate([r[3] for r in records])
        done = records[0][0] if records[0][8] else 0
        data, weights = cw.split_encoded(buf, sizes, [frame_shape, frame_shape],
                                         [dtype, np.uint8], codec, len(indices) - done,
                                         full[0][7])
        return data, weights, positions, indices

    def _write_master(self, chunk, arrays, stream=None):
        chunks = self._chunks
        if stream is not None and stream.started:    # rank 0's share is in the file already
            data, weights, positions, indices = arrays
            stream.finish(positions, indices, data, weights)
        elif self.save == "merge":
            if "0" in chunks:
                append_chunk_arrays(chunks["0"], *arrays)
            else:
                write_chunk_arrays(chunks.create_group("0"), *arrays, self.filters,
                                     resizable=True)
        else:
            write_chunk_arrays(chunks.create_group(L.chunk_name(chunk)), *arrays, self.filters)
        # no flush per chunk: nobody reads the hidden temporary master before close renames it
        if chunk % REOPEN_EVERY == REOPEN_EVERY - 1:
            # HDF5 keeps metadata of every chunk group written through an open file; reopening
            # now and then keeps rank 0's memory flat over long scans (link mode needs nothing).
            self._h5.close()
            self._h5 = h5py.File(self.tmp, "r+", libver="latest")

    def _write_link(self, share, counts, stream=None):
        numbers = part_numbers([counts], self.next_part)[0]
        self.next_part += int((numbers >= 0).sum())
        mine = numbers[self.comm.rank]
        if mine >= 0:
            name = part_name(self.path, mine, self.part_format)
            target = self.path.parent / name
            tmp = target.with_name(name + ".tmp")
            if stream is not None and stream.started:   # frames already written
                with stream.group:
                    stream.finish(share.positions, share.indices)
            else:
                with h5py.File(tmp, "w") as part:
                    write_chunk_arrays(part, *share.arrays(), self.filters)
            os.replace(tmp, target)
            self.parts_written.append(target)
        if self.comm.rank == 0:
            for part in numbers[numbers >= 0]:
                self._chunks[L.chunk_name(part)] = h5py.ExternalLink(
                    part_name(self.path, part, self.part_format), "/")
            self._h5.flush()

    def close(self, info_extra=None):
        """Finish the file: provenance, end-of-scan record, rename into place."""
        self.comm.barrier()
        if self.comm.rank == 0:
            info = dict(self.info, **(info_extra or {}))
            info["frames_written"] = np.int64(self.frames_written)
            info["complete"] = np.int64(1)
            write_info(self._h5, info)
            self._h5.close()
            self._h5 = None
            os.replace(self.tmp, self.path)
        self.comm.barrier()

    def abandon(self):
        """Remove what this rank wrote (after a failure)."""
        if self._h5 is not None:
            try:
                self._h5.close()
            finally:
                self._h5 = None
            self.tmp.unlink(missing_ok=True)
        for part in self.parts_written:
            part.unlink(missing_ok=True)


def remove_previous(path, part_format="{dfile}.part{part:03d}"):
    """Delete an existing master and the part files its links point to (overwrite)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        with h5py.File(path, "r") as h5:
            chunks = h5.get(L.CHUNKS, {})
            targets = [chunks.get(k, getlink=True) for k in chunks]
            names = [t.filename for t in targets if isinstance(t, h5py.ExternalLink)]
    except OSError:
        names = []
    for name in names:
        if Path(name).name == name:
            (path.parent / name).unlink(missing_ok=True)
    path.unlink()
