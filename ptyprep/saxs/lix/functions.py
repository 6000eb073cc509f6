"""lixtools' attribute functions, on :class:`MatrixWithCoords` q-φ maps.

Their first argument is one frame's map (``d`` rows along φ, columns along q), as in a
lixtools notebook::

    dt.extract_attr(sn, "int_saxs", get_roi, "qphi", "merged", qphirange=[0.02, 0.05, -180, 180])
    dt.extract_attr(sn, "hop", hop, "qphi", "merged", xrange=[0.04, 0.06])

Both centro-symmetrise the map first, as lixtools' do (exactly here, for any Nphi).
"""

import numpy as np
from scipy.signal import find_peaks

__all__ = ["get_roi", "hop", "herman"]


def get_roi(d, qphirange):
    """Mean intensity in a q-φ window of the symmetrised map.

    Parameters
    ----------
    d : MatrixWithCoords
        One q-φ map.
    qphirange : [q1, q2, phi1, phi2]
        1/Å and degrees, inclusive on the bin coordinates.

    Returns
    -------
    float
        NaN-aware mean (NaN when the window holds no value).
    """
    q1, q2, p1, p2 = qphirange
    window = d.apply_symmetry().roi(q1, q2, p1, p2).d
    if not np.isfinite(window).any():
        return np.nan
    return float(np.nanmean(window))


def hop(d, xrange):
    """Herman's orientation parameter as lixtools reports it, in a q window.

    The map is symmetrised, averaged over ``xrange = [q1, q2]`` into I(φ), and
    :func:`herman` gives ``(2⟨cos²(φ − φ0)⟩ − 1) / 2`` (half of the 2-D parameter).

    Parameters
    ----------
    d : MatrixWithCoords
        One q-φ map (rows φ in degrees over the full circle).
    xrange : [q1, q2] in 1/Å

    Returns
    -------
    float
    """
    phi, profile, _ = d.apply_symmetry().line_profile(direction="y", xrange=xrange)
    return herman(phi, profile)


def herman(phi, intensity):
    """lixtools' orientation parameter of an azimuthal profile.

    φ0 is found as lixtools does: the peaks at least half the maximum high and 0.4 of
    the profile apart; the first past the first quarter of the profile (or the last
    peak) seeds a window of ±90° in which the intensity-weighted mean angle is φ0.
    Then ``(2 Σ I cos²(φ − φ0) / Σ I − 1) / 2``.

    Parameters
    ----------
    phi : (Nphi,) degrees, covering the circle
    intensity : (Nphi,) ; NaN counts as 0

    Returns
    -------
    float
        In [-0.5, 1]: 1 aligned along φ0, 0 isotropic, -0.5 perpendicular; NaN for
        a profile without intensity.

    Examples
    --------
    >>> phi = np.linspace(-177, 177, 60)
    >>> round(herman(phi, np.cos(np.radians(phi - 30)) ** 2), 6)
    0.25
    """
    phi = np.asarray(phi, dtype=np.float64)
    w = np.clip(np.nan_to_num(np.asarray(intensity, dtype=np.float64), nan=0.0), 0.0, None)
    if not w.sum() > 0:
        return np.nan
    peaks, _ = find_peaks(w, height=w.max() / 2, distance=max(1.0, 0.4 * w.size))
    if peaks.size == 0:
        peak = int(np.argmax(w))
    else:
        later = peaks[peaks > w.size / 4]
        peak = int(later[0] if later.size else peaks[-1])
    window = np.abs(phi - phi[peak]) <= 90
    phi0 = np.sum(w[window] * phi[window]) / np.sum(w[window]) if w[window].sum() > 0 else phi[peak]
    c2b = np.sum(w * np.cos(np.radians(phi - phi0)) ** 2) / np.sum(w)
    return float((2.0 * c2b - 1.0) / 2.0)
