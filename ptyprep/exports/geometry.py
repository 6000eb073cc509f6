"""The geometry every export needs, from a prepared scan's ``meta``: pure functions.

ptyprep's prepared frames are square or rectangular ``(H, W)`` stacks with the optical
axis at ``meta["center"]``, detector pixels ``meta["psize"]`` ``(y, x)`` in metres,
photon energy ``meta["energy"]`` in keV and distance ``meta["distance"]`` in metres
(Fresnel-scaled already for a cone beam).  Each reconstruction code wants these in its
own units; :class:`ScanGeometry` holds them once, in SI, with the derived quantities.
"""

from dataclasses import dataclass

import numpy as np

#: One electron-volt in joules (exact, SI 2019).
ELECTRON_VOLT_J = 1.602176634e-19
#: h·c in keV·m from the exact SI constants: wavelength [m] = HC_KEV_M / energy [keV].
HC_KEV_M = 6.62607015e-34 * 299792458.0 / ELECTRON_VOLT_J / 1e3


@dataclass(frozen=True)
class ScanGeometry:
    """Geometry of a prepared scan.

    Attributes
    ----------
    shape : (int, int)
        Frame shape ``(H, W)``, pixels.
    center : (float, float)
        Optical axis on the frame ``(row, col)``, pixels.
    psize_m : (float, float)
        Detector pixel size ``(y, x)``, metres.
    energy_keV : float
        Photon energy, keV.
    distance_m : float
        Sample-detector distance, metres (the effective one for a cone beam).
    propagation : str
        ``"farfield"`` or ``"nearfield"``.
    """

    shape: tuple
    center: tuple
    psize_m: tuple
    energy_keV: float
    distance_m: float
    propagation: str = "farfield"

    @classmethod
    def from_meta(cls, meta):
        """From a ``.ptyd``'s ``meta`` (or :meth:`Plan.output_meta`)."""
        shape = tuple(int(s) for s in np.broadcast_to(np.asarray(meta["shape"]), (2,)))
        psize = tuple(float(p) for p in np.broadcast_to(np.asarray(meta["psize"], float), (2,)))
        center = meta.get("center")
        center = (tuple(float(c) for c in np.asarray(center, float)) if center is not None
                  else (shape[0] // 2, shape[1] // 2))
        propagation = meta.get("propagation") or "farfield"
        return cls(shape, center, psize, float(meta["energy"]), float(meta["distance"]),
                   str(propagation))

    @property
    def wavelength_m(self):
        """Wavelength, metres."""
        return HC_KEV_M / self.energy_keV

    @property
    def energy_eV(self):
        """Photon energy, eV."""
        return self.energy_keV * 1e3

    @property
    def energy_J(self):
        """Photon energy, joules."""
        return self.energy_eV * ELECTRON_VOLT_J

    @property
    def sample_pixel_m(self):
        """Pixel of the sample plane ``(y, x)`` in metres: λ z / (N · psize) per axis in the
        far field; in the near field the (Fresnel-scaled) detector pixel itself."""
        if self.propagation == "nearfield":
            return tuple(float(p) for p in self.psize_m)
        return tuple(self.wavelength_m * self.distance_m / (n * p)
                     for n, p in zip(self.shape, self.psize_m))
