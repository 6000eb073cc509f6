"""Reading a proc_data file for the viewer: the small arrays it shows, one frame per click.

:class:`ProcdataReader` opens the file for every read (a daemon replaces it whole when it
publishes, so a reader never holds an old version open), reads the maps, tomograms and
per-frame attributes of a sample (small: one value per scan point), and, for a click,
the q-φ map and I(q) of **one** frame — a single chunk of ``qphi/merged/d`` and one row
of ``Iq/merged``, never the cube.  Names come from :mod:`ptyprep.layout.procdata`; axis
and colour-bar labels from :mod:`ptyprep.saxs.plot`, as on ``ptyprep plot``'s pictures.
"""

import contextlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import LayoutError
from ..layout import procdata as L
from ..saxs import store as W
from ..saxs.plot import axis_label, quantity
from ..saxs.qgrid import phi_centres, phi_edges, q_bin_bounds
from .heatmap import bounds_of


@dataclass
class Image:
    """One map or tomogram: values ``d`` (ny, nx) on the axes ``x`` (nx,) and ``y`` (ny,)."""

    name: str
    d: np.ndarray
    x: np.ndarray
    y: np.ndarray
    xlabel: str
    ylabel: str
    label: str          # quantity and unit, for the colour bar


@dataclass
class Frame:
    """What a click shows: frame ``index`` of ``sample`` — its q-φ map and I(q)."""

    sample: str
    index: int
    qphi: np.ndarray            # (Nphi, Nq)
    iq: np.ndarray              # (Nq,)
    q: np.ndarray
    q_lo: np.ndarray
    q_hi: np.ndarray
    phi: np.ndarray
    phi_edges: np.ndarray
    where: dict = field(default_factory=dict)   # {motor: position} of the frame


@dataclass
class Sample:
    """A sample's scan record: raster ``shape`` (n_slow, n_fast), ``snake``, frames
    expected and done, and the positions of its rows and columns."""

    name: str
    shape: tuple
    snake: bool
    n_frames: int
    frames_done: int
    slow: np.ndarray
    fast: np.ndarray
    slow_motor: str
    fast_motor: str


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def nearest(axis, value):
    """Index of the position of ``axis`` nearest ``value``, or None when ``value`` lies more
    than half a step outside the axis."""
    axis = np.asarray(axis, dtype=np.float64)
    if axis.size == 0 or not np.isfinite(value):
        return None
    i = int(np.argmin(np.abs(axis - value)))
    half = np.min(np.abs(np.diff(axis))) / 2 if axis.size > 1 else 0.5
    return i if abs(axis[i] - value) <= half * 1.0000001 else None


def frame_of_cell(sample, row, col):
    """Frame index of raster cell ``(row, col)`` (odd rows run backwards when snaking), or
    None when the scan has no such frame."""
    n_slow, n_fast = sample.shape
    if not (0 <= row < n_slow and 0 <= col < n_fast):
        return None
    index = row * n_fast + (n_fast - 1 - col if sample.snake and row % 2 else col)
    return index if index < sample.n_frames else None


def cell_of_frame(sample, index):
    """Raster cell ``(row, col)`` of frame ``index``: the inverse of :func:`frame_of_cell`."""
    n_fast = sample.shape[1]
    row, col = divmod(int(index), n_fast)
    return row, (n_fast - 1 - col if sample.snake and row % 2 else col)


