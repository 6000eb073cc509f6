"""Ptychography as formats of the engine: the frame preparation, and the ``.ptyd`` format.

:class:`PtychoFormat` is the preparation every ptychography format shares (crop,
centre, orientation, rebin, masks: :mod:`ptyprep.ptycho.prepare`): it opens the
source, plans (the automatic centre is decided from the first chunk, collectively)
and prepares each rank's share as :class:`~ptyprep.engine.stack.FrameStack` parts.
:class:`PtydFormat` writes them as ptypy's ``.ptyd`` in ``[output] save`` mode
(:mod:`ptyprep.ptycho.writer`); exports to other codes subclass :class:`PtychoFormat`
too, so one recipe can prepare once and write several.
"""

import dataclasses
import logging

import numpy as np

from .._version import __version__
from ..engine.collective import allgather_rows
from ..engine.formats import Format, Job, Scan
from ..engine.shares import chunk_shares
from ..engine.stack import FrameStack
from ..errors import SourceError
from ..layout import files as F
from ..layout import ptyd as L
from ..layout.filters import dataset_filters
from ..sources.registry import open_source
from . import prepare as P
from .plan import check_center_inside, make_plan

log = logging.getLogger(__name__)


def decide_center(source, plan, comm):
    """Return the plan with its raw-frame centre decided (collective for ``auto``).

    ptypy's rule: the mean over the frames of the first chunk of each frame's
    centre of mass on the raw frame.  Every rank computes its share and the
    per-frame centres are all-gathered, so every rank averages the same numbers
    in the same order.
    """
    if plan.center is not None:
        return plan
    first = next(chunk_shares(0, plan.num_frames, plan.chunk_frames, comm.size))
    mine = first.indices(comm.rank)
    if len(mine):
        raw = source.read_frames(mine, None)
        coms = P.frame_centres(raw, plan, source.read_frames_valid(mine, None))
    else:
        coms = np.zeros((0, 2))
    coms = allgather_rows(comm, coms)
    if not np.isfinite(coms).any():
        raise SourceError("prep.center = 'auto' but no frame of the first chunk has counts; "
                          "give prep.center as [row, col]")
    center = tuple(float(c) for c in np.nanmean(coms, axis=0))
    check_center_inside(center, plan.raw_shape)
    log.info("automatic centre (row, col) = (%.2f, %.2f) from %d frames", *center, len(coms))
    return dataclasses.replace(plan, center=center)


def provenance(recipe, plan, source):
    """The ``info/`` content of an output: recipe, conventions, version, source."""
    return {
        L.RECIPE: recipe.to_dict(),
        "conventions": L.CONVENTIONS,
        "ptyprep_version": __version__,
        "source": {"name": recipe.source.name, "class": type(source).__name__,
                   "extra": plan.source_extra},
        L.RAW_CENTER: np.asarray(plan.center, dtype=float),
        "raw_shape": np.asarray(plan.raw_shape, dtype=np.int64),
        "center_mode": plan.center_mode,
        "orientation": np.asarray(plan.orientation, dtype=np.int64),
        "rebin": np.int64(plan.rebin),
        "rebin_mode": plan.rebin_mode,
    }


def prepared_parts(source, plan, indices, meta, batch_frames, positions=None):
    """FrameStacks of ``indices`` in order, ``batch_frames`` at a time (one empty if none).

    ``positions`` (M, 2) metres of ``indices``; default the plan's.
    """
    positions = plan.positions[indices] if positions is None else positions
    if not len(indices):
        n = tuple(meta["shape"])
        yield FrameStack(indices, np.zeros((0,) + n, np.float32), np.zeros((0,) + n, bool),
                         positions, meta=meta)
        return
    for s in range(0, len(indices), batch_frames):
        part = indices[s:s + batch_frames]
        raw, roi, frames_valid = P.read_raw(source, plan, part)
        data, valid = P.prepare(raw, plan, roi, frames_valid)
        yield FrameStack(part, data, valid, positions[s:s + batch_frames], meta=meta)


