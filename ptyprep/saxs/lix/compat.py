"""``h5xs_an`` and ``h5xs_scan``: lixtools' classes, with its signatures, on ScanAnalysis.

A lixtools notebook runs with one changed import::

    from ptyprep.saxs.lix import h5xs_scan, get_roi, hop

    dt = h5xs_scan("run_an.h5", [de.detectors, qgrid], Nphi=61, pre_proc="2D",
                   replace_path={"legacy": "proposals"})
    for fn in sorted(glob.glob("run-*.h5")):
        dt.import_raw_data(fn, force_uniform_steps=True, prec=0.001, debug=True)
    dt.process(N=8, debug=True)
    for sn in dt.samples:
        dt.extract_attr(sn, "int_saxs", get_roi, "qphi", "merged", qphirange=[0.02, 0.05, -180, 180])
        dt.extract_attr(sn, "hop", hop, "qphi", "merged", xrange=[0.04, 0.06])
    dt.make_map_from_attr(save_overall=False, attr_names=["transmitted", "absorption", "int_saxs", "hop"],
                          correct_for_transsmission=False)

The work is :class:`~ptyprep.saxs.ScanAnalysis`'s (MPI-parallel under ``mpiexec``); the
defaults are lixtools' (``conventions="lixtools"``); ``proc_data`` is filled from the file
after every step (q-φ maps read frame by frame on demand).
"""

import logging

import h5py
import numpy as np

from ...engine.collective import on_root
from ...engine.comm import world
from ...errors import RecipeError
from ...layout import procdata as L
from .. import attrs as A
from .. import rawdata as R
from ..analysis import ScanAnalysis
from ..detector import Detector
from ..lixfile import lix_scan
from . import maps as LM
from .matrix import MatrixWithCoords
from .proc_data import load_entries, save_entries

log = logging.getLogger(__name__)

TOMO_ALGORITHMS = {"fbp": "fbp", "gridrec": "fbp", "sart": "sart", "art": "sart"}


def as_detector(obj):
    """A :class:`~ptyprep.saxs.Detector` from a Detector, a py4xs DetectorConfig or its dict."""
    return obj if isinstance(obj, Detector) else Detector.from_py4xs(obj)


def _exp_setup(args, kwargs):
    setup = args[0] if args else kwargs.pop("exp_setup", None)
    if setup is None:
        return None, None
    if not (isinstance(setup, (list, tuple)) and len(setup) == 2):
        raise RecipeError("the second argument is [detectors, qgrid], as in lixtools' "
                          "h5xs_scan(fn, [de.detectors, qgrid], ...)")
    detectors, qgrid = setup
    return [as_detector(d) for d in detectors], np.asarray(qgrid, dtype=np.float64)


def matrix_function(func):
    """``func(MatrixWithCoords, **kw)`` as the per-frame array function ScanAnalysis calls."""
    def per_frame(frame, *, q=None, phi=None, **kw):
        return func(MatrixWithCoords(frame, q, phi, "q", "phi"), **kw)

    per_frame.__name__ = getattr(func, "__name__", "attribute function")
    return per_frame


def is_native(func):
    """ptyprep's own attribute functions take arrays (and whole stacks)."""
    return isinstance(func, str) or func in A.BUILTINS.values() or getattr(func, "stack", False)


