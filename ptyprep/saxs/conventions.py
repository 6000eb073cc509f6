"""Two sets of defaults for the same physics: ptyprep's own, and lixtools'.

``conventions = "ptyprep"`` (the default) integrates with pyFAI's bounding-box pixel
splitting and divides by the solid angle, and reports Herman's orientation parameter
as ``2⟨cos²⟩ − 1``.  ``conventions = "lixtools"`` reproduces the numbers of NSLS-II
LiX's lixtools where lixtools is right: every pixel goes whole into the bin of its
centre (no splitting), no solid-angle correction, ``hop`` is lixtools' half of the
2-D parameter, and a detector's ``fix_scale`` divides its data
(:meth:`~ptyprep.saxs.Detector.from_py4xs` turns it into ``scale = 1/fix_scale``).

What stays ptyprep's under both (each a lixtools defect, listed in docs/lixtools.md):
φ bins labelled by their centres; a piecewise q grid whose segments keep their own
bins; pixels near φ = ±180° kept in the histogram.
"""

import copy
from dataclasses import dataclass

from ..errors import RecipeError


@dataclass(frozen=True)
class Conventions:
    """Defaults that depend on the conventions.

    Attributes
    ----------
    name : str
    split : {"no", "bbox", "full"}
        pyFAI pixel splitting.
    solid_angle : bool
        Divide by the pixels' relative solid angle.
    hop_definition : {"2d", "lix"}
        See :func:`ptyprep.saxs.attrs.hop`.
    """

    name: str
    split: str
    solid_angle: bool
    hop_definition: str


CONVENTIONS = {
    "ptyprep": Conventions("ptyprep", split="bbox", solid_angle=True, hop_definition="2d"),
    "lixtools": Conventions("lixtools", split="no", solid_angle=False, hop_definition="lix"),
}


def get_conventions(name):
    """The :class:`Conventions` called ``name`` (RecipeError for an unknown name)."""
    if isinstance(name, Conventions):
        return name
    if name not in CONVENTIONS:
        raise RecipeError(f"conventions = {name!r} is not one of {', '.join(CONVENTIONS)}; "
                          "'lixtools' reproduces lixtools' numbers, 'ptyprep' is the default")
    return CONVENTIONS[name]


def apply_to_detectors(conventions, detectors):
    """Copies of ``detectors`` with the solid-angle correction the conventions ask for.

    Under ``"ptyprep"`` the detectors are returned as given (each keeps its own
    ``solid_angle``); under ``"lixtools"`` none divides by the solid angle.
    """
    conv = get_conventions(conventions)
    if conv.solid_angle:
        return list(detectors)
    out = []
    for det in detectors:
        det = copy.copy(det)
        det.solid_angle = False
        out.append(det)
    return out


def hop_kwargs(conventions, func, kwargs):
    """``kwargs`` with the conventions' ``definition=`` added for ptyprep's own ``hop``."""
    from .attrs import hop

    if func is hop and "definition" not in kwargs:
        return {**kwargs, "definition": get_conventions(conventions).hop_definition}
    return kwargs
