"""``ScanAnalysis``: the lixtools workflow (import, process, attributes, maps, tomograms).

Only rank 0 writes the proc_data file (h5py from pip is not parallel).  The
heavy steps are parallel: :meth:`ScanAnalysis.process` splits every chunk of
frames over the ranks with :class:`~ptyprep.loadmanager.LoadManager`, each
rank reads its raw frames and integrates them, rank 0 gathers with
``comm.gatherv`` and writes; :meth:`~ScanAnalysis.extract_attr` does the same
while every rank reads the file read-only.  Small steps (import, maps,
tomograms) run on rank 0 and broadcast their outcome, so a bad input raises
the same error on every rank and nobody waits forever.
"""

import contextlib
import inspect
import logging
from pathlib import Path

import h5py
import numpy as np

from ..comm import world
from ..errors import PtyprepError, RecipeError, SourceError
from ..integrate import merge_maps, phi_centres
from ..layout import procdata as L
from ..loadmanager import LoadManager
from ..writers import procdata as W
from . import attrs as A
from . import maps as M
from .tomo import is_angle_axis, reconstruct

log = logging.getLogger(__name__)


def lix_module():
    """The registered LiX source class, carrying the raw-file helpers (``Raw``, ``list_samples``)."""
    from ..registry import get_source

    return get_source("nsls2-lix")


