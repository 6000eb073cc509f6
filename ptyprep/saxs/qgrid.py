"""q and φ bins of the q-φ maps: piecewise-uniform q grids and even φ grids (pure numpy).

* q in 1/Å; a grid may be piecewise uniform (several segments of different steps, as at
  LiX): each bin spans half a step either side of its centre within its segment, so no bin
  spans the gap between segments.
* φ in degrees, ``nphi`` bins covering [−180°, 180°), labelled by their centres.  With an
  even ``nphi`` the bin 180° away from a bin is a bin; with an odd one (lixtools' 61) it
  falls half-way between two bins (see :func:`ptyprep.saxs.attrs.symmetrize`).
"""

import numpy as np

from ..errors import RecipeError

_RTOL = 1e-6          # relative tolerance when deciding that two q steps are equal


def make_qgrid(*segments):
    """Piecewise-uniform grid of q bin centres.

    Parameters
    ----------
    *segments : (q_start, q_stop, step) tuples, 1/Å
        Each segment gives centres ``q_start, q_start + step, ...`` up to and including
        ``q_stop`` (within 1e-6 of a step). Each segment must start above the previous
        segment's last centre.

    Returns
    -------
    qgrid : (Nq,) float64 ndarray, 1/Å

    Examples
    --------
    >>> make_qgrid((0.01, 0.03, 0.01), (0.05, 0.09, 0.02))
    array([0.01, 0.02, 0.03, 0.05, 0.07, 0.09])
    """
    if not segments:
        raise RecipeError("make_qgrid() got no segment; pass (q_start, q_stop, step) tuples")
    parts = []
    for seg in segments:
        try:
            q0, q1, step = (float(v) for v in seg)
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"q grid segment {seg!r} is not (q_start, q_stop, step); "
                              "give three numbers in 1/Å") from exc
        if not step > 0 or not q1 >= q0:
            raise RecipeError(f"q grid segment {seg!r} needs step > 0 and q_stop >= q_start")
        n = int(np.floor((q1 - q0) / step + 1e-6)) + 1
        part = q0 + step * np.arange(n)
        if parts and part[0] <= parts[-1][-1]:
            raise RecipeError(f"q grid segment {seg!r} starts at {q0} which is not above the previous "
                              f"segment's last centre {parts[-1][-1]}; start each segment higher")
        parts.append(part)
    return np.concatenate(parts)


def check_qgrid(qgrid):
    """The q grid as (Nq,) float64 centres; RecipeError unless finite and strictly increasing."""
    q = np.asarray(qgrid, dtype=np.float64)
    if q.ndim != 1 or q.size < 2:
        raise RecipeError(f"q grid of shape {q.shape} is not a 1-D array of at least 2 centres; "
                          "build one with make_qgrid((q0, q1, step))")
    if not np.all(np.isfinite(q)) or np.any(np.diff(q) <= 0):
        bad = int(np.argmax(~(np.diff(q) > 0))) if np.all(np.isfinite(q)) else -1
        where = f" (at index {bad + 1}: {q[bad + 1]} after {q[bad]})" if bad >= 0 else ""
        raise RecipeError(f"q grid is not strictly increasing{where}; give increasing bin centres")
    return q


def q_segments(qgrid):
    """Split a piecewise-uniform grid of centres into its uniform segments.

    A centre continues the current segment when its distance to the previous centre
    equals the segment's step (relative 1e-6); otherwise it starts a new segment whose
    step is the distance to the next centre. A lone last centre takes the previous step.

    Parameters
    ----------
    qgrid : (Nq,) array_like, 1/Å, strictly increasing, Nq >= 2

    Returns
    -------
    segments : list of (start, stop, step)
        ``qgrid[start:stop]`` is uniform with spacing ``step`` (1/Å).
    """
    q = check_qgrid(qgrid)
    d = np.diff(q)
    segs = []
    start, step = 0, d[0]
    for i in range(1, q.size):
        if abs(d[i - 1] - step) <= _RTOL * step:
            continue
        segs.append((start, i, step))
        start, step = i, (d[i] if i < d.size else step)
    segs.append((start, q.size, step))
    return segs


def q_bin_bounds(qgrid):
    """Lower and upper q edges of every bin: half a step either side within its segment.

    Parameters
    ----------
    qgrid : (Nq,) array_like, 1/Å

    Returns
    -------
    lo, hi : (Nq,) float64 ndarrays, 1/Å
        Where the step changes between segments ``hi[i] < lo[i + 1]``: a gap no bin spans.

    Raises
    ------
    RecipeError
        If the grid is not strictly increasing or two bins would overlap.
    """
    q = check_qgrid(qgrid)
    lo = np.empty_like(q)
    hi = np.empty_like(q)
    for start, stop, step in q_segments(q):
        lo[start:stop] = q[start:stop] - step / 2
        hi[start:stop] = q[start:stop] + step / 2
    overlap = np.flatnonzero(hi[:-1] > lo[1:] + _RTOL * (hi[:-1] - lo[:-1]))
    if overlap.size:
        i = overlap[0]
        raise RecipeError(f"q bins overlap at q = {q[i]} / {q[i + 1]} where the step changes; "
                          "start the next segment at least half of both steps further up")
    return lo, hi


def q_edges(qgrid):
    """(Nq+1,) bin edges of a grid without gaps (half a step either side of each centre).

    Raises
    ------
    RecipeError
        If the grid has a gap between segments; use :func:`q_bin_bounds` instead.
    """
    lo, hi = q_bin_bounds(qgrid)
    gap = np.flatnonzero(~np.isclose(hi[:-1], lo[1:], rtol=0, atol=_RTOL * np.diff(lo).min()))
    if gap.size:
        raise RecipeError(f"q grid has a gap between {hi[gap[0]]} and {lo[gap[0] + 1]} 1/Å, so one "
                          "edges array cannot describe it; use q_bin_bounds(qgrid) -> (lo, hi)")
    return np.append(lo, hi[-1])


def check_nphi(nphi, name="nphi"):
    """``nphi`` as an int; RecipeError (naming the value as ``name``) unless it is an integer
    >= 2 (even or odd)."""
    if isinstance(nphi, bool) or not isinstance(nphi, (int, np.integer)) or nphi < 2:
        raise RecipeError(f"{name} = {nphi!r} must be an integer >= 2 (e.g. 36, 60, 61, 180): "
                          "the number of φ bins over [-180°, 180°)")
    return int(nphi)


def phi_edges(nphi):
    """(nphi+1,) φ bin edges in degrees, from −180 to 180."""
    return np.linspace(-180.0, 180.0, check_nphi(nphi) + 1)


def phi_centres(nphi):
    """(nphi,) φ bin centres in degrees, in [−180, 180)."""
    e = phi_edges(nphi)
    return (e[:-1] + e[1:]) / 2
