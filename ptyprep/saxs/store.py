"""Writer (and small readers) of the ``proc_data`` file; names come from the layout.

All functions take an open ``h5py.File``; only one process writes (rank 0).
Big datasets (``qphi``, ``Iq``) are pre-sized, chunked one frame per chunk,
gzip-compressed (readable without plugins) and filled chunk by chunk.
"""

import h5py
import numpy as np

from ..layout.filters import dataset_filters
from ..errors import LayoutError
from ..layout import nexus as NX
from ..layout import procdata as L
from . import lixfile as X
from .qgrid import phi_centres, phi_edges, q_bin_bounds


def init_root(f, detectors, qgrid, nphi):
    """Write the root attributes of a new proc_data file.

    Parameters
    ----------
    f : h5py.File
    detectors : list of dict
        The ``@detectors`` entries (:func:`ptyprep.saxs.lixfile.detector_entry`).
    qgrid : (Nq,) q centres, 1/Å;  nphi : int
    """
    f.attrs[L.ATTR_LAYOUT] = L.LAYOUT_NAME
    f.attrs[L.ATTR_LAYOUT_VERSION] = L.LAYOUT_VERSION
    f.attrs[L.ATTR_DETECTORS] = L.to_json(detectors)
    f.attrs[L.ATTR_QGRID] = np.asarray(qgrid, dtype=np.float64)
    f.attrs[L.ATTR_NPHI] = np.int64(nphi)
    f.attrs[L.ATTR_Q_UNIT] = L.Q_UNIT
    f.attrs[L.ATTR_PHI_CONVENTION] = L.PHI_CONVENTION
    X.mark_root(f)


def check_root(f, detectors, qgrid, nphi):
    """Check an existing file's root against ``qgrid``/``nphi``; write nothing it holds.

    The root of a file lixtools wrote is left as it is; in ptyprep's own file
    ``@detectors`` is refreshed when other detectors are given.
    """
    old_q, old_n = np.asarray(f.attrs[L.ATTR_QGRID]), int(f.attrs[L.ATTR_NPHI])
    if old_n != nphi or old_q.shape != np.shape(qgrid) or not np.allclose(old_q, qgrid):
        raise LayoutError(f"{f.filename!r} was made with Nphi={old_n} and {old_q.size} q bins; "
                          f"cannot continue it with Nphi={nphi} and {np.size(qgrid)} q bins "
                          "(use a new output file)")
    if detectors and L.ATTR_LAYOUT in f.attrs:
        text = L.to_json(detectors)
        if str(f.attrs.get(L.ATTR_DETECTORS, "")) != text:
            f.attrs[L.ATTR_DETECTORS] = text


def read_root(f):
    """``{"detectors", "qgrid", "nphi"}`` of a proc_data file (ptyprep's or lixtools')."""
    if L.ATTR_QGRID not in f.attrs:
        raise LayoutError(f"{f.filename!r} is not a proc_data file (no @{L.ATTR_QGRID})")
    entries = L.from_json(f.attrs[L.ATTR_DETECTORS]) if L.ATTR_DETECTORS in f.attrs else []
    return {"detectors": [X.ptyprep_detector(e) for e in entries],
            "qgrid": np.asarray(f.attrs[L.ATTR_QGRID], dtype=np.float64),
            "nphi": int(f.attrs[L.ATTR_NPHI])}


def samples(f):
    """Imported sample names (groups with ``@source``), in file order."""
    return [k for k in f if isinstance(f[k], h5py.Group) and L.ATTR_SOURCE in f[k].attrs]


def write_sample(f, sn, source, header, scan, spec=None):
    """Create or refresh ``/{sn}`` with ``@source``, ``@header``, ``@scan`` and scan datasets.

    ``spec`` (``{"name", "options", "frames"}``) tells every rank how to reopen the raw data.
    """
    g = f.require_group(L.sample_path(sn))
    g.attrs[L.ATTR_SOURCE] = str(source)
    if spec is not None:
        g.attrs[L.ATTR_SOURCE_SPEC] = L.to_json(spec)
    g.attrs[L.ATTR_HEADER] = L.to_json(header)
    g.attrs[L.ATTR_SCAN] = L.to_json(X.lix_scan(scan))
    sg = g.require_group(L.SCAN)
    X.mark_data_key(sg)
    write_axis(sg, L.SCAN_SLOW, scan["slow_positions"], long_name=scan["slow_motor"])
    write_axis(sg, L.SCAN_FAST, scan["fast_positions"], long_name=scan["fast_motor"])
    return g


