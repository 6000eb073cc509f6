"""Writing ``.ptyd`` files: the three save modes as strategies of one writer.

* :class:`AppendWriter` (``append``): ``chunks/<k>`` groups inside the master file; every
  rank encodes its share, rank 0 receives the encoded chunks and writes them (its own
  share streamed in as it is encoded).
* :class:`LinkWriter` (``link``): every rank writes the part files of its own share;
  the master holds ``chunks/<k>`` = external link to ``(<bare part name>, '/')``.
* :class:`MergeWriter` (``merge``): one chunk ``chunks/0`` whose datasets grow as
  frames arrive.

A run writes its master under a hidden temporary name (``.<name>.incomplete``)
and renames it at the end, so a failed run leaves nothing a reader would take
for a complete file.  Part files are written as ``<part>.tmp`` and renamed.
"""

import contextlib
import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np

from ..engine.collective import after_all, everywhere, gather, on_root
from ..engine.formats import Writer
from ..errors import writing
from ..fast import chunkwrite as cw
from ..layout import files as F
from ..layout import ptyd as L
from ..layout.filters import dataset_filters
from .chunks import append_chunk_arrays, create_chunk_group, create_frame_datasets, write_chunk_arrays
from .h5rw import dict_group, write_info, write_meta
from .share import ChunkStream, encode_share, gather_arrays, gathered_frames

log = logging.getLogger(__name__)

#: Chunks written through one open master before it is closed and reopened (append/merge).
REOPEN_EVERY = 16
#: Frames prepared at a time within a rank's share when the writer encodes them right
#: away: about this many bytes of crop, so that they are still in the CPU cache when
#: they are encoded (the share itself, 64 frames of 256² = 16 MB, is not).
CACHE_BATCH_BYTES = 2 << 20


