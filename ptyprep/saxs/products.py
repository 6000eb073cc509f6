"""Rank-0 steps of :class:`~ptyprep.saxs.ScanAnalysis` on an open proc_data file.

Maps (with ``overall`` stitching, transmission and absorption), tomograms and
background subtraction: small enough for one process, each reads what it needs
and writes its result through :mod:`ptyprep.saxs.store`.
"""

import numpy as np

from ..errors import RecipeError
from ..layout import procdata as L
from . import store as W
from . import maps as M
from .rawdata import remap_spec
from .tomo import is_angle_axis, reconstruct


def init_file(f, detectors, qgrid, nphi, map_path=None):
    """Write or check the root of a proc_data file; ``map_path`` rewrites every ``@source``.

    ``detectors`` are the ``@detectors`` entries
    (:func:`ptyprep.saxs.lixfile.detector_entry`).  An existing file keeps its root
    (a file lixtools wrote is not marked as ptyprep's).
    """
    if L.ATTR_QGRID in f.attrs:
        root = W.read_root(f)
        qgrid = root["qgrid"] if qgrid is None else qgrid
        nphi = root["nphi"] if nphi is None else int(nphi)
        W.check_root(f, detectors, qgrid, nphi)
    else:
        if qgrid is None:
            raise RecipeError(f"{f.filename!r} is a new file: give qgrid= (q bin centres in "
                              "1/Å, e.g. make_qgrid((0.005, 0.3, 0.002)))")
        W.init_root(f, detectors, qgrid, 60 if nphi is None else int(nphi))
    if map_path is not None:
        for sn in W.samples(f):
            spec = W.read_sample(f, sn)["spec"]
            W.set_source(f, sn, map_path(f[sn].attrs[L.ATTR_SOURCE]),
                         None if spec is None else remap_spec(spec, map_path))
    return W.read_root(f)


def prepare_outputs(f, sn, n, qgrid, nphi, normalize, errors, compression):
    """Pre-size ``qphi``/``Iq`` (and ``err``) of ``sn``: ``(datasets, frames done, monitor)``."""
    out = [W.create_qphi(f, sn, n, qgrid, nphi, compression=compression),
           W.create_iq(f, sn, n, qgrid, compression=compression)]
    if errors:
        out.append(W.create_qphi_err(f, sn, n, qgrid, nphi, compression=compression))
    done = min(W.frames_done(f, ds.name) for ds in out)
    monitor = None
    if normalize:
        if L.attr_path(sn, "incident") not in f:
            raise RecipeError(f"normalize_monitor needs the incident monitor of sample {sn!r}, "
                              "which has none; give the source an incident monitor (hdf5: "
                              "incident = '/path'; files: monitor_columns)")
        monitor = W.read_attr(f, sn, "incident")[:n]
    return out, done, monitor