class ScanAnalysis:
    """Processed results of scanning SAXS/WAXS scans in one proc_data file.

    Parameters
    ----------
    fn : str or Path
        The proc_data file; an existing one is continued.
    detectors : list of Detector, optional
        Needed to :meth:`process`; their datasets are checked on import.
    qgrid : (Nq,) array_like, optional
        q bin centres in 1/Å (see :func:`ptyprep.integrate.make_qgrid`); taken
        from the file when it exists.
    nphi : int, optional
        Number of φ bins (even); taken from the file when it exists, else 60.
    comm : communicator, optional
        Default :func:`ptyprep.comm.world`.
    replace_path : (old, new), optional
        Rewrite the start of every sample's ``@source`` (raw files moved).
    compression : str
        Dataset compression (default gzip, readable without plugins).
    """

    def __init__(self, fn, detectors=None, qgrid=None, nphi=None, comm=None, replace_path=None,
                 compression="gzip"):
        self.fn = str(fn)
        self.comm = comm if comm is not None else world()
        self.detectors = list(detectors or [])
        self.compression = compression
        self.replace_path = tuple(replace_path) if replace_path else None
        if nphi is not None and (isinstance(nphi, bool) or not isinstance(nphi, (int, np.integer))
                                 or nphi < 2 or nphi % 2):
            raise RecipeError(f"nphi={nphi!r} must be an even integer >= 2 so that a 180° roll "
                              "is exact; use e.g. 60")
        root = self._on_root(lambda: self._init_file(qgrid, nphi))
        self.qgrid, self.nphi = root["qgrid"], root["nphi"]
        self.phi = phi_centres(self.nphi)
        self._integrators = None

    # ------------------------------------------------------------------ plumbing
    def _on_root(self, func):
        """Run ``func`` on rank 0 and broadcast its result, or its PtyprepError, to all."""
        result = err = None
        if self.comm.rank == 0:
            try:
                result = func()
            except PtyprepError as exc:
                err = exc
        err, result = self.comm.bcast((err, result), root=0)
        if err is not None:
            raise err
        return result

    def _check_all(self, err):
        """Collective: raise on every rank the first error any rank hit."""
        errors = self.comm.allgather(err)
        for e in errors:
            if e is not None:
                raise e

    @contextlib.contextmanager
    def _open(self, mode="a"):
        with h5py.File(self.fn, mode) as f:
            yield f

    def _init_file(self, qgrid, nphi):
        exists = Path(self.fn).exists()
        with self._open("a") as f:
            if exists and L.ATTR_QGRID in f.attrs:
                root = W.read_root(f)
                qgrid = root["qgrid"] if qgrid is None else qgrid
                nphi = root["nphi"] if nphi is None else int(nphi)
                W.init_root(f, [d.to_json() for d in self.detectors] or root["detectors"],
                            qgrid, nphi)
            else:
                if qgrid is None:
                    raise RecipeError(f"{self.fn!r} is a new file: give qgrid= (q bin centres in "
                                      "1/Å, e.g. make_qgrid((0.005, 0.3, 0.002)))")
                W.init_root(f, [d.to_json() for d in self.detectors], qgrid,
                            60 if nphi is None else int(nphi))
            if self.replace_path:
                for sn in W.samples(f):
                    W.set_source(f, sn, self._map_path(f[sn].attrs[L.ATTR_SOURCE]))
            return W.read_root(f)

    def _map_path(self, path):
        path = str(path)
        if self.replace_path and path.startswith(self.replace_path[0]):
            return self.replace_path[1] + path[len(self.replace_path[0]):]
        return path

    def _read_meta(self):
        with self._open("r") as f:
            return {sn: W.read_sample(f, sn) for sn in W.samples(f)}

    @property
    def samples(self):
        """Names of the imported samples, in import order."""
        return list(self._on_root(self._read_meta))

    # ------------------------------------------------------------------ import
    def import_raw_data(self, files, force_uniform_steps=True, prec=0.001,
                        incident=None, transmitted=None):
        """Record every scan of one or several LiX raw files.

        Parameters
        ----------
        files : str or list of str
            Raw files; every scan (sample) of each is imported.
        force_uniform_steps : bool
            Snap motor positions (step to ``prec``, offset to ``10·prec``).
        prec : float
            Motor precision in motor units.
        incident, transmitted : str, optional
            Monitor fields (default LiX's ``em1_sum_all_mean_value`` /
            ``em2_sum_all_mean_value``); recorded as ``attrs/incident``,
            ``attrs/transmitted`` and ``attrs/transmission``.

        Returns
        -------
        list of str
            The imported sample names.
        """
        files = [files] if isinstance(files, (str, Path)) else list(files)
        return self._on_root(lambda: self._import(files, force_uniform_steps, prec,
                                                  incident, transmitted))

    def _import(self, files, uniform, prec, incident, transmitted):
        lix = lix_module()
        incident = incident or lix.INCIDENT
        transmitted = transmitted or lix.TRANSMITTED
        found = []
        with self._open("a") as f:
            existing = {sn: W.read_sample(f, sn)["source"] for sn in W.samples(f)}
            for fn in files:
                path = str(Path(self._map_path(fn)).resolve())
                if not Path(path).is_file():
                    raise SourceError(f"raw file {path!r} does not exist; check the path "
                                      "(or use replace_path when raw data moved)")
                for sn in lix.list_samples(path):
                    if existing.get(sn, path) != path or sn in found:
                        raise RecipeError(f"sample {sn!r} of {path!r} is already imported from "
                                          f"{existing.get(sn, 'another file')!r}; sample names "
                                          "must be unique in one proc_data file")
                    with lix.Raw(path, sn) as raw:
                        scan, mon = self._read_scan(raw, uniform, prec, incident, transmitted)
                    W.write_sample(f, sn, path, raw.start, scan)
                    for name, values in mon.items():
                        W.write_attr(f, sn, name, values)
                    found.append(sn)
        log.info("imported %d sample(s): %s", len(found), ", ".join(found))
        return found

    def _read_scan(self, raw, uniform, prec, incident, transmitted):
        geo = raw.geometry
        counts = {d.dataset: raw.num_frames(d.dataset) for d in self.detectors}
        if len(set(counts.values())) > 1:
            raise SourceError(f"detectors of {raw.path!r} scan {raw.sample!r} hold different "
                              f"numbers of frames {counts}; the scan is incomplete")
        slow_m, fast_m = geo["motors"]
        slow_v, fast_v = raw.motor(slow_m), raw.motor(fast_m)
        n = next(iter(counts.values())) if counts else len(fast_v)
        need = geo["shape"][0] * geo["shape"][1]
        if n < need:
            raise SourceError(f"scan shape {geo['shape']} of {raw.path!r} scan {raw.sample!r} "
                              f"needs {need} frames, the raw file holds {n}; fix the start "
                              "document's shape or re-export the complete scan")
        slow, fast = M.scan_axes(slow_v, fast_v, geo["shape"], geo["snake"], uniform, prec)
        scan = {"shape": geo["shape"], "snake": geo["snake"], "n_frames": n,
                "slow_motor": slow_m or "none", "fast_motor": fast_m,
                "slow_positions": slow, "fast_positions": fast,
                "force_uniform_steps": bool(uniform), "prec": float(prec),
                "exposure_s": geo["exposure_s"]}
        mon = {}
        i0, it = raw.monitor(incident), raw.monitor(transmitted)
        if i0 is not None and it is not None:
            mon = {"incident": i0[:n], "transmitted": it[:n],
                   "transmission": M.transmission(i0[:n], it[:n])}
        else:
            log.warning("scan %s: monitors %s/%s not found; no transmission", raw.sample,
                        incident, transmitted)
        return scan, mon

    # ------------------------------------------------------------------ processing
    def _get_integrators(self, split):
        if not self.detectors:
            raise RecipeError("no detectors given; create ScanAnalysis(..., detectors=[Detector(...)])"
                              " to process frames")
        if self._integrators is None:
            self._integrators = [d.integrator(self.qgrid, self.nphi, split=split)
                                 for d in self.detectors]
        return self._integrators

    def process(self, chunk_frames=32, split="bbox", normalize_monitor=False, samples=None):
        """q-φ maps (``qphi/merged/d``) and I(q) (``Iq/merged``) of every frame.

        Collective under MPI.  Continues where a previous run stopped
        (``@frames_done``).  No process holds more than a chunk of frames.

        Parameters
        ----------
        chunk_frames : int
            Frames per round (split over the ranks).
        split : {"bbox", "no", "full"}
            pyFAI pixel splitting.
        normalize_monitor : bool
            Divide each frame by its incident monitor.
        samples : list of str, optional
            Default all imported samples.
        """
        if chunk_frames < 1:
            raise RecipeError(f"chunk_frames={chunk_frames} must be >= 1")
        meta = self._on_root(self._read_meta)
        todo = list(meta) if samples is None else list(samples)
        for sn in todo:
            if sn not in meta:
                raise RecipeError(f"sample {sn!r} is not imported; samples: {list(meta)}")
        integrators = self._get_integrators(split)
        scales = [d.scale for d in self.detectors]
        lm = LoadManager(self.comm.size)
        f = h5py.File(self.fn, "a") if self.comm.rank == 0 else None
        try:
            for sn in todo:
                self._process_sample(f, sn, meta[sn], integrators, scales, lm, chunk_frames,
                                     normalize_monitor)
        finally:
            if f is not None:
                f.close()
        self.comm.barrier()

    def _process_sample(self, f, sn, meta, integrators, scales, lm, chunk, normalize):
        n = int(meta["scan"]["n_frames"])
        done = None
        if f is not None:
            dq = W.create_qphi(f, sn, n, self.qgrid, self.nphi, compression=self.compression)
            di = W.create_iq(f, sn, n, self.qgrid, compression=self.compression)
            done = min(W.frames_done(f, dq.name), W.frames_done(f, di.name))
            monitor = W.read_attr(f, sn, "incident") if normalize else None
        done, monitor = self.comm.bcast((done, monitor if f is not None else None), root=0)
        if done >= n:
            return
        lix = lix_module()
        raw, err = None, None
        try:
            raw = lix.Raw(self._map_path(meta["source"]), sn)
        except PtyprepError as exc:
            err = exc
        self._check_all(err)
        try:
            for start in range(done, n, chunk):
                share = lm.split(np.arange(start, min(start + chunk, n)))[self.comm.rank]
                err, qphi, iq = None, None, None
                try:
                    qphi, iq = self._integrate(raw, share, integrators, scales, monitor)
                except PtyprepError as exc:
                    err = exc
                self._check_all(err)
                qphi, iq = self.comm.gatherv(qphi), self.comm.gatherv(iq)
                if f is not None:
                    W.write_rows(dq, start, qphi)
                    W.write_rows(di, start, iq)
                    f.flush()
        finally:
            raw.close()

    def _integrate(self, raw, share, integrators, scales, monitor):
        nq = len(self.qgrid)
        if len(share) == 0:
            return (np.zeros((0, self.nphi, nq), np.float32), np.zeros((0, nq), np.float32))
        mon = None if monitor is None else monitor[share]
        maps, iqs = [], []
        for det, integ in zip(self.detectors, integrators):
            frames = raw.read_frames(det.dataset, share)
            m, i = integ.qphi_iq(frames, monitor=mon)
            maps.append(m)
            iqs.append(i[:, None, :])
        return merge_maps(maps, scales), merge_maps(iqs, scales)[:, 0, :]

    # ------------------------------------------------------------------ attributes
    def extract_attr(self, sn, attr_name, func, data_key="qphi", sub_key="merged",
                     chunk_frames=64, **kwargs):
        """Compute per-frame attribute(s) from ``proc_data[sn][data_key][sub_key]``.

        Parameters
        ----------
        sn : str, list of str or None
            Sample(s); None = all.
        attr_name : str or list of str
            One name, or one per column of a vector-valued result.
        func : callable or str
            First argument the data (one frame, or a stack for functions marked
            with :func:`~ptyprep.saxs.attrs.stack_function`); ``q``/``phi`` are
            passed when its signature names them.  Strings name a built-in
            (``get_roi``, ``hop``, ``iq_mean``, ``iphi_mean``).
        data_key, sub_key : str
            ``qphi``/``Iq``/``attrs`` and e.g. ``merged``/``subtracted``.
        **kwargs
            Passed to ``func`` (e.g. ``qphirange=[...]``, ``xrange=[...]``).
        """
        names = [attr_name] if isinstance(attr_name, str) else list(attr_name)
        if isinstance(func, str):
            if func not in A.BUILTINS:
                raise RecipeError(f"unknown attribute function {func!r}; built-ins: "
                                  f"{', '.join(A.BUILTINS)}")
            func = A.BUILTINS[func]
        if data_key not in (L.QPHI, L.IQ, L.ATTRS):
            raise RecipeError(f"data key {data_key!r} is not one of qphi, Iq, attrs")
        meta = self._on_root(self._read_meta)
        sns = list(meta) if sn is None else ([sn] if isinstance(sn, str) else list(sn))
        shapes = self._on_root(lambda: self._source_shapes(sns, data_key, sub_key))
        axes = _axis_kwargs(func, self.qgrid, self.phi)
        results = {}
        self.comm.barrier()
        with self._open("r") as f:
            for s in sns:
                results[s] = self._extract_one(f, s, L.data_path(s, data_key, sub_key), shapes[s],
                                               func, names, chunk_frames, {**axes, **kwargs})
        self.comm.barrier()

        def store():
            with self._open("a") as f:
                for s, values in results.items():
                    for k, name in enumerate(names):
                        W.write_attr(f, s, name, values if len(names) == 1 else values[:, k])

        self._on_root(store)

    def _source_shapes(self, sns, data_key, sub_key):
        with self._open("r") as f:
            out = {}
            for s in sns:
                if s not in W.samples(f):
                    raise RecipeError(f"sample {s!r} is not imported; samples: {W.samples(f)}")
                path = L.data_path(s, data_key, sub_key)
                if path not in f:
                    parent = f.get(f"{s}/{data_key}")
                    subs = [k for k in parent if k not in (L.AXIS_Q,)] if parent is not None else []
                    raise RecipeError(f"sub key {sub_key!r} of data key {data_key!r} does not exist "
                                      f"for sample {s!r} (existing: {subs}); run process() or "
                                      "subtract_background() first")
                out[s] = f[path].shape
            return out

    def _extract_one(self, f, sn, path, shape, func, names, chunk, kwargs):
        ds = f[path]
        n = shape[0]
        lm = LoadManager(self.comm.size)
        stack = getattr(func, "stack", False)
        pieces = []
        for start in range(0, n, chunk):
            share = lm.split(np.arange(start, min(start + chunk, n)))[self.comm.rank]
            err, res = None, None
            try:
                data = ds[share[0]:share[-1] + 1] if len(share) else None
                res = _apply(func, data, share, sn, stack, kwargs) if len(share) else None
                if res is not None and len(names) > 1 and (res.ndim != 2 or res.shape[1] != len(names)):
                    raise RecipeError(f"attribute function gave values of shape {res.shape[1:]} per "
                                      f"frame for the {len(names)} names {names}; they must match")
            except PtyprepError as exc:
                err = exc
            self._check_all(err)
            trail = next((t for t in self.comm.allgather(None if res is None else res.shape[1:])
                          if t is not None), ())
            res = np.zeros((0,) + tuple(trail)) if res is None else res
            gathered = self.comm.gatherv(np.ascontiguousarray(res, dtype=np.float64))
            if self.comm.rank == 0:
                pieces.append(gathered)
        return np.concatenate(pieces) if pieces else None

    # ------------------------------------------------------------------ maps and tomograms
    def make_map_from_attr(self, attr_names, save_overall=True, correct_for_transmission=False,
                           ref_trans=None, samples=None):
        """Maps ``maps/<attr>`` of every sample (and ``overall`` stitched on the union grid).

        ``absorption`` is computed from ``transmission`` as ``-ln(T/T_ref)``
        (clipped at 0) with ``T_ref = ref_trans`` or, automatically, the median
        of the top-decile transmissions of all samples pooled.  With
        ``correct_for_transmission`` other attributes are divided by
        ``transmitted / mean(transmitted)`` and beam-off points are NaN.
        ``samples`` restricts the maps (and ``overall``) to some samples.
        """
        names = [attr_names] if isinstance(attr_names, str) else list(attr_names)
        self._on_root(lambda: self._make_maps(names, save_overall, correct_for_transmission,
                                              ref_trans, samples))

    def _make_maps(self, names, save_overall, correct, ref_trans, samples):
        with self._open("a") as f:
            _build_maps(f, names, save_overall, correct, ref_trans, samples)

    def calc_tomo_from_map(self, attr_names, algorithm="fbp", center=None, sample=None):
        """Tomograms ``tomo/<attr>`` of sinogram maps (slow axis = rotation angle).

        ``sample`` defaults to ``overall`` when it has maps, else every sample.
        ``center`` (translation units) defaults to the map's stored ``rot_cen`` or
        is searched for.
        """
        names = [attr_names] if isinstance(attr_names, str) else list(attr_names)

        def run():
            with self._open("a") as f:
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

        self._on_root(run)

    def subtract_background(self, sn, bkg, data_key="Iq", scale=1.0, bkg_frames=None,
                            chunk_frames=64):
        """``{data_key}/subtracted = merged − scale · background`` for sample(s) ``sn``.

        ``bkg`` is a sample name (NaN-aware mean of its frames, or of
        ``bkg_frames``) or an array shaped like one frame.
        """
        sns = [sn] if isinstance(sn, str) else list(sn)
        self._on_root(lambda: self._subtract(sns, bkg, data_key, scale, bkg_frames, chunk_frames))

    def _subtract(self, sns, bkg, data_key, scale, bkg_frames, chunk):
        with self._open("a") as f:
            _subtract_background(f, sns, bkg, data_key, scale, bkg_frames, chunk,
                                 self.qgrid, self.nphi, self.compression)


