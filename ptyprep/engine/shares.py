"""Distribution of scan indices over MPI ranks (ptypy's balancing rule).

Pure index arithmetic: no MPI here.  Each chunk of indices is split into
contiguous shares in rank order while the cumulative load of every rank stays
balanced across chunks.  :func:`chunk_shares` is the one loop of the package that
walks chunks over ranks; the run loop, the follow loop and the SAXS steps use it.
"""

from dataclasses import dataclass

import numpy as np


class LoadManager:
    """Split successive chunks of scan indices over ``size`` ranks.

    Parameters
    ----------
    size : int
        Number of ranks.
    granule : int, optional
        Let :meth:`observe` balance the shares by the ranks' measured speed, every share
        but a chunk's last starting at a multiple of ``granule`` frames (the frames of an
        HDF5 chunk, so that each rank still encodes whole chunks).  Default: equal shares.

    Examples
    --------
    >>> lm = LoadManager(2)
    >>> [s.tolist() for s in lm.split(range(7))]
    [[0, 1, 2], [3, 4, 5, 6]]
    >>> [s.tolist() for s in lm.split(range(7, 14))]
    [[7, 8, 9, 10], [11, 12, 13]]
    """

    def __init__(self, size, granule=None):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)
        self.load = np.zeros(self.size, dtype=np.int64)
        self.granule = None if granule is None else int(granule)
        self.rates = None           # frames per second of each rank, once observed

    def counts(self, n):
        """Number of indices each rank receives from a chunk of ``n`` (updates the load)."""
        if self.rates is None:
            counts = share_counts(self.load, n)
        else:
            counts = rate_share_counts(n, self.rates, self.granule)
        self.load += counts
        return counts

    def observe(self, counts, seconds):
        """Learn the ranks' speed from one chunk: rank ``r`` worked ``seconds[r]`` on
        ``counts[r]`` frames.  Only with a ``granule``: the next chunks are then split in
        proportion to the speeds (averaged with the earlier ones), in whole granules;
        without, equal shares stay (ptypy's rule)."""
        if self.granule is None:
            return
        counts = np.asarray(counts, dtype=np.float64)
        seconds = np.asarray(seconds, dtype=np.float64)
        seen = (counts > 0) & (seconds > 0)
        if not seen.any():
            return
        rates = np.where(seen, counts / np.where(seen, seconds, 1.0), np.nan)
        if self.rates is None:
            fill = np.nanmean(rates)
            self.rates = np.where(seen, rates, fill)
        else:
            self.rates = np.where(seen, 0.5 * (self.rates + rates), self.rates)

    def split(self, indices):
        """Split ``indices`` into ``size`` contiguous shares (updates the load).

        Returns
        -------
        list of (M_r,) int64 ndarray
            Share of each rank, rank 0 first.
        """
        indices = np.asarray(indices, dtype=np.int64)
        counts = self.counts(len(indices))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return [indices[bounds[r]:bounds[r + 1]] for r in range(self.size)]

    def share(self, number, start, stop):
        """The :class:`ChunkShare` of chunk ``number``, frames ``[start, stop)`` (updates the load)."""
        counts = self.counts(stop - start)
        return ChunkShare(int(number), int(start), int(stop), counts)

    def replay(self, n_chunks, chunk_frames):
        """Account for ``n_chunks`` chunks of ``chunk_frames`` frames split earlier (a resumed
        scan continues with the balance it had)."""
        for _ in range(int(n_chunks)):
            self.counts(chunk_frames)
        return self


@dataclass(frozen=True, eq=False)
class ChunkShare:
    """One chunk of a scan and how its frames are shared over the ranks.

    Attributes
    ----------
    number : int
        Chunk number (0, 1, ...), the same on every rank.
    start, stop : int
        The chunk's scan indices ``[start, stop)``.
    counts : (size,) int64 ndarray
        Frames each rank prepares; rank ``r`` takes ``bounds[r]:bounds[r + 1]``.
    """

    number: int
    start: int
    stop: int
    counts: np.ndarray

    @property
    def bounds(self):
        """(size + 1,) int64: first scan index of every rank's share, then ``stop``."""
        return self.start + np.concatenate([[0], np.cumsum(self.counts)])

    def indices(self, rank):
        """(M,) int64 scan indices of rank ``rank``'s share (may be empty)."""
        bounds = self.bounds
        return np.arange(bounds[rank], bounds[rank + 1], dtype=np.int64)

    def __len__(self):
        return self.stop - self.start


def chunk_shares(start, stop, chunk_frames, size, manager=None, first_number=None):
    """The chunks of frames ``[start, stop)`` and their shares over ``size`` ranks, in order.

    Parameters
    ----------
    start, stop : int
        Scan indices to walk.
    chunk_frames : int
        Frames per chunk (the last one may be shorter).
    size : int
        Number of ranks.
    manager : LoadManager, optional
        Carries the balance across calls (e.g. one per SAXS ``process`` over all samples);
        default a new one.
    first_number : int, optional
        Number of the first chunk; default ``start // chunk_frames``.

    Yields
    ------
    ChunkShare
    """
    manager = manager if manager is not None else LoadManager(size)
    number = start // chunk_frames if first_number is None else first_number
    for begin in range(start, stop, chunk_frames):
        yield manager.share(number, begin, min(begin + chunk_frames, stop))
        number += 1


def share_counts(load, n):
    """Counts of a chunk of ``n`` indices given each rank's load so far.

    Parameters
    ----------
    load : (size,) int ndarray
        Indices received so far by each rank.
    n : int
        Length of the new chunk.

    Returns
    -------
    (size,) int64 ndarray
        How many of the chunk's indices each rank gets; they sum to ``n``.
    """
    load = np.asarray(load, dtype=np.int64)
    size = len(load)
    counts = np.zeros(size, dtype=np.int64)
    if n <= 0:
        return counts
    total = int(load.sum()) + n
    eligible = np.flatnonzero(load * size < total)
    k = len(eligible)
    total_eligible = int(load[eligible].sum()) + n
    deficit = total_eligible - load[eligible] * k
    counts[eligible] = deficit // k
    remainder = int((deficit % k).sum()) // k
    if remainder:
        counts[eligible[k - remainder:]] += 1
    return counts


def rate_share_counts(n, rates, granule):
    """Counts of a chunk of ``n`` indices in proportion to the ranks' ``rates``.

    Parameters
    ----------
    n : int
        Length of the chunk.
    rates : (size,) float ndarray, > 0
        Frames per second of each rank.
    granule : int
        Every count is a multiple of ``granule`` except the last rank's, which takes what is
        left (so every share but the last starts at a multiple of ``granule``).

    Returns
    -------
    (size,) int64 ndarray summing to ``n``: granules by largest remainder.

    Examples
    --------
    >>> rate_share_counts(64, np.array([600.0, 1000.0]), 8).tolist()
    [24, 40]
    """
    rates = np.asarray(rates, dtype=np.float64)
    counts = np.zeros(rates.size, dtype=np.int64)
    if n <= 0:
        return counts
    want = (n / granule) * rates / rates.sum()
    counts[:] = np.floor(want)
    spare = n // granule - int(counts.sum())
    for r in np.argsort(-(want - counts), kind="stable")[:max(spare, 0)]:
        counts[r] += 1
    counts *= granule
    counts[-1] += n - int(counts.sum())
    return counts
