"""Summaries of proc_data files (``ptyprep inspect``)."""

from pathlib import Path

import numpy as np

from ..layout import procdata as L


def is_procdata(h5file):
    """True when ``h5file`` (an open h5py.File or a path) follows the proc_data layout."""
    import h5py

    if isinstance(h5file, (str, Path)):
        try:
            with h5py.File(h5file, "r") as f:
                return is_procdata(f)
        except OSError:
            return False
    return h5file.attrs.get(L.ATTR_LAYOUT) == L.LAYOUT_NAME or (
        L.ATTR_QGRID in h5file.attrs and L.ATTR_NPHI in h5file.attrs)


def summarize(path):
    """JSON-serialisable summary: q grid, Nphi, detectors and per sample frames, keys, maps, tomo."""
    import h5py

    from . import store as W

    with h5py.File(path, "r") as f:
        root = W.read_root(f)
        q = root["qgrid"]
        out = {"file": str(path), "layout": str(f.attrs.get(L.ATTR_LAYOUT, "")),
               "nphi": root["nphi"], "nq": int(q.size),
               "q_range": [float(q[0]), float(q[-1])] if q.size else [],
               "detectors": [d.get("name", "?") for d in root["detectors"]], "samples": {}}
        for sn in list(W.samples(f)) + ([L.OVERALL] if L.OVERALL in f else []):
            g = f[sn]
            info = {"data_keys": {k: sorted(g[k]) for k in g if k in L.DATA_KEYS}}
            if L.ATTR_SOURCE in g.attrs:
                scan = W.read_sample(f, sn)["scan"]
                info.update(source=str(g.attrs[L.ATTR_SOURCE]), frames=int(scan["n_frames"]),
                            shape=list(scan["shape"]), snake=bool(scan["snake"]),
                            motors=[scan["slow_motor"], scan["fast_motor"]])
                qp = L.qphi_path(sn)
                if qp in f:
                    info["frames_processed"] = int(f[qp].attrs.get(L.ATTR_FRAMES_DONE,
                                                                   f[qp].shape[0]))
            for key in (L.MAPS, L.TOMO):
                if key in g:
                    info[key] = {k: list(g[key][k][L.SIGNAL].shape) for k in g[key]
                                 if isinstance(g[key][k], h5py.Group) and L.SIGNAL in g[key][k]}
            out["samples"][sn] = info
    return _plain(out)


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
