"""What a daemon holds beside its output: the lock, the status file, the recipe key.

:class:`OutputLock` keeps a second ``ptyprep watch`` away from an output;
:func:`held_output` takes it on rank 0 and recovers what the output holds (the
format's :meth:`~ptyprep.engine.follower.Follower.recover`), collectively.
"""

import contextlib
import fcntl
import json
import os
from pathlib import Path

from ..errors import OutputError
from ..layout import json_default
from ..layout.files import lock_name, status_tmp_name
from .collective import on_root


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
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"another ptyprep watch (pid {holder}) is writing "
                                  f"{str(self.path)[:-5]!r} (it holds {str(self.path)!r}); stop "
                                  "it first, or choose another output.dfile") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)   # its holder removed the file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self, remove=False):
        """Release the lock; ``remove`` also deletes the lock file (a daemon that ends, in
        any way but a kill, leaves none behind)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing releases the flock
        self._fd = None


def _same_file(fd, path):
    """True when open file ``fd`` is still the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def locked_resume(comm, lock, recover_output):
    """Rank 0 takes the output ``lock`` and calls ``recover_output()`` to work out what is on
    disk; every rank returns its result, or raises the same error (the lock is then released)."""
    def take():
        lock.acquire()
        try:
            return recover_output()
        except BaseException:
            lock.release(remove=True)     # a refused start leaves no lock file
            raise

    return on_root(comm, take)


class HeldOutput:
    """Yielded by :func:`held_output`: ``resume`` (what is on disk) and ``result`` (set by
    the daemon)."""

    def __init__(self, resume):
        self.resume = resume
        self.result = None


@contextlib.contextmanager
def held_output(comm, dfile, recover_output):
    """Hold the lock of output ``dfile`` for a daemon's run (collective).

    Rank 0 takes the lock and calls ``recover_output()`` (see :func:`locked_resume`); at the
    end the lock is released and its file removed.
    """
    lock = OutputLock(dfile)
    held = HeldOutput(locked_resume(comm, lock, recover_output))
    try:
        yield held
    finally:
        lock.release(remove=True)


def write_status(path, status):
    """Write ``status`` (a dict) as JSON to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    tmp = status_tmp_name(path)
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
