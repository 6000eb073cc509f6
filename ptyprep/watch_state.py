"""What an on-the-fly output holds on disk: the lock, the status file and recovery.

These helpers run on rank 0 only and never touch MPI.  :func:`recover` reads a
(possibly interrupted) ``ptyprep watch`` output and works out the complete
prefix of the scan it holds; everything after it (stray ``.tmp`` parts, parts
that were never linked, links to missing or damaged parts, a half-written
master update) is discarded, so the daemon continues exactly where the last
complete chunk ended.
"""

import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import LayoutError, OutputError, PtyprepError
from .layout import ptyd as L
from .layout import json_default
from .ptycho.writer import remove_previous
from .layout.files import lock_name, part_name, status_name
from .ptycho.publish import publish_master, read_links, read_part_indices
from .layout.files import publishing_name

log = logging.getLogger(__name__)

#: Part numbers past the last published one that are probed for strays before giving up.
STRAY_PROBE = 64


class OutputLock:
    """An exclusive ``flock`` on ``<dfile>.lock``: one daemon per output.

    The kernel releases the lock when its process ends in any way (``kill -9``
    included), so a stale lock file never blocks a restart.
    """

    def __init__(self, dfile):
        self.path = lock_name(dfile)
        self._fd = None

    def acquire(self):
        """Take the lock or raise :class:`OutputError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"another ptyprep watch (pid {holder}) is writing "
                              f"{str(self.path)[:-5]!r} (it holds {str(self.path)!r}); stop it "
                              "first, or choose another output.dfile") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self, remove=False):
        """Release the lock; ``remove`` also deletes the lock file (after a finished scan)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing releases the flock
        self._fd = None


def locked_resume(comm, lock, recover_output):
    """Rank 0 takes the output ``lock`` and calls ``recover_output()`` to work out what is on
    disk; every rank returns its result, or raises the same error (the lock is then released)."""
    error, resume = None, None
    if comm.rank == 0:
        try:
            lock.acquire()
            resume = recover_output()
        except PtyprepError as exc:
            lock.release()
            error = exc
    error, resume = comm.bcast((error, resume))
    if error is not None:
        raise error
    return resume


class HeldOutput:
    """Yielded by :func:`held_output`: ``resume`` (what is on disk) and ``result`` (set by the
    daemon; its ``"complete"`` decides whether the lock file goes at the end)."""

    def __init__(self, resume):
        self.resume = resume
        self.result = None


@contextlib.contextmanager
def held_output(comm, dfile, recover_output):
    """Hold the lock of output ``dfile`` for a daemon's run (collective).

    Rank 0 takes the lock and calls ``recover_output()`` (see :func:`locked_resume`); at the
    end the lock is released, and its file removed when the run reports a complete scan.
    """
    lock = OutputLock(dfile)
    held = HeldOutput(locked_resume(comm, lock, recover_output))
    try:
        yield held
    finally:
        lock.release(remove=bool(held.result and held.result["complete"]))


