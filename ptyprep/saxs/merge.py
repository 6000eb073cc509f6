"""Merging the q-φ maps of several detectors on one grid (SAXS + WAXS → one map).

Every detector's map holds NaN in the bins it does not cover; a merged bin is the
mean over the detectors covering it, each multiplied by its scale, and NaN where none
does.  :func:`merge_var` gives the variance of that mean for independent detectors.
"""

import numpy as np

__all__ = ["merge_maps", "merge_var"]


def merge_maps(maps, scales=None):
    """Merge q-φ maps of several detectors on the same grid.

    Parameters
    ----------
    maps : sequence of (N, nphi, Nq) ndarrays
        One per detector, NaN in bins the detector does not cover.
    scales : sequence of float, optional
        Per-detector factors applied before merging (default 1).

    Returns
    -------
    merged : (N, nphi, Nq) float32 ndarray
        Per bin, the mean over the detectors that cover it (each × its scale); NaN where none does.
    """
    maps, scales = _merge_inputs(maps, scales, "merge_maps")
    total, count = _covered_sum(maps, scales)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def merge_var(variances, scales=None):
    """Variance of :func:`merge_maps` of maps with these variances (independent detectors).

    Parameters
    ----------
    variances : sequence of (N, nphi, Nq) ndarrays
        One per detector, NaN in bins the detector does not cover.
    scales : sequence of float, optional

    Returns
    -------
    (N, nphi, Nq) float32 ndarray: ``Σ s²·var / k²`` over the k detectors covering a bin.
    """
    variances, scales = _merge_inputs(variances, scales, "merge_var")
    total, count = _covered_sum(variances, [s * s for s in scales])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count.astype(np.float64) ** 2).astype(np.float32)


def _covered_sum(arrays, factors):
    """``(Σ factor·array, count)`` over the arrays that are finite at each bin (float64, int32)."""
    total = np.zeros(arrays[0].shape, dtype=np.float64)
    count = np.zeros(arrays[0].shape, dtype=np.int32)
    for a, f in zip(arrays, factors):
        ok = np.isfinite(a)
        total += np.where(ok, a, 0) * f
        count += ok
    return total, count


def _merge_inputs(maps, scales, caller):
    """Per-detector arrays of one shape and their scales (default 1), checked for a merge."""
    maps = [np.asarray(m) for m in maps]
    if not maps:
        raise ValueError(f"{caller}() needs at least one map")
    if any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"maps have different shapes {[m.shape for m in maps]}; integrate every "
                         "detector on the same q grid and nphi")
    scales = [1.0] * len(maps) if scales is None else [float(s) for s in scales]
    if len(scales) != len(maps):
        raise ValueError(f"{len(scales)} scales given for {len(maps)} maps")
    return maps, scales
