"""A simulated scanning-SAXS acquisition: the raster that ``python -m ptyprep.acquire saxs``
writes at a controlled rate (see :mod:`ptyprep.acquire`).

The fibre phantom of :mod:`ptyprep.saxs.demo`, snaking, slow axis a rotation: one SWMR
file with two detectors ``/entry/saxs/data`` (60×70) and ``/entry/waxs/data`` (50×60),
monitors ``/entry/monitors/i0``, ``/entry/monitors/it``, motor positions
``/entry/motors/rot``, ``/entry/motors/x`` and ``/entry/scan_shape``; per batch the
frames, then the monitors, then the motor positions are flushed.  ``saxs.poni``,
``waxs.poni`` and ``*_valid.npy`` are written next to it (:func:`saxs_setup`).
"""

import time
from pathlib import Path

import h5py
import numpy as np

#: HDF5 path of the end-of-scan marker (as the ptychography acquisitions write it).
MARKER = "/entry/instrument/detector/end_of_scan"


class Clock:
    """Paces batches at ``rate_hz`` frames per second (0: no pacing)."""

    def __init__(self, rate_hz):
        self.rate_hz, self.t0 = rate_hz, time.monotonic()

    def wait_for(self, frame):
        if self.rate_hz > 0:
            delay = self.t0 + frame / self.rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)


SAXS_RASTER = (6, 8)
SAXS_PIXEL_M = 172e-6
#: kind: (frame shape, distance_m, beam centre (row, col), dataset)
SAXS_DETECTORS = {"saxs": ((60, 70), 0.5, (30.3, 35.2), "/entry/saxs/data"),
                  "waxs": ((50, 60), 0.05, (25.0, -20.0), "/entry/waxs/data")}
SAXS_MONITORS = {"incident": "/entry/monitors/i0", "transmitted": "/entry/monitors/it"}
SAXS_MOTORS = ("/entry/motors/rot", "/entry/motors/x")
SAXS_SHAPE = "/entry/scan_shape"


def saxs_setup(folder):
    """Write ``saxs.poni``, ``waxs.poni``, ``saxs_valid.npy``, ``waxs_valid.npy`` in ``folder``.

    Returns the ``[saxs] detectors`` list of a recipe in ``folder`` (relative paths).
    """
    from .demo import write_poni

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dets = []
    for kind, (shape, dist, cen, dataset) in SAXS_DETECTORS.items():
        write_poni(folder / f"{kind}.poni", shape, dist, cen, pixel_m=SAXS_PIXEL_M)
        valid = np.ones(shape, dtype=bool)
        valid[:, shape[1] // 2 + 3:shape[1] // 2 + 5] = False  # a module gap
        np.save(folder / f"{kind}_valid.npy", valid)
        dets.append({"dataset": dataset, "poni": f"{kind}.poni", "valid": f"{kind}_valid.npy"})
    return dets


def saxs_source_options(path, marker=False):
    """The ``[source]`` table of a recipe that reads what :func:`acquire_saxs` writes."""
    opts = {"name": "hdf5", "path": str(path), **SAXS_MONITORS, "scan_shape": SAXS_SHAPE,
            "motors": ["ss_rot", "ss_x"], "motor_positions": list(SAXS_MOTORS), "snaking": True}
    if marker:
        opts["end_of_scan"] = MARKER
    return opts


def saxs_truth(raster=SAXS_RASTER):
    """Per-frame truth and detector frames ``{dataset: (N, H, W) float32}`` of the raster."""
    from . import demo

    n_slow, n_fast = raster
    truth = demo.simulate_scan(np.arange(n_slow) * 180.0 / n_slow, n_trans=n_fast, center=0.5,
                               step=0.1, noise=True, seed=7)
    frames = {spec[3]: demo.detector_frames(truth, kind, noise=True, seed=7, spec=spec,
                                            pixel_m=SAXS_PIXEL_M)
              for kind, spec in SAXS_DETECTORS.items()}
    return truth, frames


def acquire_saxs(path, num_frames=None, rate_hz=10.0, batch=1, marker=True, stop_after=None,
                 raster=SAXS_RASTER, times=None):
    """Write the scanning-SAXS raster at ``rate_hz`` frames per second (see the module notes)."""
    path = Path(path)
    saxs_setup(path.parent)
    truth, frames = saxs_truth(raster)
    total = len(truth["slow"])
    num_frames = total if num_frames is None else min(num_frames, total)
    last = num_frames if stop_after is None else min(stop_after, num_frames)
    h5 = h5py.File(path, "w", libver="latest")
    grow = {}
    for ds, stack in frames.items():
        shape = stack.shape[1:]
        grow[ds] = (h5.create_dataset(ds, (0,) + shape, maxshape=(None,) + shape,
                                      chunks=(1,) + shape, dtype=np.float32), stack)
    for name, ds in SAXS_MONITORS.items():
        grow[ds] = (h5.create_dataset(ds, (0,), maxshape=(None,), dtype=np.float64), truth[name])
    for ds, key in zip(SAXS_MOTORS, ("slow", "fast")):
        grow[ds] = (h5.create_dataset(ds, (0,), maxshape=(None,), dtype=np.float64), truth[key])
    h5[SAXS_SHAPE] = np.asarray(raster, dtype=np.int64)
    flag = h5.create_dataset(MARKER, data=np.int64(0))
    h5.swmr_mode = True
    clock, done = Clock(rate_hz), np.zeros(num_frames)
    for start in range(0, last, batch):
        stop = min(start + batch, last)
        clock.wait_for(stop)
        for dset, values in grow.values():  # frames, then monitors, then motors
            dset.resize(stop, axis=0)
            dset[start:stop] = values[start:stop]
            dset.flush()
        done[start:stop] = time.time()
    if times is not None:
        np.save(times, done)
    if stop_after is not None:
        time.sleep(3600)
    if marker:
        flag[()] = 1
        flag.flush()
    h5.close()
    return done