def read_sample(f, sn):
    """``{"source", "header", "scan", "spec"}`` of sample ``sn`` (spec None in older files)."""
    if sn not in f or L.ATTR_SOURCE not in f[sn].attrs:
        raise LayoutError(f"sample {sn!r} is not in {f.filename!r}; samples: {samples(f)}")
    a = f[sn].attrs
    return {"source": str(a[L.ATTR_SOURCE]), "header": L.from_json(a[L.ATTR_HEADER]),
            "scan": X.ptyprep_scan(L.from_json(a[L.ATTR_SCAN])),
            "spec": L.from_json(a[L.ATTR_SOURCE_SPEC]) if L.ATTR_SOURCE_SPEC in a else None}


def set_source(f, sn, source, spec=None):
    a = f[L.sample_path(sn)].attrs
    a[L.ATTR_SOURCE] = str(source)
    if spec is not None:
        a[L.ATTR_SOURCE_SPEC] = L.to_json(spec)


def _frames_dataset(parent, name, shape, compression):
    if name in parent:
        ds = parent[name]
        if ds.shape == shape:
            return ds
        del parent[name]
    ds = parent.create_dataset(name, shape=shape, dtype=np.float32, fillvalue=np.nan,
                               chunks=(1,) + shape[1:], **dataset_filters(compression))
    ds.attrs[L.ATTR_FRAMES_DONE] = np.int64(0)
    return ds


def create_qphi(f, sn, n_frames, qgrid, nphi, sub=L.MERGED, compression="gzip"):
    """Pre-size ``qphi/<sub>/d`` ``(N, Nphi, Nq)`` with its axes; returns the dataset."""
    qg = f.require_group(f"{L.sample_path(sn)}/{L.QPHI}")
    if L.ATTR_XC not in qg.attrs:       # lixtools' own labels, in a file it wrote, stay
        qg.attrs[L.ATTR_XC], qg.attrs[L.ATTR_YC] = np.asarray(qgrid, float), phi_centres(nphi)
        qg.attrs[L.ATTR_XC_LABEL], qg.attrs[L.ATTR_YC_LABEL] = "q", "phi"
    g = f.require_group(L.qphi_group(sn, sub))
    ds = _frames_dataset(g, L.SIGNAL, (n_frames, nphi, len(qgrid)), compression)
    X.mark_matrix(g, n_frames)
    write_axis(g, L.AXIS_Q, qgrid, units=L.Q_UNIT)
    write_axis(g, L.AXIS_PHI, phi_centres(nphi), units="degree")
    lo, hi = q_bin_bounds(qgrid)
    write_axis(g, L.AXIS_Q_LO, lo, units=L.Q_UNIT)
    write_axis(g, L.AXIS_Q_HI, hi, units=L.Q_UNIT)
    write_axis(g, L.AXIS_PHI_EDGES, phi_edges(nphi), units="degree")
    set_nxdata(g, L.SIGNAL, [".", L.AXIS_PHI, L.AXIS_Q])
    return ds


def create_qphi_err(f, sn, n_frames, qgrid, nphi, sub=L.MERGED, compression="gzip"):
    """Pre-size ``qphi/<sub>/err`` (Poisson standard deviation, shaped like ``d``)."""
    g = f.require_group(L.qphi_group(sn, sub))
    return _frames_dataset(g, L.ERR, (n_frames, nphi, len(qgrid)), compression)


def write_iphi(f, sn, values, nphi, qrange, sub=L.MERGED, compression="gzip"):
    """(Re)write ``Iphi/<sub>`` ``(N, Nphi)`` with ``@qrange`` and the ``phi`` axis (NXdata)."""
    g = f.require_group(f"{L.sample_path(sn)}/{L.IPHI}")
    if sub in g:
        del g[sub]
    ds = g.create_dataset(sub, data=np.asarray(values, dtype=np.float32),
                          chunks=(1, nphi) if len(values) else None,
                          **dataset_filters(compression))
    ds.attrs[L.ATTR_QRANGE] = np.asarray(qrange, dtype=np.float64)
    g.attrs[L.ATTR_QRANGE] = np.asarray(qrange, dtype=np.float64)
    write_axis(g, L.AXIS_PHI, phi_centres(nphi), units="degree")
    set_nxdata(g, sub, [".", L.AXIS_PHI])
    X.mark_data_key(g)
    return ds


