"""Initial guesses of the probe and the object, for formats that carry them: pure functions.

Several codes read the scan positions only together with a probe and an object (CXI
through ptychodus, ptychodus's own product file).  ptyprep writes the guesses a
reconstruction usually starts from:

* the probe: the inverse Fourier transform of the square root of the mean measured
  intensity (a flat-phase probe whose far-field intensity is the mean pattern and whose
  total intensity is the mean count per frame), centred in its array;
* the object: ones, covering every probe footprint with a margin.

Both on the sample-plane pixel λz/(N·psize) (:attr:`ScanGeometry.sample_pixel_m`).  In the
near field the detector sees the probe's own plane: the probe guess is ``sqrt(mean)`` on
the detector pixel (:func:`nearfield_probe`).
"""

import numpy as np


def mean_pattern(total, valid_count):
    """Mean intensity per pixel over the frames where it is valid (0 where never valid).

    Parameters
    ----------
    total : (H, W) float64 ndarray
        Sum of the valid pixels' counts over all frames.
    valid_count : (H, W) int ndarray
        Frames in which each pixel is valid.
    """
    return np.divide(total, valid_count, out=np.zeros_like(total, dtype=np.float64),
                     where=valid_count > 0)


def initial_probe(mean, center=None):
    """A probe whose far-field intensity is ``mean``: ``ifft2(sqrt(mean))``, centred.

    Parameters
    ----------
    mean : (H, W) float ndarray
        Mean diffraction intensity, counts per pixel, optical axis at ``center``.
    center : (float, float), optional
        Optical axis ``(row, col)`` on the pattern; default ``(H // 2, W // 2)``.

    Returns
    -------
    (H, W) complex64 ndarray
        The probe on the sample-plane grid, its centre at ``(H // 2, W // 2)``;
        ``sum |probe|² == sum(mean)`` (a unitary transform).
    """
    h, w = mean.shape
    cy, cx = (h // 2, w // 2) if center is None else (int(round(center[0])), int(round(center[1])))
    amplitude = np.sqrt(np.clip(np.asarray(mean, dtype=np.float64), 0, None))
    amplitude = np.roll(amplitude, (-cy, -cx), axis=(0, 1))       # axis to pixel (0, 0)
    probe = np.fft.fftshift(np.fft.ifft2(amplitude, norm="ortho"))
    return probe.astype(np.complex64)


def nearfield_probe(mean):
    """A near-field probe guess: ``sqrt(mean)``, flat phase, ``(H, W)`` complex64
    (``sum |probe|² == sum(mean)``, as :func:`initial_probe`)."""
    return np.sqrt(np.clip(np.asarray(mean, dtype=np.float64), 0, None)).astype(np.complex64)


def object_extent(positions, probe_shape, pixel_m, margin_px=8):
    """Shape and centre of an object that holds every probe footprint.

    Parameters
    ----------
    positions : (N, 2) float ndarray
        Scan positions ``(y, x)``, metres.
    probe_shape : (int, int)
        Probe array shape, pixels.
    pixel_m : (float, float)
        Sample-plane pixel ``(y, x)``, metres.
    margin_px : int
        Extra pixels on every side.

    Returns
    -------
    shape : (int, int)
        Object shape, pixels (even).
    center_m : (float, float)
        Position ``(y, x)`` of the object's centre, metres: the middle of the scan.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if len(positions):
        low, high = positions.min(axis=0), positions.max(axis=0)
    else:
        low = high = np.zeros(2)
    span_px = (high - low) / np.asarray(pixel_m, dtype=np.float64)
    span_px = np.ceil(np.round(span_px, 6))        # 30.000000000000004 pixels are 30
    shape = tuple(int(2 * np.ceil((s + p + 2 * margin_px) / 2))
                  for s, p in zip(span_px, probe_shape))
    return shape, tuple(float(c) for c in (low + high) / 2)


def initial_object(shape):
    """An object of ones, ``(H, W)`` complex64."""
    return np.ones(shape, dtype=np.complex64)
