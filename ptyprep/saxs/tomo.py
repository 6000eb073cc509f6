"""Scattering tomography: sinogram maps → tomograms with scikit-image.

A map ``(n_angles, n_trans)`` whose slow axis is a rotation angle in degrees
and whose fast axis is a translation is a sinogram.  Rows with any NaN
(incomplete angles) are dropped, the rotation centre is found (or given),
the sinogram is resampled so that the centre sits in the middle pixel, and
``skimage.transform.iradon`` (filtered back-projection, ramp filter) or
``iradon_sart`` reconstructs a square slice, NaN outside the inscribed circle.
Values are in the map's units per pixel (pixel = one translation step).
"""

import re

import numpy as np

from ..errors import RecipeError

ALGORITHMS = ("fbp", "sart")
#: slow-motor names taken to be rotation angles (degrees)
ANGLE_MOTOR = re.compile(r"(rot|theta|omega|angle|^phi|[._]r[xyz]$|^r[xyz]$|^th$)", re.I)


def is_angle_axis(motor):
    """True when the motor name looks like a rotation (``rot``, ``theta``, ``ss.rx``...)."""
    return bool(motor) and bool(ANGLE_MOTOR.search(str(motor)))


def complete_rows(sino, angles):
    """Drop angle rows holding any NaN; returns ``(sino, angles)`` sorted by angle."""
    sino = np.asarray(sino, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    keep = np.all(np.isfinite(sino), axis=1)
    if keep.sum() < 3:
        raise RecipeError(f"only {int(keep.sum())} of {len(angles)} angle rows of the sinogram "
                          "are complete; tomography needs at least 3 (check the maps for NaN)")
    order = np.argsort(angles[keep], kind="stable")
    return sino[keep][order], angles[keep][order]


def find_center(sino, angles, trans):
    """Rotation centre from the sinusoid traced by each projection's centroid.

    The centroid ``c(θ)`` of a parallel projection of any object moves as
    ``c0 + a·cos θ + b·sin θ``; a least-squares fit gives ``c0``.

    Parameters
    ----------
    sino : (n_angles, n_trans) ndarray, no NaN
    angles : (n_angles,) degrees
    trans : (n_trans,) translation positions

    Returns
    -------
    float
        The centre in translation units.
    """
    trans = np.asarray(trans, dtype=np.float64)
    w = sino - sino.min(axis=1, keepdims=True)
    mass = w.sum(axis=1)
    ok = mass > 0
    if ok.sum() < 3:
        return float(np.mean(trans))
    cen = (w[ok] * trans).sum(axis=1) / mass[ok]
    th = np.radians(np.asarray(angles, dtype=np.float64)[ok])
    design = np.stack([np.ones_like(th), np.cos(th), np.sin(th)], axis=1)
    coef, *_ = np.linalg.lstsq(design, cen, rcond=None)
    return float(coef[0])


def centred_sinogram(sino, trans, center):
    """Resample rows so ``center`` falls on the middle pixel; 0 outside the data.

    Returns
    -------
    sino_c : (n_angles, n_out) ndarray, n_out odd
    coords : (n_out,) ndarray
        Translation position of each column (``coords[n_out // 2] == center``).
    """
    trans = np.asarray(trans, dtype=np.float64)
    order = np.argsort(trans)
    trans, sino = trans[order], np.asarray(sino)[:, order]
    step = float(np.median(np.diff(trans))) if len(trans) > 1 else 1.0
    if step <= 0:
        raise RecipeError("translation positions repeat; the fast axis is not a translation")
    half = int(np.ceil(max(center - trans[0], trans[-1] - center) / step - 1e-6))
    coords = center + step * np.arange(-half, half + 1)
    out = np.stack([np.interp(coords, trans, row, left=0.0, right=0.0) for row in sino])
    return out, coords


def reconstruct(sino, angles, trans, center=None, algorithm="fbp", sart_iterations=2):
    """Tomogram of a sinogram map.

    Parameters
    ----------
    sino : (n_angles, n_trans) ndarray
        Map with angle rows (degrees) and translation columns; NaN rows dropped.
    angles : (n_angles,) degrees;  trans : (n_trans,) translation positions
    center : float, optional
        Rotation centre in translation units; found with :func:`find_center` if None.
    algorithm : {"fbp", "sart"}

    Returns
    -------
    image : (n, n) float64 ndarray, NaN outside the inscribed circle
    coords : (n,) ndarray
        Translation coordinates of both image axes.
    center : float
    """
    if algorithm not in ALGORITHMS:
        raise RecipeError(f"tomography algorithm {algorithm!r} is not one of {ALGORITHMS}")
    from skimage.transform import iradon, iradon_sart

    sino, angles = complete_rows(sino, angles)
    if center is None:
        center = find_center(sino, angles, trans)
    sino_c, coords = centred_sinogram(sino, trans, float(center))
    n = len(coords)
    radon_image = np.ascontiguousarray(sino_c.T)
    if algorithm == "fbp":
        image = iradon(radon_image, theta=angles, output_size=n, filter_name="ramp", circle=True)
    else:
        image = None
        for _ in range(max(1, sart_iterations)):
            image = iradon_sart(radon_image, theta=angles, image=image)
    yy, xx = np.mgrid[:n, :n] - n // 2
    image = np.where(yy ** 2 + xx ** 2 <= (n // 2) ** 2, image, np.nan)
    return image, coords, float(center)