class ProcdataReader:
    """The parts of a proc_data file that ``ptyprep view`` shows.

    Parameters
    ----------
    path : str or Path
        A proc_data file (see :func:`ptyprep.view.files.file_kind`).
    """

    def __init__(self, path):
        self.path = path

    @contextlib.contextmanager
    def open(self):
        import h5py

        with h5py.File(self.path, "r") as f:
            yield f

    def samples(self):
        """``{name: Sample}`` of the samples in file order (``overall`` is not one)."""
        with self.open() as f:
            return {sn: self._sample(f, sn) for sn in W.samples(f)}

    def groups(self):
        """Names that can be chosen on the page: the samples, then ``overall`` if present."""
        with self.open() as f:
            names = W.samples(f)
            return names + ([L.OVERALL] if L.OVERALL in f and L.OVERALL not in names else [])

    def _sample(self, f, sn):
        scan = W.read_sample(f, sn)["scan"]
        qphi = L.qphi_path(sn)
        done = int(f[qphi].attrs.get(L.ATTR_FRAMES_DONE, 0)) if qphi in f else 0
        maps = f.get(L.data_group(sn, L.MAPS))
        if maps is not None and L.ATTR_XC in maps.attrs:
            fast, slow = maps.attrs[L.ATTR_XC], maps.attrs[L.ATTR_YC]
        else:
            fast, slow = scan["fast_positions"], scan["slow_positions"]
        return Sample(sn, tuple(int(n) for n in scan["shape"]), bool(scan["snake"]),
                      int(scan["n_frames"]), done, np.asarray(slow, float),
                      np.asarray(fast, float), str(scan["slow_motor"]), str(scan["fast_motor"]))

    def images(self, sn, key=L.MAPS):
        """Every 2-D image of ``maps`` (or ``tomo``) of ``sn``, as :class:`Image` (vector
        maps are skipped); an empty list when there are none yet."""
        with self.open() as f:
            group = f.get(L.data_group(sn, key))
            out = []
            for name in (group if group is not None else []):
                sub = group[name]
                if L.SIGNAL not in sub or sub[L.SIGNAL].ndim != 2:
                    continue
                ds = sub[L.SIGNAL]
                attrs = dict(sub.attrs)
                attrs.update({k: v for k, v in ds.attrs.items() if k == L.ATTR_UNITS})
                (x, xlabel), (y, ylabel) = (_axis(sub, group, which, n) for which, n in (
                    ((L.AXIS_X, L.ATTR_XC, L.ATTR_XC_LABEL), ds.shape[1]),
                    ((L.AXIS_Y, L.ATTR_YC, L.ATTR_YC_LABEL), ds.shape[0])))
                out.append(Image(name, np.asarray(ds[()], np.float64), x, y, xlabel, ylabel,
                                 quantity(name, attrs)))
            return out

    def locate(self, sn, x, y, samples=None):
        """The frame measured at motor position ``(x, y)`` = (fast, slow) of ``sn``.

        For ``overall`` the first sample whose raster holds that position answers.

        Returns
        -------
        (sample name, frame index) or None
        """
        samples = samples if samples is not None else self.samples()
        names = list(samples) if sn == L.OVERALL else [sn]
        for name in names:
            if name not in samples:
                continue
            s = samples[name]
            row, col = nearest(s.slow, y), nearest(s.fast, x)
            if row is None or col is None:
                continue
            index = frame_of_cell(s, row, col)
            if index is not None:
                return name, index
        return None

    def frame(self, sn, index, sample=None):
        """The q-φ map and I(q) of frame ``index`` of sample ``sn`` (one slice of each).

        Raises
        ------
        LayoutError
            The sample has no q-φ maps or no frame ``index``.
        """
        with self.open() as f:
            path = L.qphi_path(sn)
            if path not in f:
                raise LayoutError(f"sample {sn!r} of {str(self.path)!r} has no q-φ maps")
            cube = f[path]
            if not 0 <= index < cube.shape[0]:
                raise LayoutError(f"sample {sn!r} has no frame {index} (0..{cube.shape[0] - 1})")
            group = f[L.qphi_group(sn)]
            qphi = np.asarray(cube[index], np.float64)
            iq_path = L.iq_path(sn)
            iq = (np.asarray(f[iq_path][index], np.float64) if iq_path in f
                  else _mean_over_phi(qphi))      # lixtools' files may hold no I(q)
            if L.AXIS_Q not in group:       # lixtools' layout: the grids are the root's
                root = W.read_root(f)
                q, phi, edges = root["qgrid"], phi_centres(root["nphi"]), phi_edges(root["nphi"])
                q_lo, q_hi = q_bin_bounds(q)
            else:
                q, phi = group[L.AXIS_Q][()], group[L.AXIS_PHI][()]
                if L.AXIS_Q_LO in group and L.AXIS_Q_HI in group:
                    q_lo, q_hi = group[L.AXIS_Q_LO][()], group[L.AXIS_Q_HI][()]
                else:
                    q_lo, q_hi = bounds_of(q)
                if L.AXIS_PHI_EDGES in group:
                    edges = group[L.AXIS_PHI_EDGES][()]
                else:
                    lo, hi = bounds_of(phi)
                    edges = np.append(lo, hi[-1])
        where = {}
        if sample is not None:
            row, col = cell_of_frame(sample, index)
            if row < len(sample.slow) and col < len(sample.fast):
                where = {sample.slow_motor: float(sample.slow[row]),
                         sample.fast_motor: float(sample.fast[col])}
        return Frame(sn, int(index), qphi, iq, q, q_lo, q_hi, phi, edges, where)

    def iphi_qrange(self, sn):
        """The q window ``(q1, q2)`` of the sample's stored I(φ) (``Iphi@qrange``), or None."""
        with self.open() as f:
            group = f.get(f"{L.sample_path(sn)}/{L.IPHI}")
            if group is None or L.ATTR_QRANGE not in group.attrs:
                return None
            lo, hi = np.asarray(group.attrs[L.ATTR_QRANGE], float)[:2]
            return float(lo), float(hi)

    def watch_state(self):
        """The root ``@watch`` record of a file ``ptyprep watch`` grows (None otherwise)."""
        with self.open() as f:
            text = f.attrs.get(L.ATTR_WATCH)
            return L.from_json(text) if text is not None else None


def _axis(sub, group, which, n):
    """``(positions, label)`` of one axis of an image group ``sub``: its axis dataset
    (``x``/``y``), else the data key's ``@xc``/``@yc`` (files lixtools wrote), else the
    pixel index."""
    name, positions, label = which
    if name in sub:
        return np.asarray(sub[name][()], np.float64), axis_label(sub[name])
    if positions in group.attrs and len(group.attrs[positions]) == n:
        return (np.asarray(group.attrs[positions], np.float64),
                _text(group.attrs.get(label, "")))
    return np.arange(n, dtype=np.float64), "index"


def iphi_of(frame, qrange):
    """I(φ) of a frame: the NaN-aware mean of its q-φ map over the q bins inside
    ``qrange`` = (q1, q2); NaN where no bin in the window has a value."""
    lo, hi = sorted(qrange)
    inside = (frame.q >= lo) & (frame.q <= hi)
    if not inside.any():
        return np.full(frame.qphi.shape[0], np.nan)
    part = frame.qphi[:, inside]
    counts = np.isfinite(part).sum(axis=1)
    sums = np.nansum(part, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _mean_over_phi(qphi):
    """NaN-aware mean of a q-φ map over φ, ``(Nq,)``; NaN where a q bin holds no value."""
    counts = np.isfinite(qphi).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(qphi, axis=0) / np.maximum(counts, 1), np.nan)