class h5xs_an(ScanAnalysis):  # noqa: N801 - lixtools' name
    """lixtools' ``h5xs_an``: detectors, raw-data import, q-φ processing, ``proc_data``.

    Parameters
    ----------
    fn : str
        The processed file (created when missing; one lixtools wrote is opened as is).
    exp_setup : [detectors, qgrid], positional
        Detectors as py4xs ``DetectorConfig`` objects, their dicts or
        :class:`~ptyprep.saxs.Detector`; q bin centres in 1/Å.  Optional for a file
        that has them.
    Nphi : int
        φ bins (odd allowed, lixtools uses 61); an existing file's value wins, with a
        warning, as in lixtools.
    pre_proc : {"2D"}
        q-φ maps (and I(q)); lixtools' "1D" is not offered.
    replace_path : dict
        ``{old: new}`` substrings replaced in every raw-file path (raw data moved).
    conventions : {"lixtools", "ptyprep"}
        Default lixtools' numbers (:mod:`ptyprep.saxs.conventions`).
    comm : communicator, optional
    load_raw_data, ignore_source_path, quiet
        Accepted for lixtools' sake: raw files are opened when processing.
    """

    def __init__(self, fn, *args, Nphi=32, load_raw_data=True, ignore_source_path=False,
                 pre_proc="2D", replace_path=None, quiet=True, conventions="lixtools", comm=None,
                 compression="gzip", **kwargs):
        detectors, qgrid = _exp_setup(args, kwargs)
        if kwargs:
            raise RecipeError(f"unexpected argument(s) {', '.join(sorted(kwargs))} of h5xs_an")
        if pre_proc != "2D":
            raise RecipeError(f"pre_proc={pre_proc!r}: ptyprep makes q-φ maps and I(q) together; "
                              "use pre_proc='2D'")
        self._replacements = dict(replace_path or {})
        comm = comm if comm is not None else world()
        nphi = on_root(comm, _existing_nphi, fn, Nphi)     # rank 0 alone opens the file
        super().__init__(fn, detectors, qgrid, nphi, comm=comm,
                         replace_path=("", "") if self._replacements else None,
                         compression=compression, conventions=conventions)
        self.pre_proc = pre_proc
        self.Nphi = self.nphi
        self.phigrid = self.phi
        self.proc_data = {}
        self.attrs = {}
        self._refresh_attrs()

    # lixtools replaces substrings anywhere in the path
    def _map_path(self, path):
        path = str(path)
        for old, new in self._replacements.items():
            path = path.replace(old, new)
        return path

    def _refresh_attrs(self):
        meta = self._on_root(self._read_meta)
        for sn, m in meta.items():
            self.attrs[sn] = {"source": m["source"], "header": m["header"], "scan": lix_scan(m["scan"])}
            self.proc_data.setdefault(sn, {})

    def _reload(self, samples=None, data_keys=None, sub_keys=None):
        # read on rank 0 and broadcast: no rank still reads when rank 0 next writes
        entries = self._on_root(lambda: load_entries(self.fn, samples, data_keys, sub_keys))
        for sn, keys in entries.items():
            for key, subs in keys.items():
                self.proc_data.setdefault(sn, {}).setdefault(key, {}).update(subs)

    # ------------------------------------------------------------------ lixtools' calls
    def import_raw_data(self, fn_raw, sn=None, force_uniform_steps=True, prec=0.001, debug=False,
                        **kwargs):
        """Record the scans of one raw file (or a list): header, scan shape, motors, monitors.

        ``sn`` imports one scan only.  lixtools' monitor options (``exp``,
        ``force_synch``, ...) are not needed: the monitors are integrated over each
        exposure from their own time stamps.  Returns the sample names.
        """
        files = fn_raw if isinstance(fn_raw, (list, tuple)) else [fn_raw]
        ignored = sorted(set(kwargs) - {"exp", "force_synch", "force_synch_trig", "save_attr"})
        if ignored:
            raise RecipeError(f"import_raw_data got unknown argument(s) {', '.join(ignored)}")
        if sn is None:
            names = super().import_raw_data(list(files), force_uniform_steps, prec)
        else:
            items = [(sn, R.lix_spec(self._map_path(f), sn)) for f in files]
            names = self._on_root(lambda: self._import_items(items, force_uniform_steps, prec))
        if debug:
            log.info("imported %s from %s", ", ".join(names), ", ".join(map(str, files)))
        self._refresh_attrs()
        self._reload(names, [L.ATTRS])
        return names

    def process(self, N=8, max_c_size=1024, apply_symmetry=False, debug=True, chunk_frames=32,
                **kwargs):
        """q-φ maps and I(q) of every frame of every sample.

        ``N``: under ``mpiexec -n N`` the ranks share the frames and ``N`` is only logged;
        without MPI one process does the work (run the script with ``mpiexec -n 8`` for
        lixtools' ``N=8``).  ``max_c_size`` is not needed: no process holds more than
        ``chunk_frames`` frames.
        """
        if apply_symmetry:
            raise RecipeError("apply_symmetry=True is not offered: the stored maps stay as "
                              "measured; get_roi and hop symmetrise each map when they read it")
        if self.comm.size > 1:
            log.info("process(N=%s): the frames are shared by the %d MPI ranks", N, self.comm.size)
        else:
            log.info("process(N=%s): one process (ptyprep runs in parallel under mpiexec -n N, "
                     "not with a process pool)", N)
        if not self.detectors:
            self.detectors = self._file_detectors()
        super().process(chunk_frames=chunk_frames, **kwargs)
        self._reload(None, [L.QPHI, L.IQ])

    def _file_detectors(self):
        def read():
            with h5py.File(self.fn, "r") as f:
                return str(f.attrs.get(L.ATTR_DETECTORS, "[]"))
        text = self._on_root(read)
        dets = Detector.from_lixtools_json(text)
        if not dets:
            raise RecipeError(f"{self.fn!r} describes no detector; give them: "
                              "h5xs_scan(fn, [detectors, qgrid], ...)")
        return dets

    def extract_attr(self, sn, attr_name, func, data_key="qphi", sub_key="merged",
                     from_raw_data=False, N=8, check_size=0, debug=False, chunk_frames=64,
                     **kwargs):
        """Per-frame attribute ``attrs/<attr_name>`` of ``proc_data[sn][data_key][sub_key]``.

        ``func``'s first argument is one frame: a :class:`MatrixWithCoords` for q-φ maps
        (lixtools' ``get_roi``, ``hop`` and users' functions), an array otherwise;
        ptyprep's own functions get arrays.  ``sn=None``: every sample.
        """
        if from_raw_data:
            raise RecipeError("from_raw_data=True is not offered; extract attributes from the "
                              "processed data (qphi, Iq)")
        if data_key == L.QPHI and not is_native(func):
            func = matrix_function(func)
        super().extract_attr(sn, attr_name, func, data_key, sub_key, chunk_frames, **kwargs)
        names = [attr_name] if isinstance(attr_name, str) else list(attr_name)
        self._reload(None if sn is None else [sn] if isinstance(sn, str) else list(sn),
                     [L.ATTRS], names)

    def load_data(self, samples=None, read_data_keys=None, read_sub_keys=None, quiet=False):
        """Fill ``proc_data`` from the file (q-φ maps stay in the file until indexed)."""
        samples = [samples] if isinstance(samples, str) else samples
        self._reload(samples, read_data_keys, read_sub_keys)

    def save_data(self, save_sns=None, save_data_keys=None, save_sub_keys=None, quiet=False):
        """Write what is in ``proc_data`` (and not yet in the file) in lixtools' layout."""
        def as_list(v):
            return [v] if isinstance(v, str) else v

        def run():
            with self._open("a") as f:
                return save_entries(f, self.proc_data, as_list(save_sns), as_list(save_data_keys),
                                    as_list(save_sub_keys))
        written = self._on_root(run)
        if not quiet:
            log.info("saved %d entries of proc_data", len(written))

    def add_proc_data(self, sn, data_key, sub_key, data):
        """``proc_data[sn][data_key][sub_key] = data`` (saved by :meth:`save_data`)."""
        self.proc_data.setdefault(sn, {}).setdefault(data_key, {})[sub_key] = data

    def has_proc_data(self, sn, data_key, sub_key):
        return sub_key in self.proc_data.get(sn, {}).get(data_key, {})

    def list_data(self):
        """Print the samples, data keys and sub keys held in ``proc_data``."""
        for sn, keys in self.proc_data.items():
            print(sn)
            for key, subs in keys.items():
                print("++", key)
                for sub in subs:
                    print("++++", sub)


