"""Frame orientation: ptypy's eight codes of transpose and flips, and where a point lands.

Pure numpy, used by the preparation (:mod:`ptyprep.ptycho.frames`) and by sources that
store their frames in another orientation (:mod:`ptyprep.sources.cxi`).
"""

import numpy as np

#: Orientation codes 0..7 as ``(transpose, flipud, fliplr)``: bit 4, 2, 1 (ptypy's rule).
ORIENTATIONS = {code: (bool(code & 4), bool(code & 2), bool(code & 1)) for code in range(8)}


def parse_orientation(orientation):
    """Return ``(transpose, flipud, fliplr)`` for an integer 0..7 or a triple of booleans.

    >>> parse_orientation(5)
    (True, False, True)
    """
    if isinstance(orientation, (bool, np.bool_)):
        raise ValueError(f"orientation must be an integer 0..7 or a triple "
                         f"[transpose, flipud, fliplr], got {orientation!r}")
    if isinstance(orientation, (int, np.integer)):
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation {orientation} is out of range; use 0..7 "
                             "(bit 4 transpose, bit 2 flipud, bit 1 fliplr) or a triple")
        return ORIENTATIONS[int(orientation)]
    if not isinstance(orientation, (str, bytes)) and not hasattr(orientation, "__iter__"):
        raise ValueError(f"orientation must be an integer 0..7 or a triple "
                         f"[transpose, flipud, fliplr], got {orientation!r}")
    triple = tuple(orientation)
    if len(triple) != 3 or not all(isinstance(t, (bool, np.bool_, int)) and t in (0, 1)
                                   for t in triple):
        raise ValueError(f"orientation triple must be three booleans "
                         f"[transpose, flipud, fliplr], got {orientation!r}")
    return tuple(bool(t) for t in triple)


def orient(frames, orientation):
    """Transpose, then flip up-down, then flip left-right the last two axes.

    Parameters
    ----------
    frames : (..., H, W) ndarray
    orientation : int 0..7 or (transpose, flipud, fliplr)

    Returns
    -------
    ndarray view with the orientation applied.
    """
    transpose, flipud, fliplr = parse_orientation(orientation)
    if transpose:
        frames = np.swapaxes(frames, -1, -2)
    if flipud:
        frames = frames[..., ::-1, :]
    if fliplr:
        frames = frames[..., :, ::-1]
    return frames


def orient_center(center, shape, orientation):
    """Where ``center`` of a frame of ``shape`` lands after :func:`orient`.

    Returns
    -------
    center : (float, float), shape : (int, int) of the oriented frame
    """
    transpose, flipud, fliplr = parse_orientation(orientation)
    cy, cx = center
    h, w = shape
    if transpose:
        cy, cx, h, w = cx, cy, w, h
    if flipud:
        cy = h - 1 - cy
    if fliplr:
        cx = w - 1 - cx
    return (cy, cx), (h, w)
