"""``ptyprep watch`` for ``[output] format = "procdata"``: one growing scanning-SAXS sample.

The sample is read through a following source (``hdf5`` on a file grown in SWMR
mode), one source instance per detector, monitors and motor positions from the
first; its length is known up front (``[source] num_frames``, else the raster's
``scan_shape``).  For every chunk of ``output.chunk_frames`` complete frames (frames,
monitors and motor positions all written) the ranks integrate their shares, rank 0
appends the rows to ``qphi/merged/d`` (``Iq``, ``err``, ``Iphi``) and the chunk's
attributes (monitors, recipe ``attrs``).  Maps (NaN where nothing was measured yet,
axes provisional until the raster is complete) are rebuilt every ``maps_every``
chunks; at the end the sample record is rewritten from the complete scan, maps and
tomograms are made, and ``@complete = 1``.

Publishing: ``<dfile>`` is never written in place.  Rank 0 copies it to
``.<name>.partial``, appends chunks there, and to publish closes and fsyncs it and
renames it over ``<dfile>``.  A reader therefore always opens a complete, closed
HDF5 file holding a prefix of the scan (rows ``< qphi/merged/d@frames_done``
filled, the rest NaN); a ``kill -9`` at any moment leaves at worst a stray
``.partial``, discarded on restart, and the published file is the checkpoint the
daemon resumes from.  A publish costs a copy and an fsync of the whole processed
file, which grows with the scan: the first chunk is published at once, and after
a publish that took ``t`` seconds the next waits until ``PUBLISH_COST_FACTOR · t``
seconds have passed, chunks accumulating in the private copy meanwhile — so
publishing takes at most ~1/(1 + factor) of the time however large the file grows.
The end of the scan and a stop on request publish at once.  Root ``@watch`` (JSON)
records the recipe, the sample, the expected length, the frames whose maps are
shown and the end.
"""

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from ..engine.collective import gather
from ..engine.follower import Follower, part_delay
from ..engine.formats import check_output
from ..engine.lock import recipe_key
from ..errors import LayoutError, OutputError, RecipeError, SourceError
from ..layout import files as F
from ..layout import procdata as L
from . import products as P
from . import rawdata as R
from . import store as W
from .lixfile import detector_entry
from .recipe import make_detectors, recipe_qgrid, uses_lix
from .integration import integrate_share, make_integrators
from .qgrid import phi_centres

log = logging.getLogger(__name__)

#: After a publish that took t seconds, the next one waits until factor · t seconds have passed.
PUBLISH_COST_FACTOR = 4.0
#: Maps are rebuilt every this many chunks (``--maps-every``).
DEFAULT_MAPS_EVERY = 4


