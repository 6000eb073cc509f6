"""Scan geometry, de-snaking, union-grid stitching, transmission: pure numpy.

Conventions: a map is ``(n_slow, n_fast)`` (row = slow motor, column = fast
motor); a vector attribute gives ``(k, n_slow, n_fast)``.  Motor positions
stay in the motor's own units (mm, degrees), exactly as recorded.
"""

import numpy as np

from ..errors import RecipeError

#: fraction of the median incident intensity below which the beam is off
BEAM_OFF_FRACTION = 0.1
#: transmissions at or above this quantile are empty-beam points (automatic T_ref)
EMPTY_BEAM_QUANTILE = 0.9


def snap_positions(values, prec=0.001):
    """Uniform positions from jittery encoder values.

    The step (mean spacing) is rounded to a multiple of ``prec`` and the
    offset (first value) to a multiple of ``10 * prec``, so partial scans of
    one specimen give positions that compare exactly.

    Parameters
    ----------
    values : (n,) array_like
        Recorded positions along one axis, in acquisition order.
    prec : float
        Precision in motor units (> 0).

    Returns
    -------
    (n,) float64 ndarray

    Examples
    --------
    >>> snap_positions([0.0004, 0.0998, 0.2003], prec=0.001).tolist()
    [0.0, 0.1, 0.2]
    """
    values = np.asarray(values, dtype=np.float64)
    if prec <= 0:
        raise RecipeError(f"prec={prec} must be > 0 (motor units, e.g. 0.001)")
    n = len(values)
    offset = np.round(values[0] / (10 * prec)) * 10 * prec if n else 0.0
    step = np.round((values[-1] - values[0]) / (n - 1) / prec) * prec if n > 1 else 0.0
    return _clean(offset + step * np.arange(n), prec)


def _clean(values, prec):
    """Round to a tenth of ``prec`` so float noise does not break equality."""
    return np.round(np.asarray(values, dtype=np.float64) / prec * 10) * prec / 10


def scan_axes(slow_values, fast_values, shape, snake, force_uniform_steps=True, prec=0.001):
    """Slow and fast axis positions of a raster scan.

    Parameters
    ----------
    slow_values, fast_values : (N,) array_like
        Recorded positions of every frame, in acquisition order (N may exceed
        ``n_slow * n_fast`` by a few frames; never be smaller).
    shape : (n_slow, n_fast)
    snake : bool
        True when odd rows run the fast axis backwards.
    force_uniform_steps : bool
        Snap both axes with :func:`snap_positions`.
    prec : float

    Returns
    -------
    slow : (n_slow,) float64 ndarray
        Slow position of each row (first frame of the row).
    fast : (n_fast,) float64 ndarray
        Fast positions taken from the first row.
    """
    n_slow, n_fast = shape
    slow_values = np.asarray(slow_values, dtype=np.float64)
    fast_values = np.asarray(fast_values, dtype=np.float64)
    need = n_slow * n_fast
    if len(slow_values) < need or len(fast_values) < need:
        raise RecipeError(f"scan shape {[n_slow, n_fast]} needs {need} recorded positions, "
                          f"got {min(len(slow_values), len(fast_values))}; check the start "
                          "document's 'shape' against the motors")
    fast = fast_values[:n_fast]
    slow = slow_values[:need:n_fast]
    if force_uniform_steps:
        fast, slow = snap_positions(fast, prec), snap_positions(slow, prec)
    return slow, fast


def provisional_axes(slow_values, fast_values, shape, force_uniform_steps=True, prec=0.001):
    """:func:`scan_axes` of a scan still being acquired (fewer positions than the raster).

    Each axis is extended from the positions recorded so far: linearly with the
    mean step of the known ones (step 1 when only one is known, indices when none),
    then snapped like :func:`scan_axes`.  With every position recorded it equals
    :func:`scan_axes`.
    """
    n_slow, n_fast = shape
    slow_values = np.asarray(slow_values, dtype=np.float64)
    fast_values = np.asarray(fast_values, dtype=np.float64)
    m = min(len(slow_values), len(fast_values))
    if m >= n_slow * n_fast:
        return scan_axes(slow_values, fast_values, shape, False, force_uniform_steps, prec)
    out = []
    for known, length in ((slow_values[:m:n_fast], n_slow), (fast_values[:min(m, n_fast)], n_fast)):
        if len(known) == length:
            axis = known
        elif len(known) == 0:
            axis = np.arange(length, dtype=np.float64)
        else:
            step = (known[-1] - known[0]) / (len(known) - 1) if len(known) > 1 else 1.0
            axis = known[0] + step * np.arange(length)
        out.append(snap_positions(axis, prec) if force_uniform_steps else axis)
    return out[0], out[1]


