"""The on-the-fly daemon: ``ptyprep watch RECIPE.toml``.

Follows a scan that is still being acquired and publishes every complete
chunk as soon as its frames are on disk, in ``.ptyd`` link mode:

* rank 0 polls the source (:meth:`ScanSource.available`) and broadcasts what to
  do; all ranks poll in lockstep, so none spins in a collective meanwhile;
* a chunk is prepared when ``output.chunk_frames`` new frames are complete (at
  the end of the scan: the remainder), so chunks are exactly those of
  ``ptyprep run``; nothing is published before ``prep.min_frames`` frames exist;
* every rank writes its share as a part file (``<part>.tmp``, renamed); then
  rank 0 publishes a new master (written whole and renamed over the old one)
  that links it.  A reader opening the master at any moment sees meta and a
  consistent in-order prefix of the scan;
* ``meta/num_frames`` is the scan's length when known (``prep.num_frames`` or
  the source's ``num_frames``), else :data:`~ptyprep.layout.ptyd.NUM_FRAMES_UNKNOWN`
  so that ptypy's ``PtydScan`` keeps waiting for frames; at the end it is the
  number of frames published, and ``info/complete = 1`` with
  ``info/end_reason`` ("count", "marker" or "timeout") records the end;
* killed at any moment and restarted, the daemon resumes from the output
  (:mod:`ptyprep.watch_state`); the automatic centre is stored at the first
  publication and reused.  ``<dfile>.lock`` keeps a second daemon out.
"""

import collections
import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time

import numpy as np

from .ptycho import prepare as pipeline
from .engine.comm import world
from .layout.filters import dataset_filters
from .errors import RecipeError, SourceError
from .layout import ptyd as L
from .engine.shares import LoadManager
from .ptycho.plan import make_plan
from .ptycho.format import decide_center, provenance
from .ptycho.writer import check_output, part_numbers
from .layout.files import part_name
from .sources.registry import open_source
from .ptycho.publish import publish_master, write_part
from .watch_state import held_output, recipe_key, recover, status_name, write_status

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 0.5
#: Test hook: seconds to sleep inside every part write, between the temporary file and its rename.
PART_DELAY_ENV = "PTYPREP_TEST_PART_DELAY_S"
#: ``format = "procdata"``: maps are rebuilt every this many chunks (``--maps-every``).
DEFAULT_MAPS_EVERY = 4


def add_watch_arguments(parser):
    """Add the daemon's options to the ``watch`` subcommand's ``parser``."""
    parser.add_argument("--idle-timeout", dest="idle_timeout_s", type=float, default=None,
                        metavar="S", help="close the scan when no new frame arrived for S "
                                          "seconds (default: wait for the count or the marker)")
    parser.add_argument("--poll", dest="poll_s", type=float, default=DEFAULT_POLL_S, metavar="S",
                        help=f"seconds between looks at the raw data (default {DEFAULT_POLL_S})")
    parser.add_argument("--status", dest="status_path", default=None, metavar="FILE",
                        help="JSON status file for dashboards (default: <dfile>.status.json)")
    parser.add_argument("--maps-every", dest="maps_every", type=int, default=None,
                        metavar="N", help="format = 'procdata': rebuild the maps every N chunks "
                                          f"and at the end (default {DEFAULT_MAPS_EVERY})")
    return parser


def watch_options(args):
    """Keyword arguments of :func:`watch` from parsed command-line ``args``."""
    options = {k: getattr(args, k) for k in ("idle_timeout_s", "poll_s", "status_path")
               if hasattr(args, k)}
    if getattr(args, "maps_every", None) is not None:  # procdata only; given explicitly
        options["maps_every"] = args.maps_every
    return options


