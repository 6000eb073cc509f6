"""Scanning SAXS/WAXS as a format of the engine: ``[output] format = "procdata"``.

The whole chain from a recipe: import raw files (LiX) or one scan of any source →
process (q-φ maps, I(q), optional Poisson errors; the engine's run loop) → optional
background subtraction → ``Iphi`` → attributes → maps (+ ``overall``) → tomograms.
The file is written under a temporary name (``.<name>.partial``) and renamed when
everything succeeded, so a failed run leaves no file a reader could take for complete.
The format owns the recipe's ``[saxs]`` table (:mod:`ptyprep.saxs.recipe`).
"""

import dataclasses
import logging
import os

from ..engine.collective import after_all, on_root
from ..engine.formats import Format, Job, Writer, check_output
from ..errors import RecipeError, SourceError
from ..layout import files as F
from .recipe import (SaxsSection, make_detectors, parse_saxs_section, raw_files, recipe_qgrid,
                     uses_lix)

log = logging.getLogger(__name__)


class ProcdataFormat(Format):
    """The ``proc_data`` file of scanning SAXS/WAXS (owns ``[saxs]``)."""

    name = "procdata"
    section = "saxs"
    preparation = "qphi"

    @classmethod
    def parse_section(cls, table):
        return parse_saxs_section(table)

    @classmethod
    def section_defaults(cls):
        return {f.name: f.default for f in dataclasses.fields(SaxsSection)
                if f.default is not dataclasses.MISSING}

    @property
    def saxs(self):
        return self.recipe.section("saxs")


    def outputs(self):
        return [self.dfile]

    def check_input(self):
        """The raw files exist and the detectors' geometry and masks load."""
        if self.saxs is None:
            raise RecipeError("output.format = 'procdata' needs a [saxs] section")
        if uses_lix(self.recipe):
            for path in raw_files(self.recipe):
                if not os.path.isfile(path):
                    raise SourceError(f"raw file {path!r} does not exist; check [source] path "
                                      "(relative paths start at the recipe's folder)")
        make_detectors(self.recipe)

    def check(self):
        if self.saxs is None:
            raise RecipeError("output.format = 'procdata' needs a [saxs] section")
        check_output(self.dfile, self.recipe.output.overwrite)

    def open(self, comm):
        """The temporary output with the raw data imported, and the frames to integrate."""
        from .analysis import ScanAnalysis

        recipe, saxs = self.recipe, self.saxs
        files = raw_files(recipe) if uses_lix(recipe) else None
        detectors = make_detectors(recipe)
        qgrid = recipe_qgrid(saxs)
        tmp = F.partial_name(self.dfile)

        def fresh():
            self.dfile.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)

        on_root(comm, fresh)
        try:
            an = ScanAnalysis(tmp, detectors=detectors, qgrid=qgrid, nphi=saxs.nphi, comm=comm,
                              replace_path=saxs.replace_path or None,
                              compression=recipe.output.compression)
            _import(an, recipe, files)
            scans, rows = an.processing(recipe.output.chunk_frames, saxs.split,
                                        saxs.normalize_monitor, errors=saxs.errors)
        except BaseException:
            if comm.rank == 0:
                tmp.unlink(missing_ok=True)
            raise
        return ProcdataJob(an, scans, rows, tmp)

    def writer(self, job, comm):
        return ProcdataWriter(job, self.saxs, self.recipe.output.chunk_frames, self.dfile, comm)

    def follower(self, comm, **options):
        from .follow import ProcdataFollower

        return ProcdataFollower(self, comm, **options)

    def describe(self, formats=()):
        """Check a procdata recipe fully (geometry, masks, raw data) and describe what a run does.

        Opens every detector's ``.poni`` and mask, every raw scan and each detector's frames;
        writes nothing.  Raises the same errors as a run would before its first write.
        """
        from . import rawdata as R
        from .qgrid import phi_centres

        recipe, saxs, out = self.recipe, self.saxs, self.dfile
        detectors = make_detectors(recipe)
        if not detectors:
            raise RecipeError("[saxs] detectors is empty; give at least one "
                              "{dataset = ..., poni = ..., valid = ...}")
        qgrid = recipe_qgrid(saxs)
        phi_centres(saxs.nphi)
        for det in detectors:
            det.integrator(qgrid, saxs.nphi, split=saxs.split)  # q coverage, mask, geometry
        datasets = [d.dataset for d in detectors]
        if uses_lix(recipe):
            items = R.expand_files(raw_files(recipe), lambda p: p, None)
        else:
            items = [(saxs.sample or None, R.make_spec(recipe.source.name, recipe.source.options,
                                                       datasets, recipe.base_dir))]
        lines = [f"recipe OK: {len(items)} scan(s), {len(detectors)} detector(s) → {out}",
                 f"  q grid        {qgrid.size} bins, {qgrid[0]:.4g}–{qgrid[-1]:.4g} 1/Å; "
                 f"{saxs.nphi} φ bins; pixel splitting {saxs.split}"]
        for det in detectors:
            lines.append(f"  detector      {det.name}: dataset {det.dataset}, shape "
                         f"{tuple(det.shape)}, {det.valid.mean() * 100:.1f}% valid pixels")
        for sample, spec in items:
            with R.SampleFrames(spec, datasets) as frames:
                counts = frames.num_frames()
            shown = ", ".join(f"{ds} {n}" for ds, n in counts.items())
            lines.append(f"  scan          {sample or R.spec_path(spec)}: frames {shown}")
        steps = ["q-φ maps + I(q)"] + (["errors"] if saxs.errors else [])
        steps += [f"attrs {', '.join(a['name'] for a in saxs.attrs)}"] if saxs.attrs else []
        steps += [f"maps {', '.join(saxs.maps)}"] if saxs.maps else []
        steps += [f"tomograms {', '.join(saxs.tomo)}"] if saxs.tomo else []
        lines.append(f"  steps         {' → '.join(steps)}")
        return lines