def publish_due(now, last_end, last_cost, factor=None):
    """True when a publish that ended at ``last_end`` (monotonic seconds; None = never)
    and took ``last_cost`` seconds is followed by enough work to publish again.

    ``factor`` defaults to :data:`PUBLISH_COST_FACTOR`.
    """
    factor = PUBLISH_COST_FACTOR if factor is None else factor
    return last_end is None or now - last_end >= factor * last_cost


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ProcdataFollower(Follower):
    """A growing proc_data file of one sample (made on every rank by
    :meth:`ProcdataFormat.follower <ptyprep.saxs.format.ProcdataFormat.follower>`)."""

    def __init__(self, fmt, comm, maps_every=DEFAULT_MAPS_EVERY):
        recipe, saxs = fmt.recipe, fmt.saxs
        if saxs is None:
            raise RecipeError("output.format = 'procdata' needs a [saxs] section")
        if uses_lix(recipe):
            raise RecipeError("ptyprep watch follows one growing sample through a following "
                              "source (e.g. [source] name = 'hdf5' on a file written in SWMR "
                              "mode); LiX raw files are imported whole: run `ptyprep run` after "
                              "the scan")
        if saxs.background:
            raise RecipeError(f"saxs.background = {saxs.background!r} needs a second sample; "
                              "ptyprep watch follows one: subtract with `ptyprep run` after "
                              "the scan")
        if isinstance(maps_every, bool) or not isinstance(maps_every, int) or maps_every < 1:
            raise RecipeError(f"--maps-every {maps_every!r} must be an integer >= 1 (chunks)")
        self.recipe, self.saxs, self.comm, self.maps_every = recipe, saxs, comm, maps_every
        self.dfile, self.work = fmt.dfile, F.partial_name(fmt.dfile)
        check_output(self.dfile, overwrite=True)    # an existing output is resumed or refused
        self.chunk_frames, self.min_frames = recipe.output.chunk_frames, recipe.prep.min_frames
        self.detectors = make_detectors(recipe)
        self.qgrid = recipe_qgrid(saxs)
        self.integrators = make_integrators(self.detectors, self.qgrid, saxs.nphi, saxs.split)
        self.phi = phi_centres(saxs.nphi)
        self.datasets = [d.dataset for d in self.detectors]
        self.spec = R.make_spec(recipe.source.name, recipe.source.options, self.datasets,
                                recipe.base_dir)
        self.delay = part_delay()
        opt = recipe.source.options.get("num_frames")
        self.num_frames_opt = opt if isinstance(opt, int) and not isinstance(opt, bool) else 0
        self.raw = self.sample = None
        # rank 0: the scan's length, monitors seen, what the private copy holds
        self.total, self.monitors = None, {}
        self.published = self.appended = 0
        self.pending, self.finished = False, False   # a copy holds unpublished chunks; all done
        self.published_end, self.publish_s, self.copy_s = None, 0.0, 0.0

    # -- what the output holds ----------------------------------------------------------------
    def recover(self):
        return recover_procdata(self.dfile, recipe_key(self.recipe.to_dict()),
                                self.recipe.output.overwrite)

    def resume(self, state):
        self.published, self.sample = state
        self.appended = self.published
        return self.published

    @contextlib.contextmanager
    def opened(self):
        with R.SampleFrames(self.spec, self.datasets) as raw:
            self.raw = raw
            yield self

    # -- the acquisition (rank 0) ---------------------------------------------------------------
    def refresh(self):
        """Close every detector's files before any reopens: HDF5 shares one open file between
        the handles of a process, so a reopen while another source holds the file would see
        stale data."""
        for src in self.raw.sources.values():
            src.refresh()

    def poll(self):
        """``(complete frames, ended)``: min over detectors, monitors and motor positions."""
        self.refresh()
        counts = [src.available() for src in self.raw.sources.values()]
        src = self.raw.first
        self.monitors = {k: np.asarray(v, dtype=np.float64).ravel()
                         for k, v in (src.read_monitors() or {}).items()}
        geo = src.read_scan_geometry()
        n = min([c for c, _ in counts] + [len(v) for v in self.monitors.values()]
                + ([len(geo["positions"])] if geo else []))
        if self.total is None:
            self.total = self.num_frames_opt or (int(np.prod(geo["shape"])) if geo else None)
            if self.total is None:
                raise RecipeError("ptyprep watch needs the scan's length up front: set "
                                  "[source] scan_shape = [n_slow, n_fast] (or num_frames)")
        return min(int(n), self.total), bool(counts[0][1])

    def expected(self):
        return self.total

    def ended_by_marker(self):
        return self.raw.first.end_of_scan is not None

    def chunk_inputs(self, start, stop):
        if not self.saxs.normalize_monitor:
            return None
        inc = self.monitors.get("incident")
        if inc is None:
            raise SourceError("saxs.normalize_monitor needs the incident monitor; give the "
                              "source one (hdf5: incident = '/path')")
        return inc[start:stop]

    # -- one chunk (every rank) ------------------------------------------------------------------
    def write_chunk(self, share, incident, acq):
        mine = share.indices(self.comm.rank)

        def make():
            rows = integrate_share(self.raw, mine, self.detectors, self.integrators, self.qgrid,
                                   self.saxs.nphi, None if incident is None else
                                   np.asarray(incident)[mine - share.start], self.saxs.errors)
            return None, [np.ascontiguousarray(p, dtype=np.float32) for p in rows]

        _, rows = gather(self.comm, make)
        if rows is not None:
            self._write(share.start, share.stop, rows, acq)
            log.info("prepared frames %d..%d of %s", share.start, share.stop - 1, self.total)

    def publish_due(self, acq):
        return publish_due(time.monotonic(), self.published_end, self.publish_s)

    # -- rank 0: publishing ------------------------------------------------------------------------
    def publish(self, acq):
        self._commit()
        return self.published

    def finish(self, acq):
        if not self.finished:
            self._write(self.appended, self.appended, None, acq)
        self._commit()
        return self.published

    def stop(self, acq):
        self._commit()
        return self.published

    def status(self):
        return {"publish_s": round(self.publish_s, 4)}

    def _write(self, start, stop, rows, acq):
        """Append frames ``[start, stop)`` (``rows``; None: none) to the private copy, made
        from ``<dfile>`` first when it holds nothing unpublished."""
        last = acq.is_last(stop)
        existing = self.pending or self.dfile.exists()   # else: the very first version
        if existing and not self.pending:
            t0 = time.perf_counter()
            shutil.copyfile(self.dfile, self.work)
            self.copy_s = time.perf_counter() - t0
        self.pending = True
        with h5py.File(self.work, "a" if existing else "w") as f:
            if L.ATTR_WATCH not in f.attrs:
                self._create(f)
            state = L.from_json(f.attrs[L.ATTR_WATCH])
            sn = self.sample
            if rows is not None:
                P.append_chunk(f, sn, start, rows,
                               {k: v[start:stop] for k, v in self.monitors.items()},
                               self.saxs, self.qgrid, self.phi, self.recipe.output.compression)
            chunks = stop // self.chunk_frames + (stop % self.chunk_frames > 0)
            if last or (rows is not None and chunks % self.maps_every == 0):
                P.followed_products(f, sn, self.raw, self.spec, self.saxs, self.total,
                                    last and stop >= self.total, last)
                state["maps_frames"] = stop
            state.update(frames_published=stop, complete=bool(last),
                         end_reason=acq.reason if last else "")
            f.attrs[L.ATTR_WATCH] = L.to_json(state)
            f.attrs[L.ATTR_COMPLETE] = np.int64(last)
        self.appended = stop
        self.finished = last

    def _commit(self):
        """fsync the private copy and rename it over ``<dfile>`` (rank 0; no-op if not pending)."""
        if not self.pending:
            return
        t0 = time.perf_counter()
        _fsync(self.work)
        if self.delay:  # test hook (PART_DELAY_ENV): a kill here leaves a stray .partial
            self.delay()
        os.replace(self.work, self.dfile)
        _fsync(self.dfile.parent)
        self.pending, self.published = False, self.appended
        self.publish_s, self.copy_s = self.copy_s + time.perf_counter() - t0, 0.0
        self.published_end = time.monotonic()
        log.info("published frames up to %d of %s (copy+sync %.3f s)", self.published,
                 self.total, self.publish_s)

    def _create(self, f):
        """A new output: root, the sample (provisional scan record), pre-sized datasets."""
        saxs, first = self.saxs, self.raw.first
        self.sample = saxs.sample or first.read_meta().label or Path(R.spec_path(self.spec)).stem
        P.init_file(f, [detector_entry(d) for d in self.detectors], self.qgrid, saxs.nphi)
        scan, _, header = R.read_scan(self.raw, self.sample, R.spec_path(self.spec),
                                      saxs.force_uniform_steps, saxs.prec, total=self.total)
        W.write_sample(f, self.sample, R.spec_path(self.spec), header, scan, self.spec)
        P.prepare_outputs(f, self.sample, self.total, self.qgrid, saxs.nphi, False, saxs.errors,
                          self.recipe.output.compression)
        f.attrs[L.ATTR_WATCH] = L.to_json({
            "recipe": recipe_key(self.recipe.to_dict()), "sample": self.sample,
            "frames_expected": self.total, "frames_published": 0, "maps_frames": 0,
            "complete": False, "end_reason": ""})


