"""Scanning SAXS/WAXS: detectors, q-φ integration on stacks, attributes, maps and tomography.

>>> from ptyprep.saxs import ScanAnalysis, Detector, get_roi, hop          # doctest: +SKIP
>>> an = ScanAnalysis("run_an.h5", detectors=[Detector("pil1M_image", "saxs.poni")],
...                   qgrid=make_qgrid((0.01, 0.3, 0.005)), nphi=60)      # doctest: +SKIP
"""

from .attrs import get_roi, hop, iphi, iphi_mean, iq_mean, stack_function, symmetrize

__all__ = ["ScanAnalysis", "Detector", "get_roi", "hop", "iq_mean", "iphi", "iphi_mean",
           "stack_function", "symmetrize", "make_qgrid"]

_LAZY = {
    "ScanAnalysis": ("ptyprep.saxs.analysis", "ScanAnalysis"),
    "Detector": ("ptyprep.saxs.detector", "Detector"),
    "make_qgrid": ("ptyprep.saxs.qgrid", "make_qgrid"),
}


def __getattr__(name):
    # ScanAnalysis/Detector pull in h5py and pyFAI: import them on first use only.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ptyprep.saxs' has no attribute {name!r}")
