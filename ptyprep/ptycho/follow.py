"""``ptyprep watch`` of a ``.ptyd``: every chunk a set of part files, then a new master.

* every rank writes its share of a chunk as a part file (``<part>.tmp``, renamed, the
  same files a ``ptyprep run`` in link mode writes); then rank 0 publishes a new master
  (written whole and renamed over the old one, :func:`~ptyprep.ptycho.publish.publish_master`)
  that links it.  A reader opening the master at any moment sees meta and a consistent
  in-order prefix of the scan;
* ``meta/num_frames`` is the scan's length when known (``prep.num_frames`` or the
  source's ``num_frames``), else :data:`~ptyprep.layout.ptyd.NUM_FRAMES_UNKNOWN` so that
  ptypy's ``PtydScan`` keeps waiting for frames; at the end it is the number of frames
  published, and ``info/complete = 1`` with ``info/end_reason`` ("count", "marker" or
  "timeout") records the end;
* killed at any moment and restarted, the daemon resumes from the output
  (:func:`~ptyprep.ptycho.publish.recover`); the automatic centre is stored at the first
  publication and reused.
"""

import contextlib
import dataclasses
import logging

import numpy as np

from ..engine.follower import Follower, part_delay
from ..engine.formats import check_output
from ..engine.lock import recipe_key
from ..errors import RecipeError, SourceError
from ..layout import files as F
from ..layout import ptyd as L
from ..layout.filters import dataset_filters
from ..sources.registry import open_source
from .job import decide_center, prepared_parts, provenance
from .plan import make_plan
from .publish import publish_master, recover
from .writer import PartWriter, cache_batch_frames, part_numbers

log = logging.getLogger(__name__)


def link_recipe(recipe):
    """The recipe ``watch`` runs: ``save = "link"`` (``"merge"`` cannot be followed)."""
    output = recipe.output
    if output.save == "merge":
        raise RecipeError("ptyprep watch publishes each chunk as a part file (save = 'link'); "
                          "output.save = 'merge' cannot be followed: set output.save = 'link'")
    if output.save != "link":
        log.info("output.save = %r: ptyprep watch publishes in link mode (a part file per "
                 "chunk, published as it completes); the finished scan holds the same frames "
                 "and reads the same in ptypy", output.save)
    return dataclasses.replace(recipe, output=dataclasses.replace(output, save="link"))


def known_total(recipe):
    """The scan's length when the recipe declares it (``prep.num_frames``, the source's
    ``num_frames``), else None."""
    values = [recipe.prep.num_frames, recipe.source.options.get("num_frames")]
    values = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return min(values) if values else None


class FramesFollower(Follower):
    """The ptychography half of a follower: the source polled, the plan made once, each
    rank's share of a chunk prepared.  A format's follower subclasses it and writes
    (:meth:`prepared`), publishes and recovers its own output.

    Parameters
    ----------
    recipe : Recipe
    comm : Communicator
    dfile : Path
        The output (its lock and status file are named after it).
    """

    def __init__(self, recipe, comm, dfile):
        self.recipe, self.comm, self.dfile = recipe, comm, dfile
        self.chunk_frames, self.min_frames = recipe.output.chunk_frames, recipe.prep.min_frames
        self.known = known_total(recipe)
        self.source = self.plan = self.meta = self.info = None
        self.written, self.raw_center = 0, None

    @contextlib.contextmanager
    def opened(self):
        with open_source(self.recipe) as source:
            self.source = source
            yield self

    # -- the acquisition (rank 0) ---------------------------------------------------------------
    def poll(self):
        return self.source.available()

    def expected(self):
        return self.known

    def ended_by_marker(self):
        return self.source.end_of_scan is not None

    def chunk_inputs(self, start, stop):
        positions = np.asarray(self.source.read_positions(), dtype=np.float64)[start:stop]
        if len(positions) != stop - start:
            raise SourceError(f"the source has {len(positions) + start} positions for frames up "
                              f"to {stop}; every complete frame needs a position")
        return positions

    def refresh(self):
        self.source.refresh()

    # -- one chunk -----------------------------------------------------------------------------
    def prepared(self, share, positions):
        """Collective: this rank's indices of ``share`` and an iterator of their prepared
        FrameStacks (in cache-sized batches; empty when the rank has no frames)."""
        if self.plan is None:
            self._make_plan(share.stop)
        mine = share.indices(self.comm.rank)
        self.written = share.stop
        if not len(mine):
            return mine, iter(())
        return mine, prepared_parts(self.source, self.plan, mine, self.meta,
                                    cache_batch_frames(self.plan), positions[mine - share.start])

    def _make_plan(self, stop):
        """Collective: the plan of the scan, its centre decided (or restored) once."""
        plan = make_plan(self.recipe, self.source)
        if self.raw_center is not None and plan.center_mode == "auto":
            plan = dataclasses.replace(plan, center=self.raw_center)
        # decide_center averages over the first chunk, [0, min(chunk_frames, num_frames))
        plan = dataclasses.replace(plan, num_frames=stop)
        self.plan = decide_center(self.source, plan, self.comm)
        self.meta = self.plan.output_meta()
        if self.comm.rank == 0:
            self.info = provenance(self.recipe, self.plan, self.source)  # recipe and raw_center