def build_maps(f, names, save_overall, correct, ref_trans, samples=None, pad_missing=False):
    """``maps/<name>`` of every sample (and ``overall``).

    ``pad_missing`` (a scan still being acquired): attributes shorter than the
    raster are padded with NaN, so points not measured yet are NaN in the maps.
    """
    sns = W.samples(f)
    if not sns:
        raise RecipeError("no sample imported; call import_raw_data first")
    if samples is not None:
        unknown = sorted(set(samples) - set(sns))
        if unknown:
            raise RecipeError(f"sample(s) {unknown} are not imported; samples: {sns}")
        sns = [s for s in sns if s in samples]
    scans = {sn: W.read_sample(f, sn)["scan"] for sn in sns}
    t_ref = None
    if "absorption" in names:
        if ref_trans is not None:
            t_ref = float(ref_trans)
        else:
            t_ref = M.reference_transmission(np.concatenate(
                [W.read_attr(f, sn, "transmission") for sn in sns]))
    per_name = {}
    for sn in sns:
        sc = scans[sn]
        shape, slow, fast = sc["shape"], np.asarray(sc["slow_positions"]), np.asarray(sc["fast_positions"])
        for name in names:
            extra = {}
            if name == "absorption":
                values = M.absorption(W.read_attr(f, sn, "transmission"), t_ref)
                W.write_attr(f, sn, "absorption", values)
                extra[L.ATTR_T_REF] = t_ref
            else:
                values = W.read_attr(f, sn, name)
                if correct and name not in L.MONITOR_ATTRS:
                    values = M.transmission_correction(values, W.read_attr(f, sn, "transmitted"),
                                                       W.read_attr(f, sn, "incident"))
            need = int(shape[0]) * int(shape[1])
            if pad_missing and len(values) < need:
                pad = np.full((need - len(values),) + np.shape(values)[1:], np.nan)
                values = np.concatenate([np.asarray(values, dtype=np.float64), pad])
            grid = M.attr_to_map(values, shape, sc["snake"])
            W.write_map(f, sn, name, grid, slow, fast, sc["slow_motor"], sc["fast_motor"], **extra)
            per_name.setdefault(name, []).append((grid, slow, fast, extra))
    if not save_overall:
        return
    motors = {(scans[sn]["slow_motor"], scans[sn]["fast_motor"]) for sn in sns}
    if len(motors) > 1:
        raise RecipeError(f"samples were scanned with different motors {sorted(motors)}; they "
                          "cannot share an overall grid (use save_overall=False)")
    slow_m, fast_m = motors.pop()
    prec = min(float(scans[sn]["prec"]) for sn in sns)
    for name, items in per_name.items():
        overall, slow, fast = M.stitch([i[0] for i in items], [i[1] for i in items],
                                       [i[2] for i in items], prec)
        W.write_map(f, L.OVERALL, name, overall, slow, fast, slow_m, fast_m, **items[0][3])


def build_tomo(f, names, algorithm, center, sample=None):
    """``tomo/<name>`` of sinogram maps of ``sample`` (default ``overall`` when it has maps)."""
    targets = [sample] if sample else (
        [L.OVERALL] if f"{L.OVERALL}/{L.MAPS}" in f else W.samples(f))
    for sn in targets:
        for name in names:
            d, slow, fast, slabel, flabel, attrs = W.read_map(f, sn, name)
            if not is_angle_axis(slabel):
                raise RecipeError(f"map {name!r} of {sn!r} has slow axis {slabel!r}, "
                                  "not a rotation angle; tomography needs a map whose "
                                  "slow motor is a rotation (degrees)")
            if d.ndim != 2:
                raise RecipeError(f"map {name!r} is vector-valued {d.shape}; "
                                  "reconstruct scalar maps only")
            cen = center if center is not None else attrs.get(L.ATTR_ROT_CEN)
            image, coords, cen = reconstruct(d, slow, fast, cen, algorithm)
            W.write_tomo(f, sn, name, image, coords, flabel, cen, algorithm)


def subtract_background(f, sns, bkg, data_key, scale, bkg_frames, chunk, qgrid, nphi, compression):
    if data_key not in (L.QPHI, L.IQ):
        raise RecipeError(f"background subtraction works on data key 'qphi' or 'Iq', not {data_key!r}")
    path_of = {L.QPHI: lambda s, sub: L.qphi_path(s, sub), L.IQ: lambda s, sub: L.iq_path(s, sub)}
    if isinstance(bkg, str):
        path = path_of[data_key](bkg, L.MERGED)
        if path not in f:
            raise RecipeError(f"background sample {bkg!r} has no {data_key}/merged; import and "
                              "process it first")
        ds = f[path]
        idx = np.arange(ds.shape[0]) if bkg_frames is None else np.asarray(bkg_frames, dtype=np.int64)
        total = np.zeros(ds.shape[1:])
        count = np.zeros(ds.shape[1:])
        for start in range(0, len(idx), chunk):
            block = np.asarray(ds[np.sort(idx[start:start + chunk])], dtype=np.float64)
            ok = np.isfinite(block)
            total += np.where(ok, block, 0).sum(axis=0)
            count += ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    else:
        ref = np.asarray(bkg, dtype=np.float64)
    for sn in sns:
        src_path = path_of[data_key](sn, L.MERGED)
        if src_path not in f:
            raise RecipeError(f"sample {sn!r} has no {data_key}/merged; run process() first")
        src = f[src_path]
        if ref.shape != src.shape[1:]:
            raise RecipeError(f"background of shape {ref.shape} does not match one frame of "
                              f"{data_key} {src.shape[1:]}")
        n = src.shape[0]
        if data_key == L.QPHI:
            dst = W.create_qphi(f, sn, n, qgrid, nphi, L.SUBTRACTED, compression)
        else:
            dst = W.create_iq(f, sn, n, qgrid, L.SUBTRACTED, compression)
        for start in range(0, n, chunk):
            block = src[start:start + chunk]
            W.write_rows(dst, start, (block - scale * ref).astype(np.float32))


