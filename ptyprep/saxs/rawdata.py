"""Raw data of scanning SAXS/WAXS samples, read through registered sources.

A sample's raw data is named by a *source spec*, a JSON-ready dict recorded in the
proc_data file (``@source_spec``) so that every rank can reopen it::

    {"name": "hdf5",                                   # a registered source
     "options": {"path": ["/abs/scan.h5"], ...},       # its options, paths absolute
     "frames": {"/entry/data/frames": "/entry/data/frames"}}   # Detector.dataset -> option value

Each :class:`~ptyprep.saxs.Detector` gets its own source instance: the source class's
``frames_option`` (``frames`` for ``hdf5``, ``pattern`` for ``files``, ``detector``
for ``nsls2-lix``) is set to the detector's ``dataset``.  Monitors and the scan
geometry come from the first detector's source (:meth:`ScanSource.read_monitors`,
:meth:`ScanSource.read_scan_geometry`).  Sources never see MPI.
"""

import logging
from pathlib import Path

import numpy as np

from ..errors import PtyprepError, RecipeError, SourceError
from ..sources.faults import read_frames
from . import maps as M

log = logging.getLogger(__name__)

LIX = "nsls2-lix"


def source_class(name):
    from ..sources.registry import get_source

    return get_source(name)


def _absolute(value, base_dir):
    if isinstance(value, (list, tuple)):
        return [_absolute(v, base_dir) for v in value]
    if isinstance(value, str) and value and not value.startswith("/"):
        path, sep, inner = value.partition("::")
        return str((Path(base_dir) / path).resolve()) + sep + inner
    return value


def make_spec(name, options, datasets, base_dir="."):
    """Source spec of ``name`` with ``options`` for detectors reading ``datasets``.

    Relative paths among the class's ``path_options`` (and a path-valued
    ``frames_option``) are made absolute against ``base_dir``.
    """
    cls = source_class(name)
    options = dict(options)
    frames_option = cls.frames_option
    if frames_option is None and len(datasets) > 1:
        raise RecipeError(f"source {name!r} serves the frames of one detector (it has no "
                          f"frames_option); got detectors {list(datasets)}: use one")
    for key in cls.path_options:
        if key in options:
            options[key] = _absolute(options[key], base_dir)
    if frames_option in options and len(datasets) > 1:
        raise RecipeError(f"source option {frames_option} = {options[frames_option]!r} would give "
                          f"all detectors {list(datasets)} the same frames; drop it (each "
                          "detector's dataset names its frames)")
    frames = {}
    path_like = frames_option in cls.path_options
    for ds in datasets:
        # an explicit frames option (one detector) reads that detector from elsewhere, e.g. a blank
        value = options.pop(frames_option) if frames_option in options else ds
        frames[ds] = _absolute(value, base_dir) if path_like else value
    return {"name": name, "options": options, "frames": frames}


def remap_spec(spec, map_path):
    """``spec`` with ``map_path`` applied to every string option (raw data moved)."""
    def walk(v):
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return map_path(v) if isinstance(v, str) else v

    return {"name": spec["name"], "options": walk(spec["options"]),
            "frames": walk(spec.get("frames", {}))}


def spec_path(spec):
    """The raw file (or folder/pattern) a spec reads: ``@source`` of the sample."""
    opts = spec["options"]
    for key in ("path", "folder", "pattern"):
        v = opts.get(key)
        if isinstance(v, list) and v:
            v = v[0]
        if isinstance(v, str) and v:
            return v.partition("::")[0]
    frames = list(spec.get("frames", {}).values())
    return str(frames[0]) if frames else spec["name"]


def lix_spec(path, sample, incident=None, transmitted=None):
    """Spec of one scan of a LiX raw file (older proc_data files imply it)."""
    opts = {"path": str(path), "sample": sample}
    if incident:
        opts["incident"] = incident
    if transmitted:
        opts["transmitted"] = transmitted
    return {"name": LIX, "options": opts, "frames": {}}


