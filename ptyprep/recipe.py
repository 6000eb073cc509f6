"""Typed recipes: TOML loading, ``--set`` overrides and validation.

A recipe has three core sections, ``[source]``, ``[prep]`` and ``[output]``; a
format may own one more (``procdata`` owns ``[saxs]``), which that format parses
and validates (:meth:`ptyprep.engine.formats.Format.parse_section`).
``[output] format`` names one registered format or a list of them.
Every rank loads and validates the same recipe before the first collective, so
a bad recipe fails identically everywhere and nobody waits forever.

Relative paths in a recipe (source files, dark/flat, output) are taken
relative to the folder of the recipe file.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .engine.formats import format_names, get_format, section_owners
from .errors import RecipeError
from .layout.files import DEFAULT_PART_FORMAT
from .layout.filters import COMPRESSIONS
from .ptycho.frames import parse_orientation

SAVE_MODES = ("append", "link", "merge")
CORE_SECTIONS = ("source", "prep", "output")
CENTER_MODES = ("source", "auto", "fftshift", "geometric")


@dataclass(frozen=True)
class SourceSection:
    """``[source]``: the registered source ``name`` and its options."""

    name: str = "simulate"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PrepSection:
    """``[prep]``: how frames are prepared (ptypy's names where ptypy has one).

    ``shape`` None keeps the largest square that fits the raw frame;
    ``center`` is a mode from ``CENTER_MODES`` or a raw-frame ``(row, col)``;
    ``orientation`` is stored as ``(transpose, flipud, fliplr)``.
    ``fftshift`` undoes frames stored FFT-shifted (DC in the corners) before
    anything else.  ``threshold`` sets values below it to 0 (noise floor);
    ``saturation`` marks pixels >= it invalid.  ``propagation`` is ``"farfield"`` or
    ``"nearfield"``.  ``focus_to_sample_m`` (metres; near field only) is the distance from the
    focus of a cone (divergent) beam to the sample; the source's ``distance_m`` stays the
    sample-to-detector distance, so focus-to-detector = ``focus_to_sample_m + distance_m``.
    With it, ``meta/psize`` and ``meta/distance`` are those of the equivalent parallel beam
    (Fresnel scaling, :func:`ptyprep.ptycho.plan.fresnel_scaling`); None: a parallel beam.
    """

    shape: Optional[tuple] = None
    center: object = "source"
    rebin: int = 1
    rebin_mode: str = "sum"
    orientation: tuple = (False, False, False)
    num_frames: int = 0
    min_frames: int = 1
    dark: str = ""
    flat: str = ""
    saturation: float = 0.0
    threshold: float = 0.0
    fftshift: bool = False
    propagation: str = "farfield"
    focus_to_sample_m: Optional[float] = None


@dataclass(frozen=True)
class OutputSection:
    """``[output]``: where and how results are written.

    ``format`` is a format name or a tuple of names (the first leads: it prepares).
    """

    format: object = "ptyd"
    dfile: str = "scan.ptyd"
    save: str = "append"
    chunk_frames: int = 64
    compression: str = "gzip"
    overwrite: bool = False
    part_format: str = DEFAULT_PART_FORMAT
    label: str = ""

    @property
    def formats(self):
        """The format names, as a tuple (the lead first)."""
        return (self.format,) if isinstance(self.format, str) else tuple(self.format)


@dataclass(frozen=True)
class Recipe:
    """A whole validated recipe; ``base_dir`` is the recipe file's folder.

    ``sections`` holds the tables owned by formats, parsed by them (``"saxs"``).
    """

    source: SourceSection = field(default_factory=SourceSection)
    prep: PrepSection = field(default_factory=PrepSection)
    output: OutputSection = field(default_factory=OutputSection)
    sections: dict = field(default_factory=dict)
    base_dir: str = "."

    def section(self, name):
        """The parsed table ``name`` owned by a format (None when the recipe has none)."""
        return self.sections.get(name)

    def to_dict(self):
        """Plain nested dict (TOML-like) of the recipe, for provenance."""
        out = {
            "source": {"name": self.source.name, **self.source.options},
            "prep": dataclasses.asdict(self.prep),
            "output": dataclasses.asdict(self.output),
        }
        # keys added since outputs were first written are left out at their default, so
        # the recipe an interrupted `watch` output records still matches (engine/lock.py)
        for key in UNRECORDED_AT_DEFAULT:
            if out["prep"].get(key) is None:
                out["prep"].pop(key, None)
        for name, value in self.sections.items():
            out[name] = value.to_dict() if hasattr(value, "to_dict") else dict(value)
        return out

    def path(self, value):
        """``value`` as a path: absolute, or relative to the recipe's folder."""
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p


#: [prep] keys recorded in a recipe's provenance only when set (see Recipe.to_dict).
UNRECORDED_AT_DEFAULT = ("focus_to_sample_m",)


def load_recipe(path_or_dict, overrides=None, base_dir=None):
    """Load and validate a recipe.

    Parameters
    ----------
    path_or_dict : str, Path or dict
        A TOML file, or the same content as a nested dict.
    overrides : dict, optional
        ``{"section.key": value}``; string values are parsed as TOML values
        (``"2"`` is an int, ``"[1, 0, 0]"`` a list, anything else a string).
    base_dir : str, optional
        Folder relative paths refer to (default: the recipe file's folder, or the
        current directory for a dict).

    Returns
    -------
    Recipe
    """
    if isinstance(path_or_dict, dict):
        raw = _deep_copy(path_or_dict)
        base = Path(base_dir or ".")
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            raise RecipeError(f"recipe file {str(path)!r} does not exist; "
                              "give the path of a TOML recipe (see `ptyprep demo` for one)")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"recipe {str(path)!r} is not valid TOML: {exc}") from exc
        base = Path(base_dir) if base_dir else path.resolve().parent
    for key, value in (overrides or {}).items():
        _apply_override(raw, key, value)
    return parse_recipe(raw, base_dir=str(base))


