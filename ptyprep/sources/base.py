"""The contract every beamline reader fulfils: :class:`ScanSource`.

A source is read-only and knows nothing about MPI: every rank opens its own
instance and reads the frames it is given.  ptypy users will recognise the
method split of ``PtyScan`` (meta, positions, valid pixels, frames).
"""

import abc
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class ScanMeta:
    """What a source knows about its scan before any frame is read.

    Attributes
    ----------
    num_frames : int or None
        Frames in the scan, if known (None while a scan of unknown length is acquired).
    frame_shape : (int, int)
        Raw frame shape ``(H, W)`` in pixels.
    dtype : numpy.dtype
        Raw frame dtype.
    energy_keV, distance_m : float or None
        Photon energy and sample-detector distance.
    psize_m : (float, float) or None
        Detector pixel size ``(y, x)`` in metres.
    beam_center : (float, float) or None
        Optical axis on the raw frame, ``(row, col)`` in pixels.
    label : str or None
        Name of the scan.
    extra : dict
        Anything else worth recording in the output's provenance.
    """

    num_frames: Optional[int]
    frame_shape: tuple
    dtype: np.dtype
    energy_keV: Optional[float] = None
    distance_m: Optional[float] = None
    psize_m: Optional[tuple] = None
    beam_center: Optional[tuple] = None
    label: Optional[str] = None
    extra: dict = field(default_factory=dict)


class ScanSource(abc.ABC):
    """Base class of beamline readers.

    Subclasses take their options as keyword arguments of ``__init__`` (the
    keys of the recipe's ``[source]`` table) and implement
    :meth:`read_meta`, :meth:`read_positions` and :meth:`read_frames`.
    Options that are file paths are listed in ``path_options`` so a recipe can
    give them relative to its own folder.  Everything else the engine calls has a
    default here: per-frame validity, monitors and scan geometry (scanning SAXS),
    :meth:`available`, :meth:`refresh` and :attr:`end_of_scan` (following an
    acquisition), :attr:`frames_option` (one instance per detector), :meth:`close`.

    Examples
    --------
    >>> class Constant(ScanSource):
    ...     def __init__(self, n=4):
    ...         self.n = n
    ...     def read_meta(self):
    ...         return ScanMeta(self.n, (8, 8), np.dtype("uint16"), 8.0, 5.0, (75e-6, 75e-6), (4, 4))
    ...     def read_positions(self):
    ...         return np.zeros((self.n, 2))
    ...     def read_frames(self, indices, roi=None):
    ...         return crop_roi(np.ones((len(indices), 8, 8), np.uint16), roi)
    """

    #: Option names whose values are paths (resolved relative to the recipe).
    path_options = ()
    #: The option that names the frames (e.g. ``"frames"``, the dataset path of ``hdf5``), or
    #: None: a scanning-SAXS recipe opens one instance per detector with this option set to
    #: the detector's ``dataset``; a source without it serves one detector.
    frames_option = None
    #: Where the source reads the end-of-scan marker of an acquisition it follows (set by
    #: the instance, e.g. an HDF5 dataset path or a file name), or None: no marker.
    end_of_scan = None

    @abc.abstractmethod
    def read_meta(self):
        """Return the :class:`ScanMeta` of the scan."""

    @abc.abstractmethod
    def read_positions(self):
        """Return all scan positions as a (N, 2) float64 array in metres, ``(y, x)``.

        While a scan is acquired, N is the number of positions recorded so far.
        """

    def read_valid(self):
        """Return the static (H, W) bool valid-pixel mask (True = usable), or None."""
        return None

    @abc.abstractmethod
    def read_frames(self, indices, roi=None):
        """Read frames.

        Parameters
        ----------
        indices : (M,) int ndarray
            Global scan indices, increasing.
        roi : (row0, row1, col0, col1) or None
            Half-open window inside the raw frame; read only these pixels.

        Returns
        -------
        (M, h, w) ndarray
            C-contiguous stack, in the order of ``indices``.
        """

    def read_frames_valid(self, indices, roi=None):
        """Per-frame valid pixels, (M, h, w) bool, for sources that have them (e.g. a
        ``.ptyd``'s weights); None (the default) when only the static mask applies."""
        return None

    def read_monitors(self):
        """Per-frame beam monitors, or None (the default) when the source has none.

        Returns
        -------
        dict of str -> (N,) float64 ndarray, or None
            Keys are the proc_data attribute names: ``"incident"`` (beam before the
            sample) and/or ``"transmitted"`` (after it); other names are kept as
            attributes too.  N may exceed the frame count (extra values are ignored).
        """
        return None

    def read_scan_geometry(self):
        """The raster behind the frames, or None (the default): a 1-D series of frames.

        Returns
        -------
        dict or None
            ``shape`` [n_slow, n_fast] (frames in acquisition order, row by row);
            ``motors`` [slow_name or None, fast_name]; ``snaking`` bool (odd rows run the
            fast axis backwards); ``positions`` (N, 2) float64 recorded ``(slow, fast)``
            positions in the motors' own units (mm, degrees — not metres).  Optional:
            ``exposure_s`` float, ``header`` (JSON-ready dict of the raw scan's metadata).
        """
        return None

    def available(self):
        """Return ``(frames_available_now, scan_ended)``; a finished scan by default.

        ``ptyprep watch`` calls it on rank 0 while a scan is acquired; raise
        :class:`~ptyprep.errors.SourceError` while the raw data cannot be read yet.
        """
        return self.read_meta().num_frames, True

    def refresh(self):
        """See what was written since the files were opened (reopen them); nothing by default.

        ``ptyprep watch`` calls it before every look at a growing scan, and on the other
        ranks before they read a chunk rank 0 saw.
        """

    def where(self):
        """Where the frames come from, for messages (``"'raw.h5' dataset '/entry/data'"``);
        by default the source's class name."""
        return type(self).__name__

    def close(self):
        """Release open files."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def crop_roi(frames, roi):
    """Return ``frames[:, row0:row1, col0:col1]`` as a contiguous stack (no-op for None)."""
    if roi is None:
        return np.ascontiguousarray(frames)
    r0, r1, c0, c1 = roi
    return np.ascontiguousarray(frames[:, r0:r1, c0:c1])
