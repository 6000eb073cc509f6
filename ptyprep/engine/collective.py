"""Collective steps with their error handling: the only place that calls the communicator.

Every helper is collective (every rank of ``comm`` calls it, in the same order) and never
leaves a rank waiting on a collective another rank skipped: an error on one rank is
raised on every rank.  The rank where it happened raises its own exception (with its
traceback); the others raise a copy of it when it is a :class:`~ptyprep.errors.PtyprepError`
(bad input: every rank reports the same problem), else an
:class:`~ptyprep.errors.OtherRankError` naming the rank.

* :func:`on_root` — run on rank 0, broadcast the result or the error;
* :func:`raise_first` and :func:`everywhere` — raise the first error of any rank on all;
* :func:`gather` — every rank's small record on all, its arrays joined on rank 0 (and an
  error of any rank raised on all, in the same all-gather);
* :func:`allgather_rows` — arrays joined on every rank;
* :func:`after_all` — wait for every rank, then :func:`on_root`;
* :func:`agree` — rank 0's value on every rank (a decision), :func:`any_rank` — a flag.
"""

import contextlib
import pickle

import numpy as np

from ..errors import OtherRankError, PtyprepError, WriteFault

#: Set on an exception raised on every rank alike by a helper of this module: each rank
#: can then end by itself (rank 0 reports it), with no MPI_Abort (see ptyprep.cli).
ON_EVERY_RANK = "ptyprep_on_every_rank"


def _on_every_rank(exc):
    setattr(exc, ON_EVERY_RANK, True)
    return exc


def _portable(exc, rank):
    """What travels to the other ranks in place of ``exc``: itself (a picklable PtyprepError
    or WriteFault) or an :class:`OtherRankError` with its description."""
    if isinstance(exc, (PtyprepError, WriteFault)):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:  # noqa: BLE001  an error type that does not survive pickling
            pass
    text = str(exc) or type(exc).__name__
    return OtherRankError(f"rank {rank} failed: {type(exc).__name__}: {text}")


def raise_first(comm, error):
    """Collective: raise, on every rank, the first (lowest rank) of the ranks' ``error`` (None:
    no error on this rank); return normally when no rank has one."""
    portable = None if error is None else _portable(error, comm.rank)
    errors = comm.allgather(portable)
    for rank, err in enumerate(errors):
        if err is not None:
            if rank == comm.rank:
                raise _on_every_rank(error)
            raise _on_every_rank(err)


@contextlib.contextmanager
def everywhere(comm):
    """Collective block: an exception raised inside it on any rank is raised on every rank
    when the block ends (:func:`raise_first`).  The block itself must not be collective."""
    error = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001  re-raised below, on every rank
        error = exc
    raise_first(comm, error)


def on_root(comm, func, *args, **kwargs):
    """Collective: ``func(*args, **kwargs)`` on rank 0; every rank returns its result.

    An exception of ``func`` is raised on every rank (see the module notes).  The
    result is pickled to the other ranks: keep it small.
    """
    result = error = None
    if comm.rank == 0:
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001  re-raised below, on every rank
            error = exc
    portable = None if error is None else _portable(error, 0)
    portable, result = comm.bcast((portable, result), root=0)
    if error is not None:
        raise _on_every_rank(error)
    if portable is not None:
        raise _on_every_rank(portable)
    return result


def after_all(comm, func, *args, **kwargs):
    """Collective: wait until every rank is here, then :func:`on_root`."""
    comm.barrier()
    return on_root(comm, func, *args, **kwargs)


def exit_together(comm, code):
    """Collective: every rank ends with exit status ``code`` once all are here (after an
    error raised on all of them, each having cleaned up what it wrote)."""
    comm.exit_together(code)


def agree(comm, value):
    """Collective: rank 0's ``value`` on every rank (a decision the others follow)."""
    return comm.bcast(value if comm.rank == 0 else None, root=0)


def any_rank(comm, flag):
    """Collective: True on every rank when ``flag`` is true on any."""
    return bool(comm.allreduce_max(int(bool(flag))))


def gather(comm, make):
    """Collective: every rank's small record on all ranks, and its arrays joined on rank 0.

    Parameters
    ----------
    make : callable
        ``make()`` gives this rank's ``(record, arrays)``: ``record`` small and picklable
        (counts, dtypes, positions...), all-gathered; ``arrays`` a sequence of ndarrays
        concatenated along axis 0 in rank order on rank 0 (numpy buffers, not pickled),
        as many on every rank, each of one dtype and one trailing shape on all ranks (a
        rank may contribute zero rows) — or a callable that gives them from the list of
        every rank's record (called on every rank, so an error it raises for
        inconsistent records is raised alike everywhere).  An exception of ``make`` on
        any rank (e.g. preparing the share) is raised on every rank, in the same
        all-gather.

    Returns
    -------
    records : list
        Every rank's record, rank 0 first (on every rank).
    joined : list of ndarray, or None
        On rank 0 the concatenated arrays; None elsewhere.
    """
    error = record = arrays = None
    try:
        record, arrays = make()
    except Exception as exc:  # noqa: BLE001  re-raised below, on every rank
        error = exc
    items = comm.allgather((None if error is None else _portable(error, comm.rank), record))
    for rank, (err, _) in enumerate(items):
        if err is not None:
            raise _on_every_rank(error if rank == comm.rank else err)
    records = [rec for _, rec in items]
    arrays = arrays(records) if callable(arrays) else arrays
    joined = [comm.gatherv(np.ascontiguousarray(a)) for a in arrays]
    return records, (joined if comm.rank == 0 else None)


def allgather_rows(comm, rows):
    """Collective: every rank's ``rows`` (N_r, ...) concatenated in rank order, on every rank."""
    return np.concatenate(comm.allgather(np.asarray(rows)))
