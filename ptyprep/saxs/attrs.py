"""Per-frame attribute functions on q-φ maps and I(q): pure numpy.

Every function takes the data as first argument, with any number of leading
(frame) axes, and receives the axes it needs as keywords: ``q`` (Nq,) bin
centres in 1/Å, ``phi`` (Nphi,) bin centres in degrees in [-180, 180).
:class:`~ptyprep.saxs.ScanAnalysis` passes ``q``/``phi`` to any function whose
signature names them (or takes ``**kwargs``).  NaN bins (not covered by any
detector) are ignored everywhere.

Functions marked ``stack = True`` accept a whole ``(N, ...)`` chunk at once;
other callables are called frame by frame.
"""

import numpy as np

from ..errors import RecipeError

HOP_DEFINITIONS = ("2d", "lix")


def stack_function(func):
    """Mark ``func`` as accepting a stack of frames (leading axes) at once."""
    func.stack = True
    return func


def _window(axis, lo, hi, what, unit):
    axis = np.asarray(axis, dtype=np.float64)
    if lo > hi:
        raise RecipeError(f"{what} window [{lo}, {hi}] is reversed; give [low, high]")
    sel = (axis >= lo) & (axis <= hi)
    if not sel.any():
        raise RecipeError(f"{what} window [{lo}, {hi}] {unit} contains no bin centre "
                          f"(centres span {axis.min():.4g}..{axis.max():.4g}); widen it")
    return sel


