"""``ptyprep watch`` for ``[output] format = "procdata"``: one growing scanning-SAXS sample.

The sample is read through a following source (``hdf5`` on a file grown in SWMR
mode), one source instance per detector, monitors and motor positions from the
first; its length is known up front (``[source] num_frames``, else the raster's
``scan_shape``).  All ranks poll in lockstep; rank 0 decides.  For every chunk of
``output.chunk_frames`` complete frames (frames, monitors and motor positions all
written) the ranks integrate their shares, rank 0 appends the rows to
``qphi/merged/d`` (``Iq``, ``err``, ``Iphi``) and the chunk's attributes
(monitors, recipe ``attrs``) and publishes.  Maps (NaN where nothing was measured
yet, axes provisional until the raster is complete) are rebuilt every
``maps_every`` chunks; at the end the sample record is rewritten from the
complete scan, maps and tomograms are made, and ``@complete = 1``.

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

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import h5py
import numpy as np

from .errors import OutputError, PtyprepError, RecipeError, SourceError
from .saxs.integrate import phi_centres
from .layout import procdata as L
from .engine.shares import LoadManager
from .saxs import products as P, rawdata as R
from .saxs.integration import integrate_share, make_integrators
from .saxs.format import make_detectors, uses_lix
from .layout.files import partial_name
from .watch import (DEFAULT_MAPS_EVERY, DEFAULT_POLL_S, ScanFollower, _part_delay,
                    run_until_stopped)
from .watch_state import held_output, recipe_key, recover_procdata, status_name, write_status
from .saxs import store as W

log = logging.getLogger(__name__)

#: After a publish that took t seconds, the next one waits until factor · t seconds have passed.
PUBLISH_COST_FACTOR = 4.0


def publish_due(now, last_end, last_cost, factor=None):
    """True when a publish that ended at ``last_end`` (monotonic seconds; None = never)
    and took ``last_cost`` seconds is followed by enough work to publish again.

    ``factor`` defaults to :data:`PUBLISH_COST_FACTOR`.
    """
    factor = PUBLISH_COST_FACTOR if factor is None else factor
    return last_end is None or now - last_end >= factor * last_cost


def watch_procdata(recipe, comm, idle_timeout_s=None, poll_s=DEFAULT_POLL_S, status_path=None,
                   stop=None, maps_every=DEFAULT_MAPS_EVERY):
    """Follow one growing SAXS sample into a proc_data file (collective).

    Arguments and result as :func:`ptyprep.watch.watch`; ``maps_every`` chunks
    between map refreshes.
    """
    from .saxs.integrate import make_qgrid

    saxs = recipe.section("saxs")
    if saxs is None:
        raise RecipeError("output.format = 'procdata' needs a [saxs] section")
    if uses_lix(recipe):
        raise RecipeError("ptyprep watch follows one growing sample through a following source "
                          "(e.g. [source] name = 'hdf5' on a file written in SWMR mode); LiX raw "
                          "files are imported whole: run `ptyprep run` after the scan")
    if saxs.background:
        raise RecipeError(f"saxs.background = {saxs.background!r} needs a second sample; "
                          "ptyprep watch follows one: subtract with `ptyprep run` after the scan")
    if isinstance(maps_every, bool) or not isinstance(maps_every, int) or maps_every < 1:
        raise RecipeError(f"--maps-every {maps_every!r} must be an integer >= 1 (chunks)")
    dfile = recipe.path(recipe.output.dfile)
    detectors = make_detectors(recipe)
    qgrid = make_qgrid(*saxs.qgrid)
    integrators = make_integrators(detectors, qgrid, saxs.nphi, saxs.split)
    datasets = [d.dataset for d in detectors]
    spec = R.make_spec(recipe.source.name, recipe.source.options, datasets, recipe.base_dir)
    recover_output = lambda: recover_procdata(  # noqa: E731
        dfile, recipe_key(recipe.to_dict()), recipe.output.overwrite)
    with held_output(comm, dfile, recover_output) as held, R.SampleFrames(spec, datasets) as raw:
        daemon = _Daemon(recipe, comm, raw, spec, dfile, held.resume, detectors, integrators,
                         qgrid, idle_timeout_s, poll_s, status_path, stop or threading.Event(),
                         maps_every)
        held.result = run_until_stopped(daemon)
    return held.result


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refresh(raw):
    """Close every detector's files before any reopens: HDF5 shares one open file between the
    handles of a process, so a reopen while another source holds the file would see stale data."""
    for src in raw.sources.values():
        if hasattr(src, "refresh"):
            src.refresh()


class _Daemon(ScanFollower):
    def __init__(self, recipe, comm, raw, spec, dfile, resume, detectors, integrators, qgrid,
                 idle_timeout_s, poll_s, status_path, stop, maps_every):
        self.recipe, self.saxs, self.comm = recipe, recipe.section("saxs"), comm
        self.raw, self.spec = raw, spec
        self.dfile, self.work = dfile, partial_name(dfile)
        self.published, self.sample = resume
        self.detectors, self.integrators, self.qgrid = detectors, integrators, qgrid
        self.phi = phi_centres(self.saxs.nphi)
        self.idle_timeout_s, self.poll_s, self.stop, self.maps_every = (idle_timeout_s, poll_s,
                                                                        stop, maps_every)
        self.status_path = status_path or status_name(dfile)
        self.delay = _part_delay()
        self.cf = recipe.output.chunk_frames
        self.lm = LoadManager(comm.size)
        for _ in range(self.published // self.cf):  # replay the balance of the published chunks
            self.lm.counts(self.cf)
        opt = recipe.source.options.get("num_frames")
        self.num_frames_opt = opt if isinstance(opt, int) and not isinstance(opt, bool) else 0
        # rank 0's view of the acquisition
        self.total = self.final = None
        self.finished = False  # the complete scan is published
        self.reason, self.seen, self.waiting_error, self.monitors = "", 0, None, {}
        self.t0 = self.last_change = time.monotonic()
        self.started_at, self.published_at_start, self.publish_s = time.time(), self.published, 0.0
        # frames in the private copy (published ones included); rank 0: is a copy open, when
        # did the last publish end
        self.appended, self.pending, self.published_end = self.published, False, None
        self.copy_s = 0.0

    # -- the loop (every rank) -------------------------------------------------------------------
    def run(self):
        try:
            while True:
                stop = bool(self.comm.allreduce_max(int(self.stop.is_set())))
                d = self.comm.bcast(self._decide(stop) if self.comm.rank == 0 else None)
                if d["action"] == "chunk":
                    self._chunk(d["start"], d["stop"], d["incident"])
                elif d["action"] == "finish" and not d["published"]:
                    self._on_root(lambda: self._write(self.appended, self.appended, None))
                    self._publish_now()
                elif d["action"] == "stop":
                    self._publish_now()
                elif d["action"] == "wait":
                    self.stop.wait(self.poll_s)
                elif d["action"] == "error":
                    raise SourceError(d["message"])
                if d["action"] in ("finish", "stop"):
                    self.reason = d.get("reason", "")
                    return self._end(d["action"] == "finish")
        except BaseException as exc:
            if self.comm.rank == 0:
                self._status("failed", error=str(exc) or type(exc).__name__)
            raise

    def _on_root(self, func):
        """Run ``func`` on rank 0; its failure raises on every rank."""
        err = None
        if self.comm.rank == 0:
            try:
                func()
            except BaseException as exc:  # noqa: BLE001  re-raised below, on every rank
                err = exc
        message = self.comm.bcast(None if err is None else f"{type(err).__name__}: {err}")
        if err is not None:
            raise err
        if message is not None:
            raise OutputError(f"rank 0 failed to publish: {message}")

    # -- rank 0: what next -------------------------------------------------------------------------
    def _decide(self, stop):
        try:
            n, ended = self._poll()
        except PtyprepError as exc:
            return {"action": "error", "message": str(exc)}
        now = time.monotonic()
        if n > self.seen:
            self.seen, self.last_change = n, now
        idle = self.idle_timeout_s and now - self.last_change >= self.idle_timeout_s
        if self.final is None and self.total is not None:
            if n >= self.total:
                self._close(self.total, "count")
            elif ended:
                marker = getattr(self.raw.first, "end_of_scan", None)
                self._close(n, "marker" if marker else "count")
            elif idle and n:
                self._close(n, "timeout")
                log.warning("scan closed by timeout: no new frame for %.0f s after %d frames "
                            "(--idle-timeout %g)", now - self.last_change, n, self.idle_timeout_s)
        if idle and not n and self.final is None:
            return {"action": "error", "message": self._no_frames_message()}
        self._status("acquiring" if self.seen else "waiting")
        if stop:
            return {"action": "stop"}
        start, limit = self.appended, self.final if self.final is not None else n
        first_ok = start > 0 or self.final is not None or limit >= self.recipe.prep.min_frames
        if start < limit and (start + self.cf <= limit or self.final is not None) and first_ok:
            end = min(start + self.cf, limit)
            inc = self.monitors.get("incident") if self.saxs.normalize_monitor else None
            if self.saxs.normalize_monitor and inc is None:
                return {"action": "error", "message": "saxs.normalize_monitor needs the incident "
                        "monitor; give the source one (hdf5: incident = '/path')"}
            return {"action": "chunk", "start": start, "stop": end,
                    "incident": None if inc is None else inc[start:end]}
        if self.final == 0:
            return {"action": "error", "message": f"the scan ended without any frame "
                                                  f"({self.reason}); nothing to prepare"}
        if self.final is not None:
            return {"action": "finish", "published": self.finished, "reason": self.reason}
        return {"action": "wait"}

    def _poll(self):
        """``(complete frames, ended)``: min over detectors, monitors and motor positions."""
        try:
            _refresh(self.raw)
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
        except SourceError as exc:
            self._still_waiting(exc)
            return 0, False
        return min(int(n), self.total), bool(counts[0][1])

    # -- one chunk (every rank) --------------------------------------------------------------------
    def _chunk(self, start, stop, incident):
        if self.comm.rank != 0:
            _refresh(self.raw)
        counts = self.lm.counts(stop - start)
        bounds = start + np.concatenate([[0], np.cumsum(counts)])
        mine = np.arange(bounds[self.comm.rank], bounds[self.comm.rank + 1], dtype=np.int64)
        err, parts = None, None
        try:
            parts = integrate_share(self.raw, mine, self.detectors, self.integrators, self.qgrid,
                                    self.saxs.nphi, None if incident is None else
                                    np.asarray(incident)[mine - start], self.saxs.errors)
        except PtyprepError as exc:
            err = exc
        for e in self.comm.allgather(err):
            if e is not None:
                raise e
        rows = [self.comm.gatherv(np.ascontiguousarray(p, dtype=np.float32)) for p in parts]
        self._on_root(lambda: self._write(start, stop, rows))
        self.appended = stop
        if self.comm.rank == 0:
            log.info("prepared frames %d..%d of %s (%d seen)", start, stop - 1, self.total, self.seen)
        last = self.final is not None and stop >= self.final
        due = self.comm.bcast(self.comm.rank == 0 and (
            last or publish_due(time.monotonic(), self.published_end, self.publish_s)))
        if due:
            self._publish_now()

    def _publish_now(self):
        """Publish what the private copy holds (collective; nothing if it holds nothing new)."""
        self._on_root(self._commit)
        self.published = self.comm.bcast(self.published)

    # -- rank 0: publishing ------------------------------------------------------------------------
    def _write(self, start, stop, rows):
        """Append frames ``[start, stop)`` (``rows``; None: none) to the private copy, made
        from ``<dfile>`` first when it holds nothing unpublished."""
        last = self.final is not None and stop >= self.final
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
                self._append(f, sn, start, stop, rows)
            chunks = stop // self.cf + (stop % self.cf > 0)
            if last or (rows is not None and chunks % self.maps_every == 0):
                self._maps(f, sn, stop, final=last)
                state["maps_frames"] = stop
            state.update(frames_published=stop, complete=bool(last),
                         end_reason=self.reason if last else "")
            f.attrs[L.ATTR_WATCH] = L.to_json(state)
            f.attrs[L.ATTR_COMPLETE] = np.int64(last)
        self.finished = last

    def _commit(self):
        """fsync the private copy and rename it over ``<dfile>`` (rank 0; no-op if not pending)."""
        if not self.pending:
            return
        t0 = time.perf_counter()
        _fsync(self.work)
        if self.delay:  # test hook (watch.PART_DELAY_ENV): a kill here leaves a stray .partial
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
        P.init_file(f, [d.to_json() for d in self.detectors], self.qgrid, saxs.nphi)
        scan, _, header = R.read_scan(self.raw, self.sample, R.spec_path(self.spec),
                                      saxs.force_uniform_steps, saxs.prec, total=self.total)
        W.write_sample(f, self.sample, R.spec_path(self.spec), header, scan, self.spec)
        P.prepare_outputs(f, self.sample, self.total, self.qgrid, saxs.nphi, False, saxs.errors,
                          self.recipe.output.compression)
        f.attrs[L.ATTR_WATCH] = L.to_json({
            "recipe": recipe_key(self.recipe.to_dict()), "sample": self.sample,
            "frames_expected": self.total, "frames_published": 0, "maps_frames": 0,
            "complete": False, "end_reason": ""})

    def _append(self, f, sn, start, stop, rows):
        P.append_chunk(f, sn, start, rows, {k: v[start:stop] for k, v in self.monitors.items()},
                       self.saxs, self.qgrid, self.phi, self.recipe.output.compression)

    def _maps(self, f, sn, stop, final):
        """Maps (NaN where not measured); at the end the exact scan record, maps and tomograms."""
        P.followed_products(f, sn, self.raw, self.spec, self.saxs, self.total,
                            final and stop >= self.total, final)

    # -- the end and operability -------------------------------------------------------------------
    def _end(self, complete):
        if self.comm.rank == 0:
            if complete:
                log.info("scan complete (%s): %d frames in %s", self.reason, self.published,
                         self.dfile)
            else:
                log.warning("stopped on request after %d published frames; run the same command "
                            "again to continue", self.published)
            self._status("complete" if complete else "stopped")
        self.comm.barrier()
        return {"path": str(self.dfile), "frames": self.published, "complete": complete,
                "end_reason": self.reason if complete else "",
                "seconds": time.monotonic() - self.t0}

    def _status(self, state, **extra):
        rate = (self.published - self.published_at_start) / max(time.monotonic() - self.t0, 1e-9)
        status = {"state": state, "output": str(self.dfile), "pid": os.getpid(),
                  "ranks": self.comm.size, "frames_seen": self.seen,
                  "frames_prepared": self.appended, "frames_published": self.published,
                  "frames_expected": self.final if self.final is not None else self.total,
                  "rate_fps": round(rate, 3), "lag_frames": max(self.seen - self.appended, 0),
                  "publish_s": round(self.publish_s, 4), "end_reason": self.reason,
                  "started": self.started_at, "updated": time.time(), **extra}
        try:
            write_status(self.status_path, status)
        except OSError as exc:  # a dashboard file must never stop the preparation
            log.debug("cannot write the status file %s: %s", self.status_path, exc)