def parse_override(text):
    """Split ``"section.key=value"`` into ``("section.key", value)``."""
    key, sep, value = text.partition("=")
    if not sep or "." not in key:
        raise RecipeError(f"--set {text!r} is not of the form section.key=value "
                          "(for example --set prep.rebin=2)")
    return key.strip(), value.strip()


def _apply_override(raw, key, value):
    section, _, name = key.partition(".")
    if not name:
        raise RecipeError(f"override {key!r} must be section.key, e.g. prep.rebin")
    if isinstance(value, str):
        value = _override_value(section, name, value)
    table = raw.setdefault(section, {})
    if not isinstance(table, dict):
        raise RecipeError(f"cannot override {key!r}: recipe entry {section!r} is not a "
                          f"[{section}] table")
    table[name] = value


def _override_value(section, name, text):
    """The value of ``--set section.name=text``: TOML, except that a key holding a string
    takes unquoted text as it is (``--set output.label=2024`` is the label "2024"), and
    text in brackets is a list (``--set 'output.format=["ptyd", "cxi"]'``)."""
    if isinstance(_field_default(section, name), str) and f"{section}.{name}" != "prep.center" \
            and not text.startswith(('"', "'", "[")):
        return text
    return _toml_value(text)


def _field_default(section, name):
    """Default of a key of a typed recipe section (None if unknown or without default)."""
    cls = {"prep": PrepSection, "output": OutputSection}.get(section)
    if cls is None:
        owner = section_owners().get(section)
        return owner.section_defaults().get(name) if owner is not None else None
    for spec in dataclasses.fields(cls):
        if spec.name == name:
            return None if spec.default is dataclasses.MISSING else spec.default
    return None


def _toml_value(text):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _deep_copy(d):
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def parse_recipe(raw, base_dir="."):
    """Validate a nested dict into a :class:`Recipe` (see :func:`load_recipe`)."""
    owners = section_owners()
    sections = set(CORE_SECTIONS) | set(owners)
    unknown = sorted(set(raw) - sections)
    if unknown:
        raise RecipeError(f"unknown recipe section(s) [{'], ['.join(unknown)}]; "
                          f"valid sections: [{'], ['.join(sorted(sections))}]")
    for name, value in raw.items():
        if not isinstance(value, dict):
            raise RecipeError(f"recipe entry {name!r} must be a [{name}] table, got {value!r}")
    source = _parse_source(raw.get("source", {}))
    prep = _parse_section(PrepSection, "prep", raw.get("prep", {}))
    output = _parse_section(OutputSection, "output", raw.get("output", {}))
    prep = _check_prep(prep)
    output = _check_output(output)
    named = {get_format(name).section for name in output.formats}
    owned = {name: owners[name].parse_section(raw.get(name, {}))
             for name in sorted(owners) if name in raw or name in named}
    return Recipe(source=source, prep=prep, output=output, sections=owned,
                  base_dir=str(base_dir))


def _parse_source(table):
    table = dict(table)
    name = table.pop("name", "simulate")
    if not isinstance(name, str):
        raise RecipeError(f"source.name must be a string naming a source, got {name!r}")
    return SourceSection(name=name, options=table)


def _parse_section(cls, section, table):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise RecipeError(f"unknown key(s) {', '.join(section + '.' + k for k in unknown)}; "
                          f"valid keys of [{section}]: {', '.join(fields)}")
    values = {}
    for key, value in table.items():
        default = fields[key].default
        values[key] = _check_type(f"{section}.{key}", value, default)
    return cls(**values)