def watch(recipe, comm=None, idle_timeout_s=None, poll_s=DEFAULT_POLL_S, status_path=None,
          stop=None, maps_every=DEFAULT_MAPS_EVERY):
    """Prepare a scan while it is acquired; return when it has ended (collective under MPI).

    Parameters
    ----------
    recipe : Recipe
        ``output.format = "ptyd"``: published in link mode whatever ``output.save``
        says, except ``"merge"``, which is refused.  ``"procdata"``: one growing
        scanning-SAXS sample, see :mod:`ptyprep.watch_procdata`.
    comm : communicator, optional
    idle_timeout_s : float, optional
        Close the scan when no new frame arrived for this long (None: never).
    poll_s : float
        Seconds between looks at the raw data.
    status_path : str or Path, optional
        JSON status file (default ``<dfile>.status.json``).
    stop : threading.Event, optional
        Set it to stop after the current chunk (as SIGINT/SIGTERM do).
    maps_every : int
        ``procdata`` only: rebuild the maps every this many chunks (and at the end).

    Returns
    -------
    dict
        ``path``, ``frames`` published, ``complete`` (False after a stop request),
        ``end_reason`` and ``seconds``.

    Raises
    ------
    RecipeError, OutputError, SourceError
        Bad recipe, output locked/complete/foreign, or no frame before the timeout.
    """
    comm = comm or world()
    if not poll_s > 0 or (idle_timeout_s is not None and not idle_timeout_s > 0):
        raise RecipeError(f"watch needs poll > 0 and idle timeout > 0 (or none); got poll "
                          f"{poll_s!r}, idle timeout {idle_timeout_s!r}")
    if recipe.output.format == "procdata":
        from .watch_procdata import watch_procdata

        return watch_procdata(recipe, comm, idle_timeout_s, poll_s, status_path, stop, maps_every)
    recipe = _link_recipe(recipe)
    dfile = recipe.path(recipe.output.dfile)
    dataset_filters(recipe.output.compression)
    part_name(dfile, 0, recipe.output.part_format)
    check_output(dfile, overwrite=True)
    recover_output = lambda: recover(  # noqa: E731
        dfile, recipe_key(recipe.to_dict()), recipe.output.chunk_frames,
        recipe.output.part_format, recipe.output.overwrite)
    with held_output(comm, dfile, recover_output) as held, open_source(recipe) as source:
        daemon = _Daemon(recipe, comm, source, dfile, held.resume, idle_timeout_s, poll_s,
                         status_path, stop or threading.Event())
        held.result = run_until_stopped(daemon)
    return held.result


def _link_recipe(recipe):
    if recipe.output.format != "ptyd":
        raise RecipeError(f"ptyprep watch writes .ptyd only (output.format = "
                          f"{recipe.output.format!r}); run the SAXS preparation with "
                          "`ptyprep run` after the scan")
    if recipe.output.save == "merge":
        raise RecipeError("ptyprep watch publishes each chunk as a part file (save = 'link'); "
                          "output.save = 'merge' cannot be followed: set output.save = 'link'")
    if recipe.output.save != "link":
        log.info("ptyprep watch publishes in link mode (output.save = %r is not used)",
                 recipe.output.save)
    return dataclasses.replace(recipe, output=dataclasses.replace(recipe.output, save="link"))


def run_until_stopped(daemon):
    """``daemon.run()`` with SIGINT/SIGTERM setting ``daemon.stop`` (see :func:`_stop_on_signals`)."""
    with _stop_on_signals(daemon.stop):
        return daemon.run()


