"""A simulated far-field ptychography scan (the default of ``ptyprep demo``).

A known probe scans a known complex object on a raster; each raw frame is the
far-field intensity ``|FFT(probe · object patch)|²`` scaled to ``photons`` and
Poisson-sampled, placed on a larger detector with an off-centre beam, a module
gap, dead pixels (always 0, masked) and hot pixels (always high, not masked:
``prep.saturation`` catches them).  Every frame is computed from its index alone
(its own random seed), so any rank reading any index gets the same data.

``kind = "index"`` instead fills frame *i* with the value *i* on a faint ring
around the beam centre, which makes ordering mistakes visible in tests.
"""

import numpy as np

from ..errors import RecipeError
from .base import ScanMeta, ScanSource, crop_roi

KEV_M = 12.398419843320026e-10  # wavelength (m) times photon energy (keV)


class SimulatedSource(ScanSource):
    """Simulated scan.

    Parameters
    ----------
    num_frames : int
        Scan points (a square-ish raster, row by row).
    frame_shape : [int, int]
        Raw detector shape (H, W).
    pattern_size : int
        Side of the simulated diffraction pattern (the natural crop size).
    beam_center : [float, float]
        Optical axis on the detector (row, col).
    energy_keV, distance_m, psize_m : float
        Geometry; the object pixel size follows as ``λ z / (pattern_size · psize)``.
    step_px : float
        Raster step in object pixels.
    photons : float
        Mean photons per frame.
    seed : int
        Random seed of the object and of each frame's Poisson noise.
    kind : {"ptycho", "index"}
        ``"index"`` fills frame *i* with *i* (ordering checks) instead of a diffraction pattern.
    gap_cols : [int, int]
        Half-open column range of the module gap (masked, zero).
    hot_value : int
        Value of the hot pixels.
    """

    def __init__(self, num_frames=100, frame_shape=(192, 200), pattern_size=128,
                 beam_center=(101.3, 93.6), energy_keV=6.2, distance_m=7.0, psize_m=172e-6,
                 step_px=6.0, photons=1e6, seed=1, kind="ptycho", gap_cols=(120, 126),
                 hot_value=2**20):
        if kind not in ("ptycho", "index"):
            raise RecipeError(f"source.kind {kind!r} must be 'ptycho' or 'index'")
        if num_frames < 1 or pattern_size < 8:
            raise RecipeError("source.num_frames must be >= 1 and source.pattern_size >= 8")
        self.num_frames, self.kind, self.seed = int(num_frames), kind, int(seed)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.n = int(pattern_size)
        if self.n > min(self.frame_shape):
            raise RecipeError(f"source.pattern_size {self.n} exceeds the frame {self.frame_shape}")
        self.beam_center = tuple(float(c) for c in beam_center)
        r0, c0 = (int(np.round(c)) - self.n // 2 for c in self.beam_center)
        if r0 < 0 or c0 < 0 or r0 + self.n > self.frame_shape[0] or c0 + self.n > self.frame_shape[1]:
            raise RecipeError(f"the simulated pattern ({self.n}² around source.beam_center "
                              f"{list(self.beam_center)}) does not fit the frame "
                              f"{list(self.frame_shape)}; set source.beam_center inside it "
                              "(at least pattern_size / 2 from every edge)")
        self.energy_keV, self.distance_m, self.psize_m = energy_keV, distance_m, psize_m
        self.step_px, self.photons = float(step_px), float(photons)
        self.gap_cols, self.hot_value = tuple(gap_cols), int(hot_value)
        self._scan_px = raster(self.num_frames, self.step_px)
        self._model = None

    @property
    def object_pixel_m(self):
        """Object pixel size in metres (far-field sampling)."""
        return KEV_M / self.energy_keV * self.distance_m / (self.n * self.psize_m)

    def read_meta(self):
        return ScanMeta(self.num_frames, self.frame_shape, np.dtype(np.uint32), self.energy_keV,
                        self.distance_m, (self.psize_m, self.psize_m), self.beam_center,
                        label=f"simulated-{self.kind}",
                        extra={"object_pixel_m": self.object_pixel_m, "kind": self.kind})

    def read_positions(self):
        return self._scan_px * self.object_pixel_m

    def read_valid(self):
        valid = np.ones(self.frame_shape, dtype=bool)
        valid[:, self.gap_cols[0]:self.gap_cols[1]] = False
        for r, c in self._defects()[0]:
            valid[r, c] = False
        return valid

    def _defects(self):
        rng = np.random.default_rng(self.seed + 7)
        h, w = self.frame_shape
        dead = np.stack([rng.integers(0, h, 12), rng.integers(0, w, 12)], axis=1)
        hot = np.stack([rng.integers(0, h, 4), rng.integers(0, w, 4)], axis=1)
        return dead, hot

    def model(self):
        """The probe (n, n) complex and object (M, M) complex the scan was made from."""
        if self._model is None:
            self._model = make_probe(self.n), make_object(self._scan_px, self.n, self.seed)
        return self._model

    def read_frames(self, indices, roi=None):
        indices = np.asarray(indices, dtype=np.int64)
        out = np.zeros((len(indices),) + self.frame_shape, dtype=np.uint32)
        r0 = int(np.round(self.beam_center[0])) - self.n // 2
        c0 = int(np.round(self.beam_center[1])) - self.n // 2
        window = (slice(r0, r0 + self.n), slice(c0, c0 + self.n))
        for k, index in enumerate(indices):
            out[k][window] = self._pattern(int(index))
        dead, hot = self._defects()
        out[:, :, self.gap_cols[0]:self.gap_cols[1]] = 0
        out[:, dead[:, 0], dead[:, 1]] = 0
        out[:, hot[:, 0], hot[:, 1]] = self.hot_value
        return crop_roi(out, roi)

    def _pattern(self, index):
        rng = np.random.default_rng((self.seed, index))
        if self.kind == "index":
            yy, xx = np.indices((self.n, self.n)) - self.n // 2
            ring = np.abs(np.hypot(yy, xx) - self.n / 4) < 2
            return np.where(ring, index + 1000, index).astype(np.uint32)
        probe, obj = self.model()
        y, x = np.round(self._scan_px[index] - self._scan_px.min(axis=0)).astype(int)
        exit_wave = probe * obj[y:y + self.n, x:x + self.n]
        intensity = np.abs(np.fft.fftshift(np.fft.fft2(exit_wave))) ** 2
        intensity *= self.photons / intensity.sum()
        return rng.poisson(intensity).astype(np.uint32)


def raster(num_frames, step):
    """Raster positions in object pixels, (num_frames, 2) (y, x), row by row."""
    cols = int(np.ceil(np.sqrt(num_frames)))
    idx = np.arange(num_frames)
    return np.stack([idx // cols, idx % cols], axis=1).astype(np.float64) * step


def make_probe(n):
    """A focused-beam probe: a soft-edged disc with a curved phase, (n, n) complex."""
    yy, xx = (np.indices((n, n)) - n / 2 + 0.5) / (n / 8)
    r2 = yy ** 2 + xx ** 2
    amplitude = 1.0 / (1.0 + np.exp((np.sqrt(r2) - 1.0) * 6.0))
    return amplitude * np.exp(0.5j * r2)


def make_object(scan_px, n, seed):
    """A complex object covering the scan: random smooth phase and absorbing discs."""
    extent = np.ceil(scan_px.max(axis=0) - scan_px.min(axis=0)).astype(int) + n + 1
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(extent))
    kernel = np.exp(-0.5 * (np.fft.fftfreq(extent[0])[:, None] ** 2
                            + np.fft.fftfreq(extent[1])[None, :] ** 2) / 0.03 ** 2)
    phase = np.real(np.fft.ifft2(np.fft.fft2(noise) * kernel))
    phase *= 1.5 / max(np.abs(phase).max(), 1e-12)
    yy, xx = np.indices(tuple(extent))
    amplitude = np.ones(tuple(extent))
    for cy, cx, rad in zip(rng.uniform(0, extent[0], 12), rng.uniform(0, extent[1], 12),
                           rng.uniform(4, 12, 12)):
        amplitude[(yy - cy) ** 2 + (xx - cx) ** 2 < rad ** 2] = 0.6
    return amplitude * np.exp(1j * phase)
