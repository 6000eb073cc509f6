"""``ptyprep run`` for ``[output] format = "procdata"``: the whole SAXS/WAXS chain from a recipe.

Import raw files (LiX) or one scan of any source → process (q-φ maps, I(q), optional
Poisson errors) → optional background subtraction → ``Iphi`` → attributes → maps
(+ ``overall``) → tomograms.  The file is written under a
temporary name (``.<name>.partial``) and renamed when everything succeeded,
so a failed run leaves no file a reader could take for complete.
"""

import logging
import os
from pathlib import Path

from ..errors import OutputError, RecipeError

log = logging.getLogger(__name__)


def uses_lix(recipe):
    """True when the recipe imports LiX raw files (``nsls2-lix`` or ``[saxs] raw_files``)."""
    return recipe.source.name == "nsls2-lix" or bool(recipe.saxs.raw_files)


def raw_files(recipe):
    """Absolute raw file paths: ``[saxs] raw_files`` or else ``[source] path``."""
    files = list(recipe.saxs.raw_files) or recipe.source.options.get("path", [])
    files = [files] if isinstance(files, str) else list(files)
    if not files:
        raise RecipeError("no raw files: give [source] path = [\"scan.h5\", ...] "
                          "(or [saxs] raw_files)")
    return [str(recipe.path(p)) for p in files]


def make_detectors(recipe):
    """:class:`~ptyprep.saxs.Detector` objects of ``[saxs] detectors`` (paths made absolute)."""
    from .detector import Detector

    out = []
    for spec in recipe.saxs.detectors:
        spec = dict(spec)
        for key in ("poni", "valid", "dark", "flat"):
            if isinstance(spec.get(key), str):
                spec[key] = _resolve_spec(recipe, spec[key])
        out.append(Detector(**spec))
    return out


def _resolve_spec(recipe, value):
    path, sep, inner = value.partition("::")
    return str(recipe.path(path)) + sep + inner


def partial_name(dfile):
    """Temporary name of an output being written."""
    dfile = Path(dfile)
    return dfile.with_name(f".{dfile.name}.partial")


def run_procdata(recipe, comm=None):
    """Run the chain of ``recipe`` (collective under MPI); returns the output Path.

    Raises
    ------
    OutputError
        The output exists and ``[output] overwrite`` is false (nothing touched).
    RecipeError, SourceError
        Bad recipe or raw data (identically on every rank).
    """
    from ..engine.comm import world
    from .integrate import make_qgrid
    from .analysis import ScanAnalysis

    comm = comm if comm is not None else world()
    if recipe.saxs is None:
        raise RecipeError("output.format = 'procdata' needs a [saxs] section")
    saxs = recipe.saxs
    out = recipe.path(recipe.output.dfile)
    if out.exists() and not recipe.output.overwrite:
        raise OutputError(f"output {str(out)!r} exists; set [output] overwrite = true or choose "
                          "another output.dfile")
    files = raw_files(recipe) if uses_lix(recipe) else None
    detectors = make_detectors(recipe)
    qgrid = make_qgrid(*saxs.qgrid)
    tmp = partial_name(out)
    if comm.rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            tmp.unlink()
    comm.barrier()
    try:
        an = ScanAnalysis(tmp, detectors=detectors, qgrid=qgrid, nphi=saxs.nphi, comm=comm,
                          replace_path=saxs.replace_path or None,
                          compression=recipe.output.compression)
        _import(an, recipe, files)
        _chain(an, saxs, recipe.output.chunk_frames)
    except Exception:
        if comm.rank == 0 and tmp.exists():
            tmp.unlink()
        raise
    if comm.rank == 0:
        os.replace(tmp, out)
        log.info("wrote %s", out)
    comm.barrier()
    return out


def _import(an, recipe, files):
    saxs = recipe.saxs
    if files is not None:
        opts = recipe.source.options if recipe.source.name == "nsls2-lix" else {}
        an.import_raw_data(files, force_uniform_steps=saxs.force_uniform_steps, prec=saxs.prec,
                           incident=opts.get("incident"), transmitted=opts.get("transmitted"))
    else:
        an.import_source(recipe.source.name, recipe.source.options, sample=saxs.sample or None,
                         force_uniform_steps=saxs.force_uniform_steps, prec=saxs.prec,
                         base_dir=recipe.base_dir)


