"""What a format supplies so that ``ptyprep watch`` grows its output: the Follower contract.

The follow loop (:func:`ptyprep.engine.follow.watch`) calls a :class:`Follower` and
hands it an :class:`Acquisition`, rank 0's view of the scan, with every step.
"""

import abc
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Optional

#: Test hook: seconds to sleep inside every publication, between writing a temporary file
#: and renaming it into place (a kill then leaves the temporary file behind).
PART_DELAY_ENV = "PTYPREP_TEST_PART_DELAY_S"


def part_delay():
    """The test hook of :data:`PART_DELAY_ENV` as a callable, or None when it is not set."""
    delay = float(os.environ.get(PART_DELAY_ENV, "0") or 0)
    return (lambda: time.sleep(delay)) if delay > 0 else None


@dataclass(frozen=True)
class Acquisition:
    """Rank 0's view of the scan, given to the follower with every step.

    Attributes
    ----------
    expected : int or None
        The scan's length when known (its declared length, or the frames of an ended scan).
    final : int or None
        Frames of the scan once it has ended (None while it is acquired).
    reason : str
        Why it ended: ``"count"``, ``"marker"`` or ``"timeout"`` (``""`` while acquired).
    """

    expected: Optional[int] = None
    final: Optional[int] = None
    reason: str = ""

    def is_last(self, stop):
        """True when a chunk ending at ``stop`` is the scan's last."""
        return self.final is not None and stop >= self.final


class Follower(abc.ABC):
    """What a format supplies so that ``ptyprep watch`` grows its output.

    Every rank makes one (:meth:`~ptyprep.engine.formats.Format.follower`, which checks
    the recipe); the loop calls the methods marked *rank 0* on rank 0 only and the
    *collective* ones on every rank.

    Attributes
    ----------
    dfile : Path
        The output: its lock is ``<dfile>.lock``, its status ``<dfile>.status.json``.
    chunk_frames, min_frames : int
    """

    dfile = None
    chunk_frames = 1
    min_frames = 1

    @abc.abstractmethod
    def recover(self):
        """Rank 0, under the lock: what the output holds (picklable), discarding anything
        half-written; raise OutputError when it may not be continued."""

    @abc.abstractmethod
    def resume(self, state):
        """Every rank: adopt :meth:`recover`'s ``state``; return the frames published."""

    @contextlib.contextmanager
    def opened(self):
        """Every rank: the raw data open for the whole watch (a context manager)."""
        yield self

    @abc.abstractmethod
    def poll(self):
        """Rank 0: ``(frames complete now, scan ended)``.  A SourceError means the raw data
        cannot be read yet (before the first frame, the loop keeps waiting)."""

    def expected(self):
        """Rank 0, after :meth:`poll`: the scan's known length, or None."""
        return None

    def ended_by_marker(self):
        """Rank 0: True when the source's end-of-scan marker ended the scan (else its count)."""
        return False

    def chunk_inputs(self, start, stop):
        """Rank 0: what every rank needs of frames ``[start, stop)`` besides the raw frames
        (small, broadcast with the decision), e.g. their positions."""
        return None

    def refresh(self):
        """Ranks other than 0, before a chunk: see the data rank 0 saw (reopen grown files)."""

    @abc.abstractmethod
    def write_chunk(self, share, inputs, acq):
        """Collective: prepare this rank's share of ``share`` (a
        :class:`~ptyprep.engine.shares.ChunkShare`) and write it, not yet published.
        ``inputs`` is what :meth:`chunk_inputs` gave, ``acq`` the :class:`Acquisition`."""

    def publish_due(self, acq):
        """Rank 0, after a chunk that is not the scan's last: publish now?"""
        return True

    @abc.abstractmethod
    def publish(self, acq):
        """Rank 0, after every rank wrote: make what is written visible; return the frames
        published."""

    @abc.abstractmethod
    def finish(self, acq):
        """Rank 0, once every frame is written: publish the record of the complete scan
        (``acq.reason``: count, marker or timeout); return the frames published."""

    def stop(self, acq):
        """Rank 0, on a stop request: publish what is written; return the frames published
        (None: nothing changed)."""
        return None

    def status(self):
        """Rank 0: extra fields of the status file."""
        return {}


class Companion(abc.ABC):
    """An output grown beside the lead format's during ``ptyprep watch``: republished, on
    rank 0, each time the lead publishes (from what the lead has written)."""

    #: the output (for messages)
    path = None

    @abc.abstractmethod
    def publish(self, acq, complete):
        """Rank 0, after the lead published: make this output show what the lead shows
        (``complete``: the scan's last publication)."""


class Accompanied(Follower):
    """A follower whose publications are followed by its companions' (see
    :meth:`~ptyprep.engine.formats.Format.companion`); everything else is the lead's."""

    def __init__(self, lead, companions):
        self.lead, self.companions = lead, list(companions)

    @property
    def dfile(self):
        return self.lead.dfile

    @property
    def chunk_frames(self):
        return self.lead.chunk_frames

    @property
    def min_frames(self):
        return self.lead.min_frames

    def recover(self):
        return self.lead.recover()

    def resume(self, state):
        return self.lead.resume(state)

    def opened(self):
        return self.lead.opened()

    def poll(self):
        return self.lead.poll()

    def expected(self):
        return self.lead.expected()

    def ended_by_marker(self):
        return self.lead.ended_by_marker()

    def chunk_inputs(self, start, stop):
        return self.lead.chunk_inputs(start, stop)

    def refresh(self):
        self.lead.refresh()

    def write_chunk(self, share, inputs, acq):
        self.lead.write_chunk(share, inputs, acq)

    def publish_due(self, acq):
        return self.lead.publish_due(acq)

    def publish(self, acq):
        return self._with_companions(self.lead.publish(acq), acq, False)

    def finish(self, acq):
        return self._with_companions(self.lead.finish(acq), acq, True)

    def stop(self, acq):
        published = self.lead.stop(acq)
        return published if published is None else self._with_companions(published, acq, False)

    def status(self):
        return dict(self.lead.status(), companions=[str(c.path) for c in self.companions])

    def _with_companions(self, published, acq, complete):
        for companion in self.companions:
            companion.publish(acq, complete)
        return published