def _nanmean(values, axis):
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    count = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def half_turn(qphi_map):
    """The map seen 180° away: ``out[..., k, :]`` is the intensity at ``φ_k + 180°``.

    With an even ``Nphi`` that is bin ``k + Nphi/2`` exactly.  With an odd ``Nphi``
    (lixtools' 61) ``φ_k + 180°`` falls half-way between bins ``k + (Nphi-1)/2`` and
    ``k + (Nphi+1)/2``: the value there is interpolated linearly, i.e. the NaN-aware mean
    of those two bins (one of them when the other is NaN).

    Parameters
    ----------
    qphi_map : (..., Nphi, Nq) ndarray

    Returns
    -------
    (..., Nphi, Nq) float64 ndarray

    Examples
    --------
    >>> half_turn(np.arange(5.0)[:, None])[:, 0]      # odd: half-way values
    array([2.5, 3.5, 2. , 0.5, 1.5])
    """
    m = np.asarray(qphi_map, dtype=np.float64)
    nphi = m.shape[-2]
    if nphi % 2 == 0:
        return np.roll(m, -(nphi // 2), axis=-2)
    lower = np.roll(m, -(nphi // 2), axis=-2)
    upper = np.roll(m, -(nphi // 2) - 1, axis=-2)
    return _nanmean(np.stack([lower, upper]), axis=0)


def symmetrize(qphi_map):
    """Centro-symmetrise: each φ bin averaged (NaN-aware) with the intensity 180° away.

    A bin no detector covers takes the value of its opposite; the opposite of a bin
    is exact for an even ``Nphi`` and interpolated for an odd one (:func:`half_turn`).

    Parameters
    ----------
    qphi_map : (..., Nphi, Nq) ndarray

    Returns
    -------
    (..., Nphi, Nq) float64 ndarray
    """
    m = np.asarray(qphi_map, dtype=np.float64)
    return _nanmean(np.stack([m, half_turn(m)]), axis=0)


@stack_function
def get_roi(qphi_map, qphirange, *, q, phi):
    """NaN-aware mean intensity in a q-φ window of the centro-symmetrised map.

    Parameters
    ----------
    qphi_map : (..., Nphi, Nq) ndarray
    qphirange : [q1, q2, phi1, phi2]
        Inclusive windows on bin centres, 1/Å and degrees.
    q : (Nq,) ndarray;  phi : (Nphi,) ndarray

    Returns
    -------
    (...) float64 ndarray

    Examples
    --------
    >>> m = np.ones((4, 3)); m[0] = 3.0
    >>> float(get_roi(m, [0, 1, -180, 180], q=[0.1, 0.2, 0.3], phi=[-135, -45, 45, 135]))
    1.5
    """
    if len(qphirange) != 4:
        raise RecipeError(f"qphirange={list(qphirange)} must be [q1, q2, phi1, phi2]")
    q1, q2, p1, p2 = qphirange
    qsel = _window(q, q1, q2, "q", "1/Å")
    psel = _window(phi, p1, p2, "phi", "deg")
    m = symmetrize(qphi_map)[..., psel, :][..., qsel]
    return _nanmean(m.reshape(m.shape[:-2] + (-1,)), axis=-1)


@stack_function
def iphi(qphi_map, qrange, *, q):
    """Azimuthal profile: NaN-aware mean over a q window, ``(..., Nphi)``."""
    q1, q2 = qrange
    return _nanmean(np.asarray(qphi_map)[..., _window(q, q1, q2, "q", "1/Å")], axis=-1)


@stack_function
def iq_mean(iq, qrange, *, q):
    """NaN-aware mean of I(q) over the inclusive window ``qrange = [q1, q2]`` (1/Å).

    ``iq`` is ``(..., Nq)``; returns ``(...)``.
    """
    q1, q2 = qrange
    return _nanmean(np.asarray(iq)[..., _window(q, q1, q2, "q", "1/Å")], axis=-1)


@stack_function
def iphi_mean(qphi_map, qrange, phirange, *, q, phi):
    """NaN-aware mean over a q window and a φ window (no symmetrisation), ``(...)``."""
    prof = iphi(qphi_map, qrange, q=q)
    p1, p2 = phirange
    return _nanmean(prof[..., _window(phi, p1, p2, "phi", "deg")], axis=-1)


def orientation_angle(profile, phi, iterations=3):
    """φ0: intensity-weighted mean angle within ±90° of the profile's peak.

    The window is re-centred on the estimate ``iterations`` times, so a peak
    falling between two bins is not biased towards one of them.

    Parameters
    ----------
    profile : (..., Nphi) ndarray, NaN ignored, negative values count as 0
    phi : (Nphi,) degrees

    Returns
    -------
    (...) float64 ndarray, degrees in [-90, 90) (an orientation is axial);
    NaN for an empty profile
    """
    phi = np.asarray(phi, dtype=np.float64)
    w = np.clip(np.nan_to_num(np.asarray(profile, dtype=np.float64), nan=0.0), 0.0, None)
    centre = phi[np.argmax(w, axis=-1)]
    total = w.sum(axis=-1)
    for _ in range(max(1, iterations)):
        delta = _wrap(phi - centre[..., None])
        wn = np.where(np.abs(delta) <= 90.0, w, 0.0)
        total = wn.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = _wrap(centre + np.where(total > 0, (wn * delta).sum(axis=-1) / total, 0.0))
    return np.where(total > 0, (centre + 90.0) % 180.0 - 90.0, np.nan)


def _wrap(deg):
    return (np.asarray(deg) + 180.0) % 360.0 - 180.0


@stack_function
def hop(qphi_map, xrange, *, q, phi, definition="2d"):
    """Herman's orientation parameter of the azimuthal profile in a q window.

    The map is centro-symmetrised first (:func:`symmetrize`), so sectors no detector
    covers (module gaps, a missing quadrant) do not bias it; the profile is the
    NaN-aware mean of that map over ``xrange = [q1, q2]``;
    φ0 comes from :func:`orientation_angle`; then with intensity weights
    (negative values count as 0, NaN bins ignored)

    * ``definition="2d"`` (default): ``f = 2⟨cos²(φ−φ0)⟩ − 1`` — 1 for perfect
      alignment along φ0, 0 for an isotropic pattern, −1 perpendicular;
    * ``definition="lix"``: half of it, ``(2⟨cos²⟩ − 1) / 2``, the number
      NSLS-II LiX's lixtools reports.

    Parameters
    ----------
    qphi_map : (..., Nphi, Nq) ndarray
    xrange : [q1, q2] in 1/Å
    q, phi : (Nq,), (Nphi,) bin centres
    definition : {"2d", "lix"}

    Returns
    -------
    (...) float64 ndarray

    Examples
    --------
    >>> phi = np.arange(-180, 180, 6.0) + 3
    >>> m = (np.cos(np.radians(phi)) ** 2)[:, None]
    >>> round(float(hop(m, [0, 1], q=[0.5], phi=phi)), 6)
    0.5
    """
    if definition not in HOP_DEFINITIONS:
        raise RecipeError(f"hop definition {definition!r} is not one of {HOP_DEFINITIONS}")
    q1, q2 = xrange
    window = np.asarray(qphi_map)[..., _window(q, q1, q2, "q", "1/Å")]
    prof = _nanmean(symmetrize(window), axis=-1)
    phi = np.asarray(phi, dtype=np.float64)
    phi0 = orientation_angle(prof, phi)
    w = np.clip(np.nan_to_num(prof, nan=0.0), 0.0, None)
    cos2 = np.cos(np.radians(phi - phi0[..., None])) ** 2
    total = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 2.0 * (w * cos2).sum(axis=-1) / total - 1.0
    f = np.where(total > 0, f, np.nan)
    return f / 2.0 if definition == "lix" else f


BUILTINS = {"get_roi": get_roi, "hop": hop, "iq_mean": iq_mean, "iphi_mean": iphi_mean,
            "iphi": iphi}
