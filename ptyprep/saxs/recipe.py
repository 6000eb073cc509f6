"""The ``[saxs]`` section of a recipe: typed, validated on every rank.

```toml
[saxs]
qgrid = [[0.005, 0.3, 0.002], [0.31, 2.5, 0.01]]   # segments [q0, q1, step], 1/Å
nphi = 60                                          # φ bins over [-180, 180) (even or odd)
conventions = "ptyprep"                            # or "lixtools": lixtools' numbers (docs/lixtools.md)
split = "bbox"                                     # pyFAI pixel splitting: no | bbox | full
                                                   # (default from conventions: bbox, lixtools: no)
detectors = [{dataset = "pil1M_image", poni = "saxs.poni", valid = "saxs_valid.npy", scale = 1.0}]
raw_files = []                                     # LiX files; default: [source] path
sample = ""                                        # non-LiX sources: sample name (default the scan label)
errors = false                                     # also qphi/merged/err (Poisson σ)
iphi_qrange = [0.03, 0.1]                          # Iphi/merged: azimuthal profile over this q window
force_uniform_steps = true
prec = 0.001
attrs = [{name = "int_saxs", func = "get_roi", data_key = "qphi", sub_key = "merged",  # or Iq, Iphi
          kwargs = {qphirange = [0.02, 0.05, -180, 180]}}]
maps = ["transmission", "absorption", "int_saxs"]
save_overall = true
tomo = ["absorption"]
tomo_algorithm = "fbp"                             # or "sart"
```

With ``[source] name = "nsls2-lix"`` (or ``raw_files``) every scan of the LiX files
is imported; any other source (``hdf5``, ``files``, ...) is one sample, opened once
per detector with the detector's ``dataset`` as its frames option.  The helpers at the
end read what a whole recipe says (raw files, detectors, the q grid).
"""

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..errors import RecipeError
from ..layout.procdata import MONITOR_ATTRS
from .conventions import apply_to_detectors, get_conventions
from .qgrid import check_nphi

DETECTOR_KEYS = ("dataset", "poni", "valid", "scale", "name", "polarization_factor",
                 "solid_angle", "dark", "flat")
ATTR_KEYS = ("name", "func", "data_key", "sub_key", "kwargs")
ATTR_FUNCS = ("get_roi", "hop", "iq_mean", "iphi_mean", "iphi")


