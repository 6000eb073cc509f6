"""The frame pipeline: raw stack → prepared stack, a pure function of the plan.

Order (DESIGN.md): FFT-unshift (optional), dark/flat, threshold, saturation →
crop/pad around the centre → orientation → rebin.
"""

import numpy as np

from ..errors import PtyprepError, SourceError
from ..sources.faults import read_frames
from . import frames as F


def read_raw(source, plan, indices):
    """Read what the crop needs: the ROI, or whole frames when they must be unshifted first.

    Returns
    -------
    frames : (M, h, w) ndarray
    roi : (row0, row1, col0, col1) or None
    frames_valid : (M, h, w) bool ndarray or None
        Per-frame validity from the source, if it has any.
    """
    roi = (0, plan.raw_shape[0], 0, plan.raw_shape[1]) if plan.fftshift else plan.roi
    if roi is None:
        return np.zeros((len(indices), 0, 0), dtype=np.float32), None, None
    read_roi = None if plan.fftshift else roi
    frames = read_frames(source, indices, read_roi)
    try:
        return frames, roi, source.read_frames_valid(indices, read_roi)
    except PtyprepError:
        raise
    except (OSError, ValueError) as exc:   # h5py, numpy, fabio: damaged or truncated data
        raise SourceError(f"cannot read the valid pixels of frames {int(indices[0])}-"
                          f"{int(indices[-1])} of {source.where()}: {exc}; check the file") \
            from exc


def correct_raw(raw, plan, roi, frames_valid=None, tally=None):
    """Corrections on raw pixels of ``roi``: unshift, dark/flat, threshold; and their validity.

    Non-finite values of float frames (NaN, ±inf) become 0 and invalid.

    Returns
    -------
    frames : (M, h, w) ndarray, valid : (h, w) or (M, h, w) bool ndarray
    """
    raw, finite = F.finite_pixels(raw)
    if finite is not None:
        if tally is not None:
            tally["nonfinite"] = (tally.get("nonfinite", 0)
                                  + finite.size - int(np.count_nonzero(finite)))
        frames_valid = finite if frames_valid is None else frames_valid & finite
    if plan.fftshift:
        raw = np.fft.fftshift(raw, axes=(-2, -1))
        if frames_valid is not None:
            frames_valid = np.fft.fftshift(frames_valid, axes=(-2, -1))
    sl = (slice(roi[0], roi[1]), slice(roi[2], roi[3])) if roi is not None else (slice(0, 0),) * 2
    dark = plan.dark[sl] if plan.dark is not None else None
    flat = plan.flat[sl] if plan.flat is not None else None
    frames = F.correct(raw, dark, flat)
    if plan.threshold:
        frames = np.where(frames < plan.threshold, 0, frames).astype(frames.dtype, copy=False)
    valid = plan.valid[sl]
    saturated = F.threshold_valid(raw, plan.saturation)
    if saturated is not None:
        valid = valid & saturated
    if frames_valid is not None:
        valid = valid & frames_valid
    return frames, valid


def prepare(raw, plan, roi, frames_valid=None, tally=None):
    """Prepare a raw stack read from ``roi`` (see :func:`read_raw`).

    Parameters
    ----------
    raw : (M, h, w) ndarray
    plan : Plan
        With its centre decided.
    roi : (row0, row1, col0, col1) or None
    frames_valid : (M, h, w) bool ndarray or None
    tally : dict, optional
        ``tally["nonfinite"]`` grows by the number of NaN and ±inf values met.

    Returns
    -------
    data : (M, n, n) ndarray
        Prepared intensities; in ``sum`` mode invalid pixels hold 0.
    valid : (n, n) or (M, n, n) bool ndarray
        (n, n) when every frame shares the static mask.
    """
    frames, valid = correct_raw(raw, plan, roi, frames_valid, tally)
    window = plan.window
    if plan.fftshift and roi is not None:
        frames, valid = _crop_from_full(frames, valid, window)
        roi = F.clip_window(window, plan.raw_shape)
    frames, valid = F.pad_to_window(frames, valid, window, roi)
    frames = F.orient(frames, plan.orientation)
    valid = F.orient(valid, plan.orientation)
    frames, valid = F.rebin(frames, valid, plan.rebin, plan.rebin_mode)
    frames = np.ascontiguousarray(frames)
    if plan.rebin_mode == "sum" and not valid.all():
        if np.may_share_memory(frames, raw):
            frames = frames.copy()  # never write into the source's array
        np.copyto(frames, 0, where=~valid)
    return frames, np.ascontiguousarray(valid)


def output_valid(plan):
    """The prepared frame's static valid mask: the plan's mask (source mask, flat field)
    through crop/pad, orientation and rebin, as every frame without its own invalid
    pixels comes out.

    Returns
    -------
    (n, n) bool ndarray, or None while the centre is not decided (``center = "auto"``).
    """
    if plan.center is None:
        return None
    roi = (0, plan.raw_shape[0], 0, plan.raw_shape[1]) if plan.fftshift else plan.roi
    h, w = (0, 0) if roi is None else (roi[1] - roi[0], roi[3] - roi[2])
    _, valid = prepare(np.zeros((1, h, w), np.float32), plan, roi)
    return valid.reshape(valid.shape[-2:])


def padding_fraction(plan):
    """Fraction of the crop window outside the raw frame (0 when the crop fits), or None
    while the centre is not decided."""
    if plan.center is None:
        return None
    r0, r1, c0, c1 = plan.window
    inside = F.clip_window(plan.window, plan.raw_shape)
    if inside is None:
        return 1.0
    area = (inside[1] - inside[0]) * (inside[3] - inside[2])
    return 1.0 - area / float((r1 - r0) * (c1 - c0))


def _crop_from_full(frames, valid, window):
    r = F.clip_window(window, frames.shape[-2:])
    if r is None:
        return frames[:, :0, :0], valid[..., :0, :0]
    return frames[:, r[0]:r[1], r[2]:r[3]], valid[..., r[0]:r[1], r[2]:r[3]]


def frame_centres(raw, plan, frames_valid=None):
    """Per-frame centre of mass of whole raw frames (for ``center = "auto"``).

    Parameters
    ----------
    raw : (M, H, W) ndarray
        Whole raw frames.

    Returns
    -------
    (M, 2) float64 ndarray, (row, col); NaN for frames without counts.
    """
    full = (0, plan.raw_shape[0], 0, plan.raw_shape[1])
    frames, valid = correct_raw(raw, plan, full, frames_valid)
    return F.center_of_mass(frames, valid)
