"""Small CXI files built from the CXI 1.6 specification's own geometry rules.

CXI 1.6 (https://www.cxidb.org/cxi.html, reference document ``cxi_file_format.pdf``,
section "The orientation of pixel detectors" and the Detector class):

* ``corner_position`` is the ``(x, y, z)`` of the corner of the first data element;
* ``basis_vectors`` row 0 is position(1, 0) - position(0, 0), row 1 is
  position(0, 1) - position(0, 0) (centre to centre), and without it the basis is
  ``[[0, -y_pixel_size, 0], [-x_pixel_size, 0, 0]]``;
* the spec's figure "Pixel locations for a pixel detector with no basis_vectors defined
  ... and with a corner_position of (pixel width, pixel height, detector distance)"
  shows a 2 x 2 detector with pixel (0, 0) at +x, +y, pixel (1, 0) below it (-y) and
  pixel (0, 1) beside it (-x): the beam (the z axis) crosses the detector's centre.

The files here are written from the *physical* pixel layout, never through ptyprep's
helpers, so a test that reads them checks ptyprep's geometry against the spec.
"""

import h5py
import numpy as np

JOULE_PER_KEV = 1.602176634e-16
PY, PX = 75e-6, 55e-6        # pixel pitch along y and x, metres
NY, NX = 5, 4                # physical pixels along y and x
AY, AX = 3.0, 1.25           # physical (iy, ix) where the optical axis (x = y = 0) falls
N_FRAMES = 3
DISTANCE = 2.5
DEAD = (0, 3)                # physical (iy, ix) with the CXI dead bit 0x8
HAS_SIGNAL = (2, 0)          # physical (iy, ix) with the informational bit 0x1000

# Physical pixel (iy, ix) has its centre at x = X0 + (ix + 0.5) PX, y = Y0 + (iy + 0.5) PY,
# and the optical axis at (iy, ix) = (AY, AX) means X0 = -(AX + 0.5) PX, Y0 = -(AY + 0.5) PY.
X0, Y0 = -(AX + 0.5) * PX, -(AY + 0.5) * PY

# In the default orientation (rows along -y, columns along -x) the default frame's pixel
# (R, K) is the physical pixel iy = NY - 1 - R, ix = NX - 1 - K, so the optical axis is at
# R = NY - 1 - AY = 4 - 3.0 = 1.0 and K = NX - 1 - AX = 3 - 1.25 = 1.75.
DEFAULT_CENTER = (1.0, 1.75)
DEFAULT_SHAPE = (NY, NX)


def value(frame, iy, ix):
    """A value unique to each frame and physical pixel."""
    return 100 * frame + 10 * iy + ix


def default_frames():
    """``(N, NY, NX)`` frames as the default CXI orientation stores them."""
    out = np.empty((N_FRAMES, NY, NX), np.float32)
    for f in range(N_FRAMES):
        for r in range(NY):
            for k in range(NX):
                out[f, r, k] = value(f, NY - 1 - r, NX - 1 - k)
    return out


def default_valid():
    """Valid pixels of the default frame: only the dead pixel is bad."""
    valid = np.ones((NY, NX), bool)
    valid[NY - 1 - DEAD[0], NX - 1 - DEAD[1]] = False
    return valid


def _pitch(axis):
    return {"x": PX, "y": PY}[axis]


def _count(axis):
    return {"x": NX, "y": NY}[axis]


def write_oriented_cxi(path, row_step, col_step, pixel_sizes=True, basis=None):
    """Write the physical detector above with stored rows/columns stepping along
    ``row_step`` / ``col_step``, each ``(axis, sign)`` such as ``("y", -1)``.

    ``basis`` replaces the ``basis_vectors`` written (for files that lie); the frames,
    mask and corner always follow ``row_step`` and ``col_step``.
    """
    (ra, rs), (ca, cs) = row_step, col_step
    assert ra != ca
    shape = (_count(ra), _count(ca))

    def physical(r, k):
        """Physical (iy, ix) of stored pixel (r, k)."""
        idx = {}
        idx[ra] = r if rs > 0 else _count(ra) - 1 - r
        idx[ca] = k if cs > 0 else _count(ca) - 1 - k
        return idx["y"], idx["x"]

    data = np.empty((N_FRAMES,) + shape, np.float32)
    mask = np.zeros(shape, np.uint32)
    for r in range(shape[0]):
        for k in range(shape[1]):
            iy, ix = physical(r, k)
            data[:, r, k] = [value(f, iy, ix) for f in range(N_FRAMES)]
            mask[r, k] = 0x8 if (iy, ix) == DEAD else 0x1000 if (iy, ix) == HAS_SIGNAL else 0
    unit = {"x": np.array([1.0, 0, 0]), "y": np.array([0, 1.0, 0])}
    b_row, b_col = rs * _pitch(ra) * unit[ra], cs * _pitch(ca) * unit[ca]
    iy, ix = physical(0, 0)
    centre00 = np.array([X0 + (ix + 0.5) * PX, Y0 + (iy + 0.5) * PY, DISTANCE])
    # the corner of pixel (0, 0): half a step back along both basis vectors
    corner = centre00 - 0.5 * b_row - 0.5 * b_col
    with h5py.File(path, "w") as f:
        e = f.create_group("entry_1")
        det = e.create_group("instrument_1/detector_1")
        det["data"] = data
        det["mask"] = mask
        det["distance"] = DISTANCE
        if pixel_sizes:
            det["x_pixel_size"] = PX
            det["y_pixel_size"] = PY
        det["corner_position"] = corner
        det["basis_vectors"] = np.stack([b_row, b_col]) if basis is None else basis
        e["instrument_1/source_1/energy"] = 8.0 * JOULE_PER_KEV
        e["sample_1/geometry_1/translation"] = np.zeros((N_FRAMES, 3))
    return str(path)


def write_spec_figure_cxi(path, basis=False):
    """The spec figure's 2 x 2 detector: corner_position = (pixel width, pixel height,
    distance), no basis_vectors (or, with ``basis``, the spec's default written out)."""
    w, h = PX, PY
    with h5py.File(path, "w") as f:
        e = f.create_group("entry_1")
        det = e.create_group("instrument_1/detector_1")
        det["data"] = np.arange(2 * 2 * 2, dtype=np.float32).reshape(2, 2, 2)
        det["distance"] = DISTANCE
        det["x_pixel_size"] = w
        det["y_pixel_size"] = h
        det["corner_position"] = [w, h, DISTANCE]
        if basis:
            det["basis_vectors"] = [[0.0, -h, 0.0], [-w, 0.0, 0.0]]
        e["instrument_1/source_1/energy"] = 8.0 * JOULE_PER_KEV
        e["sample_1/geometry_1/translation"] = np.zeros((2, 3))
    return str(path)


#: The 8 axis-aligned layouts: (row_step, col_step, ptyprep's (transpose, flipud, fliplr)).
ORIENTATIONS = [
    (("y", -1), ("x", -1), (False, False, False)),   # the CXI default
    (("y", -1), ("x", +1), (False, False, True)),
    (("y", +1), ("x", -1), (False, True, False)),
    (("y", +1), ("x", +1), (False, True, True)),
    (("x", -1), ("y", -1), (True, False, False)),    # transposed
    (("x", +1), ("y", -1), (True, False, True)),
    (("x", -1), ("y", +1), (True, True, False)),
    (("x", +1), ("y", +1), (True, True, True)),
]