def _existing_nphi(fn, nphi):
    try:
        with h5py.File(fn, "r") as f:
            old = int(f.attrs[L.ATTR_NPHI]) if L.ATTR_NPHI in f.attrs else None
    except (OSError, FileNotFoundError):
        old = None
    if old is not None and old != nphi:
        log.warning("using the existing Nphi=%d of %s instead of %d", old, fn, nphi)
    return nphi if old is None else None


class h5xs_scan(h5xs_an):  # noqa: N801 - lixtools' name
    """lixtools' ``h5xs_scan``: :class:`h5xs_an` plus maps and tomograms of scans."""

    def make_map_from_attr(self, save_overall=True, map_data_key="maps", attr_names="transmission",
                           ref_int_map=None, ref_trans=-1, pk_prominence_cutoff=500,
                           correct_for_transsmission=True, recalc_trans_map=True,
                           return_dict=False, debug=True, sname=None):
        """Maps ``maps/<attr>`` of every sample (and ``overall``), lixtools' keywords.

        ``absorption`` is ``-ln(T/T_ref)`` with ``T_ref = ref_trans`` (> 0) or found from
        the transmissions; ``correct_for_transsmission`` (lixtools' spelling) divides the
        other maps by the relative transmitted intensity.  ``sname`` restricts the maps
        to some samples; ``return_dict=True`` returns ``{sample: MatrixWithCoords}``
        without writing.
        """
        names = [attr_names] if isinstance(attr_names, str) else list(attr_names)
        if map_data_key != L.MAPS:
            raise RecipeError(f"map_data_key={map_data_key!r}: maps are stored under 'maps'")
        if ref_int_map is not None:
            raise RecipeError("ref_int_map is not offered; give ref_trans= (the empty-beam "
                              "transmission) or leave it to be found from the transmissions")
        if (correct_for_transsmission or "absorption" in names) and "transmission" not in names:
            names.append("transmission")
        samples = None if sname is None else [sname] if isinstance(sname, str) else list(sname)
        t_ref = None if ref_trans is None or ref_trans <= 0 else float(ref_trans)
        if return_dict:
            return self._on_root(lambda: LM.maps_dict(self.fn, names, samples, save_overall))
        super().make_map_from_attr(names, save_overall, correct_for_transsmission, t_ref, samples)
        self._reload(None, [L.MAPS])

    def calc_tomo_from_map(self, attr_names, map_data_key="maps", tomo_data_key="tomo", debug=True,
                           algorithm="fbp", center=None, sample=None, **kwargs):
        """Tomograms ``tomo/<attr>`` of sinogram maps (``overall`` when it has maps).

        ``algorithm``: ``fbp`` (tomopy's ``gridrec`` becomes it) or ``sart`` (``art``);
        ``center`` / ``rot_center``: the rotation centre in translation units.
        """
        center = kwargs.pop("rot_center", center)
        if kwargs:
            raise RecipeError(f"calc_tomo_from_map got unknown argument(s) {', '.join(sorted(kwargs))}")
        if algorithm not in TOMO_ALGORITHMS:
            raise RecipeError(f"algorithm={algorithm!r} is not one of {', '.join(TOMO_ALGORITHMS)}")
        if (map_data_key, tomo_data_key) != (L.MAPS, L.TOMO):
            raise RecipeError("maps and tomograms are stored under 'maps' and 'tomo'")
        super().calc_tomo_from_map(attr_names, TOMO_ALGORITHMS[algorithm], center, sample)
        self._reload(None, [L.TOMO])

    def get_attr_from_map(self, sn, map_name, map_data_key="maps", quiet=True):
        """A map back in frame order (un-snaked, flattened), to match the frames."""
        return LM.frame_order(self.proc_data[sn][map_data_key][map_name].d,
                              self.attrs[sn]["scan"]["snaking"])
