"""The run loop: ``ptyprep run``, :func:`iter_chunks` and the SAXS ``process`` step.

Every rank builds the same formats and plan, walks the same chunks
(:func:`~ptyprep.engine.shares.chunk_shares`), prepares its own share once and hands it
to every format's writer.  The engine knows no format: what is prepared and how it is
written comes from the formats (:mod:`ptyprep.engine.formats`).
"""

import logging
import time

from ..errors import writing
from .collective import everywhere
from .comm import world
from .formats import recipe_formats
from .shares import LoadManager, chunk_shares

log = logging.getLogger(__name__)


def prepared_shares(comm, scans, manager=None, batch_frames=None):
    """Walk ``scans`` chunk by chunk: yield ``(scan, share, parts)`` of this rank.

    ``parts`` is the iterator :meth:`~ptyprep.engine.formats.Scan.prepare` gives for this
    rank's share (consume it before the next item).  Collective: every rank of ``comm``
    must iterate to the end.  One :class:`~ptyprep.engine.shares.LoadManager` (``manager``)
    balances the ranks over all scans.
    """
    manager = manager if manager is not None else LoadManager(comm.size)
    for scan in scans:
        with everywhere(comm):           # e.g. a sample's raw files that cannot be opened
            scan.open()
        try:
            for share in chunk_shares(scan.start, scan.stop, scan.chunk_frames, comm.size,
                                      manager):
                yield scan, share, scan.prepare(share, share.indices(comm.rank), batch_frames)
        finally:
            scan.close()


def run_scans(comm, scans, writers, manager=None, progress=None):
    """The run loop: every chunk of ``scans`` prepared once and handed to every writer.

    With one writer the share is prepared in the writer's batches as it writes them;
    with several, it is prepared whole and each writer gets the same parts.
    """
    batches = [w.batch_frames for w in writers]
    batch = batches[0] if len(writers) == 1 else None
    balanced = len(writers) == 1 and writers[0].balance_granule is not None and comm.size > 1
    if manager is None:
        manager = LoadManager(comm.size, granule=writers[0].balance_granule if balanced else None)
    current = None
    for scan, share, parts in prepared_shares(comm, scans, manager, batch):
        if scan is not current:
            if current is not None:
                for writer in writers:
                    writer.end(current)
            for writer in writers:
                writer.begin(scan)
            current = scan
        if len(writers) > 1:
            parts = list(parts)
        for writer in writers:
            writer.write(scan, share, parts)
        if balanced and writers[0].rank_seconds is not None:
            manager.observe(share.counts, writers[0].rank_seconds)
        if progress is not None:
            progress.update(len(share))
    if current is not None:
        for writer in writers:
            writer.end(current)
    if balanced and comm.rank == 0:
        log.info("frames prepared per rank %s (shares followed the ranks' measured speed: "
                 "rank 0 also writes the others' frames)", manager.load.tolist())


def run(recipe, comm=None, formats=None):
    """Prepare the scan of ``recipe`` and write every output it names (collective under MPI).

    ``formats``, when given, are the :class:`~ptyprep.engine.formats.Format` objects to run
    instead of those the recipe names (``ptyprep export`` points one at its own path).

    Returns
    -------
    dict
        ``path`` of the (first) output, ``paths`` of all, ``frames`` prepared (None when the
        format does not count frames) and ``seconds`` taken.
    """
    comm = comm or world()
    with everywhere(comm):    # bad input, alike on every rank: each ends by itself, no abort
        formats = formats or recipe_formats(recipe)
        lead = formats[0]
        lead.check_input()
        for fmt in formats:
            fmt.check()
    t0 = time.perf_counter()
    with writing(lead.dfile), lead.open(comm) as job:
        writers = []
        try:
            for fmt in formats:
                writers.append(fmt.writer(job, comm))
            total = sum(s.stop - s.start for s in job.scans)
            run_scans(comm, job.scans, writers, progress=Progress(total, comm))
            for writer in writers:
                writer.close()
        except BaseException:
            for writer in writers:
                writer.abandon()
            raise
    seconds = time.perf_counter() - t0
    results = [w.result() for w in writers]
    frames = results[0].get("frames")
    if comm.rank == 0 and frames is not None:
        log.info("wrote %s: %d frames in %.1f s (%.0f frames/s)", results[0]["path"], frames,
                 seconds, frames / max(seconds, 1e-9))
    return {"path": str(results[0]["path"]), "paths": [str(r["path"]) for r in results],
            "frames": frames, "seconds": seconds}


def iter_chunks(recipe, comm=None):
    """Prepared data in memory, this rank's share of each chunk.

    Parameters
    ----------
    recipe : Recipe
    comm : communicator, optional
        Default: MPI's world under ``mpiexec``, else one process.

    Yields
    ------
    What the recipe's (first) format prepares; for ptychography a
    :class:`~ptyprep.engine.stack.FrameStack`: ``indices``, ``data`` (M, n, n),
    ``valid`` (M, n, n), ``positions`` (M, 2) metres and ``meta`` (shape, center, psize,
    energy, distance, chunk number).
    """
    comm = comm or world()
    lead = recipe_formats(recipe)[0]
    with lead.open(comm) as job:
        for _, _, parts in prepared_shares(comm, job.scans):
            yield next(iter(parts))


class Progress:
    """Progress of a long run, logged by rank 0 only (at most every 2 s, and at the end)."""

    def __init__(self, total, comm, every_s=2.0):
        self.total, self.done, self.every_s = total, 0, every_s
        self.enabled = comm.rank == 0
        self.t0 = self.last = time.perf_counter()

    def update(self, n):
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            log.info("prepared %d/%d frames (%.0f%%), %.0f frames/s", self.done, self.total,
                     100.0 * self.done / max(self.total, 1), rate)
