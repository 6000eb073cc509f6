"""Per-detector integration of a share of frames, merged across detectors.

Used by :class:`~ptyprep.saxs.analysis.ScanAnalysis` (``ptyprep run``) and by the
on-the-fly daemon (:mod:`ptyprep.watch_procdata`).
"""

import logging

import numpy as np

from ..errors import RecipeError
from .integrate import merge_maps, merge_var

log = logging.getLogger(__name__)


def make_integrators(detectors, qgrid, nphi, split):
    """One :class:`~ptyprep.saxs.integrate.StackIntegrator` per detector (None: covers no q bin).

    Raises RecipeError without detectors, or when no detector covers the q grid.
    """
    if not detectors:
        raise RecipeError("no detectors given; create ScanAnalysis(..., detectors=[Detector(...)])"
                          " to process frames")
    integrators, outside = [], []
    for d in detectors:
        try:
            integrators.append(d.integrator(qgrid, nphi, split=split))
        except RecipeError as exc:
            if "q coverage" not in str(exc):
                raise
            integrators.append(None)         # this detector fills no bin of the grid
            outside.append(d.name)
    if len(outside) == len(detectors):
        raise RecipeError(f"q grid {qgrid[0]:.4g}–{qgrid[-1]:.4g} 1/Å lies outside "
                          f"every detector's q coverage ({', '.join(outside)}); choose q "
                          "within the detectors' ranges")
    for name in outside:
        log.warning("detector %s covers no bin of the q grid; it is left out", name)
    return integrators


def integrate_share(raw, share, detectors, integrators, qgrid, nphi, monitor, errors):
    """``[qphi (n, Nphi, Nq), Iq (n, Nq)(, err)]`` float32 of frames ``share`` of ``raw``.

    ``raw`` is a :class:`~ptyprep.saxs.rawdata.SampleFrames`; ``monitor`` the
    ``(n,)`` incident values of ``share`` (or None).  Detectors are merged.
    """
    nq = len(qgrid)
    if len(share) == 0:
        empty = [np.zeros((0, nphi, nq), np.float32), np.zeros((0, nq), np.float32)]
        return empty + ([empty[0].copy()] if errors else [])
    scales = [d.scale for d, i in zip(detectors, integrators) if i is not None]
    maps, iqs, variances = [], [], []
    for det, integ in zip(detectors, integrators):
        if integ is None:
            continue
        frames = raw.read(det.dataset, share)
        m, i = integ.qphi_iq(frames, monitor=monitor)
        maps.append(m)
        iqs.append(i[:, None, :])
        if errors:
            variances.append(integ.qphi_var(frames, monitor=monitor))
    out = [merge_maps(maps, scales), merge_maps(iqs, scales)[:, 0, :]]
    if errors:
        out.append(np.sqrt(merge_var(variances, scales)))
    return out