@contextlib.contextmanager
def _stop_on_signals(flag):
    """SIGINT/SIGTERM set ``flag`` (stop after the current chunk); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        log.warning("%s: stopping after the current chunk (send it again to abandon the chunk)",
                    signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _known_total(recipe):
    values = [recipe.prep.num_frames, recipe.source.options.get("num_frames")]
    values = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return min(values) if values else None


def _part_delay():
    delay = float(os.environ.get(PART_DELAY_ENV, "0") or 0)
    return (lambda: time.sleep(delay)) if delay > 0 else None


class ScanFollower:
    """What both daemons (``.ptyd`` here, proc_data in :mod:`ptyprep.watch_procdata`) do about
    the acquisition's start and end; they set ``seen``, ``waiting_error``, ``final``,
    ``reason`` and ``idle_timeout_s``."""

    def _still_waiting(self, exc):
        """A source error before any frame: the scan has not started; note it (once), go on.
        After the first frame the error is real and raised."""
        if self.seen:
            raise exc
        if self.waiting_error is None:
            log.warning("waiting for the scan to start: %s", exc)
        self.waiting_error = str(exc)

    def _no_frames_message(self):
        why = f" (last error: {self.waiting_error})" if self.waiting_error else ""
        return (f"no frame of the scan appeared within the idle timeout of "
                f"{self.idle_timeout_s:g} s{why}; check the [source] paths or start the "
                "acquisition first")

    def _close(self, n, reason):
        self.final, self.reason = n, reason
        log.info("end of scan (%s) after %d frames", reason, n)


class _Daemon(ScanFollower):
    """State of one watch: what is published, and rank 0's view of the acquisition."""

    def __init__(self, recipe, comm, source, dfile, resume, idle_timeout_s, poll_s, status_path,
                 stop):
        self.recipe, self.comm, self.source, self.dfile = recipe, comm, source, dfile
        self.idle_timeout_s, self.poll_s, self.stop = idle_timeout_s, poll_s, stop
        self.status_path = status_path or status_name(dfile)
        self.cf = recipe.output.chunk_frames
        self.filters = dataset_filters(recipe.output.compression)
        self.parts = list(resume.part_names)
        self.published = resume.frames
        self.raw_center = resume.raw_center
        self.lm = LoadManager(comm.size)
        for _ in range(self.published // self.cf):  # replay the balance of the published chunks
            self.lm.counts(self.cf)
        self.known = _known_total(recipe)
        self.plan = self.meta = self.info = None
        # rank 0's bookkeeping
        self.final, self.reason, self.seen, self.waiting_error = None, "", 0, None
        self.t0 = self.last_change = time.monotonic()
        self.arrivals = collections.deque()  # (time first seen, frames seen then)
        self.started_at, self.published_at_start = time.time(), self.published
        self.last_log = 0.0
        if self.published and comm.rank == 0:
            log.info("resuming %s after %d published frames (%d parts)", dfile, self.published,
                     len(self.parts))

    # -- the loop ---------------------------------------------------------------------------
    def run(self):
        try:
            while True:
                stop = bool(self.comm.allreduce_max(int(self.stop.is_set())))
                decision = self.comm.bcast(self._decide(stop) if self.comm.rank == 0 else None)
                action = decision["action"]
                if action == "chunk":
                    self._chunk(decision["start"], decision["stop"], decision["positions"])
                elif action == "wait":
                    self.stop.wait(self.poll_s)
                elif action == "error":
                    raise SourceError(decision["message"])
                else:
                    return self._end(action == "finish", decision)
        except BaseException as exc:
            if self.comm.rank == 0:
                self._status("failed", error=str(exc) or type(exc).__name__)
            raise

    def _decide(self, stop):
        """Rank 0: look at the raw data and choose the next action."""
        n, ended = self._poll()
        now = time.monotonic()
        if self.known:
            n = min(n, self.known)
        if n > self.seen:
            self.seen, self.last_change = n, now
            self.arrivals.append((now, n))
        if self.final is None:
            if self.known and n >= self.known:
                self._close(n, "count")
            elif ended:
                self._close(n, "marker" if getattr(self.source, "end_of_scan", None) else "count")
            elif self.idle_timeout_s and now - self.last_change >= self.idle_timeout_s:
                if n == 0:
                    return {"action": "error", "message": self._no_frames_message()}
                self._close(n, "timeout")
                log.warning("scan closed by timeout: no new frame for %.0f s after %d frames "
                            "(--idle-timeout %g)", now - self.last_change, n, self.idle_timeout_s)
        self._status("acquiring" if self.seen else "waiting")
        if stop:
            return {"action": "stop"}
        start = self.published
        limit = self.final if self.final is not None else n
        first_ok = start > 0 or self.final is not None or limit >= self.recipe.prep.min_frames
        if start + self.cf <= limit and first_ok:
            return self._chunk_decision(start, start + self.cf)
        if self.final is not None:
            if start < self.final:
                return self._chunk_decision(start, self.final)
            if self.final == 0:
                return {"action": "error", "message": "the scan ended without any frame "
                                                      f"({self.reason}); nothing to prepare"}
            return {"action": "finish", "reason": self.reason}
        return {"action": "wait"}

    def _poll(self):
        try:
            n, ended = self.source.available()
        except SourceError as exc:
            self._still_waiting(exc)
            return 0, False
        return int(n or 0), bool(ended)

    def _chunk_decision(self, start, stop):
        positions = np.asarray(self.source.read_positions(), dtype=np.float64)[start:stop]
        if len(positions) != stop - start:
            raise SourceError(f"the source has {len(positions) + start} positions for frames up to "
                              f"{stop}; every complete frame needs a position")
        return {"action": "chunk", "start": start, "stop": stop, "positions": positions}

    # -- one chunk ----------------------------------------------------------------------------
    def _chunk(self, start, stop, positions):
        if self.comm.rank != 0 and hasattr(self.source, "refresh"):
            self.source.refresh()
        if self.plan is None:
            self._make_plan(start, stop)
        counts = self.lm.counts(stop - start)
        bounds = start + np.concatenate([[0], np.cumsum(counts)])
        mine = np.arange(bounds[self.comm.rank], bounds[self.comm.rank + 1], dtype=np.int64)
        numbers = part_numbers([counts], len(self.parts))[0]
        if len(mine):
            raw, roi, frames_valid = pipeline.read_raw(self.source, self.plan, mine)
            data, valid = pipeline.prepare(raw, self.plan, roi, frames_valid)
            weights = np.broadcast_to(valid, data.shape).astype(np.uint8)
            arrays = (np.ascontiguousarray(data), np.ascontiguousarray(weights),
                      positions[mine - start], mine)
            write_part(self.dfile.parent / part_name(self.dfile, numbers[self.comm.rank],
                                                     self.recipe.output.part_format),
                       arrays, self.filters, before_rename=_part_delay())
        self.comm.barrier()
        self.parts += [part_name(self.dfile, k, self.recipe.output.part_format)
                       for k in numbers[numbers >= 0]]
        self.published = stop
        if self.comm.rank == 0:
            self._publish(complete=False)
            self._progress()

    def _make_plan(self, start, stop):
        """Collective: the plan of the scan, its centre decided (or restored) once."""
        plan = make_plan(self.recipe, self.source)
        if self.raw_center is not None and plan.center_mode == "auto":
            plan = dataclasses.replace(plan, center=self.raw_center)
        # decide_center averages over the first chunk, [0, min(chunk_frames, num_frames))
        plan = dataclasses.replace(plan, num_frames=stop)
        plan = decide_center(self.source, plan, self.comm)
        self.plan = plan
        self.meta = plan.output_meta()
        if self.comm.rank == 0:
            self.info = provenance(self.recipe, plan, self.source)  # holds recipe and raw_center

    def _publish(self, complete):
        if complete:
            num_frames, known = self.published, 1
        elif self.final is not None or self.known:
            num_frames, known = (self.final if self.final is not None else self.known), 1
        else:
            num_frames, known = L.NUM_FRAMES_UNKNOWN, 0
        meta = dict(self.meta, num_frames=num_frames)
        info = dict(self.info, **{L.COMPLETE: np.int64(complete), L.END_REASON: self.reason
                                  if complete else "", L.FRAMES_WRITTEN: np.int64(self.published),
                                  L.NUM_FRAMES_KNOWN: np.int64(known)})
        publish_master(self.dfile, meta, info, self.parts)

    # -- the end --------------------------------------------------------------------------------
    def _end(self, complete, decision):
        if complete and self.comm.rank == 0:
            self._publish(complete=True)
            log.info("scan complete (%s): %d frames in %s (%d parts)", decision["reason"],
                     self.published, self.dfile, len(self.parts))
            self._status("complete")
        elif self.comm.rank == 0:
            log.warning("stopped on request after %d published frames; run the same command "
                        "again to continue", self.published)
            self._status("stopped")
        self.comm.barrier()
        return {"path": str(self.dfile), "frames": self.published, "complete": complete,
                "end_reason": decision.get("reason", ""),
                "seconds": time.monotonic() - self.t0}

    # -- operability (rank 0) -------------------------------------------------------------------
    def _lag(self):
        while self.arrivals and self.arrivals[0][1] <= self.published:
            self.arrivals.popleft()
        now = time.monotonic()
        return (now - self.arrivals[0][0]) if self.arrivals else 0.0

    def _rate(self):
        return (self.published - self.published_at_start) / max(time.monotonic() - self.t0, 1e-9)

    def _progress(self):
        now = time.monotonic()
        if now - self.last_log < 2.0 and self.final is None:
            return
        self.last_log = now
        log.info("frames seen %d, published %d%s; %.1f frames/s; lag %d frames (%.1f s)",
                 self.seen, self.published,
                 f"/{self.final or self.known}" if (self.final or self.known) else "",
                 self._rate(), max(self.seen - self.published, 0), self._lag())

    def _status(self, state, **extra):
        status = {
            "state": state, "output": str(self.dfile), "pid": os.getpid(),
            "ranks": self.comm.size, "frames_seen": self.seen,
            "frames_prepared": self.published, "frames_published": self.published,
            "frames_expected": self.final if self.final is not None else self.known,
            "parts": len(self.parts), "rate_fps": round(self._rate(), 3),
            "lag_frames": max(self.seen - self.published, 0), "lag_s": round(self._lag(), 3),
            "end_reason": self.reason, "started": self.started_at, "updated": time.time(),
            **extra,
        }
        try:
            write_status(self.status_path, status)
        except OSError as exc:  # a dashboard file must never stop the preparation
            log.debug("cannot write the status file %s: %s", self.status_path, exc)
