"""The geometry of a CXI 1.6 detector: pure functions of ``corner_position``,
``basis_vectors`` and the mask bits (used by :mod:`ptyprep.sources.cxi`).

A pixel ``(r, c)``'s centre is at ``corner + (r + 0.5) b_row + (c + 0.5) b_col`` (metres,
x, y, z); the default basis is ``[[0, -py, 0], [-px, 0, 0]]`` (rows along −y, columns
along −x), and the optical axis is where x = y = 0.
"""

import numpy as np

#: CXI 1.6 Detector mask bits that only inform (``CXI_PIXEL_HAS_SIGNAL``); every other
#: set bit makes a pixel unusable.
CXI_INFORMATIONAL_BITS = 0x1000
#: The default CXI orientation, as ptyprep's ``(transpose, flipud, fliplr)``.
DEFAULT_ORIENTATION = (False, False, False)
#: Largest off-axis component of a basis vector, relative to its length, still taken as
#: axis-aligned (rounding in the writer, not a rotation).
AXIS_TOLERANCE = 1e-6
#: Largest relative difference between ``x/y_pixel_size`` and the basis vectors' lengths.
PSIZE_RTOL = 1e-6


def default_basis(psize_yx):
    """The CXI default ``basis_vectors`` for a pixel of ``(y, x)`` metres.

    Returns
    -------
    (2, 3) float64 ndarray
        ``[[0, -psize_y, 0], [-psize_x, 0, 0]]``: rows run along -y, columns along -x.
    """
    py, px = (float(v) for v in psize_yx)
    return np.array([[0.0, -py, 0.0], [-px, 0.0, 0.0]])


def _axis_of(vector):
    """``(axis, sign)`` of an axis-aligned step: axis 0 = x, 1 = y; ValueError otherwise."""
    v = np.asarray(vector, dtype=np.float64)
    length = float(np.linalg.norm(v))
    if not np.isfinite(length) or length == 0.0:
        raise ValueError(f"the step {v.tolist()} has no length")
    axis = int(np.argmax(np.abs(v[:2])))
    off = np.delete(v, axis)
    if np.any(np.abs(off) > AXIS_TOLERANCE * length):
        kind = "tilted out of the detector plane" if abs(v[2]) > AXIS_TOLERANCE * length \
            else "rotated"
        raise ValueError(f"the step {v.tolist()} is {kind}, not along x or y")
    return axis, (1 if v[axis] > 0 else -1)


def _axes(basis):
    b = np.asarray(basis, dtype=np.float64)
    if b.shape != (2, 3):
        raise ValueError(f"basis_vectors has shape {b.shape}, expected (2, 3) for 2-D frames")
    (row_axis, row_sign), (col_axis, col_sign) = _axis_of(b[0]), _axis_of(b[1])
    if row_axis == col_axis:
        raise ValueError("both steps run along " + "xy"[row_axis])
    return b, (row_axis, row_sign), (col_axis, col_sign)


def orientation_from_basis(basis):
    """The reorientation that brings frames stored with ``basis`` to the default one.

    Parameters
    ----------
    basis : (2, 3) array_like
        CXI ``basis_vectors``: the step from pixel ``(0, 0)`` to ``(1, 0)`` and to
        ``(0, 1)`` in ``(x, y, z)``.

    Returns
    -------
    (bool, bool, bool)
        ptyprep's ``(transpose, flipud, fliplr)`` (:func:`ptyprep.orientation.orient`)
        such that the oriented rows run along -y and the columns along -x.

    Raises
    ------
    ValueError
        If ``basis`` is not ``(2, 3)`` or not one of the 8 axis-aligned orientations.

    Examples
    --------
    >>> orientation_from_basis([[0, -75e-6, 0], [-55e-6, 0, 0]])
    (False, False, False)
    >>> orientation_from_basis([[-55e-6, 0, 0], [0, 75e-6, 0]])
    (True, True, False)
    """
    _, (row_axis, row_sign), (col_axis, col_sign) = _axes(basis)
    transpose = row_axis == 0                       # stored rows run along x
    y_sign, x_sign = (col_sign, row_sign) if transpose else (row_sign, col_sign)
    return (transpose, y_sign > 0, x_sign > 0)     # the default steps are -y and -x


def psize_from_basis(basis):
    """Pixel size ``(y, x)`` in metres: the lengths of the steps along y and along x."""
    b, (row_axis, _), _ = _axes(basis)
    lengths = np.linalg.norm(b, axis=1)
    return (float(lengths[1]), float(lengths[0])) if row_axis == 0 else \
        (float(lengths[0]), float(lengths[1]))


def axis_from_corner(corner_xyz, basis):
    """Where the optical axis (``x = y = 0``) falls on the stored pixel grid.

    The centre of pixel ``(r, k)`` is ``c + (r + 0.5) b_row + (k + 0.5) b_col`` (CXI
    1.6); the x and y components of ``c + u b_row + v b_col = 0`` are solved for
    ``(u, v)``, so any basis whose steps are not parallel in the x-y plane works.

    Parameters
    ----------
    corner_xyz : (3,) array_like
        ``corner_position``, metres (``z`` is not used).
    basis : (2, 3) array_like
        ``basis_vectors``, metres.

    Returns
    -------
    (float, float)
        ``(row, col)`` in pixels of the stored frame (pixel centres at integers).

    Raises
    ------
    ValueError
        If the two steps are parallel in the x-y plane.

    Examples
    --------
    >>> axis_from_corner([1.0, 1.5, 2.0], default_basis((0.5, 0.5)))
    (2.5, 1.5)
    """
    b = np.asarray(basis, dtype=np.float64)
    c = np.asarray(corner_xyz, dtype=np.float64).ravel()
    m = b[:, :2].T                                  # columns: b_row_xy, b_col_xy
    if abs(np.linalg.det(m)) <= 1e-12 * float(np.abs(m).max()) ** 2:
        raise ValueError("the basis vectors are parallel in the x-y plane")
    u, v = np.linalg.solve(m, -c[:2])
    return (float(u) - 0.5, float(v) - 0.5)


def stored_roi(roi, shape, orientation):
    """The window of the stored frame that :func:`~ptyprep.orientation.orient` turns
    into ``roi`` of the oriented frame.

    Parameters
    ----------
    roi : (row0, row1, col0, col1)
        Half-open window of the oriented frame.
    shape : (int, int)
        Shape of the oriented frame.
    orientation : (bool, bool, bool)
        ``(transpose, flipud, fliplr)``.

    Returns
    -------
    (int, int, int, int)
        ``(row0, row1, col0, col1)`` on the stored frame;
        ``orient(stored[:, r0:r1, c0:c1]) == orient(stored)[:, roi]``.
    """
    r0, r1, c0, c1 = (int(v) for v in roi)
    h, w = (int(v) for v in shape)
    transpose, flipud, fliplr = orientation
    if fliplr:
        c0, c1 = w - c1, w - c0
    if flipud:
        r0, r1 = h - r1, h - r0
    return (c0, c1, r0, r1) if transpose else (r0, r1, c0, c1)


def valid_from_cxi_mask(mask):
    """``True`` where no bit but the informational ``0x1000`` is set (CXI 1.6 mask)."""
    return (np.asarray(mask).astype(np.int64) & ~np.int64(CXI_INFORMATIONAL_BITS)) == 0
