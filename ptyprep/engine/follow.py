"""The follow loop: ``ptyprep watch RECIPE.toml`` for any format that can grow.

Follows a scan that is still being acquired and has every complete chunk prepared and
published as soon as its frames are on disk:

* rank 0 looks at the raw data (:meth:`Follower.poll`) and decides what to do; the
  decision is broadcast and all ranks act in lockstep, so none spins in a collective
  meanwhile;
* a chunk is prepared when ``output.chunk_frames`` new frames are complete (at the end
  of the scan: the remainder), so chunks are exactly those of ``ptyprep run``; nothing
  is published before ``prep.min_frames`` frames exist;
* the end of the scan is its known length (:meth:`Follower.expected`), the source's
  end-of-scan marker, or ``idle_timeout_s`` without a new frame;
* ``<dfile>.lock`` keeps a second daemon out; killed at any moment and restarted, the
  daemon continues from what the output holds (:meth:`Follower.recover`);
* rank 0 rewrites the status file (``<dfile>.status.json``) on every poll and logs
  progress; SIGINT/SIGTERM finish the current chunk and stop (a second one aborts).

What is prepared, how it is written and how a prefix is published come from the
format's :class:`~ptyprep.engine.follower.Follower`
(:meth:`ptyprep.engine.formats.Format.follower`): the loop knows no format.
"""

import collections
import contextlib
import logging
import os
import signal
import threading
import time

from ..errors import RecipeError, SourceError
from ..layout.files import status_name
from .collective import after_all, any_rank, on_root
from .comm import world
from .follower import Accompanied, Acquisition
from .formats import recipe_formats
from .lock import OutputLock, locked_resume, write_status
from .shares import LoadManager

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 0.5


def watch(recipe, comm=None, idle_timeout_s=None, poll_s=DEFAULT_POLL_S, status_path=None,
          stop=None, **options):
    """Prepare a scan while it is acquired; return when it has ended (collective under MPI).

    Parameters
    ----------
    recipe : Recipe
        Its format must be able to grow (``ptyd``: published in link mode whatever
        ``output.save`` says, except ``"merge"``, which is refused; ``procdata``: one
        growing scanning-SAXS sample).
    comm : communicator, optional
    idle_timeout_s : float, optional
        Close the scan when no new frame arrived for this long (None: never).
    poll_s : float
        Seconds between looks at the raw data.
    status_path : str or Path, optional
        JSON status file (default ``<dfile>.status.json``).
    stop : threading.Event, optional
        Set it to stop after the current chunk (as SIGINT/SIGTERM do).
    **options
        The format's own (``procdata``: ``maps_every``, chunks between map refreshes).

    Returns
    -------
    dict
        ``path``, ``frames`` published, ``complete`` (False after a stop request),
        ``end_reason``, ``signal`` (the number of the signal that stopped it, or None)
        and ``seconds``.

    Raises
    ------
    RecipeError, OutputError, SourceError
        Bad recipe, output locked/complete/foreign, or no frame before the timeout.
    """
    comm = comm or world()
    if not poll_s > 0 or (idle_timeout_s is not None and not idle_timeout_s > 0):
        raise RecipeError(f"watch needs poll > 0 and idle timeout > 0 (or none); got poll "
                          f"{poll_s!r}, idle timeout {idle_timeout_s!r}")
    formats = recipe_formats(recipe)
    follower = formats[0].follower(comm, **options)
    companions = [fmt.companion(follower, comm) for fmt in formats[1:]]
    if companions:
        follower = Accompanied(follower, companions)
    lock = OutputLock(follower.dfile)
    state = locked_resume(comm, lock, follower.recover)
    loop = None
    try:
        with follower.opened():
            loop = _Loop(follower, comm, state, idle_timeout_s, poll_s,
                         status_path or status_name(follower.dfile), stop or threading.Event())
            with _stop_on_signals(loop.stop):
                return loop.run()
    finally:
        lock.release(remove=True)


