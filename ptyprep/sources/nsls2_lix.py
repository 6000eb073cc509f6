"""NSLS-II LiX (16-ID): raw scanning SAXS/WAXS files written by bluesky.

Layout (:mod:`ptyprep.layout.lix_raw`, docs/formats.md): one HDF5 file, one group per scan ("sample")
with a ``start`` attribute (JSON of the bluesky start document: ``shape``,
``motors``, ``plan_name``, ``snaking``, ``pilatus.exposure_time``), frames of
each detector in ``{sn}/primary/data/<dataset>`` ``(N, H, W)``, motors and
monitors beside them.  Monitors recorded in another stream (fly scans) come
with their own time base and are averaged over each exposure window
``[t, t + exposure_time]`` of the frames.

:class:`LixRaw` is the reader :class:`ptyprep.saxs.ScanAnalysis` uses (all
detectors, monitors, motors); :class:`LixSource` is the registered
``[source] name = "nsls2-lix"`` serving one detector of one scan.
Positions are raw motor values ``(slow, fast)`` in the motors' own units
(mm, degrees) — not metres.
"""

import json

import h5py
import numpy as np

from ..errors import SourceError
from ..layout.lix_raw import (ATTR_START, DATA, DETECTORS, INCIDENT, PRIMARY, RASTER,
                                    START_DETECTOR, START_EXPOSURE, START_MOTORS, START_PLAN,
                                    START_SHAPE, START_SNAKING, TIME, TIMESTAMPS, TRANSMITTED)
from .base import ScanMeta, ScanSource, crop_roi

__all__ = ["DETECTORS", "INCIDENT", "TRANSMITTED", "LixRaw", "LixSource", "list_samples",
           "scan_geometry", "window_mean"]


def list_samples(path):
    """Names of the scans in raw file ``path`` (groups carrying a ``start`` attribute)."""
    with _open(path) as f:
        return [k for k in f if isinstance(f[k], h5py.Group) and ATTR_START in f[k].attrs]


def _open(path):
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot open LiX raw file {str(path)!r}: {exc}; "
                          "check the path (or use replace_path when raw data moved)") from exc


def scan_geometry(start):
    """Scan shape, motors and snaking from a start document.

    Returns
    -------
    dict with ``shape`` [n_slow, n_fast], ``motors`` [slow, fast], ``snake``
    bool, ``exposure_s`` float or None.  A ``raster`` plan snakes; otherwise
    the last entry of ``snaking`` (fast axis) decides.
    """
    shape = start.get(START_SHAPE)
    motors = start.get(START_MOTORS)
    if shape is None or motors is None:
        raise SourceError("start document lacks 'shape' or 'motors'; this is not a LiX raster "
                          f"scan (keys: {sorted(start)})")
    shape = [int(s) for s in shape]
    if len(shape) == 1:
        shape = [1] + shape
        motors = [None] + list(motors)
    if len(shape) != 2 or len(motors) != 2:
        raise SourceError(f"scan shape {shape} with motors {motors} is not a 2D raster; "
                          "only [n_slow, n_fast] scans are supported")
    if start.get(START_PLAN) == RASTER:
        snake = True
    else:
        snaking = start.get(START_SNAKING) or [False]
        snake = bool(snaking[-1])
    exposure = (start.get(START_DETECTOR) or {}).get(START_EXPOSURE)
    return {"shape": shape, "motors": list(motors), "snake": snake,
            "exposure_s": None if exposure is None else float(exposure)}


def window_mean(t_signal, signal, t_frames, exposure_s):
    """Time average of a piecewise-linear signal over ``[t, t + exposure_s]``.

    Parameters
    ----------
    t_signal, signal : (M,) ndarray
        Monitor samples and their times (s), any rate.
    t_frames : (N,) ndarray
        Start time of every exposure (s).
    exposure_s : float

    Returns
    -------
    (N,) float64 ndarray
    """
    order = np.argsort(t_signal)
    t, s = np.asarray(t_signal, float)[order], np.asarray(signal, float)[order]
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (s[1:] + s[:-1]) * np.diff(t))])

    def cum(x):
        x = np.clip(x, t[0], t[-1])
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 2)
        dx = x - t[i]
        slope = (s[i + 1] - s[i]) / np.where(t[i + 1] > t[i], t[i + 1] - t[i], 1.0)
        return integral[i] + dx * (s[i] + 0.5 * slope * dx)

    t0 = np.asarray(t_frames, float)
    return (cum(t0 + exposure_s) - cum(t0)) / exposure_s