class PtydFollower(FramesFollower):
    """A growing link-mode ``.ptyd`` (made by :meth:`PtydFormat.follower
    <ptyprep.ptycho.format.PtydFormat.follower>` on every rank)."""

    def __init__(self, fmt, comm, **options):
        if options:
            log.warning("watch options %s apply to other formats; not used for .ptyd",
                        ", ".join(sorted(options)))
        recipe = link_recipe(fmt.recipe)
        super().__init__(recipe, comm, fmt.dfile)
        self.filters = dataset_filters(recipe.output.compression)
        F.part_name(self.dfile, 0, recipe.output.part_format)
        check_output(self.dfile, overwrite=True)
        self.parts = []
        from ..fast.chunkwrite import chunk_codec

        self.part_writer = PartWriter(self.filters, chunk_codec(self.filters),
                                      before_rename=part_delay())

    # -- what the output holds ----------------------------------------------------------------
    def recover(self):
        output = self.recipe.output
        return recover(self.dfile, recipe_key(self.recipe.to_dict()), output.chunk_frames,
                       output.part_format, output.overwrite)

    def resume(self, state):
        self.parts, self.written, self.raw_center = list(state.part_names), state.frames, \
            state.raw_center
        if self.written and self.comm.rank == 0:
            log.info("resuming %s after %d published frames (%d parts)", self.dfile, self.written,
                     len(self.parts))
        return self.written

    # -- one chunk -----------------------------------------------------------------------------
    def write_chunk(self, share, positions, acq):
        numbers = part_numbers([share.counts], len(self.parts))[0]
        mine, parts = self.prepared(share, positions)
        if len(mine):
            name = F.part_name(self.dfile, numbers[self.comm.rank], self.recipe.output.part_format)
            self.part_writer.write(self.dfile.parent / name, parts, len(mine))
        self.parts += [F.part_name(self.dfile, k, self.recipe.output.part_format)
                       for k in numbers[numbers >= 0]]

    # -- publishing (rank 0) -------------------------------------------------------------------
    def publish(self, acq, complete=False):
        if complete:
            num_frames, known = self.written, 1
        elif acq.expected:
            num_frames, known = acq.expected, 1
        else:
            num_frames, known = L.NUM_FRAMES_UNKNOWN, 0
        meta = dict(self.meta, num_frames=num_frames)
        info = dict(self.info, **{L.COMPLETE: np.int64(complete),
                                  L.END_REASON: acq.reason if complete else "",
                                  L.FRAMES_WRITTEN: np.int64(self.written),
                                  L.NUM_FRAMES_KNOWN: np.int64(known)})
        publish_master(self.dfile, meta, info, self.parts)
        return self.written

    def finish(self, acq):
        self.publish(acq, complete=True)
        log.info("%d parts in %s", len(self.parts), self.dfile)
        return self.written

    def status(self):
        return {"parts": len(self.parts)}