def create_iq(f, sn, n_frames, qgrid, sub=L.MERGED, compression="gzip"):
    """Pre-size ``Iq/<sub>`` ``(N, Nq)`` with the ``q`` axis beside it."""
    g = f.require_group(f"{L.sample_path(sn)}/{L.IQ}")
    g.attrs[L.ATTR_QGRID] = np.asarray(qgrid, float)
    ds = _frames_dataset(g, sub, (n_frames, len(qgrid)), compression)
    write_axis(g, L.AXIS_Q, qgrid, units=L.Q_UNIT)
    set_nxdata(g, sub, [".", L.AXIS_Q])
    X.mark_data_key(g)
    return ds


def write_rows(ds, start, rows):
    """Write ``rows`` at ``ds[start:]`` and advance ``@frames_done``."""
    ds[start:start + len(rows)] = rows
    done = max(int(ds.attrs.get(L.ATTR_FRAMES_DONE, 0)), start + len(rows))
    ds.attrs[L.ATTR_FRAMES_DONE] = np.int64(done)


def frames_done(f, path):
    """Frames already written in dataset ``path`` (0 if absent)."""
    return int(f[path].attrs.get(L.ATTR_FRAMES_DONE, 0)) if path in f else 0


def write_attr(f, sn, name, values):
    """(Re)write ``attrs/<name>`` (``(N,)`` or ``(N, k)`` float64)."""
    g = f.require_group(f"{L.sample_path(sn)}/{L.ATTRS}")
    X.mark_data_key(g)
    if name in g:
        del g[name]
    g.create_dataset(name, data=np.asarray(values, dtype=np.float64))


def read_attr(f, sn, name):
    path = L.attr_path(sn, name)
    if path not in f:
        group = f.get(L.data_group(sn, L.ATTRS))
        have = list(group) if group is not None else []
        raise LayoutError(f"attribute {name!r} of sample {sn!r} does not exist; "
                          f"extract it first (existing: {have})")
    return np.asarray(f[path][()])


def _image_group(f, path, data, ycoords, xcoords, ylabel, xlabel, compression="gzip"):
    if path in f:
        del f[path]
    g = f.require_group(path)
    data = np.asarray(data, dtype=np.float64)
    g.create_dataset(L.SIGNAL, data=data, **dataset_filters(compression))
    write_axis(g, L.AXIS_Y, ycoords, long_name=ylabel)
    write_axis(g, L.AXIS_X, xcoords, long_name=xlabel)
    axes = ["."] * (data.ndim - 2) + [L.AXIS_Y, L.AXIS_X]
    set_nxdata(g, L.SIGNAL, axes)
    X.mark_matrix(g, data.shape[0] if data.ndim > 2 else 1)
    return g


def _coords_attrs(g, xcoords, ycoords, xlabel, ylabel):
    g.attrs[L.ATTR_XC], g.attrs[L.ATTR_YC] = np.asarray(xcoords, float), np.asarray(ycoords, float)
    g.attrs[L.ATTR_XC_LABEL], g.attrs[L.ATTR_YC_LABEL] = str(xlabel), str(ylabel)


def write_map(f, sn, name, data, slow, fast, slow_motor, fast_motor, **attrs):
    """Write ``maps/<name>/d`` ``(n_slow, n_fast)`` (or ``(k, ...)``) with motor axes."""
    mg = f.require_group(f"{L.sample_path(sn)}/{L.MAPS}")
    if L.ATTR_XC in mg.attrs and (len(mg.attrs[L.ATTR_XC]) != len(fast)
                                  or len(mg.attrs[L.ATTR_YC]) != len(slow)):
        raise LayoutError(f"map {name!r} of {sn!r} is on a grid of shape {(len(slow), len(fast))}, "
                          "unlike the maps already there; every map of a sample shares one grid")
    _coords_attrs(mg, fast, slow, fast_motor, slow_motor)
    g = _image_group(f, L.map_group(sn, name), data, slow, fast, slow_motor, fast_motor)
    for k, v in attrs.items():
        g.attrs[k] = v
    return g