def attr_to_map(values, shape, snake):
    """Per-frame values → map, row by row, odd rows reversed when snaking.

    Parameters
    ----------
    values : (N,) or (N, k) array_like
        One value (or k values) per frame in acquisition order, N ≥ n_slow·n_fast.
    shape : (n_slow, n_fast)
    snake : bool

    Returns
    -------
    (n_slow, n_fast) or (k, n_slow, n_fast) float64 ndarray

    Examples
    --------
    >>> attr_to_map(np.arange(6), (2, 3), snake=True).tolist()
    [[0.0, 1.0, 2.0], [5.0, 4.0, 3.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    n_slow, n_fast = shape
    need = n_slow * n_fast
    if values.shape[0] < need:
        raise RecipeError(f"scan shape {[n_slow, n_fast]} needs {need} frames, the attribute "
                          f"has {values.shape[0]}; the scan is incomplete or its shape is wrong")
    grid = values[:need].reshape((n_slow, n_fast) + values.shape[1:]).copy()
    if snake:
        grid[1::2] = grid[1::2, ::-1]
    return np.moveaxis(grid, 2, 0) if grid.ndim == 3 else grid


def union_axis(axes, prec=0.001):
    """Sorted union of several axes' positions (compared at ``prec / 10``)."""
    allv = np.concatenate([_clean(a, prec) for a in axes]) if axes else np.zeros(0)
    return np.unique(allv)


def stitch(maps, slows, fasts, prec=0.001):
    """Union-grid mosaic of several maps: NaN-aware mean where they overlap.

    Parameters
    ----------
    maps : list of (n_slow_i, n_fast_i) or (k, n_slow_i, n_fast_i) ndarray
    slows, fasts : list of (n_slow_i,), (n_fast_i,) ndarray
        Positions of each map's rows and columns.
    prec : float
        Positions equal within ``prec / 10`` are the same cell.

    Returns
    -------
    overall : (n_slow, n_fast) or (k, n_slow, n_fast) float64 ndarray
        NaN where no map has a value.
    slow, fast : (n_slow,), (n_fast,) float64 ndarray
        The union axes, increasing.
    """
    slow = union_axis(slows, prec)
    fast = union_axis(fasts, prec)
    lead = maps[0].shape[:-2]
    total = np.zeros(lead + (len(slow), len(fast)))
    count = np.zeros_like(total)
    for m, s, f in zip(maps, slows, fasts):
        if m.shape[:-2] != lead:
            raise RecipeError(f"cannot stitch maps of shapes {maps[0].shape} and {m.shape}; "
                              "an attribute must have the same length in every sample")
        rows = np.searchsorted(slow, _clean(s, prec))
        cols = np.searchsorted(fast, _clean(f, prec))
        ok = np.isfinite(m)
        sub = (Ellipsis, rows[:, None], cols[None, :])
        total[sub] += np.where(ok, m, 0.0)
        count[sub] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return overall, slow, fast


def transmission(incident, transmitted):
    """``transmitted / incident`` per frame; NaN where the incident beam is 0."""
    incident = np.asarray(incident, dtype=np.float64)
    transmitted = np.asarray(transmitted, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(incident > 0, transmitted / incident, np.nan)


def beam_off(incident, fraction=BEAM_OFF_FRACTION):
    """True where the incident beam is below ``fraction`` of its median (shutter closed)."""
    incident = np.asarray(incident, dtype=np.float64)
    finite = incident[np.isfinite(incident)]
    level = np.median(finite) if finite.size else 0.0
    return ~(incident > fraction * level)


def reference_transmission(trans, quantile=EMPTY_BEAM_QUANTILE):
    """Automatic empty-beam transmission ``T_ref``.

    The median of the transmissions at or above the ``quantile`` (default the
    top decile) of all finite values: in a map with some empty-beam points
    these are the points outside the specimen.

    Parameters
    ----------
    trans : array_like
        Transmissions of every point (all samples pooled).

    Returns
    -------
    float
    """
    t = np.asarray(trans, dtype=np.float64).ravel()
    t = t[np.isfinite(t) & (t > 0)]
    if t.size == 0:
        raise RecipeError("no finite positive transmission to take the empty-beam reference from; "
                          "check the monitors or give ref_trans")
    return float(np.median(t[t >= np.quantile(t, quantile)]))


def absorption(trans, t_ref):
    """``-ln(T / T_ref)`` clipped at 0 (NaN stays NaN)."""
    t = np.asarray(trans, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = -np.log(t / t_ref)
    return np.where(np.isnan(mu), np.nan, np.clip(mu, 0.0, None))


def transmission_correction(values, transmitted, incident=None):
    """Divide by ``transmitted / mean(transmitted)``; beam-off points become NaN.

    Parameters
    ----------
    values : (N,) or (N, k) array_like
        Per-frame attribute.
    transmitted : (N,) array_like
    incident : (N,) array_like, optional
        Used to find beam-off points (:func:`beam_off`); without it, points
        with ``transmitted <= 0`` are masked.

    Returns
    -------
    ndarray shaped like ``values``
    """
    values = np.asarray(values, dtype=np.float64)
    tr = np.asarray(transmitted, dtype=np.float64)
    off = ~(tr > 0)
    if incident is not None:
        off |= beam_off(incident)
    mean = np.mean(tr[~off]) if np.any(~off) else np.nan
    factor = np.where(off, np.nan, tr / mean)
    factor = factor.reshape((-1,) + (1,) * (values.ndim - 1))
    return values / factor
