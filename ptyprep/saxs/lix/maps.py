"""Maps as lixtools hands them out: MatrixWithCoords per sample, and back to frame order."""

import h5py
import numpy as np

from ...layout import procdata as L
from .. import maps as M
from .. import store as W
from .matrix import MatrixWithCoords


def maps_dict(fn, names, samples=None, save_overall=True):
    """``{sample: MatrixWithCoords}`` (one name) or ``{sample: {name: ...}}``, nothing written.

    lixtools' ``make_map_from_attr(..., return_dict=True)``: the per-frame attributes
    laid out on each scan's grid (un-snaked), plus ``overall`` stitched on the union
    grid when ``save_overall``.  ``absorption`` is computed from ``transmission``.
    """
    out = {}
    with h5py.File(fn, "r") as f:
        sns = [s for s in W.samples(f) if samples is None or s in samples]
        scans = {sn: W.read_sample(f, sn)["scan"] for sn in sns}
        t_ref = None
        if "absorption" in names:
            t_ref = M.reference_transmission(np.concatenate(
                [W.read_attr(f, sn, "transmission") for sn in sns]))
        for name in names:
            grids = []
            for sn in sns:
                sc = scans[sn]
                values = (M.absorption(W.read_attr(f, sn, "transmission"), t_ref)
                          if name == "absorption" else W.read_attr(f, sn, name))
                grid = M.attr_to_map(values, sc["shape"], sc["snake"])
                grids.append((grid, np.asarray(sc["slow_positions"]), np.asarray(sc["fast_positions"])))
                out.setdefault(sn, {})[name] = MatrixWithCoords(
                    grid, sc["fast_positions"], sc["slow_positions"], sc["fast_motor"], sc["slow_motor"])
            if save_overall and sns:
                prec = min(float(scans[sn].get("prec", 0.001)) for sn in sns)
                d, slow, fast = M.stitch([g[0] for g in grids], [g[1] for g in grids],
                                         [g[2] for g in grids], prec)
                sc = scans[sns[0]]
                out.setdefault(L.OVERALL, {})[name] = MatrixWithCoords(
                    d, fast, slow, sc["fast_motor"], sc["slow_motor"])
    if len(names) == 1:
        return {sn: maps[names[0]] for sn, maps in out.items()}
    return out


def frame_order(grid, snaking):
    """A ``(n_slow, n_fast)`` map back to acquisition order ``(n_slow·n_fast,)``.

    Examples
    --------
    >>> frame_order(np.array([[0, 1, 2], [5, 4, 3]]), snaking=True).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    m = np.array(grid, copy=True)
    if snaking:
        m[1::2] = m[1::2, ::-1]
    return m.reshape(-1)