def _axis_kwargs(func, q, phi):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    anyk = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in (("q", q), ("phi", phi)) if anyk or k in params}


def _apply(func, data, share, sn, stack, kwargs):
    """Apply ``func`` to a share: whole stack or frame by frame; errors name the frame."""
    name = getattr(func, "__name__", repr(func))
    if stack:
        try:
            return np.asarray(func(data, **kwargs), dtype=np.float64)
        except PtyprepError:
            raise
        except Exception as exc:  # a user function may raise anything; name where it failed
            raise RecipeError(f"attribute function {name} failed on sample {sn!r} frames "
                              f"{share[0]}..{share[-1]}: {exc}") from exc
    out = []
    for i, frame in zip(share, data):
        try:
            out.append(np.asarray(func(frame, **kwargs), dtype=np.float64))
        except PtyprepError:
            raise
        except Exception as exc:  # a user function may raise anything; name the frame
            raise RecipeError(f"attribute function {name} failed on sample {sn!r} frame {i}: "
                              f"{type(exc).__name__}: {exc}") from exc
    return np.stack(out)


# ---------------------------------------------------------------------- rank-0 helpers on an open file

def _build_maps(f, names, save_overall, correct, ref_trans, samples=None):
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


def _subtract_background(f, sns, bkg, data_key, scale, bkg_frames, chunk, qgrid, nphi, compression):
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
