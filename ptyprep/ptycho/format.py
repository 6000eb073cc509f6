"""Ptychography as formats of the engine: the frame preparation, and the ``.ptyd`` format.

:class:`PtychoFormat` is the preparation every ptychography format shares (crop,
centre, orientation, rebin, masks: :mod:`ptyprep.ptycho.prepare`): it opens the
source, plans (the automatic centre is decided from the first chunk, collectively)
and prepares each rank's share as :class:`~ptyprep.engine.stack.FrameStack` parts.
:class:`PtydFormat` writes them as ptypy's ``.ptyd`` in ``[output] save`` mode
(:mod:`ptyprep.ptycho.writer`); exports to other codes subclass :class:`PtychoFormat`
too, so one recipe can prepare once and write several.
"""

import logging

from ..engine.formats import Format, check_output
from ..layout import files as F
from ..layout.filters import dataset_filters
from ..sources.registry import open_source
from .job import FramesJob, decide_center
from .plan import make_plan
from .prepare import output_valid, padding_fraction

log = logging.getLogger(__name__)


def crop_warnings(plan):
    """``warning: ...`` lines when the crop window reaches beyond the raw frame."""
    pad = padding_fraction(plan)
    if not pad:
        return []
    r0, r1, c0, c1 = plan.window
    return [f"warning: the crop rows {r0}:{r1}, columns {c0}:{c1} reach beyond the raw frame "
            f"{plan.raw_shape}: {pad * 100:.1f}% of each prepared frame is padding (zero, "
            "invalid); reduce prep.shape or move prep.center"]


def _cone_beam(plan):
    info = plan.geometry_info()
    if info is None:
        return ""
    return (f"; cone beam, focus {info['focus_to_sample_m']:g} m before the sample: "
            f"magnification {info['magnification']:.4g}, written as distance "
            f"{info['effective_distance_m']:.4g} m")


def _valid_of_output(plan):
    valid = output_valid(plan)
    if valid is None:
        return "of the prepared frame: known once the centre is found"
    return f"{valid.mean() * 100:.2f}% of the prepared frame (after crop, mask, rebin)"


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
        for line in crop_warnings(plan):
            log.warning("%s", line.removeprefix("warning: "))
        return FramesJob(self.recipe, source, plan)

    def check_input(self):
        """The source opened and the plan made (every check of the raw data's metadata,
        geometry and frame type), then closed again."""
        with open_source(self.recipe) as source:
            make_plan(self.recipe, source)

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
            f"  geometry      {plan.energy_keV:g} keV, distance {plan.distance_m:g} m"
            f"{_cone_beam(plan)}",
            f"  valid pixels  {plan.valid.mean() * 100:.2f}% of the raw frame (static mask); "
            f"{_valid_of_output(plan)}",
            *[line for fmt in (formats or [self]) for line in fmt.describe_output(plan)],
            *crop_warnings(plan),
        ]

    def describe_output(self, plan):
        """The ``validate`` lines of this format's output, given the plan."""
        return [f"  output        {', '.join(map(str, self.outputs()))} ({self.name})"]


class PtydFormat(PtychoFormat):
    """ptypy's ``.ptyd`` (``[output] save`` = append, link or merge)."""

    name = "ptyd"

    def outputs(self):
        return [self.dfile]

    def check(self):
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