def write_status(path, status):
    """Write ``status`` (a dict) as JSON to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(status, indent=1, default=json_default) + "\n")
    os.replace(tmp, path)


def recipe_key(recipe_json):
    """Canonical JSON of a recipe dict (or its JSON string) without ``output.overwrite``.

    Two recipes with the same key prepare the same output, so an interrupted
    output may be continued.
    """
    raw = json.loads(recipe_json) if isinstance(recipe_json, str) else \
        json.loads(json.dumps(recipe_json, default=json_default))
    raw.get("output", {}).pop("overwrite", None)
    return json.dumps(raw, sort_keys=True)


@dataclass
class Resume:
    """The complete prefix of an output found on disk.

    Attributes
    ----------
    part_names : list of str
        Published part files in scan order (``chunks/<k>`` links to ``part_names[k]``).
    frames : int
        Frames ``0..frames-1`` are published; always a whole number of chunks.
    raw_center : (float, float) or None
        Raw-frame centre stored at the first publication.
    republish : bool
        The master on disk links more than the prefix and must be rewritten.
    """

    part_names: list = field(default_factory=list)
    frames: int = 0
    raw_center: Optional[tuple] = None
    republish: bool = False


def recover(dfile, key, chunk_frames, part_format, overwrite):
    """Work out what an interrupted output holds and discard everything after it.

    Parameters
    ----------
    dfile : Path
        Master file.
    key : str
        :func:`recipe_key` of the recipe the daemon runs now.
    chunk_frames : int
    part_format : str
    overwrite : bool
        Start again over a complete output, or one written by another recipe.

    Returns
    -------
    Resume

    Raises
    ------
    OutputError
        The output is complete, or was written with another recipe, and
        ``overwrite`` is false.
    """
    dfile = Path(dfile)
    publishing_name(dfile).unlink(missing_ok=True)
    resume = Resume()
    if dfile.exists():
        resume = _read_prefix(dfile, key, chunk_frames, part_format, overwrite)
    _remove_strays(dfile, len(resume.part_names), part_format)
    return resume


def _read_prefix(dfile, key, chunk_frames, part_format, overwrite):
    try:
        meta, info, names = read_links(dfile)
    except LayoutError as exc:
        return _start_over(dfile, part_format, overwrite,
                           f"it is not a ptyprep watch output ({exc})")
    stored = info.get(L.RECIPE)
    if stored is None or recipe_key(stored) != key:
        return _start_over(dfile, part_format, overwrite,
                           "it was written with a different recipe")
    if int(info.get(L.COMPLETE, 0)) == 1:
        return _start_over(dfile, part_format, overwrite,
                           f"it already holds the complete scan ({int(meta['num_frames'])} frames)")
    kept, frames = [], 0
    for k, name in enumerate(names):
        indices = read_part_indices(dfile.parent / name)
        ok = (name == part_name(dfile, k, part_format) and indices is not None and len(indices)
              and np.array_equal(indices, np.arange(frames, frames + len(indices))))
        if not ok:
            log.warning("part %s is missing or damaged; resuming before it", name)
            break
        kept.append((name, frames + len(indices)))
        frames += len(indices)
    boundary = frames // chunk_frames * chunk_frames
    kept = [name for name, end in kept if end <= boundary]
    if len(kept) != len(names):  # unlink what is dropped before the parts are deleted
        if kept:
            info[L.FRAMES_WRITTEN] = np.int64(boundary)
            publish_master(dfile, meta, info, kept)
        else:
            dfile.unlink()
    center = info.get(L.RAW_CENTER)
    return Resume(part_names=kept, frames=boundary, republish=len(kept) != len(names),
                  raw_center=None if center is None else tuple(float(c) for c in center))


def _start_over(dfile, part_format, overwrite, why):
    if not overwrite:
        raise OutputError(f"output {str(dfile)!r} exists and {why}; set output.overwrite = true "
                          "(--set output.overwrite=true) to replace it, or choose another "
                          "output.dfile")
    log.info("replacing %s: %s", dfile, why)
    try:
        remove_previous(dfile, part_format)
    except OSError as exc:
        raise OutputError(f"cannot remove the previous output {str(dfile)!r}: {exc}") from exc
    return Resume()


def _remove_strays(dfile, published, part_format):
    """Delete ``.tmp`` parts and parts numbered ``published`` and up (never linked)."""
    misses, k = 0, 0
    while k < published or misses < STRAY_PROBE:
        path = dfile.parent / part_name(dfile, k, part_format)
        tmp = path.with_name(path.name + ".tmp")
        found = tmp.exists() or (k >= published and path.exists())
        if found:
            log.info("discarding unpublished part %s", path.name)
            tmp.unlink(missing_ok=True)
            if k >= published:
                path.unlink(missing_ok=True)
        misses = 0 if found or k < published else misses + 1
        k += 1


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
    import h5py

    from .layout import procdata as LP
    from .layout.files import partial_name
    from .saxs import store as WP

    dfile = Path(dfile)
    partial_name(dfile).unlink(missing_ok=True)
    if not dfile.exists():
        return 0, None
    try:
        with h5py.File(dfile, "r") as f:
            state = LP.from_json(f.attrs[LP.ATTR_WATCH])
            done = WP.frames_done(f, LP.qphi_path(state["sample"]))
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
