"""Distribution of scan indices over MPI ranks (ptypy's balancing rule).

Pure index arithmetic: no MPI here.  Each chunk of indices is split into
contiguous shares in rank order while the cumulative load of every rank stays
balanced across chunks.
"""

import numpy as np


class LoadManager:
    """Split successive chunks of scan indices over ``size`` ranks.

    Parameters
    ----------
    size : int
        Number of ranks.

    Examples
    --------
    >>> lm = LoadManager(2)
    >>> [s.tolist() for s in lm.split(range(7))]
    [[0, 1, 2], [3, 4, 5, 6]]
    >>> [s.tolist() for s in lm.split(range(7, 14))]
    [[7, 8, 9, 10], [11, 12, 13]]
    """

    def __init__(self, size):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)
        self.load = np.zeros(self.size, dtype=np.int64)

    def counts(self, n):
        """Number of indices each rank receives from a chunk of ``n`` (updates the load)."""
        counts = share_counts(self.load, n)
        self.load += counts
        return counts

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