@contextlib.contextmanager
def _stop_on_signals(flag):
    """SIGINT/SIGTERM set ``flag`` (stop after the current chunk); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.signum = signum          # the exit status of `ptyprep watch` is 128 + signum
        flag.set()
        log.warning("%s: stopping after the current chunk (send it again to abandon the chunk)",
                    signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Loop:
    """One watch: what is published, and rank 0's view of the acquisition."""

    def __init__(self, follower, comm, state, idle_timeout_s, poll_s, status_path, stop):
        self.f, self.comm = follower, comm
        self.idle_timeout_s, self.poll_s, self.stop = idle_timeout_s, poll_s, stop
        self.status_path, self.cf = status_path, follower.chunk_frames
        self.published = self.appended = follower.resume(state)
        self.lm = LoadManager(comm.size).replay(self.published // self.cf, self.cf)
        self.result = None
        # rank 0's bookkeeping
        self.final, self.reason, self.seen, self.waiting_error = None, "", 0, None
        self.t0 = self.last_change = time.monotonic()
        self.arrivals = collections.deque()  # (time first seen, frames seen then)
        self.started_at, self.published_at_start = time.time(), self.published
        self.last_log = 0.0

    # -- the loop (every rank) ----------------------------------------------------------------
    def run(self):
        try:
            while True:
                stop = any_rank(self.comm, self.stop.is_set())
                decision = on_root(self.comm, self._decide, stop)
                action = decision["action"]
                if action == "chunk":
                    self._chunk(decision["start"], decision["stop"], decision["inputs"],
                                decision["acq"])
                elif action == "wait":
                    self.stop.wait(self.poll_s)
                else:
                    return self._end(action == "finish", decision["acq"])
        except BaseException as exc:
            if self.comm.rank == 0:
                self._status("failed", error=str(exc) or type(exc).__name__)
            raise

    def _chunk(self, start, stop, inputs, acq):
        if self.comm.rank != 0:
            self.f.refresh()
        share = self.lm.share(start // self.cf, start, stop)
        self.f.write_chunk(share, inputs, acq)
        self.appended = stop
        if on_root(self.comm, lambda: acq.is_last(stop) or self.f.publish_due(acq)):
            self.published = after_all(self.comm, self.f.publish, acq)
        if self.comm.rank == 0:
            self._progress()

    def _end(self, complete, acq):
        self.reason = acq.reason
        if complete:
            self.published = after_all(self.comm, self.f.finish, acq)
        else:
            published = after_all(self.comm, self.f.stop, acq)
            self.published = self.published if published is None else published
        if self.comm.rank == 0:
            if complete:
                log.info("scan complete (%s): %d frames in %s", self.reason, self.published,
                         self.f.dfile)
            else:
                log.warning("stopped on request after %d published frames; run the same "
                            "command again to continue", self.published)
            self._status("complete" if complete else "stopped")
        # the signal that stopped the watch on any rank (0: none, or a stop request)
        signum = 0 if complete else int(self.comm.allreduce_max(getattr(self.stop, "signum", 0)))
        self.result = {"path": str(self.f.dfile), "frames": self.published, "complete": complete,
                       "end_reason": self.reason if complete else "",
                       "signal": signum or None, "seconds": time.monotonic() - self.t0}
        return self.result

    # -- rank 0: what next ----------------------------------------------------------------------
    def _decide(self, stop):
        """Rank 0: look at the raw data and choose the next action."""
        n, ended = self._poll()
        now = time.monotonic()
        known = self.f.expected()
        if known:
            n = min(n, known)
        if n > self.seen:
            self.seen, self.last_change = n, now
            self.arrivals.append((now, n))
        if self.final is None:
            idle = self.idle_timeout_s and now - self.last_change >= self.idle_timeout_s
            if known and n >= known:
                self._close(n, "count")
            elif ended:
                self._close(n, "marker" if self.f.ended_by_marker() else "count")
            elif idle:
                if n == 0:
                    raise SourceError(self._no_frames_message())
                self._close(n, "timeout")
                log.warning("scan closed by timeout: no new frame for %.0f s after %d frames "
                            "(--idle-timeout %g)", now - self.last_change, n, self.idle_timeout_s)
        self._status("acquiring" if self.seen else "waiting")
        acq = Acquisition(self.final if self.final is not None else known, self.final,
                          self.reason)
        if stop:
            return {"action": "stop", "acq": acq}
        start = self.appended
        limit = self.final if self.final is not None else n
        first_ok = start > 0 or self.final is not None or limit >= self.f.min_frames
        if start < limit and (start + self.cf <= limit or self.final is not None) and first_ok:
            end = min(start + self.cf, limit)
            return {"action": "chunk", "start": start, "stop": end,
                    "inputs": self.f.chunk_inputs(start, end), "acq": acq}
        if self.final == 0:
            raise SourceError(f"the scan ended without any frame ({self.reason}); nothing to "
                              "prepare")
        if self.final is not None:
            return {"action": "finish", "acq": acq}
        return {"action": "wait"}

    def _poll(self):
        try:
            n, ended = self.f.poll()
        except SourceError as exc:
            # before the first frame the scan has not started: note it (once), go on
            if self.seen:
                raise
            if self.waiting_error is None:
                log.warning("waiting for the scan to start: %s", exc)
            self.waiting_error = str(exc)
            return 0, False
        return int(n or 0), bool(ended)

    def _no_frames_message(self):
        why = f" (last error: {self.waiting_error})" if self.waiting_error else ""
        return (f"no frame of the scan appeared within the idle timeout of "
                f"{self.idle_timeout_s:g} s{why}; check the [source] paths or start the "
                "acquisition first")

    def _close(self, n, reason):
        self.final, self.reason = n, reason
        log.info("end of scan (%s) after %d frames", reason, n)

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
        total = self.final if self.final is not None else self.f.expected()
        log.info("frames seen %d, published %d%s; %.1f frames/s; lag %d frames (%.1f s)",
                 self.seen, self.published, f"/{total}" if total else "", self._rate(),
                 max(self.seen - self.published, 0), self._lag())

    def _status(self, state, **extra):
        status = {
            "state": state, "output": str(self.f.dfile), "pid": os.getpid(),
            "ranks": self.comm.size, "frames_seen": self.seen,
            "frames_prepared": self.appended, "frames_published": self.published,
            "frames_expected": self.final if self.final is not None else self.f.expected(),
            "rate_fps": round(self._rate(), 3),
            "lag_frames": max(self.seen - self.appended, 0), "lag_s": round(self._lag(), 3),
            "end_reason": self.reason, "started": self.started_at, "updated": time.time(),
            **self.f.status(), **extra,
        }
        try:
            write_status(self.status_path, status)
        except OSError as exc:  # a dashboard file must never stop the preparation
            log.debug("cannot write the status file %s: %s", self.status_path, exc)
