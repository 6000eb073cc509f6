"""``proc_data[sample][data_key][sub_key]`` of a proc_data file, as lixtools holds it.

lixtools' ``load_data`` reads the whole file into memory; here a stack of q-φ maps is a
:class:`FrameStack` that reads one frame when it is indexed, so a notebook can walk
``dt.proc_data[sn]["qphi"]["merged"][i]`` on a scan of 10 000 frames.  Maps and
tomograms are :class:`~ptyprep.saxs.lix.MatrixWithCoords`, attributes and I(q) arrays.
:func:`save_entries` writes what a notebook put into ``proc_data`` back, in lixtools'
layout (``@type``/``@len``), so both tools read it.
"""

from collections.abc import Sequence

import h5py
import numpy as np

from ...errors import RecipeError
from ...layout import procdata as L
from .. import lixfile as X
from .. import store as W
from .matrix import MatrixWithCoords

#: datasets that are axes of their group, not sub keys
AXES = {L.AXIS_Q, L.AXIS_PHI, L.AXIS_PHI_EDGES, L.AXIS_Q_LO, L.AXIS_Q_HI, L.AXIS_X, L.AXIS_Y}


class FrameStack(Sequence):
    """The q-φ maps of one sample as a read-on-demand list of MatrixWithCoords.

    Parameters
    ----------
    fn : str
        The proc_data file.
    path : str
        Its ``(N, Nphi, Nq)`` dataset.
    xc, yc : (Nq,), (Nphi,) coordinates; labels ``"q"`` and ``"phi"``.
    """

    def __init__(self, fn, path, xc, yc):
        self.fn, self.path = fn, path
        self.xc, self.yc = np.asarray(xc, float), np.asarray(yc, float)
        with h5py.File(fn, "r") as f:
            self._len = int(f[path].shape[0])
            self._err = path.rsplit("/", 1)[0] + "/" + L.ERR
            self._has_err = self._err in f

    def __len__(self):
        return self._len

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        i = int(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"frame {index} is outside the {self._len} frames of {self.path}")
        with h5py.File(self.fn, "r") as f:
            d = np.asarray(f[self.path][i], dtype=np.float64)
            err = np.asarray(f[self._err][i], dtype=np.float64) if self._has_err else None
        return MatrixWithCoords(d, self.xc, self.yc, "q", "phi", err)

    def __repr__(self):
        return f"FrameStack({self._len} q-φ maps of {self.path!r})"


def _matrix(g):
    """One MatrixWithCoords (map or tomogram) of group ``g`` (either tool's layout)."""
    yc, xc, yl, xl = W.image_axes(g)
    return MatrixWithCoords(np.asarray(g[L.SIGNAL][()], dtype=np.float64), xc, yc, xl, yl,
                            g[L.ERR][()] if L.ERR in g else None)


def load_entries(fn, samples=None, data_keys=None, sub_keys=None, nphi=None):
    """``{sample: {data_key: {sub_key: value}}}`` of the file (``overall`` included).

    Parameters
    ----------
    fn : str
    samples, data_keys, sub_keys : list of str, optional
        Restrict what is read (default everything).
    nphi : int, optional
        φ bins: the maps' rows are labelled by bin centres (lixtools' own files label
        them ``linspace(-180, 180, Nphi)``; ptyprep uses the centres).
    """
    from ..qgrid import phi_centres

    out = {}
    with h5py.File(fn, "r") as f:
        root = W.read_root(f)
        phi = phi_centres(root["nphi"] if nphi is None else nphi)
        names = [k for k in f if isinstance(f[k], h5py.Group)]
        for sn in names if samples is None else [s for s in samples if s in f]:
            entry = out.setdefault(sn, {})
            for key in f[sn]:
                g = f[sn][key]
                if not isinstance(g, h5py.Group) or (data_keys is not None and key not in data_keys):
                    continue
                subs = entry.setdefault(key, {})
                for sub in g:
                    if sub in AXES or (sub_keys is not None and sub not in sub_keys):
                        continue
                    item = g[sub]
                    if key == L.QPHI and isinstance(item, h5py.Group) and L.SIGNAL in item:
                        subs[sub] = FrameStack(fn, item[L.SIGNAL].name, root["qgrid"], phi)
                    elif isinstance(item, h5py.Group) and L.SIGNAL in item:
                        subs[sub] = _matrix(item)
                    elif isinstance(item, h5py.Dataset):
                        subs[sub] = item[()]
    return out


def save_entries(f, proc_data, samples=None, data_keys=None, sub_keys=None):
    """Write ``proc_data`` entries into the open file ``f`` in lixtools' layout.

    Arrays go to ``/{sn}/{key}/{sub}`` datasets (``@type = "ndarray"``); a
    MatrixWithCoords to a group with ``d`` and the shared ``@xc @yc`` labels; a list
    of them (one per frame) to a stacked ``d`` with ``@len``.  A :class:`FrameStack`
    is already in the file and is left alone.

    Returns
    -------
    list of str
        The paths written.
    """
    written = []
    for sn in proc_data if samples is None else samples:
        for key, subs in proc_data.get(sn, {}).items():
            if data_keys is not None and key not in data_keys:
                continue
            for sub, value in subs.items():
                if (sub_keys is not None and sub not in sub_keys) or isinstance(value, FrameStack):
                    continue
                written.append(_save_one(f, sn, key, sub, value))
    return written


def _save_one(f, sn, key, sub, value):
    g = f.require_group(f"{L.sample_path(sn)}/{key}")
    if isinstance(value, MatrixWithCoords) or (isinstance(value, list) and value
                                               and isinstance(value[0], MatrixWithCoords)):
        mats = value if isinstance(value, list) else [value]
        first = mats[0]
        for name, v in ((L.ATTR_XC, first.xc), (L.ATTR_YC, first.yc)):
            g.attrs[name] = np.asarray(v, dtype=np.float64)
        g.attrs[L.ATTR_XC_LABEL] = str(first.xc_label or "")
        g.attrs[L.ATTR_YC_LABEL] = str(first.yc_label or "")
        g.attrs[X.ATTR_TYPE] = X.MATRIX
        if sub in g:
            del g[sub]
        sg = g.create_group(sub)
        stack = isinstance(value, list)
        sg.create_dataset(L.SIGNAL, data=np.stack([m.d for m in mats]) if stack else first.d)
        if all(m.err is not None for m in mats):
            sg.create_dataset(L.ERR, data=np.stack([m.err for m in mats]) if stack else first.err)
        sg.attrs[X.ATTR_LEN] = np.int64(len(mats) if stack else 1)
        return sg.name
    arr = np.asarray(value)
    if arr.dtype == object:
        raise RecipeError(f"proc_data[{sn!r}][{key!r}][{sub!r}] holds {type(value).__name__}, "
                          "which cannot be saved; store arrays or MatrixWithCoords")
    if X.ATTR_TYPE not in g.attrs:
        g.attrs[X.ATTR_TYPE] = X.NDARRAY
    if sub in g:
        del g[sub]
    return g.create_dataset(sub, data=arr).name
