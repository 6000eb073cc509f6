"""Value types passed between the stages of the pipeline."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FrameStack:
    """A stack of frames that keeps each frame's global scan index.

    Attributes
    ----------
    indices : (N,) int64 ndarray
        Global scan indices, in the order of the frames.
    data : (N, H, W) ndarray
        Intensities.
    valid : (N, H, W) or (H, W) bool ndarray
        True for a usable pixel.
    positions : (N, 2) float64 ndarray
        Scan positions in metres, ``(y, x)``.
    meta : dict
        Geometry of the prepared frames (``shape``, ``center``, ``psize``,
        ``energy``, ``distance``) and anything a stage wants to pass on.
    """

    indices: np.ndarray
    data: np.ndarray
    valid: np.ndarray
    positions: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 2)
        n = len(self.indices)
        if self.data.shape[0] != n or self.positions.shape[0] != n:
            raise ValueError(
                f"stack of {n} indices has {self.data.shape[0]} frames and "
                f"{self.positions.shape[0]} positions; all three must match")

    def __len__(self):
        return len(self.indices)

    @property
    def valid_stack(self):
        """(N, H, W) bool view of ``valid`` whatever its stored shape."""
        if self.valid.ndim == 2:
            return np.broadcast_to(self.valid, self.data.shape)
        return self.valid