# -- a scan followed while it is acquired (ptyprep watch) -----------------------------------------
def append_chunk(f, sn, start, rows, monitors, saxs, qgrid, phi, compression="gzip"):
    """Append frames ``start..`` of a growing sample: rows, monitors, ``Iphi``, attributes.

    Parameters
    ----------
    rows : list of ndarray
        ``[qphi (n, Nphi, Nq), Iq (n, Nq)(, err)]`` float32 of the frames.
    monitors : dict
        ``{name: (n,)}`` monitor values of the frames (``transmission`` is added).
    saxs : SaxsSection
        ``attrs``, ``iphi_qrange``, ``errors``, ``maps``, ``ref_trans`` are used.

    ``attrs/absorption`` (when ``saxs.maps`` lists it) is recomputed for all frames
    so far, so every attribute has the same length.
    """
    from . import extract as X

    paths = [L.qphi_path(sn), L.iq_path(sn)] + ([L.err_path(sn)] if saxs.errors else [])
    for path, block in zip(paths, rows):
        W.write_rows(f[path], start, block)
    new = dict(monitors)
    if "incident" in new and "transmitted" in new:
        new["transmission"] = M.transmission(new["incident"], new["transmitted"])
    iphi, values = X.chunk_attrs({L.QPHI: rows[0], L.IQ: rows[1]},
                                 np.arange(start, start + len(rows[0])), sn, saxs.attrs, qgrid,
                                 phi, saxs.iphi_qrange)
    if iphi is not None:
        W.append_iphi(f, sn, start, iphi, saxs.nphi, list(saxs.iphi_qrange),
                      compression=compression)
    for name, v in {**new, **values}.items():
        W.append_attr(f, sn, name, start, v)
    if "absorption" in saxs.maps and L.attr_path(sn, "transmission") in f:
        trans = W.read_attr(f, sn, "transmission")
        t_ref = M.reference_transmission(trans) if saxs.ref_trans is None else saxs.ref_trans
        W.write_attr(f, sn, "absorption", M.absorption(trans, t_ref))


def followed_products(f, sn, raw, spec, saxs, total, complete, final):
    """Scan record and maps of a growing sample; tomograms too when ``final``.

    ``complete``: every frame of the raster is there; the record is then the one a
    one-shot import writes, else provisional and the maps NaN where not measured.
    ``raw`` is the open :class:`~ptyprep.saxs.rawdata.SampleFrames`.
    """
    from . import rawdata as R

    where = R.spec_path(spec)
    scan, _, header = R.read_scan(raw, sn, where, saxs.force_uniform_steps, saxs.prec,
                                  total=None if complete else total)
    scan["n_frames"] = total
    W.write_sample(f, sn, where, header, scan, spec)
    if saxs.maps:
        build_maps(f, list(saxs.maps), saxs.save_overall, saxs.correct_for_transmission,
                   saxs.ref_trans, pad_missing=not complete)
    if final and saxs.tomo:
        build_tomo(f, list(saxs.tomo), saxs.tomo_algorithm, saxs.tomo_center)
