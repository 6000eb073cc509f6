"""The service loop: the one place where ranks meet.

Every rank builds the same plan, takes its share of each chunk (LoadManager),
prepares it, and hands it to the writer.  Collectives happen only here and in
the writer: the automatic centre (an all-gather of per-frame centres of the
first chunk) and the per-chunk gathers of the writer.
"""

import dataclasses
import logging
import time

import numpy as np

from .ptycho import prepare as pipeline
from ._version import __version__
from .engine.comm import world
from .layout.filters import dataset_filters
from .errors import SourceError
from .layout.ptyd import CONVENTIONS
from .engine.shares import LoadManager
from .ptycho.plan import check_center_inside, make_plan
from .sources.registry import make_source
from .engine.stack import FrameStack

log = logging.getLogger(__name__)


def open_source(recipe):
    """Instantiate the recipe's source (options checked, paths resolved)."""
    return make_source(recipe.source.name, recipe.source.options, base_dir=recipe.base_dir)


def _shares(plan, size):
    """For every chunk: (start, stop, counts per rank, share bounds per rank)."""
    lm = LoadManager(size)
    out = []
    for start, stop in plan.chunks():
        counts = lm.counts(stop - start)
        bounds = start + np.concatenate([[0], np.cumsum(counts)])
        out.append((start, stop, counts, bounds))
    return out


def decide_center(source, plan, comm):
    """Return the plan with its raw-frame centre decided (collective for ``auto``).

    ptypy's rule: the mean over the frames of the first chunk of each frame's
    centre of mass on the raw frame.  Every rank computes its share and the
    per-frame centres are all-gathered, so every rank averages the same numbers
    in the same order.
    """
    if plan.center is not None:
        return plan
    start, stop, counts, bounds = _shares(plan, comm.size)[0]
    mine = np.arange(bounds[comm.rank], bounds[comm.rank + 1])
    if len(mine):
        raw = source.read_frames(mine, None)
        coms = pipeline.frame_centres(raw, plan, source.read_frames_valid(mine, None))
    else:
        coms = np.zeros((0, 2))
    coms = np.concatenate(comm.allgather(coms))
    if not np.isfinite(coms).any():
        raise SourceError("prep.center = 'auto' but no frame of the first chunk has counts; "
                          "give prep.center as [row, col]")
    center = tuple(float(c) for c in np.nanmean(coms, axis=0))
    check_center_inside(center, plan.raw_shape)
    log.info("automatic centre (row, col) = (%.2f, %.2f) from %d frames", *center, len(coms))
    return dataclasses.replace(plan, center=center)


#: Frames prepared at a time within a rank's share when the writer encodes them right
#: away: about this many bytes of crop, so that they are still in the CPU cache when
#: they are encoded (the share itself, 64 frames of 256² = 16 MB, is not).
CACHE_BATCH_BYTES = 2 << 20


