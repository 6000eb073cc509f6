"""Tests of ptyprep.recipe: TOML loading, overrides, validation and relative paths."""

import dataclasses
import re
from pathlib import Path

import pytest

from ptyprep.errors import RecipeError
from ptyprep.recipe import Recipe, _override_value, load_recipe, parse_override

PREP_KEYS = ["shape", "center", "rebin", "rebin_mode", "orientation", "num_frames", "min_frames",
             "dark", "flat", "saturation", "threshold", "fftshift", "propagation"]
OUTPUT_KEYS = ["format", "dfile", "save", "chunk_frames", "compression", "overwrite",
               "part_format", "label"]

RECIPE_TOML = """\
[source]
name = "hdf5"
path = "raw/scan_0001.h5"
frames = "/entry/data"
distance_m = 5.0

[prep]
shape = 128
center = [60.5, 70]
rebin = 2
rebin_mode = "mean"
orientation = [true, false, true]
saturation = 65000

[output]
dfile = "out/scan.ptyd"
save = "link"
chunk_frames = 16
compression = "lzf"
overwrite = true
"""


def write(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def recipe_error(raw, overrides=None):
    with pytest.raises(RecipeError) as info:
        load_recipe(raw, overrides=overrides)
    return str(info.value)


# --------------------------------------------------------------------------- loading


def test_load_recipe_from_toml_file(tmp_path):
    recipe = load_recipe(write(tmp_path, RECIPE_TOML))
    assert isinstance(recipe, Recipe)
    assert recipe.source.name == "hdf5"
    assert recipe.source.options == {"path": "raw/scan_0001.h5", "frames": "/entry/data",
                                     "distance_m": 5.0}
    assert recipe.prep.shape == (128, 128)
    assert recipe.prep.center == (60.5, 70.0)
    assert recipe.prep.rebin == 2 and recipe.prep.rebin_mode == "mean"
    assert recipe.prep.orientation == (True, False, True)
    assert recipe.prep.saturation == 65000.0 and isinstance(recipe.prep.saturation, float)
    assert recipe.output.dfile == "out/scan.ptyd"
    assert recipe.output.save == "link"
    assert recipe.output.chunk_frames == 16
    assert recipe.output.compression == "lzf"
    assert recipe.output.overwrite is True
    assert recipe.section("saxs") is None
    assert Path(recipe.base_dir) == tmp_path.resolve()


def test_load_recipe_from_dict_equals_file(tmp_path):
    import tomllib

    raw = tomllib.loads(RECIPE_TOML)
    from_dict = load_recipe(raw, base_dir=str(tmp_path.resolve()))
    from_file = load_recipe(write(tmp_path, RECIPE_TOML))
    assert from_dict == from_file


def test_defaults_from_empty_dict():
    recipe = load_recipe({})
    assert recipe.source.name == "simulate" and recipe.source.options == {}
    assert recipe.prep.shape is None
    assert recipe.prep.center == "source"
    assert recipe.prep.rebin == 1 and recipe.prep.rebin_mode == "sum"
    assert recipe.prep.orientation == (False, False, False)
    assert recipe.output.format == "ptyd" and recipe.output.save == "append"
    assert recipe.output.chunk_frames == 64 and recipe.output.compression == "gzip"
    assert recipe.output.overwrite is False
    assert recipe.base_dir == "."


def test_recipe_is_frozen():
    recipe = load_recipe({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.prep.rebin = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.output = None


@pytest.mark.parametrize("shape, expected", [(64, (64, 64)), ([64, 32], (64, 32))])
def test_shape_int_or_pair(shape, expected):
    assert load_recipe({"prep": {"shape": shape}}).prep.shape == expected


@pytest.mark.parametrize("orientation, expected", [
    (0, (False, False, False)),
    (5, (True, False, True)),
    (6, (True, True, False)),
    ([0, 1, 1], (False, True, True)),
])
def test_orientation_stored_as_triple(orientation, expected):
    assert load_recipe({"prep": {"orientation": orientation}}).prep.orientation == expected


@pytest.mark.parametrize("center", ["source", "auto", "fftshift", "geometric"])
def test_center_modes(center):
    assert load_recipe({"prep": {"center": center}}).prep.center == center


def test_to_dict_round_trips():
    recipe = load_recipe({"source": {"name": "hdf5", "path": "a.h5"}, "prep": {"rebin": 2}})
    d = recipe.to_dict()
    assert d["source"] == {"name": "hdf5", "path": "a.h5"}
    assert d["prep"]["rebin"] == 2
    assert d["output"]["save"] == "append"


# --------------------------------------------------------------------------- overrides


def test_override_string_parsed_as_int():
    recipe = load_recipe({"prep": {"shape": 64}}, overrides={"prep.rebin": "2"})
    assert recipe.prep.rebin == 2 and type(recipe.prep.rebin) is int


def test_override_string_parsed_as_list_float_and_bool():
    recipe = load_recipe({}, overrides={"prep.orientation": "[1, 0, 0]",
                                        "prep.center": "[10.5, 20]",
                                        "output.overwrite": "true",
                                        "prep.saturation": "1e4"})
    assert recipe.prep.orientation == (True, False, False)
    assert recipe.prep.center == (10.5, 20.0)
    assert recipe.output.overwrite is True
    assert recipe.prep.saturation == 10000.0


def test_override_plain_strings_stay_strings():
    recipe = load_recipe({}, overrides={"output.dfile": "out/x.ptyd", "output.save": "merge",
                                        "prep.center": "auto", "source.path": "raw/a b.h5"})
    assert recipe.output.dfile == "out/x.ptyd"
    assert recipe.output.save == "merge"
    assert recipe.prep.center == "auto"
    assert recipe.source.options == {"path": "raw/a b.h5"}


def test_override_of_a_string_key_keeps_the_text_as_typed():
    recipe = load_recipe({}, overrides={"output.label": "2024", "output.dfile": "true"})
    assert recipe.output.label == "2024" and recipe.output.dfile == "true"
    assert _override_value("saxs", "sample", "0815") == "0815"
    assert _override_value("saxs", "nphi", "36") == 36
    quoted = load_recipe({}, overrides={"output.label": '"scan 7"', "prep.center": "[10, 12]"})
    assert quoted.output.label == "scan 7" and quoted.prep.center == (10.0, 12.0)
    # keys that are not strings are still TOML
    assert load_recipe({}, overrides={"source.energy_keV": "8"}).source.options == {"energy_keV": 8}


def test_override_non_string_values_pass_through():
    recipe = load_recipe({}, overrides={"prep.rebin": 4, "prep.shape": [64, 32]})
    assert recipe.prep.rebin == 4 and recipe.prep.shape == (64, 32)


def test_override_wins_over_file_and_does_not_mutate_the_input(tmp_path):
    raw = {"prep": {"rebin": 1, "shape": 64}, "output": {"save": "append"}}
    recipe = load_recipe(raw, overrides={"prep.rebin": "4", "output.save": "link"})
    assert recipe.prep.rebin == 4 and recipe.output.save == "link"
    assert raw == {"prep": {"rebin": 1, "shape": 64}, "output": {"save": "append"}}
    from_file = load_recipe(write(tmp_path, RECIPE_TOML), overrides={"prep.rebin": "4"})
    assert from_file.prep.rebin == 4


def test_override_is_validated_like_the_file():
    message = recipe_error({"prep": {"shape": 64}}, overrides={"prep.rebin": "3"})
    assert "prep.rebin=3" in message and "prep.shape=[64, 64]" in message
    message = recipe_error({}, overrides={"prep.rebinn": "2"})
    assert "prep.rebinn" in message and "rebin_mode" in message


def test_override_without_section_is_an_error():
    message = recipe_error({}, overrides={"rebin": "2"})
    assert "'rebin'" in message and "prep.rebin" in message


def test_override_into_a_non_table_section_is_a_recipe_error():
    message = recipe_error({"prep": 5}, overrides={"prep.rebin": "2"})
    assert "prep" in message


@pytest.mark.parametrize("text, expected", [
    ("prep.rebin=2", ("prep.rebin", "2")),
    ("prep.rebin = 2", ("prep.rebin", "2")),
    ("output.dfile=a=b.ptyd", ("output.dfile", "a=b.ptyd")),
    ("prep.orientation=[1, 0, 0]", ("prep.orientation", "[1, 0, 0]")),
])
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["prep.rebin", "rebin=2", "", "prep.rebin 2"])
def test_parse_override_errors(text):
    with pytest.raises(RecipeError, match=re.escape(repr(text)) + ".*section.key=value"):
        parse_override(text)


# --------------------------------------------------------------------------- bad input


def test_unknown_section_lists_valid_sections():
    message = recipe_error({"prepp": {"rebin": 2}})
    assert "[prepp]" in message
    for section in ("source", "prep", "output", "saxs"):
        assert f"[{section}]" in message


def test_section_must_be_a_table():
    message = recipe_error({"prep": 5})
    assert "'prep'" in message and "[prep] table" in message


@pytest.mark.parametrize("section, keys", [("prep", PREP_KEYS), ("output", OUTPUT_KEYS)])
def test_unknown_key_lists_valid_keys(section, keys):
    message = recipe_error({section: {"rebinn": 2}})
    assert f"{section}.rebinn" in message
    assert f"valid keys of [{section}]" in message
    for key in keys:
        assert key in message


@pytest.mark.parametrize("raw, key, expectation", [
    ({"prep": {"shape": "abc"}}, "prep.shape", "integer or [rows, cols]"),
    ({"prep": {"shape": [64, 64, 1]}}, "prep.shape", "integer or [rows, cols]"),
    ({"prep": {"shape": [64.0, 64]}}, "prep.shape", "integer or [rows, cols]"),
    ({"prep": {"shape": True}}, "prep.shape", "integer or [rows, cols]"),
    ({"prep": {"rebin": 2.5}}, "prep.rebin", "must be an integer"),
    ({"prep": {"rebin": True}}, "prep.rebin", "must be an integer"),
    ({"prep": {"num_frames": "all"}}, "prep.num_frames", "must be an integer"),
    ({"prep": {"saturation": "high"}}, "prep.saturation", "must be a number"),
    ({"prep": {"fftshift": 1}}, "prep.fftshift", "true or false"),
    ({"prep": {"dark": 3}}, "prep.dark", "must be a string"),
    ({"output": {"overwrite": "yes"}}, "output.overwrite", "true or false"),
    ({"output": {"chunk_frames": 2.0}}, "output.chunk_frames", "must be an integer"),
    ({"source": {"name": 3}}, "source.name", "must be a string"),
])
def test_wrong_type_names_key_and_expectation(raw, key, expectation):
    message = recipe_error(raw)
    assert key in message
    assert expectation in message


@pytest.mark.parametrize("shape", [0, -4, [64, 0], [-1, 64]])
def test_shape_must_be_positive(shape):
    message = recipe_error({"prep": {"shape": shape}})
    assert "prep.shape must be positive" in message


@pytest.mark.parametrize("rebin", [0, -1, 33, 64])
def test_rebin_outside_1_to_32(rebin):
    message = recipe_error({"prep": {"rebin": rebin}})
    assert f"prep.rebin={rebin}" in message and "1..32" in message


@pytest.mark.parametrize("rebin, shape", [(3, 128), (5, [10, 12]), (2, [7, 8])])
def test_rebin_must_divide_shape(rebin, shape):
    message = recipe_error({"prep": {"rebin": rebin, "shape": shape}})
    assert f"prep.rebin={rebin} does not divide prep.shape=" in message


def test_rebin_limits_accepted():
    assert load_recipe({"prep": {"rebin": 32, "shape": 64}}).prep.rebin == 32
    assert load_recipe({"prep": {"rebin": 3}}).prep.rebin == 3  # no shape: checked later


def test_bad_rebin_mode_lists_modes():
    message = recipe_error({"prep": {"rebin_mode": "max"}})
    assert "prep.rebin_mode 'max'" in message and "'sum'" in message and "'mean'" in message


@pytest.mark.parametrize("orientation, fragment", [
    (8, "prep.orientation 8 is out of range; use 0..7"),
    (-1, "prep.orientation -1 is out of range; use 0..7"),
    (True, "prep.orientation must be an integer 0..7 or a triple"),
    ([1, 0], "prep.orientation triple must be three booleans [transpose, flipud, fliplr]"),
    ("x", "prep.orientation triple must be three booleans"),
])
def test_bad_orientation(orientation, fragment):
    assert fragment in recipe_error({"prep": {"orientation": orientation}})


def test_float_orientation_names_the_key():
    message = recipe_error({"prep": {"orientation": 2.5}})
    assert "prep.orientation" in message and "0..7" in message


@pytest.mark.parametrize("center", ["middle", "Auto", ""])
def test_bad_center_string_lists_modes(center):
    message = recipe_error({"prep": {"center": center}})
    assert f"prep.center {center!r}" in message
    for mode in ("source", "auto", "fftshift", "geometric"):
        assert mode in message


@pytest.mark.parametrize("center", [[1], [1, 2, 3], ["a", "b"], [True, 1], 5, {"row": 1}])
def test_bad_center_pair(center):
    message = recipe_error({"prep": {"center": center}})
    assert "prep.center must be one of source, auto, fftshift, geometric" in message
    assert "[row, col] pair of numbers" in message


@pytest.mark.parametrize("center", [[float("nan"), 3], [3, float("inf")]])
def test_non_finite_center_pair_is_rejected(center):
    message = recipe_error({"prep": {"center": center}})
    assert "prep.center" in message


@pytest.mark.parametrize("raw, fragment, valid", [
    ({"output": {"save": "copy"}}, "output.save 'copy'", ["append", "link", "merge"]),
    ({"output": {"compression": "zstd"}}, "output.compression 'zstd'",
     ["none", "gzip", "lzf", "bitshuffle", "blosc2"]),
    ({"output": {"format": "matlab"}}, "output.format 'matlab'",
     ["ptyd", "procdata", "cxi", "ptychodus", "ptylab", "fold_slice"]),
    ({"prep": {"propagation": "near"}}, "prep.propagation 'near'", ["farfield", "nearfield"]),
])
def test_bad_choice_lists_valid_values(raw, fragment, valid):
    message = recipe_error(raw)
    assert fragment in message
    for value in valid:
        assert value in message


@pytest.mark.parametrize("raw, fragment", [
    ({"output": {"chunk_frames": 0}}, "output.chunk_frames must be >= 1, got 0"),
    ({"output": {"chunk_frames": -3}}, "output.chunk_frames must be >= 1, got -3"),
    ({"prep": {"num_frames": -1}}, "prep.num_frames must be >= 0"),
    ({"prep": {"min_frames": 0}}, "prep.min_frames must be >= 1"),
    ({"prep": {"saturation": -1}}, "prep.saturation"),
    ({"output": {"dfile": ""}}, "output.dfile is empty"),
    ({"output": {"part_format": "{dfile}.p"}}, "output.part_format"),
])
def test_bad_numbers_and_names(raw, fragment):
    assert fragment in recipe_error(raw)


def test_missing_recipe_file(tmp_path):
    missing = tmp_path / "nope.toml"
    message = recipe_error(missing)
    assert repr(str(missing)) in message and "does not exist" in message


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[prep]\nrebin = = 2\n")
    with pytest.raises(RecipeError, match="is not valid TOML") as info:
        load_recipe(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None  # the TOML parser's error is kept


def test_recipe_error_is_a_value_error():
    with pytest.raises(ValueError):
        load_recipe({"prep": {"rebin": 0}})


# --------------------------------------------------------------------------- relative paths


def test_path_is_relative_to_the_recipe_folder(tmp_path, monkeypatch):
    write(tmp_path / "recipes", RECIPE_TOML, name="scan.toml")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("recipes/scan.toml")  # relative path to the recipe itself
    monkeypatch.chdir("/")
    folder = (tmp_path / "recipes").resolve()
    assert recipe.path("x.h5") == folder / "x.h5"
    assert recipe.path(recipe.output.dfile) == folder / "out" / "scan.ptyd"
    assert recipe.path("../raw/a.h5") == folder / ".." / "raw" / "a.h5"
    assert recipe.path(tmp_path / "abs.h5") == tmp_path / "abs.h5"  # absolute kept


def test_path_base_dir_for_dict_and_override():
    assert load_recipe({}).path("x.h5") == Path(".") / "x.h5"
    assert load_recipe({}, base_dir="/data/beamtime").path("x.h5") == Path("/data/beamtime/x.h5")


def test_base_dir_argument_overrides_recipe_folder(tmp_path):
    path = write(tmp_path, RECIPE_TOML)
    recipe = load_recipe(path, base_dir="/elsewhere")
    assert recipe.path("x.h5") == Path("/elsewhere/x.h5")