def _chain(an, saxs, chunk_frames):
    an.process(chunk_frames=chunk_frames, split=saxs.split,
               normalize_monitor=saxs.normalize_monitor, errors=saxs.errors)
    if saxs.background:
        targets = [s for s in an.samples if s != saxs.background]
        for key in saxs.background_data_keys:
            an.subtract_background(targets, saxs.background, data_key=key)
    if saxs.iphi_qrange:
        an.extract_iphi(None, saxs.iphi_qrange, chunk_frames=chunk_frames)
        if saxs.background and "qphi" in saxs.background_data_keys:
            targets = [s for s in an.samples if s != saxs.background]
            an.extract_iphi(targets, saxs.iphi_qrange, sub_key="subtracted",
                            chunk_frames=chunk_frames)
    for a in saxs.attrs:
        an.extract_attr(None, a["name"], a["func"], a["data_key"], a["sub_key"],
                        chunk_frames=chunk_frames, **a["kwargs"])
    if saxs.maps:
        an.make_map_from_attr(list(saxs.maps), save_overall=saxs.save_overall,
                              correct_for_transmission=saxs.correct_for_transmission,
                              ref_trans=saxs.ref_trans)
    if saxs.tomo:
        an.calc_tomo_from_map(list(saxs.tomo), algorithm=saxs.tomo_algorithm,
                              center=saxs.tomo_center)


def describe_procdata(recipe):
    """Check a procdata recipe fully (geometry, masks, raw data) and describe what a run does.

    Opens every detector's ``.poni`` and mask, every raw scan and each detector's frames;
    writes nothing.  Raises the same errors as :func:`run_procdata` would before its first write.
    """
    from .integrate import make_qgrid, phi_centres
    from . import rawdata as R

    saxs = recipe.saxs
    out = recipe.path(recipe.output.dfile)
    if out.exists() and not recipe.output.overwrite:
        raise OutputError(f"output {str(out)!r} exists; set [output] overwrite = true or choose "
                          "another output.dfile")
    detectors = make_detectors(recipe)
    if not detectors:
        raise RecipeError("[saxs] detectors is empty; give at least one "
                          "{dataset = ..., poni = ..., valid = ...}")
    qgrid = make_qgrid(*saxs.qgrid)
    phi_centres(saxs.nphi)
    for det in detectors:
        det.integrator(qgrid, saxs.nphi, split=saxs.split)  # q coverage, mask and geometry checks
    datasets = [d.dataset for d in detectors]
    if uses_lix(recipe):
        items = R.expand_files(raw_files(recipe), lambda p: p, None)
    else:
        items = [(saxs.sample or None, R.make_spec(recipe.source.name, recipe.source.options,
                                                   datasets, recipe.base_dir))]
    lines = [f"recipe OK: {len(items)} scan(s), {len(detectors)} detector(s) → {out}",
             f"  q grid        {qgrid.size} bins, {qgrid[0]:.4g}–{qgrid[-1]:.4g} 1/Å; "
             f"{saxs.nphi} φ bins; pixel splitting {saxs.split}"]
    for det in detectors:
        lines.append(f"  detector      {det.name}: dataset {det.dataset}, shape {tuple(det.shape)}, "
                     f"{det.valid.mean() * 100:.1f}% valid pixels")
    for sample, spec in items:
        with R.SampleFrames(spec, datasets) as frames:
            counts = frames.num_frames()
        shown = ", ".join(f"{ds} {n}" for ds, n in counts.items())
        lines.append(f"  scan          {sample or R.spec_path(spec)}: frames {shown}")
    steps = ["q-φ maps + I(q)"] + (["errors"] if saxs.errors else [])
    steps += [f"attrs {', '.join(a['name'] for a in saxs.attrs)}"] if saxs.attrs else []
    steps += [f"maps {', '.join(saxs.maps)}"] if saxs.maps else []
    steps += [f"tomograms {', '.join(saxs.tomo)}"] if saxs.tomo else []
    lines.append(f"  steps         {' → '.join(steps)}")
    return "\n".join(lines)