@dataclasses.dataclass(eq=False)
class FramesScan(Scan):
    """The scan of a ptychography job: every share read and prepared as FrameStacks."""

    source: object = None
    plan: object = None

    def prepare(self, share, indices, batch_frames=None):
        meta = dict(self.plan.output_meta(), chunk=share.number)
        return prepared_parts(self.source, self.plan, indices, meta,
                              batch_frames or max(1, len(indices)))


class FramesJob(Job):
    """An open ptychography source and its plan (centre decided)."""

    def __init__(self, recipe, source, plan):
        self.recipe, self.source, self.plan = recipe, source, plan
        self.scans = [FramesScan(None, 0, plan.num_frames, plan.chunk_frames, source=source,
                                 plan=plan)]

    @property
    def info(self):
        """The ``info/`` provenance of the outputs."""
        return provenance(self.recipe, self.plan, self.source)

    def close(self):
        self.source.close()


class PtychoFormat(Format):
    """Base of the ptychography formats: the source opened, the plan made, frames prepared."""

    preparation = "ptycho"

    def open(self, comm):
        source = open_source(self.recipe)
        try:
            plan = make_plan(self.recipe, source)
            plan = decide_center(source, plan, comm)
        except BaseException:
            source.close()
            raise
        return FramesJob(self.recipe, source, plan)

    def describe(self, formats=()):
        """``validate``'s lines: the plan, and the output of this format and ``formats``."""
        recipe = self.recipe
        with open_source(recipe) as source:
            plan = make_plan(recipe, source)
        meta = plan.output_meta()
        center = ("automatic (centre of mass of the first chunk)" if plan.center is None
                  else f"({plan.center[0]:.2f}, {plan.center[1]:.2f}) [{plan.center_mode}]")
        return [
            f"recipe OK: source {recipe.source.name!r} ({type(source).__name__})",
            f"  frames        {plan.num_frames} of raw shape {plan.raw_shape}",
            f"  centre        {center} on the raw frame",
            f"  crop          {plan.shape} → orientation (transpose, flipud, fliplr) = "
            f"{plan.orientation} → rebin {plan.rebin} ({plan.rebin_mode})",
            f"  prepared      shape {meta['shape'].tolist()}, centre {meta['center'].tolist()}, "
            f"pixel {meta['psize'].tolist()} m",
            f"  geometry      {plan.energy_keV:g} keV, distance {plan.distance_m:g} m",
            f"  valid pixels  {plan.valid.mean() * 100:.2f}% of the raw frame (static mask)",
            *[line for fmt in (formats or [self]) for line in fmt.describe_output(plan)],
        ]

    def describe_output(self, plan):
        """The ``validate`` lines of this format's output, given the plan."""
        return [f"  output        {', '.join(map(str, self.outputs()))} ({self.name})"]


class PtydFormat(PtychoFormat):
    """ptypy's ``.ptyd`` (``[output] save`` = append, link or merge)."""

    name = "ptyd"

    @property
    def dfile(self):
        return self.recipe.path(self.recipe.output.dfile)

    def outputs(self):
        return [self.dfile]

    def check(self):
        from .writer import check_output

        output = self.recipe.output
        check_output(self.dfile, output.overwrite)
        dataset_filters(output.compression)
        F.part_name(self.dfile, 0, output.part_format)

    def describe_output(self, plan):
        output = self.recipe.output
        return [f"  output        {self.dfile} ({output.save}, {output.compression}), "
                f"{len(plan.chunks())} chunk(s) of ≤ {output.chunk_frames} frames"]

    def writer(self, job, comm):
        from .writer import WRITERS, cache_batch_frames

        output = self.recipe.output
        return WRITERS[output.save](self.dfile, job.plan.output_meta(), job.info, comm,
                                    compression=output.compression, overwrite=output.overwrite,
                                    part_format=output.part_format,
                                    batch_frames=cache_batch_frames(job.plan))

    def follower(self, comm, **options):
        from .follow import PtydFollower

        return PtydFollower(self, comm, **options)