def recover_procdata(dfile, key, overwrite):
    """What an interrupted ``ptyprep watch`` proc_data output holds (``format = "procdata"``).

    The published file is only ever replaced whole, so it is always a complete
    prefix; a stray ``.<name>.partial`` (killed before its rename) is deleted.

    Returns
    -------
    (int, str or None)
        Frames published and the sample name (``(0, None)``: start afresh).

    Raises
    ------
    OutputError
        The output is complete, written with another recipe, or not a watch
        output, and ``overwrite`` is false.
    """
    dfile = Path(dfile)
    F.partial_name(dfile).unlink(missing_ok=True)
    if not dfile.exists():
        return 0, None
    try:
        with h5py.File(dfile, "r") as f:
            state = L.from_json(f.attrs[L.ATTR_WATCH])
            done = W.frames_done(f, L.qphi_path(state["sample"]))
    except (OSError, KeyError, ValueError, LayoutError) as exc:
        why = f"it is not a ptyprep watch output ({exc})"
    else:
        why = ("it was written with a different recipe" if state.get("recipe") != key else
               f"it already holds the complete scan ({done} frames)" if state.get("complete")
               else None)
        if why is None:
            log.info("resuming %s after %d published frames", dfile, done)
            return done, state["sample"]
    if not overwrite:
        raise OutputError(f"output {str(dfile)!r} exists and {why}; set output.overwrite = true "
                          "(--set output.overwrite=true) to replace it, or choose another "
                          "output.dfile")
    log.info("replacing %s: %s", dfile, why)
    dfile.unlink()
    return 0, None
