"""An open ptychography source and its plan: what the engine walks for every ptychography format.

The plan is made on every rank; an automatic centre (``prep.center = "auto"``) is
decided from the first chunk, collectively (:func:`decide_center`).  Each rank's share
is read and prepared as :class:`~ptyprep.engine.stack.FrameStack` parts
(:func:`prepared_parts`), batch by batch when the writer streams them.
"""

import dataclasses
import logging

import numpy as np

from .._version import __version__
from ..engine.collective import allgather_rows
from ..engine.formats import Job, Scan
from ..engine.shares import chunk_shares
from ..engine.stack import FrameStack
from ..errors import SourceError
from ..layout import ptyd as L
from . import prepare as P
from .plan import check_center_inside

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
    """The ``info/`` content of an output: recipe, conventions, version, source, and for a
    cone beam ``geometry`` (the measured distances and pixel, :meth:`Plan.geometry_info`)."""
    info = {
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
    geometry = plan.geometry_info()
    if geometry is not None:
        info["geometry"] = geometry
    return info


def prepared_parts(source, plan, indices, meta, batch_frames, positions=None):
    """FrameStacks of ``indices`` in order, ``batch_frames`` at a time (one empty if none).

    ``positions`` (M, 2) metres of ``indices``; default the plan's.  Non-finite pixel
    values (NaN, ±inf) come out invalid; how many is logged (by every rank that met some).
    """
    positions = plan.positions[indices] if positions is None else positions
    if not len(indices):
        n = tuple(meta["shape"])
        yield FrameStack(indices, np.zeros((0,) + n, np.float32), np.zeros((0,) + n, bool),
                         positions, meta=meta)
        return
    tally = {}
    for s in range(0, len(indices), batch_frames):
        part = indices[s:s + batch_frames]
        raw, roi, frames_valid = P.read_raw(source, plan, part)
        data, valid = P.prepare(raw, plan, roi, frames_valid, tally)
        yield FrameStack(part, data, valid, positions[s:s + batch_frames], meta=meta)
    if tally.get("nonfinite"):
        log.warning("frames %d-%d: %d non-finite pixel values (NaN, ±inf) in the raw data "
                    "made invalid (weight 0)", int(indices[0]), int(indices[-1]),
                    tally["nonfinite"], extra={"all_ranks": True})


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
