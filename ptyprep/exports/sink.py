"""Rank 0's side of an export: one output written chunk by chunk, committed at the end.

An :class:`ExportFile` is told the frames in scan order (:meth:`ExportFile.append`), in
chunks, and then :meth:`ExportFile.finish` with a :class:`ScanSummary` of the whole scan
(the mean pattern for the probe guess, the union of invalid pixels for formats that
hold one 2-D mask, every position for the object's extent).  It writes under a hidden
temporary name and :meth:`ExportFile.commit` puts the output in place only when it is
complete: a failed run leaves the previous output as it was.  No MPI here: the
collective side is :mod:`ptyprep.exports.format`.
"""

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..layout import files as F
from .geometry import ScanGeometry
from .guesses import (initial_object, initial_probe, mean_pattern, nearfield_probe,
                      object_extent)

log = logging.getLogger(__name__)

#: HDF5 filters of the exported frames: gzip and shuffle, which every HDF5 build (and so
#: every consumer's reader) decodes without plugins.
FRAME_FILTERS = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class ScanSummary:
    """What an export needs of the whole scan, accumulated chunk by chunk.

    Attributes
    ----------
    indices : (N,) int64 ndarray
        Scan indices in the order written.
    positions : (N, 2) float64 ndarray
        ``(y, x)`` metres.
    total : (H, W) float64 ndarray
        Sum of the valid counts.
    valid_count : (H, W) int64 ndarray
        Frames in which each pixel is valid.
    """

    def __init__(self, shape):
        self.total = np.zeros(shape, dtype=np.float64)
        self.valid_count = np.zeros(shape, dtype=np.int64)
        self._indices, self._positions = [], []

    def add(self, indices, data, valid, positions):
        """Account for frames ``data`` (M, H, W) with ``valid`` (M, H, W) bool."""
        self.total += np.where(valid, data, 0).sum(axis=0, dtype=np.float64)
        self.valid_count += valid.sum(axis=0)
        self._indices.append(np.asarray(indices, dtype=np.int64))
        self._positions.append(np.asarray(positions, dtype=np.float64).reshape(-1, 2))

    @property
    def indices(self):
        return np.concatenate(self._indices) if self._indices else np.zeros(0, np.int64)

    @property
    def positions(self):
        return np.concatenate(self._positions) if self._positions else np.zeros((0, 2))

    @property
    def num_frames(self):
        return int(sum(len(i) for i in self._indices))

    def mean(self):
        """(H, W) mean valid intensity per frame (0 where never valid)."""
        return mean_pattern(self.total, self.valid_count)

    def bad_pixels(self):
        """(H, W) bool: True where a pixel is invalid in any frame (the union)."""
        return self.valid_count < self.num_frames

    def never_valid(self):
        """(H, W) bool: True where a pixel is invalid in every frame."""
        return self.valid_count == 0


class ExportFile:
    """One export output on rank 0 (subclass per format).

    Subclasses write everything under :attr:`tmp` (a file, or a folder when
    :attr:`is_folder`) in :meth:`start`, :meth:`write_frames` and :meth:`write_end`; the
    HDF5 file they keep open between those calls is ``self._h5`` (closed by
    :meth:`close_files`).

    Parameters
    ----------
    path : Path
        The final output (file or folder).
    geometry : ScanGeometry
    num_frames : int
        Frames the scan will have (the datasets are sized for them).
    info : dict
        Provenance of the scan (``info/`` of the ``.ptyd``: the recipe, versions).
    """

    #: the output is a folder (``<stem>_ptychodus/``) rather than one file
    is_folder = False

    def __init__(self, path, geometry, num_frames, info=None):
        self.path = Path(path)
        self.geometry = geometry if isinstance(geometry, ScanGeometry) else \
            ScanGeometry.from_meta(geometry)
        self.num_frames = int(num_frames)
        self.info = info or {}
        self.tmp = F.incomplete_name(self.path)
        self.summary = ScanSummary(self.geometry.shape)
        self.written = 0
        self._started = False
        self._h5 = None

    # -- what a format writes ---------------------------------------------------------------
    def start(self, dtype):
        """Create the output under :attr:`tmp`; frames will be of ``dtype``."""
        raise NotImplementedError

    def write_frames(self, start, data, valid, positions, indices):
        """Frames ``start:start + M`` of the output (in scan order)."""
        raise NotImplementedError

    def write_end(self, summary):
        """Everything that needs the whole scan (masks, guesses); close the files."""
        raise NotImplementedError

    def close_files(self):
        """Close the open HDF5 file ``self._h5``, if any (also after a failure)."""
        h5, self._h5 = self._h5, None
        if h5 is not None:
            h5.close()

    def links(self):
        """``{name: target}`` of symbolic links made beside the output once it is in place
        (names fold_slice opens); default none."""
        return {}

    # -- the protocol the writer drives ------------------------------------------------------
    def append(self, indices, data, valid, positions):
        """Add prepared frames, in scan order: ``data`` (M, H, W), ``valid`` (M, H, W) bool,
        ``positions`` (M, 2) metres (y, x), ``indices`` (M,)."""
        if not len(indices):
            return
        if not self._started:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._remove_tmp()
            self.start(np.asarray(data).dtype)
            self._started = True
        self.write_frames(self.written, data, valid, positions, indices)
        self.summary.add(indices, data, valid, positions)
        self.written += len(indices)

    def finish(self):
        """Write what needs the whole scan, then :meth:`commit`."""
        if not self._started:
            raise ValueError(f"no frames were written to {str(self.path)!r}")
        self.write_end(self.summary)
        self.close_files()
        self.commit()

    def commit(self):
        """Put the complete output in place of any previous one, then make its links."""
        if self.is_folder and self.path.exists():
            old = self.tmp.with_name(self.tmp.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)
        for name, target in self.links().items():
            link = self.path.parent / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)

    def abandon(self):
        """Remove what was written (after a failure)."""
        try:
            self.close_files()
        finally:
            self._remove_tmp()

    def _remove_tmp(self):
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)

    # -- helpers for the formats -----------------------------------------------------------------
    def guesses(self, summary):
        """The initial probe and object of this scan (:func:`scan_guesses`)."""
        return scan_guesses(self.geometry, summary)

    def log_mask_union(self, summary):
        """Log how many pixels a single 2-D mask (the union) adds to the static mask."""
        added = int(summary.bad_pixels().sum() - summary.never_valid().sum())
        if added:
            log.info("%s: one mask for all frames marks %d more pixels bad than are bad in "
                     "every frame (pixels invalid in some frames only)", self.path.name, added)
        return added


def scan_guesses(geometry, summary):
    """The initial probe and object (see :mod:`ptyprep.exports.guesses`), on the sample-plane
    pixel :attr:`~ptyprep.exports.geometry.ScanGeometry.sample_pixel_m`.

    Returns
    -------
    probe : (H, W) complex64 ndarray
    obj : (Ho, Wo) complex64 ndarray
    object_center_m : (float, float)
        ``(y, x)`` of the object's centre, metres.
    """
    if geometry.propagation == "nearfield":
        probe = nearfield_probe(summary.mean())
    else:
        probe = initial_probe(summary.mean(), geometry.center)
    shape, center = object_extent(summary.positions, probe.shape, geometry.sample_pixel_m)
    return probe, initial_object(shape), center