def cache_batch_frames(plan):
    """Frames per batch of a share so that a batch's raw crop (4 bytes a pixel) is about
    :data:`CACHE_BATCH_BYTES`; at least 1."""
    h, w = plan.raw_shape if plan.fftshift else plan.shape
    return max(1, CACHE_BATCH_BYTES // max(1, 4 * h * w))


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


class PtydWriter(Writer):
    """Collective writer of one ``.ptyd`` file (the save mode is the subclass).

    Every rank constructs it, calls :meth:`write` for every chunk (with its own,
    possibly empty, share) and then :meth:`close`.

    Parameters
    ----------
    path : str or Path
        Final master file.
    meta : dict
        ``meta/`` content (see :func:`ptyprep.ptycho.h5rw.write_meta`).
    info : dict
        Provenance written under ``info/``.
    comm : communicator
    compression : str
    overwrite : bool
        Replace an existing output (and the parts it links) once the new one is complete:
        until then the previous output stays as it was.
    part_format : str
    batch_frames : int, optional
        Prepare shares in batches of this many frames (streamed as encoded).
    """

    save = None

    def __init__(self, path, meta, info, comm, compression="gzip", overwrite=False,
                 part_format=F.DEFAULT_PART_FORMAT, batch_frames=None):
        self.path = Path(path)
        self.meta, self.info, self.comm = meta, info, comm
        self.part_format = part_format
        self.filters = dataset_filters(compression)
        self.codec = cw.chunk_codec(self.filters)
        self.batch_frames = batch_frames if self.codec is not None else None
        self.overwrite = overwrite
        self.tmp = F.incomplete_name(self.path)
        self.parts_written = []
        self.next_part = 0
        self.frames_written = 0
        self._repeated = cw.RepeatedChunks()    # a static mask's weights: encoded once
        self._h5 = None
        self._chunks_group = self._chunks_of = None
        self._previous_parts = []
        self.rank_seconds = None                # every rank's busy_s of the last chunk
        self._since = time.perf_counter()
        self.part_format = on_root(comm, self._open)

    def _open(self):
        """Rank 0: the hidden master created; returns the part-name format of this output
        (see :func:`~ptyprep.layout.files.alternate_part_format`)."""
        self._previous_parts = linked_part_names(self.path) if self.overwrite else []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            self.tmp.unlink()
        self._h5 = h5py.File(self.tmp, "w", libver="latest")
        write_meta(self._h5, self.meta)
        dict_group(self._h5, L.CHUNKS)
        self._h5.flush()
        return F.alternate_part_format(self.part_format, self._previous_parts, self.path)

    @property
    def _chunks(self):
        """The master's ``chunks/`` group, looked up once per opening of the master."""
        if self._chunks_of is not self._h5:
            self._chunks_group = h5py.Group(h5py.h5g.open(self._h5.id, L.CHUNKS.encode()))
            self._chunks_of = self._h5
        return self._chunks_group

    def write(self, scan, share, parts):
        """Write this rank's share of chunk ``share``.

        Parameters
        ----------
        scan : Scan
            The job's scan (one for ptychography).
        share : ChunkShare
            The chunk, the same on every rank, with every rank's frame counts.
        parts : iterable of FrameStack
            This rank's prepared share (may hold zero frames) as consecutive parts: each
            is encoded as soon as it comes, while its frames are still in the CPU cache.
        """
        self._write(share.number, parts, share.counts)
        self.frames_written += len(share)

    def _encode(self, parts, counts, stream=None):
        return encode_share(parts, self.codec, lambda nbytes: self._frames_per_chunk(nbytes, counts),
                            self._repeated, stream)

    def _gather(self, parts, counts, stream=None):
        """This rank's share encoded, and every rank's on rank 0: ``(data, weights,
        positions, indices)`` there (frames as EncodedFrames or arrays), None elsewhere.
        An error encoding (or preparing) any rank's share is raised on every rank."""
        def make():
            share = self._encode(parts, counts, stream)
            busy = time.perf_counter() - self._since
            return share.record(busy), lambda records: gather_arrays(records, share)

        records, joined = gather(self.comm, make)
        # busy from here to the next record: rank 0's writing of the others' frames counts
        # as its work, the waits in the gather do not
        self._since = time.perf_counter()
        self.rank_seconds = [r.busy_s for r in records]
        return None if joined is None else gathered_frames(records, joined, self.codec)

    def close(self, info_extra=None):
        """Finish the file: provenance, end-of-scan record, rename into place."""
        after_all(self.comm, self._finish, info_extra)

    def _finish(self, info_extra):
        info = dict(self.info, **(info_extra or {}))
        info[L.FRAMES_WRITTEN] = np.int64(self.frames_written)
        info[L.COMPLETE] = np.int64(1)
        write_info(self._h5, info)
        self._h5.close()
        self._h5 = None
        os.replace(self.tmp, self.path)            # the commit: the new output replaces the old
        ours = {p.name for p in self.parts_written} | set(self._linked_here())
        for name in self._previous_parts:
            if name not in ours:
                (self.path.parent / name).unlink(missing_ok=True)

    def _linked_here(self):
        """Names of the part files this output links (rank 0; link mode)."""
        return [F.part_name(self.path, k, self.part_format) for k in range(self.next_part)]

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

    def result(self):
        return {"path": self.path, "frames": self.frames_written}

    def _reopen_now_and_then(self, chunk):
        # no flush per chunk: nobody reads the hidden temporary master before close renames it
        if chunk % REOPEN_EVERY == REOPEN_EVERY - 1:
            # HDF5 keeps metadata of every chunk group written through an open file; reopening
            # now and then keeps rank 0's memory flat over long scans (link mode needs nothing).
            self._h5.close()
            self._h5 = h5py.File(self.tmp, "r+", libver="latest")


class AppendWriter(PtydWriter):
    """``save = "append"``: rank 0 writes every chunk group into the master.

    Rank 0 has more to do than the others (their frames to write), so the shares follow
    the ranks' measured speed (``balance_granule``: in whole HDF5 chunks).
    """

    save = "append"
    balance_granule = cw.MAX_FRAMES_PER_CHUNK

    def _frames_per_chunk(self, frame_nbytes, counts):
        return cw.frames_per_chunk(frame_nbytes, int(np.sum(counts)), cw.share_boundaries(counts))

    def _write(self, chunk, parts, counts):
        stream = None
        if self.codec is not None and counts[self.comm.rank] and self.comm.rank == 0:
            stream = ChunkStream(lambda *shape_and_filters: create_chunk_group(
                self._chunks, L.chunk_name(chunk), *shape_and_filters),
                int(np.sum(counts)), self.filters, self.codec)
        arrays = self._gather(parts, counts, stream)
        if arrays is None or not len(arrays[3]):
            return
        if stream is not None and stream.started:    # rank 0's share is in the file already
            data, weights, positions, indices = arrays
            stream.finish(positions, indices, data, weights)
        else:
            write_chunk_arrays(self._chunks.create_group(L.chunk_name(chunk)), *arrays,
                               self.filters)
        self._reopen_now_and_then(chunk)


class MergeWriter(PtydWriter):
    """``save = "merge"``: one chunk group ``chunks/0`` that grows as chunks arrive."""

    save = "merge"

    def _frames_per_chunk(self, frame_nbytes, counts):
        return 1                                  # appended at any offset: one frame a chunk

    def _write(self, chunk, parts, counts):
        arrays = self._gather(parts, counts)
        if arrays is None or not len(arrays[3]):
            return
        chunks = self._chunks
        if "0" in chunks:
            append_chunk_arrays(chunks["0"], *arrays)
        else:
            write_chunk_arrays(chunks.create_group(L.chunk_name(0)), *arrays, self.filters,
                               resizable=True)
        self._reopen_now_and_then(chunk)


class LinkWriter(PtydWriter):
    """``save = "link"``: every rank writes its part files; rank 0 links them."""

    save = "link"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parts = PartWriter(self.filters, self.codec, self._repeated)

    def _write(self, chunk, parts, counts):
        numbers = part_numbers([counts], self.next_part)[0]
        self.next_part += int((numbers >= 0).sum())
        mine = numbers[self.comm.rank]
        # every rank learns of a failure on any (a damaged frame, a full disk) at the end of
        # the chunk, so all abandon what they wrote before the job ends
        with everywhere(self.comm), writing(self.path):
            if mine >= 0:
                target = self.path.parent / F.part_name(self.path, mine, self.part_format)
                self.parts_written.append(self.parts.write(target, parts,
                                                           counts[self.comm.rank]))
            if self.comm.rank == 0:
                for part in numbers[numbers >= 0]:
                    self._chunks[L.chunk_name(part)] = h5py.ExternalLink(
                        F.part_name(self.path, part, self.part_format), "/")
                self._h5.flush()


class PartWriter:
    """This rank's shares as link-mode part files: written as ``<part>.tmp``, renamed when
    complete (``ptyprep run`` in link mode, ``ptyprep watch``).

    Parameters
    ----------
    filters : dict
        h5py keywords of the frame datasets.
    codec : Codec or None
        ptyprep encodes the chunks itself (frames streamed into the file batch by batch).
    repeated : RepeatedChunks, optional
        A static mask's weights encoded once, kept across parts.
    before_rename : callable, optional
        Called after the temporary file is closed, before the rename (tests).
    """

    def __init__(self, filters, codec, repeated=None, before_rename=None):
        self.filters, self.codec, self.before_rename = filters, codec, before_rename
        self.repeated = repeated if repeated is not None else cw.RepeatedChunks()

    def write(self, target, parts, n_frames):
        """Write the ``n_frames`` frames of the FrameStacks ``parts`` into part file ``target``."""
        tmp = F.tmp_name(target)
        stream = None
        if self.codec is not None:
            def new_part(*shape_and_filters):
                part = h5py.File(tmp, "w")
                return (part,) + create_frame_datasets(part, *shape_and_filters)

            stream = ChunkStream(new_part, n_frames, self.filters, self.codec)
        try:
            share = encode_share(parts, self.codec,
                                 lambda nbytes: cw.frames_per_chunk(nbytes, int(n_frames)),
                                 self.repeated, stream)
            if stream is not None and stream.started:      # frames already written
                with stream.group:
                    stream.finish(share.positions, share.indices)
            else:
                with h5py.File(tmp, "w") as part:
                    write_chunk_arrays(part, *share.arrays(), self.filters)
        except BaseException:
            if stream is not None and stream.started:
                with contextlib.suppress(Exception):   # e.g. a full disk refuses the flush
                    stream.group.close()               # the part file being written
            tmp.unlink(missing_ok=True)
            raise
        if self.before_rename is not None:
            self.before_rename()
        os.replace(tmp, target)
        return target


#: The writer of every ``[output] save`` mode.
WRITERS = {w.save: w for w in (AppendWriter, LinkWriter, MergeWriter)}


def linked_part_names(path):
    """Bare names of the part files (beside it) that master ``path`` links; [] when there is
    no master or it cannot be read."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        with h5py.File(path, "r") as h5:
            chunks = h5.get(L.CHUNKS, {})
            targets = [chunks.get(k, getlink=True) for k in chunks]
            names = [t.filename for t in targets if isinstance(t, h5py.ExternalLink)]
    except OSError:
        return []
    return [name for name in names if Path(name).name == name]


def remove_previous(path, part_format=F.DEFAULT_PART_FORMAT):
    """Delete an existing master and the part files its links point to."""
    path = Path(path)
    if not path.exists():
        return
    for name in linked_part_names(path):
        (path.parent / name).unlink(missing_ok=True)
    path.unlink()
