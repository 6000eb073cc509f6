"""``ScanAnalysis``: the lixtools workflow (import, process, attributes, maps, tomograms).

Only rank 0 writes the proc_data file (h5py from pip is not parallel).  The
heavy steps are parallel and go through the engine's run loop
(:func:`ptyprep.engine.run.run_scans`): :meth:`ScanAnalysis.process` splits every
chunk of frames over the ranks, each rank reads its raw frames and integrates them,
rank 0 receives the rows and writes them; :meth:`~ScanAnalysis.extract_attr` does the
same while every rank reads the file read-only.  Small steps (import, maps,
tomograms) run on rank 0 and broadcast their outcome
(:func:`ptyprep.engine.collective.on_root`), so a bad input raises the same error on
every rank and nobody waits forever.

Raw data are read through registered sources (:mod:`ptyprep.saxs.rawdata`);
the rank-0 steps live in :mod:`ptyprep.saxs.products`, the attribute helpers
in :mod:`ptyprep.saxs.extract`, the per-detector integration of a share in
:mod:`ptyprep.saxs.integration`.
"""

import contextlib
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from ..engine.collective import after_all, on_root
from ..engine.comm import world
from ..engine.run import run_scans
from ..errors import RecipeError
from ..layout import procdata as L
from . import attrs as A
from . import extract as X
from . import products as P
from . import rawdata as R
from . import store as W
from .conventions import apply_to_detectors, get_conventions, hop_kwargs
from .integration import QphiScan, RowsWriter, make_integrators
from .lixfile import detector_entry
from .qgrid import check_nphi, phi_centres

log = logging.getLogger(__name__)