def cache_batch_frames(plan):
    """Frames per batch of :func:`prepared_shares` so that a batch's raw crop (4 bytes a
    pixel) is about :data:`CACHE_BATCH_BYTES`; at least 1."""
    h, w = plan.raw_shape if plan.fftshift else plan.shape
    return max(1, CACHE_BATCH_BYTES // max(1, 4 * h * w))


def prepared_shares(recipe, comm=None, source=None, plan=None, batch_frames=None):
    """Yield ``(chunk_number, counts, FrameStack)`` of this rank's share of every chunk.

    With ``batch_frames``, the third item is instead an iterator over consecutive
    FrameStacks of at most that many frames, read and prepared one by one as the
    iterator is advanced (consume it before the next chunk).

    Collective: every rank of ``comm`` must iterate to the end.
    """
    comm = comm or world()
    own = source is None
    source = source or open_source(recipe)
    try:
        plan = plan or make_plan(recipe, source)
        plan = decide_center(source, plan, comm)
        meta = plan.output_meta()
        for number, (start, stop, counts, bounds) in enumerate(_shares(plan, comm.size)):
            indices = np.arange(bounds[comm.rank], bounds[comm.rank + 1], dtype=np.int64)
            parts = _prepared_parts(source, plan, indices, dict(meta, chunk=number),
                                    batch_frames or max(1, len(indices)))
            yield number, counts, (parts if batch_frames else next(parts))
    finally:
        if own:
            source.close()


def _prepared_parts(source, plan, indices, meta, batch_frames):
    """FrameStacks of ``indices`` in order, ``batch_frames`` at a time (one empty if none)."""
    if not len(indices):
        n = tuple(meta["shape"])
        yield FrameStack(indices, np.zeros((0,) + n, np.float32), np.zeros((0,) + n, bool),
                         plan.positions[indices], meta=meta)
        return
    for s in range(0, len(indices), batch_frames):
        part = indices[s:s + batch_frames]
        raw, roi, frames_valid = pipeline.read_raw(source, plan, part)
        data, valid = pipeline.prepare(raw, plan, roi, frames_valid)
        yield FrameStack(part, data, valid, plan.positions[part], meta=meta)


def iter_chunks(recipe, comm=None):
    """Prepared frames in memory, this rank's share of each chunk.

    Parameters
    ----------
    recipe : Recipe
    comm : communicator, optional
        Default: MPI's world under ``mpiexec``, else one process.

    Yields
    ------
    FrameStack
        ``indices``, ``data`` (M, n, n), ``valid`` (M, n, n), ``positions`` (M, 2) metres
        and ``meta`` (shape, center, psize, energy, distance, chunk number).
    """
    for _, _, stack in prepared_shares(recipe, comm):
        yield stack


def provenance(recipe, plan, source):
    """The ``info/`` content of an output: recipe, conventions, version, source."""
    return {
        "recipe": recipe.to_dict(),
        "conventions": CONVENTIONS,
        "ptyprep_version": __version__,
        "source": {"name": recipe.source.name, "class": type(source).__name__,
                   "extra": plan.source_extra},
        "raw_center": np.asarray(plan.center, dtype=float),
        "raw_shape": np.asarray(plan.raw_shape, dtype=np.int64),
        "center_mode": plan.center_mode,
        "orientation": np.asarray(plan.orientation, dtype=np.int64),
        "rebin": np.int64(plan.rebin),
        "rebin_mode": plan.rebin_mode,
    }


def run(recipe, comm=None):
    """Prepare the scan of ``recipe`` and write its output (collective under MPI).

    Returns
    -------
    dict
        ``path`` of the output, ``frames`` prepared (None for proc_data), ``seconds`` taken.
    """
    comm = comm or world()
    if recipe.output.format == "procdata":
        from .saxs.pipeline import run_procdata

        t0 = time.perf_counter()
        path = run_procdata(recipe, comm)
        return {"path": str(path), "frames": None, "seconds": time.perf_counter() - t0}
    from .ptycho.writer import PtydWriter, check_output, remove_previous

    dfile = recipe.path(recipe.output.dfile)
    check_output(dfile, recipe.output.overwrite)
    dataset_filters(recipe.output.compression)
    t0 = time.perf_counter()
    with open_source(recipe) as source:
        plan = make_plan(recipe, source)
        plan = decide_center(source, plan, comm)
        if comm.rank == 0 and recipe.output.overwrite:
            remove_previous(dfile)
        comm.barrier()
        writer = PtydWriter(dfile, plan.output_meta(), provenance(recipe, plan, source), comm,
                            save=recipe.output.save, compression=recipe.output.compression,
                            part_format=recipe.output.part_format)
        try:
            progress = Progress(plan.num_frames, comm)
            # the writer encodes each batch as soon as it is prepared (see CACHE_BATCH_BYTES)
            batch = cache_batch_frames(plan) if writer.codec is not None else None
            for number, counts, parts in prepared_shares(recipe, comm, source, plan, batch):
                writer.write_share(number, parts, counts)
                progress.update(int(counts.sum()))
            writer.close()
        except BaseException:
            writer.abandon()
            raise
    seconds = time.perf_counter() - t0
    if comm.rank == 0:
        log.info("wrote %s: %d frames in %.1f s (%.0f frames/s)", dfile, plan.num_frames,
                 seconds, plan.num_frames / max(seconds, 1e-9))
    return {"path": str(dfile), "frames": plan.num_frames, "seconds": seconds}


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