def _check_type(name, value, default):
    """Coerce ``value`` to the type of ``default`` or raise a RecipeError."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise RecipeError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{name} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str) and name not in ("prep.center", "output.format"):
        if not isinstance(value, str):
            raise RecipeError(f"{name} must be a string, got {value!r}")
        return value
    return value


def _check_prep(prep):
    shape = prep.shape
    if shape is not None:
        if isinstance(shape, bool) or not isinstance(shape, (int, list, tuple)):
            raise RecipeError(f"prep.shape must be an integer or [rows, cols], got {shape!r}")
        shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
        if len(shape) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
            raise RecipeError(f"prep.shape must be an integer or [rows, cols], got {prep.shape!r}")
        if min(shape) <= 0:
            raise RecipeError(f"prep.shape must be positive, got {prep.shape!r}; "
                              "give the prepared frame size in pixels, e.g. 128")
    center = prep.center
    if isinstance(center, str):
        if center not in CENTER_MODES:
            raise RecipeError(f"prep.center {center!r} is not one of {', '.join(CENTER_MODES)} "
                              "or a [row, col] pair")
    elif (isinstance(center, (list, tuple)) and len(center) == 2
          and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in center)
          and all(math.isfinite(c) for c in center)):
        center = (float(center[0]), float(center[1]))
    else:
        raise RecipeError(f"prep.center must be one of {', '.join(CENTER_MODES)} or a "
                          f"[row, col] pair of numbers (finite), got {center!r}")
    if not 1 <= prep.rebin <= 32:
        raise RecipeError(f"prep.rebin={prep.rebin} is outside 1..32; choose a small divisor "
                          "of the cropped frame size")
    if shape is not None and (shape[0] % prep.rebin or shape[1] % prep.rebin):
        raise RecipeError(f"prep.rebin={prep.rebin} does not divide prep.shape={list(shape)}; "
                          "choose a divisor or change prep.shape")
    if prep.rebin_mode not in ("sum", "mean"):
        raise RecipeError(f"prep.rebin_mode {prep.rebin_mode!r} must be 'sum' or 'mean'")
    try:
        orientation = parse_orientation(prep.orientation)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"prep.{exc}") from exc
    if prep.num_frames < 0:
        raise RecipeError(f"prep.num_frames must be >= 0 (0 = all), got {prep.num_frames}")
    if prep.min_frames < 1:
        raise RecipeError(f"prep.min_frames must be >= 1, got {prep.min_frames}")
    if prep.saturation < 0 or prep.threshold < 0:
        raise RecipeError("prep.saturation and prep.threshold must be >= 0 (0 = off)")
    if prep.propagation not in ("farfield", "nearfield"):
        raise RecipeError(f"prep.propagation {prep.propagation!r} must be 'farfield' or 'nearfield'")
    focus = _check_focus(prep.focus_to_sample_m, prep.propagation)
    return dataclasses.replace(prep, shape=shape, center=center, orientation=orientation,
                               focus_to_sample_m=focus)


def _check_focus(value, propagation):
    """``prep.focus_to_sample_m`` as a float in metres (None: a parallel beam), or RecipeError.

    It need not be checked against the focus-to-detector distance: that is
    ``value + distance_m`` with the sample-to-detector ``distance_m`` > 0, so always larger.
    """
    if value is None:
        return None
    if propagation != "nearfield":
        raise RecipeError(f"prep.focus_to_sample_m is only for near-field scans, but "
                          f"prep.propagation is {propagation!r}; set prep.propagation = "
                          "'nearfield' or remove prep.focus_to_sample_m")
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (math.isfinite(value) and value > 0):
        raise RecipeError(f"prep.focus_to_sample_m must be a finite distance > 0 in metres, got "
                          f"{value!r}; give the focus-to-sample distance of the cone beam (e.g. "
                          "0.05), or remove it for a parallel beam")
    return float(value)


def _check_output(output):
    names = output.format
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        output = dataclasses.replace(output, format=tuple(names))
    elif not isinstance(names, str):
        raise RecipeError(f"output.format must be a format name or a list of them, got "
                          f"{names!r}; known formats: {', '.join(format_names())}")
    for name in output.formats:
        if name not in format_names():
            raise RecipeError(f"output.format {name!r} is not one of {', '.join(format_names())}")
    if output.save not in SAVE_MODES:
        raise RecipeError(f"output.save {output.save!r} is not one of {', '.join(SAVE_MODES)}")
    if output.compression not in COMPRESSIONS:
        raise RecipeError(f"output.compression {output.compression!r} is not one of "
                          f"{', '.join(COMPRESSIONS)}")
    if output.chunk_frames < 1:
        raise RecipeError(f"output.chunk_frames must be >= 1, got {output.chunk_frames}")
    if not output.dfile:
        raise RecipeError("output.dfile is empty; give the output file, e.g. out/scan.ptyd")
    if "{part" not in output.part_format:
        raise RecipeError(f"output.part_format {output.part_format!r} must contain {{part}} "
                          "(e.g. '{dfile}.part{part:03d}')")
    return output