def read_map(f, sn, name):
    """``(data, slow, fast, slow_motor, fast_motor, attrs)`` of ``maps/<name>``."""
    path = L.map_group(sn, name)
    if path not in f:
        raise LayoutError(f"map {name!r} of sample {sn!r} does not exist; "
                          "make it with make_map_from_attr first")
    g = f[path]
    return (g[L.SIGNAL][()], *image_axes(g), dict(g.attrs))


def image_axes(g):
    """``(y, x, y_label, x_label)`` of a map or tomogram group: its ``y``/``x`` axis datasets
    (labels from ``@long_name``), or in a file lixtools wrote, which has none, the data key's
    ``@yc``/``@xc`` and their labels."""
    if L.AXIS_Y not in g:
        a = g.parent.attrs
        return (np.asarray(a[L.ATTR_YC], float), np.asarray(a[L.ATTR_XC], float),
                str(a.get(L.ATTR_YC_LABEL, "")), str(a.get(L.ATTR_XC_LABEL, "")))
    return (g[L.AXIS_Y][()], g[L.AXIS_X][()], str(g[L.AXIS_Y].attrs.get(L.ATTR_LONG_NAME, "")),
            str(g[L.AXIS_X].attrs.get(L.ATTR_LONG_NAME, "")))


def write_tomo(f, sn, name, image, coords, label, rot_cen, algorithm):
    """Write ``tomo/<name>/d`` ``(n, n)`` with translation coordinates on both axes."""
    tg = f.require_group(f"{L.sample_path(sn)}/{L.TOMO}")
    _coords_attrs(tg, coords, coords, label, label)
    g = _image_group(f, L.tomo_group(sn, name), image, coords, coords, label, label)
    g.attrs[L.ATTR_ROT_CEN] = float(rot_cen)
    g.attrs[L.ATTR_ALGORITHM] = algorithm
    return g


def append_attr(f, sn, name, start, values):
    """Rewrite ``attrs/<name>`` as its first ``start`` frames followed by ``values``.

    Raises LayoutError when the attribute holds fewer than ``start`` frames.
    """
    path = L.attr_path(sn, name)
    values = np.asarray(values, dtype=np.float64)
    old = np.asarray(f[path][:start], dtype=np.float64) if path in f else \
        np.zeros((0,) + values.shape[1:])
    if len(old) != start:
        raise LayoutError(f"attrs/{name} of sample {sn!r} in {f.filename!r} holds {len(old)} "
                          f"frames, expected {start}; the file is not a prefix of this scan")
    write_attr(f, sn, name, np.concatenate([old, values]))


def append_iphi(f, sn, start, values, nphi, qrange, sub=L.MERGED, compression="gzip"):
    """:func:`write_iphi` of the first ``start`` rows of ``Iphi/<sub>`` followed by ``values``."""
    path = L.iphi_path(sn, sub)
    old = f[path][:start] if path in f else np.zeros((0, nphi), np.float32)
    if len(old) != start:
        raise LayoutError(f"Iphi/{sub} of sample {sn!r} holds {len(old)} frames, expected {start}")
    return write_iphi(f, sn, np.concatenate([old, values]), nphi, qrange, sub, compression)


def set_nxdata(group, signal, axes):
    """Mark ``group`` as NeXus ``NXdata`` so silx/h5web/PyMca show axes.

    Parameters
    ----------
    group : h5py.Group
    signal : str
        Name of the image dataset inside ``group``.
    axes : list of str
        One name per dimension of the signal, ``"."`` for a dimension
        without an axis dataset (the frame axis).
    """
    group.attrs[NX.NX_CLASS] = NX.NXDATA
    group.attrs[NX.SIGNAL] = signal
    group.attrs[NX.AXES] = np.array(axes, dtype=h5py.string_dtype())
    for i, name in enumerate(axes):
        if name != ".":
            group.attrs[f"{name}{NX.INDICES_SUFFIX}"] = np.int64(i)


def write_axis(group, name, values, units=None, long_name=None):
    """(Re)write the 1D axis dataset ``name`` in ``group``."""
    if name in group:
        del group[name]
    ds = group.create_dataset(name, data=np.asarray(values, dtype=np.float64))
    if units:
        ds.attrs[L.ATTR_UNITS] = units
    if long_name:
        ds.attrs[L.ATTR_LONG_NAME] = long_name
    return ds