@dataclass(frozen=True)
class SaxsSection:
    """``[saxs]``: detectors, q-φ grid and the analysis chain (see module docstring)."""

    detectors: tuple = ()
    qgrid: tuple = ()
    nphi: int = 60
    conventions: str = "ptyprep"
    split: str = "bbox"
    raw_files: tuple = ()
    force_uniform_steps: bool = True
    prec: float = 0.001
    normalize_monitor: bool = False
    attrs: tuple = ()
    maps: tuple = ()
    save_overall: bool = True
    correct_for_transmission: bool = False
    ref_trans: Optional[float] = None
    tomo: tuple = ()
    tomo_algorithm: str = "fbp"
    tomo_center: Optional[float] = None
    replace_path: tuple = ()
    background: str = ""
    background_data_keys: tuple = ("Iq",)
    sample: str = ""
    errors: bool = False
    iphi_qrange: tuple = ()

    def to_dict(self):
        """Plain dict (TOML-like), for provenance."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items() if v is not None}


def _plain(v):
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _number(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RecipeError(f"{name} must be a number, got {v!r}")
    return float(v)


def _str_list(name, v):
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise RecipeError(f"{name} must be a list of strings, got {v!r}")
    return tuple(v)


def _check_keys(name, table, valid):
    if not isinstance(table, dict):
        raise RecipeError(f"{name} must be a table, got {table!r}")
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise RecipeError(f"unknown key(s) {', '.join(name + '.' + k for k in unknown)}; "
                          f"valid keys: {', '.join(valid)}")


def _detectors(value):
    if not isinstance(value, (list, tuple)) or not value:
        raise RecipeError("saxs.detectors must be a non-empty array of tables, e.g. "
                          "[{dataset = 'pil1M_image', poni = 'saxs.poni'}]")
    out = []
    for i, d in enumerate(value):
        _check_keys(f"saxs.detectors[{i}]", d, DETECTOR_KEYS)
        if not isinstance(d.get("dataset"), str) or not isinstance(d.get("poni"), str):
            raise RecipeError(f"saxs.detectors[{i}] needs dataset and poni strings, got {d!r}")
        out.append(dict(d))
    return tuple(out)


def _qgrid(value):
    if not isinstance(value, (list, tuple)) or not value:
        raise RecipeError("saxs.qgrid must be a list of segments [q0, q1, step] in 1/Å, "
                          "e.g. [[0.005, 0.3, 0.002]]")
    segs = []
    for i, seg in enumerate(value):
        if not isinstance(seg, (list, tuple)) or len(seg) != 3:
            raise RecipeError(f"saxs.qgrid[{i}] = {seg!r} must be [q0, q1, step]")
        q0, q1, step = (_number(f"saxs.qgrid[{i}]", x) for x in seg)
        if not (0 <= q0 < q1 and step > 0):
            raise RecipeError(f"saxs.qgrid[{i}] = {list(seg)} must have 0 <= q0 < q1 and step > 0")
        if segs and q0 <= segs[-1][1]:
            raise RecipeError(f"saxs.qgrid segments must increase: segment {i} starts at {q0} "
                              f"<= {segs[-1][1]}")
        segs.append((q0, q1, step))
    return tuple(segs)


def _attrs(value):
    if not isinstance(value, (list, tuple)):
        raise RecipeError(f"saxs.attrs must be an array of tables, got {value!r}")
    out = []
    for i, a in enumerate(value):
        _check_keys(f"saxs.attrs[{i}]", a, ATTR_KEYS)
        name = a.get("name")
        if not (isinstance(name, str) or (isinstance(name, list) and name
                                          and all(isinstance(n, str) for n in name))):
            raise RecipeError(f"saxs.attrs[{i}].name must be a string (or list of strings), got {name!r}")
        if a.get("func") not in ATTR_FUNCS:
            raise RecipeError(f"saxs.attrs[{i}].func = {a.get('func')!r} is not one of "
                              f"{', '.join(ATTR_FUNCS)}")
        if a.get("data_key", "qphi") not in ("qphi", "Iq", "Iphi"):
            raise RecipeError(f"saxs.attrs[{i}].data_key = {a.get('data_key')!r} must be 'qphi', "
                              "'Iq' or 'Iphi'")
        if a.get("sub_key", "merged") not in ("merged", "subtracted"):
            raise RecipeError(f"saxs.attrs[{i}].sub_key = {a.get('sub_key')!r} must be 'merged' "
                              "or 'subtracted'")
        if not isinstance(a.get("kwargs", {}), dict):
            raise RecipeError(f"saxs.attrs[{i}].kwargs must be a table")
        out.append({"name": name, "func": a["func"], "data_key": a.get("data_key", "qphi"),
                    "sub_key": a.get("sub_key", "merged"), "kwargs": dict(a.get("kwargs", {}))})
    return tuple(out)


def parse_saxs_section(table):
    """Validate the ``[saxs]`` table into a :class:`SaxsSection` (RecipeError on bad input)."""
    fields = [f.name for f in dataclasses.fields(SaxsSection)]
    _check_keys("saxs", table, fields)
    t = dict(table)
    values = {}
    if "detectors" not in t or "qgrid" not in t:
        raise RecipeError("[saxs] needs detectors and qgrid (see docs/saxs.md for an example)")
    values["detectors"] = _detectors(t.pop("detectors"))
    values["qgrid"] = _qgrid(t.pop("qgrid"))
    values["nphi"] = check_nphi(t.pop("nphi", 60), "saxs.nphi")
    conv = t.pop("conventions", "ptyprep")
    if not isinstance(conv, str):
        raise RecipeError(f"saxs.conventions must be a string ('ptyprep' or 'lixtools'), got {conv!r}")
    conv = get_conventions(conv)
    values["conventions"] = conv.name
    values["split"] = conv.split
    if "attrs" in t:
        values["attrs"] = tuple(_with_hop_definition(a, conv) for a in _attrs(t.pop("attrs")))
    for key in ("raw_files", "maps", "tomo", "background_data_keys"):
        if key in t:
            values[key] = _str_list(f"saxs.{key}", t.pop(key))
    for key in ("force_uniform_steps", "save_overall", "correct_for_transmission",
                "normalize_monitor", "errors"):
        if key in t:
            if not isinstance(t[key], bool):
                raise RecipeError(f"saxs.{key} must be true or false, got {t[key]!r}")
            values[key] = t.pop(key)
    for key in ("prec", "ref_trans", "tomo_center"):
        if key in t:
            values[key] = _number(f"saxs.{key}", t.pop(key))
    if values.get("prec", 1.0) <= 0:
        raise RecipeError(f"saxs.prec = {values['prec']} must be > 0 (motor units, e.g. 0.001)")
    if t.get("split", "bbox") not in ("no", "bbox", "full"):
        raise RecipeError(f"saxs.split = {t['split']!r} is not one of no, bbox, full")
    if t.get("tomo_algorithm", "fbp") not in ("fbp", "sart"):
        raise RecipeError(f"saxs.tomo_algorithm = {t['tomo_algorithm']!r} must be 'fbp' or 'sart'")
    if "replace_path" in t:
        rp = _str_list("saxs.replace_path", t.pop("replace_path"))
        if len(rp) != 2:
            raise RecipeError(f"saxs.replace_path must be [old, new], got {list(rp)}")
        values["replace_path"] = rp
    if "iphi_qrange" in t:
        qr = t.pop("iphi_qrange")
        if not (isinstance(qr, list) and len(qr) == 2):
            raise RecipeError(f"saxs.iphi_qrange must be [q1, q2] in 1/Å, got {qr!r}")
        q1, q2 = (_number("saxs.iphi_qrange", v) for v in qr)
        if not q1 <= q2:
            raise RecipeError(f"saxs.iphi_qrange = {qr} is reversed; give [low, high] in 1/Å")
        values["iphi_qrange"] = (q1, q2)
    for key in ("split", "tomo_algorithm", "background", "sample"):
        if key in t:
            if not isinstance(t[key], str):
                raise RecipeError(f"saxs.{key} must be a string, got {t[key]!r}")
            values[key] = t.pop(key)
    _check_products(values)
    return SaxsSection(**values)


def _with_hop_definition(attr, conv):
    """A ``hop`` entry gets the conventions' definition unless its kwargs give one."""
    if attr["func"] == "hop" and "definition" not in attr["kwargs"]:
        return {**attr, "kwargs": {**attr["kwargs"], "definition": conv.hop_definition}}
    return attr