class ProcdataJob(Job):
    """The temporary proc_data file with its samples imported: one scan per sample."""

    def __init__(self, an, scans, rows, tmp):
        self.an, self.scans, self.rows, self.tmp = an, scans, rows, tmp


class ProcdataWriter(Writer):
    """Rows of every chunk stored on rank 0; at the end the rest of the chain, then the
    temporary file renamed into place."""

    def __init__(self, job, saxs, chunk_frames, dfile, comm):
        self.job, self.saxs, self.chunk_frames, self.dfile, self.comm = (job, saxs, chunk_frames,
                                                                          dfile, comm)

    def write(self, scan, share, parts):
        self.job.rows.write(scan, share, parts)

    def close(self):
        self.job.rows.close()
        _chain(self.job.an, self.saxs, self.chunk_frames)
        after_all(self.comm, self._publish)

    def _publish(self):
        os.replace(self.job.tmp, self.dfile)
        log.info("wrote %s", self.dfile)

    def abandon(self):
        self.job.rows.abandon()
        if self.comm.rank == 0:
            self.job.tmp.unlink(missing_ok=True)

    def result(self):
        return {"path": self.dfile, "frames": None}


def _import(an, recipe, files):
    saxs = recipe.section("saxs")
    if files is not None:
        opts = recipe.source.options if recipe.source.name == "nsls2-lix" else {}
        an.import_raw_data(files, force_uniform_steps=saxs.force_uniform_steps, prec=saxs.prec,
                           incident=opts.get("incident"), transmitted=opts.get("transmitted"))
    else:
        an.import_source(recipe.source.name, recipe.source.options, sample=saxs.sample or None,
                         force_uniform_steps=saxs.force_uniform_steps, prec=saxs.prec,
                         base_dir=recipe.base_dir)


def _chain(an, saxs, chunk_frames):
    """Everything after ``process``: background, ``Iphi``, attributes, maps, tomograms."""
    if saxs.background:
        targets = [s for s in an.samples if s != saxs.background]
        for key in saxs.background_data_keys:
            an.subtract_background(targets, saxs.background, data_key=key)
    if saxs.iphi_qrange:
        an.extract_iphi(None, saxs.iphi_qrange, chunk_frames=chunk_frames)
        if saxs.background and "qphi" in saxs.background_data_keys:
            targets = [s for s in an.samples if s != saxs.background]
            an.extract_iphi(targets, saxs.iphi_qrange, sub_key="subtracted",
                            chunk_frames=chunk_frames)
    for a in saxs.attrs:
        an.extract_attr(None, a["name"], a["func"], a["data_key"], a["sub_key"],
                        chunk_frames=chunk_frames, **a["kwargs"])
    if saxs.maps:
        an.make_map_from_attr(list(saxs.maps), save_overall=saxs.save_overall,
                              correct_for_transmission=saxs.correct_for_transmission,
                              ref_trans=saxs.ref_trans)
    if saxs.tomo:
        an.calc_tomo_from_map(list(saxs.tomo), algorithm=saxs.tomo_algorithm,
                              center=saxs.tomo_center)