class ScanAnalysis:
    """Processed results of scanning SAXS/WAXS scans in one proc_data file.

    Parameters
    ----------
    fn : str or Path
        The proc_data file; an existing one is continued.
    detectors : list of Detector, optional
        Needed to :meth:`process`; their datasets are checked on import.
    qgrid : (Nq,) array_like, optional
        q bin centres in 1/Å (see :func:`ptyprep.saxs.qgrid.make_qgrid`); taken
        from the file when it exists.
    nphi : int, optional
        Number of φ bins (even or odd); taken from the file when it exists, else 60.
    comm : communicator, optional
        Default :func:`ptyprep.engine.comm.world`.
    replace_path : (old, new), optional
        Rewrite the start of every sample's ``@source`` (raw files moved).
    compression : str
        Dataset compression (default gzip, readable without plugins).
    conventions : {"ptyprep", "lixtools"}
        Defaults of :meth:`process` (pixel splitting), the detectors' solid-angle
        correction and ``hop``'s definition (:mod:`ptyprep.saxs.conventions`).
    """

    def __init__(self, fn, detectors=None, qgrid=None, nphi=None, comm=None, replace_path=None,
                 compression="gzip", conventions="ptyprep"):
        self.fn = str(fn)
        self.comm = comm if comm is not None else world()
        self.conventions = get_conventions(conventions)
        self.detectors = apply_to_detectors(self.conventions, detectors or [])
        self.compression = compression
        self.replace_path = tuple(replace_path) if replace_path else None
        if nphi is not None:
            check_nphi(nphi)
        def init():
            with self._open("a") as f:
                return P.init_file(f, [detector_entry(d) for d in self.detectors], qgrid, nphi,
                                   self._map_path if self.replace_path else None)

        root = self._on_root(init)
        self.qgrid, self.nphi = root["qgrid"], root["nphi"]
        self.phi = phi_centres(self.nphi)
        self._integrators = None

    # ------------------------------------------------------------------ plumbing
    def _on_root(self, func):
        """Run ``func`` on rank 0 and give its result, or its error, to every rank."""
        return on_root(self.comm, func)

    @contextlib.contextmanager
    def _open(self, mode="a"):
        with h5py.File(self.fn, mode) as f:
            yield f

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
        """Record every scan of one or several LiX raw files (or of source specs).

        Parameters
        ----------
        files : str, dict or list of those
            LiX raw files (every scan, i.e. sample, of each is imported), or
            source specs ``{"name": "hdf5", "sample": "sn", **options}`` (see
            :meth:`import_source`).
        force_uniform_steps : bool
            Snap motor positions (step to ``prec``, offset to ``10·prec``).
        prec : float
            Motor precision in motor units.
        incident, transmitted : str, optional
            LiX monitor fields (default ``em1_sum_all_mean_value`` /
            ``em2_sum_all_mean_value``); recorded as ``attrs/incident``,
            ``attrs/transmitted`` and ``attrs/transmission``.

        Returns
        -------
        list of str
            The imported sample names.
        """
        files = [files] if isinstance(files, (str, Path, dict)) else list(files)

        return self._on_root(lambda: self._import_items(
            R.expand_files(files, self._map_path, self._spec, incident, transmitted),
            force_uniform_steps, prec))

    def import_source(self, name, options, sample=None, force_uniform_steps=True, prec=0.001,
                      base_dir=None):
        """Record one scan read through the registered source ``name``.

        Each detector gets its own instance of the source with the class's
        ``frames_option`` set to ``Detector.dataset`` (``hdf5``: the frames
        dataset path; ``files``: the glob pattern).  Monitors and scan geometry
        come from :meth:`~ptyprep.ScanSource.read_monitors` /
        :meth:`~ptyprep.ScanSource.read_scan_geometry` (a source without them
        gives a 1-D series of frames and no transmission).

        Parameters
        ----------
        name : str
            A registered source (``"hdf5"``, ``"files"``, ``"nsls2-lix"``, ...).
        options : dict
            Its options; relative paths are taken from ``base_dir`` (default the
            working directory) and stored absolute.
        sample : str, optional
            Sample name (default the source's scan label).

        Returns
        -------
        str
            The sample name.
        """
        return self._on_root(lambda: self._import_items(
            [(sample, self._spec(name, options, base_dir))], force_uniform_steps, prec))[0]

    def _spec(self, name, options, base_dir=None):
        return R.make_spec(name, options, [d.dataset for d in self.detectors],
                           base_dir or os.getcwd())

    def _import_items(self, items, uniform, prec):
        with self._open("a") as f:
            return R.import_samples(f, items, [d.dataset for d in self.detectors], uniform, prec)

    # ------------------------------------------------------------------ processing
    def _get_integrators(self, split):
        if self._integrators is None:
            self._integrators = make_integrators(self.detectors, self.qgrid, self.nphi, split)
        return self._integrators

    def process(self, chunk_frames=32, split=None, normalize_monitor=False, samples=None,
                errors=False):
        """q-φ maps (``qphi/merged/d``) and I(q) (``Iq/merged``) of every frame.

        Collective under MPI.  Continues where a previous run stopped
        (``@frames_done``).  No process holds more than a chunk of frames.

        Parameters
        ----------
        chunk_frames : int
            Frames per round (split over the ranks).
        split : {"bbox", "no", "full"}, optional
            pyFAI pixel splitting (default from the conventions: bbox, lixtools: no).
        normalize_monitor : bool
            Divide each frame by its incident monitor (``attrs/incident``).
        samples : list of str, optional
            Default all imported samples.
        errors : bool
            Also write ``qphi/merged/err``: the Poisson standard deviation (σ² =
            counts propagated through the same integration and detector merge).
        """
        scans, writer = self.processing(chunk_frames, split, normalize_monitor, samples, errors)
        try:
            run_scans(self.comm, scans, [writer])
        finally:
            writer.close()

    def processing(self, chunk_frames=32, split=None, normalize_monitor=False, samples=None,
                   errors=False):
        """What :meth:`process` walks: ``(scans, writer)`` for the engine's run loop.

        One :class:`~ptyprep.saxs.integration.QphiScan` per sample with frames left to
        integrate (its outputs pre-sized on rank 0), and the
        :class:`~ptyprep.saxs.integration.RowsWriter` that stores the rows (collective).
        """
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise RecipeError(f"chunk_frames={chunk_frames!r} must be an integer >= 1")
        split = self.conventions.split if split is None else split
        meta = self._on_root(self._read_meta)
        todo = list(meta) if samples is None else list(samples)
        for sn in todo:
            if sn not in meta:
                raise RecipeError(f"sample {sn!r} is not imported; samples: {list(meta)}")
        integrators = self._get_integrators(split)

        def outputs():
            with self._open("a") as f:
                return [P.prepare_outputs(f, sn, int(meta[sn]["scan"]["n_frames"]), self.qgrid,
                                          self.nphi, normalize_monitor, errors,
                                          self.compression)[1:] for sn in todo]

        scans = []
        for sn, (done, monitor) in zip(todo, self._on_root(outputs)):
            n = int(meta[sn]["scan"]["n_frames"])
            if done < n:
                spec = meta[sn]["spec"] or R.lix_spec(meta[sn]["source"], sn)
                scans.append(QphiScan(sn, done, n, chunk_frames,
                                      spec=R.remap_spec(spec, self._map_path),
                                      detectors=self.detectors, integrators=integrators,
                                      qgrid=self.qgrid, nphi=self.nphi, monitor=monitor,
                                      errors=errors))
        return scans, RowsWriter(self.fn, self.comm, errors)

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
            (``get_roi``, ``hop``, ``iq_mean``, ``iphi_mean``, ``iphi``).
        data_key, sub_key : str
            ``qphi``/``Iq``/``Iphi``/``attrs`` and e.g. ``merged``/``subtracted``.
        **kwargs
            Passed to ``func`` (e.g. ``qphirange=[...]``, ``xrange=[...]``).
        """
        names = [attr_name] if isinstance(attr_name, str) else list(attr_name)
        func = X.resolve_func(func)
        kwargs = hop_kwargs(self.conventions, func, kwargs)
        results = self._extract(sn, data_key, sub_key, func, names, chunk_frames, kwargs)

        def store():
            with self._open("a") as f:
                for s, values in results.items():
                    for k, name in enumerate(names):
                        W.write_attr(f, s, name, values if len(names) == 1 else values[:, k])

        after_all(self.comm, store)      # every rank has closed the file it read

    def extract_iphi(self, sn=None, qrange=(0.0, np.inf), sub_key="merged", chunk_frames=64):
        """``Iphi/<sub_key>`` ``(N, Nphi)``: each frame's azimuthal profile over a q window.

        The NaN-aware mean of ``qphi/<sub_key>/d`` over the q bins whose centres
        lie in ``qrange = [q1, q2]`` (1/Å, inclusive), stored with ``@qrange``
        and the ``phi`` axis.  Collective under MPI.
        """
        q1, q2 = X.qrange_pair(qrange)
        results = self._extract(sn, L.QPHI, sub_key, A.iphi, ["Iphi"], chunk_frames,
                                {"qrange": [q1, q2]})

        def store():
            with self._open("a") as f:
                for s, values in results.items():
                    W.write_iphi(f, s, values, self.nphi, [q1, q2], sub_key, self.compression)

        after_all(self.comm, store)      # every rank has closed the file it read

    def _extract(self, sn, data_key, sub_key, func, names, chunk, kwargs):
        """Collective: ``{sample: (N, ...) values}`` on rank 0 (None elsewhere)."""
        meta = self._on_root(self._read_meta)
        sns = list(meta) if sn is None else ([sn] if isinstance(sn, str) else list(sn))

        def shapes_of():
            with self._open("r") as f:
                return X.source_shapes(f, sns, data_key, sub_key)

        shapes = self._on_root(shapes_of)
        kwargs = {**X.axis_kwargs(func, self.qgrid, self.phi), **kwargs}
        results = {}
        with self._open("r") as f:     # rank 0 wrote it before shapes_of (on_root waited)
            for s in sns:
                results[s] = X.extract_chunks(self.comm, f[L.data_path(s, data_key, sub_key)], s,
                                              shapes[s][0], func, names, chunk, kwargs)
        return results

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

        def run():
            with self._open("a") as f:
                P.build_maps(f, names, save_overall, correct_for_transmission, ref_trans, samples)

        self._on_root(run)

    def calc_tomo_from_map(self, attr_names, algorithm="fbp", center=None, sample=None):
        """Tomograms ``tomo/<attr>`` of sinogram maps (slow axis = rotation angle).

        ``sample`` defaults to ``overall`` when it has maps, else every sample.
        ``center`` (translation units) defaults to the map's stored ``rot_cen`` or
        is searched for.
        """
        names = [attr_names] if isinstance(attr_names, str) else list(attr_names)

        def run():
            with self._open("a") as f:
                P.build_tomo(f, names, algorithm, center, sample)

        self._on_root(run)

    def subtract_background(self, sn, bkg, data_key="Iq", scale=1.0, bkg_frames=None,
                            chunk_frames=64):
        """``{data_key}/subtracted = merged − scale · background`` for sample(s) ``sn``.

        ``bkg`` is a sample name (NaN-aware mean of its frames, or of
        ``bkg_frames``) or an array shaped like one frame.
        """
        sns = [sn] if isinstance(sn, str) else list(sn)

        def run():
            with self._open("a") as f:
                P.subtract_background(f, sns, bkg, data_key, scale, bkg_frames, chunk_frames,
                                      self.qgrid, self.nphi, self.compression)

        self._on_root(run)