class SampleFrames:
    """One open source per detector of a sample; ``read(dataset, indices)`` gives frames."""

    def __init__(self, spec, datasets):
        from ..sources.registry import make_source

        cls = source_class(spec["name"])
        frames_option = cls.frames_option
        self.spec_name = spec["name"]
        self.sources = {}
        try:
            for ds in datasets or [None]:
                opts = dict(spec["options"])
                if frames_option is not None and ds is not None:
                    opts[frames_option] = spec.get("frames", {}).get(ds, ds)
                self.sources[ds] = make_source(spec["name"], opts)
        except PtyprepError:
            self.close()
            raise

    @property
    def first(self):
        return next(iter(self.sources.values()))

    def num_frames(self):
        """Frames per detector (``{dataset: N}``)."""
        return {ds: int(src.read_meta().num_frames) for ds, src in self.sources.items()}

    def read(self, dataset, indices):
        """Frames ``indices`` of detector ``dataset``; a damaged frame raises a SourceError
        naming the file, the dataset and the frame."""
        return read_frames(self.sources[dataset], np.asarray(indices, dtype=np.int64))

    def close(self):
        for src in self.sources.values():
            src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_scan(frames, sample, where, uniform, prec, total=None):
    """``(scan, monitors, header)`` of an open :class:`SampleFrames`.

    ``scan`` is the ``@scan`` record (shape, snake, motors, snapped positions,
    ``n_frames``); ``monitors`` maps attribute names to ``(n_frames,)`` arrays
    (``transmission`` added when both monitors exist).

    ``total`` (a scan still being acquired, ``ptyprep watch``): the scan will
    have ``total`` frames; fewer may exist now.  The record is provisional
    (``n_frames = total``, axes extended by :func:`~ptyprep.saxs.maps.provisional_axes`)
    and ``monitors`` is empty.
    """
    counts = frames.num_frames()
    if len(set(counts.values())) > 1 and total is None:
        raise SourceError(f"detectors of {where!r} scan {sample!r} hold different numbers of "
                          f"frames {counts}; the scan is incomplete")
    n = min(counts.values()) if total is None else int(total)
    src = frames.first
    geo = src.read_scan_geometry()
    if geo is None:
        idx = np.arange(n, dtype=np.float64)
        geo = {"shape": [1, n], "motors": [None, "frame"], "snaking": False,
               "positions": np.stack([np.zeros(n), idx], axis=1)}
    shape = [int(v) for v in geo["shape"]]
    need = shape[0] * shape[1]
    if total is not None:
        pos = np.asarray(geo["positions"], dtype=np.float64).reshape(-1, 2)[:n]
        slow, fast = M.provisional_axes(pos[:, 0], pos[:, 1], shape, uniform, prec)
        return _scan_record(geo, shape, n, slow, fast, uniform, prec), {}, _header(frames, geo)
    if n < need:
        raise SourceError(f"scan shape {shape} of {where!r} scan {sample!r} needs {need} frames, "
                          f"the raw file holds {n}; fix the scan shape or re-export the complete "
                          "scan")
    pos = np.asarray(geo["positions"], dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise SourceError(f"scan positions of {where!r} have shape {pos.shape}, expected (N, 2) "
                          "(slow, fast)")
    slow, fast = M.scan_axes(pos[:, 0], pos[:, 1], shape, bool(geo["snaking"]), uniform, prec)
    scan = _scan_record(geo, shape, n, slow, fast, uniform, prec)
    monitors = {}
    for name, values in (src.read_monitors() or {}).items():
        values = np.asarray(values, dtype=np.float64).ravel()
        if len(values) < n:
            raise SourceError(f"monitor {name!r} of {where!r} scan {sample!r} has {len(values)} "
                              f"values for {n} frames; it needs one per frame")
        monitors[name] = values[:n]
    if "incident" in monitors and "transmitted" in monitors:
        monitors["transmission"] = M.transmission(monitors["incident"], monitors["transmitted"])
    else:
        log.warning("scan %s: no incident and transmitted monitors; no transmission", sample)
    return scan, monitors, _header(frames, geo)


def _scan_record(geo, shape, n, slow, fast, uniform, prec):
    slow_m, fast_m = geo["motors"]
    return {"shape": shape, "snake": bool(geo["snaking"]), "n_frames": n,
            "slow_motor": slow_m or "none", "fast_motor": fast_m,
            "slow_positions": slow, "fast_positions": fast,
            "force_uniform_steps": bool(uniform), "prec": float(prec),
            "exposure_s": geo.get("exposure_s")}


def _header(frames, geo):
    header = geo.get("header")
    if header is None:
        meta = frames.first.read_meta()
        header = {"source": frames.spec_name,
                  "label": meta.label, "energy_keV": meta.energy_keV,
                  "distance_m": meta.distance_m, "psize_m": meta.psize_m,
                  "beam_center": meta.beam_center, "extra": meta.extra}
    return header


def expand_files(files, map_path, make, incident=None, transmitted=None):
    """``[(sample or None, spec)]`` of LiX raw files (every scan) and source-spec dicts.

    ``make(name, options)`` builds the spec of a dict ``{"name", "sample", **options}``.
    """
    out = []
    for item in files:
        if isinstance(item, dict):
            opts = dict(item)
            name, sn = opts.pop("name", None), opts.pop("sample", None)
            if not isinstance(name, str):
                raise RecipeError(f"source spec {item!r} needs name = a registered source")
            out.append((sn, make(name, opts)))
            continue
        path = str(Path(map_path(item)).resolve())
        if not Path(path).is_file():
            raise SourceError(f"raw file {path!r} does not exist; check the path "
                              "(or use replace_path when raw data moved)")
        out += [(sn, lix_spec(path, sn, incident, transmitted))
                for sn in source_class(LIX).list_samples(path)]
    return out


def import_samples(f, items, datasets, uniform, prec):
    """Record ``[(sample or None, spec)]`` in the open proc_data file ``f``; returns the names."""
    from . import store as W

    found = []
    existing = {sn: W.read_sample(f, sn)["source"] for sn in W.samples(f)}
    for sn, spec in items:
        path = spec_path(spec)
        with SampleFrames(spec, datasets) as frames:
            sn = sn or frames.first.read_meta().label or Path(path).stem
            if existing.get(sn, path) != path or sn in found:
                raise RecipeError(f"sample {sn!r} of {path!r} is already imported from "
                                  f"{existing.get(sn, 'another source')!r}; sample names "
                                  "must be unique in one proc_data file")
            scan, monitors, header = read_scan(frames, sn, path, uniform, prec)
        W.write_sample(f, sn, path, header, scan, spec)
        for name, values in monitors.items():
            W.write_attr(f, sn, name, values)
        found.append(sn)
    log.info("imported %d sample(s): %s", len(found), ", ".join(found))
    return found
