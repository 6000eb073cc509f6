"""Per-detector integration of a share of frames, merged across detectors; the scan and
the writer the engine's run loop walks for ``ScanAnalysis.process``.

Used by :class:`~ptyprep.saxs.analysis.ScanAnalysis` (``ptyprep run``) and by the
on-the-fly daemon (:mod:`ptyprep.saxs.follow`).
"""

import dataclasses
import logging

import h5py
import numpy as np

from ..engine.collective import after_all, gather
from ..engine.formats import Scan, Writer
from ..errors import RecipeError
from ..layout import procdata as L
from . import store as W
from .merge import merge_maps, merge_var

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


@dataclasses.dataclass(eq=False)
class QphiScan(Scan):
    """One sample's frames to integrate (``ScanAnalysis.process``): the engine walks it in
    chunks; each rank reads and integrates its share of every chunk.

    Attributes (besides :class:`~ptyprep.engine.formats.Scan`'s; ``key`` is the sample)
    ----------
    spec : dict
        The sample's source spec (:mod:`ptyprep.saxs.rawdata`).
    detectors, integrators : lists
        Per detector (an integrator None: the detector covers no q bin).
    qgrid : (Nq,) ndarray;  nphi : int
    monitor : (N,) ndarray or None
        Incident monitor to divide by.
    errors : bool
        Also the Poisson standard deviation.
    """

    spec: dict = None
    detectors: list = None
    integrators: list = None
    qgrid: np.ndarray = None
    nphi: int = 0
    monitor: np.ndarray = None
    errors: bool = False
    raw: object = None

    def open(self):
        from .rawdata import SampleFrames

        self.raw = SampleFrames(self.spec, [d.dataset for d in self.detectors])

    def close(self):
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    def prepare(self, share, indices, batch_frames=None):
        """One part: ``[qphi (n, Nphi, Nq), Iq (n, Nq)(, err)]`` float32 of ``indices``."""
        mon = None if self.monitor is None or not len(indices) else self.monitor[indices]
        yield integrate_share(self.raw, indices, self.detectors, self.integrators, self.qgrid,
                              self.nphi, mon, self.errors)


class RowsWriter(Writer):
    """Rank 0 stores every chunk's rows in the sample's pre-sized ``qphi``/``Iq``(/``err``)
    datasets (``@frames_done`` advanced, so an interrupted run continues)."""

    def __init__(self, fn, comm, errors):
        self.fn, self.comm, self.errors = fn, comm, errors
        self.f = h5py.File(fn, "a") if comm.rank == 0 else None

    def write(self, scan, share, parts):
        records, joined = gather(self.comm, lambda: (None, next(iter(parts))))
        if joined is None:
            return
        sn = scan.key
        paths = [L.qphi_path(sn), L.iq_path(sn)] + ([L.err_path(sn)] if self.errors else [])
        for path, rows in zip(paths, joined):
            W.write_rows(self.f[path], share.start, rows)
        self.f.flush()

    def close(self):
        after_all(self.comm, self.abandon)        # every rank waits until the file is closed

    def abandon(self):
        if self.f is not None:
            self.f.close()
            self.f = None