#: Per-frame attributes every import makes (beam monitors) or derives (absorption).
BUILT_IN_ATTRS = MONITOR_ATTRS + ("absorption",)


def _check_products(values):
    """Every map is of an attribute some step makes; every tomogram of a map."""
    made = list(BUILT_IN_ATTRS)
    for attr in values.get("attrs", ()):
        made += [attr["name"]] if isinstance(attr["name"], str) else list(attr["name"])
    for name in values.get("maps", ()):
        if name not in made:
            raise RecipeError(f"saxs.maps names {name!r}, which no step makes; the attributes "
                              f"are {', '.join(made)}: add an entry to saxs.attrs named "
                              f"{name!r}, or remove it from saxs.maps")
    maps = list(values.get("maps", ()))
    for name in values.get("tomo", ()):
        if name not in maps:
            raise RecipeError(f"saxs.tomo names {name!r}, which is not in saxs.maps "
                              f"({', '.join(maps) or 'none'}): a tomogram is made from the "
                              "maps; add it to saxs.maps")


# -- what a recipe with a [saxs] table reads ------------------------------------------------------
def uses_lix(recipe):
    """True when the recipe imports LiX raw files (``nsls2-lix`` or ``[saxs] raw_files``)."""
    return recipe.source.name == "nsls2-lix" or bool(recipe.section("saxs").raw_files)


def raw_files(recipe):
    """Absolute raw file paths: ``[saxs] raw_files`` or else ``[source] path``."""
    files = list(recipe.section("saxs").raw_files) or recipe.source.options.get("path", [])
    files = [files] if isinstance(files, str) else list(files)
    if not files:
        raise RecipeError("no raw files: give [source] path = [\"scan.h5\", ...] "
                          "(or [saxs] raw_files)")
    return [str(recipe.path(p)) for p in files]


def make_detectors(recipe):
    """:class:`~ptyprep.saxs.Detector` objects of ``[saxs] detectors`` (paths made absolute)."""
    from .detector import Detector

    out = []
    for spec in recipe.section("saxs").detectors:
        spec = dict(spec)
        for key in ("poni", "valid", "dark", "flat"):
            if isinstance(spec.get(key), str):
                spec[key] = _resolve_spec(recipe, spec[key])
        out.append(Detector(**spec))
    return apply_to_detectors(recipe.section("saxs").conventions, out)


def _resolve_spec(recipe, value):
    path, sep, inner = value.partition("::")
    return str(recipe.path(path)) + sep + inner


def recipe_qgrid(saxs):
    """The q bin centres (1/Å) of ``[saxs] qgrid``."""
    from .qgrid import make_qgrid

    return make_qgrid(*saxs.qgrid)
