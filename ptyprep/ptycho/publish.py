"""Publishing a growing link-mode ``.ptyd`` scan (``ptyprep watch``), reading it back, and
recovering it after an interruption.

A reader may open the master at any moment.  The master is therefore never modified in
place: every update writes a whole new master under a temporary name and renames it over
the old one (atomic on POSIX; a reader holding the old file open keeps reading the old,
consistent version, and HDF5's file lock never stands between writer and reader).  Part
files are written as ``<part>.tmp`` and renamed before the master that links them.

:func:`recover` reads a (possibly interrupted) output and works out the complete prefix
of the scan it holds; everything after it (stray ``.tmp`` parts, parts that were never
linked, links to missing or damaged parts, a half-written master update) is discarded,
so the daemon continues exactly where the last complete chunk ended.  It runs on rank 0
only and never touches MPI.
"""

import os
from pathlib import Path

import h5py
import numpy as np

import logging
from dataclasses import dataclass, field
from typing import Optional

from ..engine.lock import recipe_key
from ..errors import LayoutError, OutputError
from ..layout import files as F
from ..layout import ptyd as L
from ..sources.ptyd import open_ptyd
from .h5rw import dict_group, write_info, write_meta
from .writer import remove_previous

log = logging.getLogger(__name__)

#: Part numbers past the last published one that are probed for strays before giving up.
STRAY_PROBE = 64


def publish_master(path, meta, info, part_names):
    """Write the master of a link-mode scan whole and rename it into place (atomic).

    Parameters
    ----------
    path : Path
        Final master file.
    meta : dict
        ``meta/`` content (``num_frames`` first; see :func:`ptyprep.layout.ptyd.write_meta`).
    info : dict
        ``info/`` content (provenance and the end-of-scan record).
    part_names : list of str
        Bare file names of the parts, in scan order: ``chunks/<k>`` links to ``part_names[k]``.
    """
    path = Path(path)
    tmp = F.publishing_name(path)
    with h5py.File(tmp, "w", libver="latest") as h5:
        write_meta(h5, meta)
        chunks = dict_group(h5, L.CHUNKS)
        for k, name in enumerate(part_names):
            if Path(name).name != name:
                raise OutputError(f"part name {name!r} is not a bare file name")
            chunks[L.chunk_name(k)] = h5py.ExternalLink(name, "/")
        write_info(h5, info)
    os.replace(tmp, path)


def read_links(path):
    """``(meta, info, part_names)`` of a link-mode master (part names in chunk order).

    Raises
    ------
    LayoutError
        The file is not a ``.ptyd`` or holds chunks that are not external links.
    """
    with open_ptyd(Path(path)) as (h5, meta, info):
        names = []
        for name in sorted(h5[L.CHUNKS], key=int):
            link = h5[L.CHUNKS].get(name, getlink=True)
            if not isinstance(link, h5py.ExternalLink):
                raise LayoutError(f"{str(path)!r} chunk {name} is not a link-mode part; "
                                  "it was not written by ptyprep watch or save = 'link'")
            names.append(link.filename)
    return meta, info, names


def read_part_indices(path):
    """Scan indices held by a part file, or None if it is missing or unreadable."""
    try:
        with h5py.File(path, "r") as part:
            return np.asarray(part[L.INDICES][()], dtype=np.int64)
    except (OSError, KeyError):
        return None


@dataclass
class Resume:
    """The complete prefix of an output found on disk.

    Attributes
    ----------
    part_names : list of str
        Published part files in scan order (``chunks/<k>`` links to ``part_names[k]``).
    frames : int
        Frames ``0..frames-1`` are published; always a whole number of chunks.
    raw_center : (float, float) or None
        Raw-frame centre stored at the first publication.
    republish : bool
        The master on disk links more than the prefix and must be rewritten.
    """

    part_names: list = field(default_factory=list)
    frames: int = 0
    raw_center: Optional[tuple] = None
    republish: bool = False


def recover(dfile, key, chunk_frames, part_format, overwrite):
    """Work out what an interrupted output holds and discard everything after it.

    Parameters
    ----------
    dfile : Path
        Master file.
    key : str
        :func:`recipe_key` of the recipe the daemon runs now.
    chunk_frames : int
    part_format : str
    overwrite : bool
        Start again over a complete output, or one written by another recipe.

    Returns
    -------
    Resume

    Raises
    ------
    OutputError
        The output is complete, or was written with another recipe, and
        ``overwrite`` is false.
    """
    dfile = Path(dfile)
    F.publishing_name(dfile).unlink(missing_ok=True)
    resume = Resume()
    if dfile.exists():
        resume = _read_prefix(dfile, key, chunk_frames, part_format, overwrite)
    _remove_strays(dfile, len(resume.part_names), part_format)
    return resume


def _read_prefix(dfile, key, chunk_frames, part_format, overwrite):
    try:
        meta, info, names = read_links(dfile)
    except LayoutError as exc:
        return _start_over(dfile, part_format, overwrite,
                           f"it is not a ptyprep watch output ({exc})")
    stored = info.get(L.RECIPE)
    if stored is None or recipe_key(stored) != key:
        return _start_over(dfile, part_format, overwrite,
                           "it was written with a different recipe")
    if int(info.get(L.COMPLETE, 0)) == 1:
        return _start_over(dfile, part_format, overwrite,
                           f"it already holds the complete scan ({int(meta['num_frames'])} frames)")
    kept, frames = [], 0
    for k, name in enumerate(names):
        indices = read_part_indices(dfile.parent / name)
        ok = (name == F.part_name(dfile, k, part_format) and indices is not None and len(indices)
              and np.array_equal(indices, np.arange(frames, frames + len(indices))))
        if not ok:
            log.warning("part %s is missing or damaged; resuming before it", name)
            break
        kept.append((name, frames + len(indices)))
        frames += len(indices)
    boundary = frames // chunk_frames * chunk_frames
    kept = [name for name, end in kept if end <= boundary]
    if len(kept) != len(names):  # unlink what is dropped before the parts are deleted
        if kept:
            info[L.FRAMES_WRITTEN] = np.int64(boundary)
            publish_master(dfile, meta, info, kept)
        else:
            dfile.unlink()
    center = info.get(L.RAW_CENTER)
    return Resume(part_names=kept, frames=boundary, republish=len(kept) != len(names),
                  raw_center=None if center is None else tuple(float(c) for c in center))


def _start_over(dfile, part_format, overwrite, why):
    if not overwrite:
        raise OutputError(f"output {str(dfile)!r} exists and {why}; set output.overwrite = true "
                          "(--set output.overwrite=true) to replace it, or choose another "
                          "output.dfile")
    log.info("replacing %s: %s", dfile, why)
    try:
        remove_previous(dfile, part_format)
    except OSError as exc:
        raise OutputError(f"cannot remove the previous output {str(dfile)!r}: {exc}") from exc
    return Resume()


def _remove_strays(dfile, published, part_format):
    """Delete ``.tmp`` parts and parts numbered ``published`` and up (never linked)."""
    misses, k = 0, 0
    while k < published or misses < STRAY_PROBE:
        path = dfile.parent / F.part_name(dfile, k, part_format)
        tmp = F.tmp_name(path)
        found = tmp.exists() or (k >= published and path.exists())
        if found:
            log.info("discarding unpublished part %s", path.name)
            tmp.unlink(missing_ok=True)
            if k >= published:
                path.unlink(missing_ok=True)
        misses = 0 if found or k < published else misses + 1
        k += 1