class LixRaw:
    """Read-only access to one scan of a LiX raw file (keeps the file open)."""

    def __init__(self, path, sample):
        self.path = str(path)
        self.sample = sample
        self._file = _open(path)
        if sample not in self._file or ATTR_START not in self._file[sample].attrs:
            self.close()
            raise SourceError(f"scan {sample!r} not found in {self.path!r}; "
                              f"scans there: {list_samples(path)}")
        self.group = self._file[sample]
        self.start = json.loads(self.group.attrs[ATTR_START])
        self.geometry = scan_geometry(self.start)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _data(self):
        return self.group[PRIMARY][DATA]

    def detector(self, dataset):
        """The ``(N, H, W)`` h5py dataset of detector ``dataset``."""
        data = self._data()
        if dataset not in data:
            frames = [k for k in data if data[k].ndim == 3]
            raise SourceError(f"detector dataset {dataset!r} missing in {self.path!r} scan "
                              f"{self.sample!r}; frame datasets there: {frames}")
        return data[dataset]

    def num_frames(self, dataset):
        return int(self.detector(dataset).shape[0])

    def read_frames(self, dataset, indices, roi=None):
        """Frames ``indices`` (increasing) of a detector as a contiguous ``(M, h, w)`` stack."""
        ds = self.detector(dataset)
        idx = np.asarray(indices, dtype=np.int64)
        r0, r1, c0, c1 = roi if roi is not None else (0, ds.shape[1], 0, ds.shape[2])
        if idx.size == 0:
            return np.zeros((0, r1 - r0, c1 - c0), ds.dtype)
        if np.all(np.diff(idx) == 1):
            return np.ascontiguousarray(ds[idx[0]:idx[-1] + 1, r0:r1, c0:c1])
        return np.ascontiguousarray(ds[idx, r0:r1, c0:c1])

    def motor(self, name):
        """Recorded positions ``(N,)`` of motor ``name`` (zeros for a missing slow axis)."""
        data = self._data()
        if name is None:
            return np.zeros(len(self.times()))
        if name not in data:
            raise SourceError(f"motor {name!r} of the start document is not recorded in "
                              f"{self.path!r} scan {self.sample!r}/primary/data")
        return np.asarray(data[name][()], dtype=np.float64)

    def times(self):
        prim = self.group[PRIMARY]
        if TIME in prim:
            return np.asarray(prim[TIME][()], dtype=np.float64)
        data = prim[DATA]
        first = next(k for k in data if data[k].ndim >= 1)
        return np.arange(data[first].shape[0], dtype=np.float64)

    def monitor(self, field):
        """Monitor ``field`` per frame, from ``primary`` or from its own stream.

        Returns None when the field is recorded nowhere.
        """
        data = self._data()
        if field in data:
            return np.asarray(data[field][()], dtype=np.float64)
        for name, stream in self.group.items():
            if name == PRIMARY or not isinstance(stream, h5py.Group) or DATA not in stream:
                continue
            if field in stream[DATA]:
                values = np.asarray(stream[DATA][field][()], dtype=np.float64)
                stamps = stream.get(TIMESTAMPS)
                t = stamps[field][()] if stamps is not None and field in stamps else stream[TIME][()]
                exposure = self.geometry["exposure_s"]
                if not exposure:
                    raise SourceError(f"monitor {field!r} is in stream {name!r} with its own time "
                                      "base but the start document gives no "
                                      "pilatus.exposure_time to integrate it over")
                return window_mean(t, values, self.times(), exposure)
        return None


class LixSource(ScanSource):
    """One detector of one scan of an NSLS-II LiX raw file (``[source] name = "nsls2-lix"``).

    Positions are the raw ``(slow, fast)`` motor values in motor units, not metres.

    Parameters
    ----------
    path : str
        The LiX raw (bluesky) HDF5 file.
    sample : str
        Scan name (the file's top-level group); default the first.
    detector : str
        Frame dataset of the detector, e.g. ``pil1M_image`` (SAXS), ``pilW2_image`` (WAXS).
    incident, transmitted : str
        Beam-monitor fields before and after the sample (``em1…`` and ``em2…``).
    """

    path_options = ("path",)
    #: the option a scanning-SAXS ``Detector(dataset=...)`` sets
    frames_option = "detector"

    def __init__(self, path, sample="", detector="pil1M_image", incident=INCIDENT,
                 transmitted=TRANSMITTED):
        if isinstance(path, (list, tuple)):
            if len(path) != 1:
                raise SourceError(f"nsls2-lix serves one raw file, got {len(path)}; "
                                  "use [output] format = 'procdata' for several")
            path = path[0]
        self.path = str(path)
        samples = list_samples(self.path)
        if not samples:
            raise SourceError(f"{self.path!r} holds no LiX scan (no group with a 'start' attribute)")
        self.sample = sample or samples[0]
        self.detector = detector
        self.incident, self.transmitted = incident, transmitted
        self._raw = LixRaw(self.path, self.sample)
        try:
            self._raw.detector(detector)
        except SourceError:
            self._raw.close()
            raise

    def read_meta(self):
        ds = self._raw.detector(self.detector)
        return ScanMeta(num_frames=int(ds.shape[0]), frame_shape=tuple(ds.shape[1:]),
                        dtype=ds.dtype, label=self.sample,
                        extra={"start": self._raw.start, "geometry": self._raw.geometry,
                               "detector": self.detector})

    def read_positions(self):
        slow, fast = self._raw.geometry["motors"]
        return np.stack([self._raw.motor(slow), self._raw.motor(fast)], axis=1)

    def read_frames(self, indices, roi=None):
        return crop_roi(self._raw.read_frames(self.detector, indices, roi), None)

    def where(self):
        """The raw file, scan and detector dataset (for messages)."""
        return (f"{self.path!r} scan {self.sample!r} dataset "
                f"{self._raw.detector(self.detector).name!r}")

    def read_monitors(self):
        """``incident``/``transmitted`` per frame (own-stream monitors integrated), or None."""
        out = {k: self._raw.monitor(f) for k, f in (("incident", self.incident),
                                                    ("transmitted", self.transmitted))}
        return {k: v for k, v in out.items() if v is not None} or None

    def read_scan_geometry(self):
        """Shape, motors and snaking from the start document; recorded motor positions."""
        geo = self._raw.geometry
        slow, fast = geo["motors"]
        return {"shape": geo["shape"], "motors": [slow, fast], "snaking": geo["snake"],
                "positions": np.stack([self._raw.motor(slow), self._raw.motor(fast)], axis=1),
                "exposure_s": geo["exposure_s"], "header": self._raw.start}

    def close(self):
        self._raw.close()


# helpers ScanAnalysis reaches through the registry (experiments/ is not a package)
LixSource.Raw = LixRaw
LixSource.list_samples = staticmethod(list_samples)
LixSource.INCIDENT, LixSource.TRANSMITTED = INCIDENT, TRANSMITTED
