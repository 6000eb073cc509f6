"""Near-field cone-beam scans: prep.focus_to_sample_m writes the Fresnel-scaled geometry."""

import dataclasses
import json

import numpy as np
import pytest

import ptyprep
from ptyprep.cli import main
from ptyprep.errors import RecipeError
from ptyprep.ptycho.plan import fresnel_scaling, make_plan
from ptyprep.recipe import parse_override
from ptyprep.sources.simulate import SimulatedSource

# psize 75 µm, sample→detector 5 m, focus→sample 5 cm: focus→detector 5.05 m, M = 101
PSIZE, DISTANCE, FOCUS = 75e-6, 5.0, 0.05
GEOMETRY = {"psize_m": PSIZE, "distance_m": DISTANCE}


def raw_recipe(prep=None, source=None):
    return {"source": {"name": "simulate", "num_frames": 7, "kind": "index", **GEOMETRY,
                       **(source or {})},
            "prep": {"shape": 64, "propagation": "nearfield", **(prep or {})},
            "output": {"dfile": "out/scan.ptyd", "chunk_frames": 3}}


def prepared(tmp_path, prep=None, overrides=None):
    recipe = ptyprep.load_recipe(raw_recipe(prep), overrides=overrides, base_dir=tmp_path)
    return ptyprep.read_ptyd(ptyprep.run(recipe)["path"])


def test_fresnel_scaling_numbers():
    psize, distance, magnification = fresnel_scaling(PSIZE, DISTANCE, FOCUS)
    assert magnification == 101.0
    assert psize == 75e-6 / 101 and psize == pytest.approx(7.425742574257426e-07, rel=1e-15)
    assert distance == 5.0 / 101 and distance == pytest.approx(0.05 * 5 / 5.05, rel=1e-12)
    psize, _, _ = fresnel_scaling([75e-6, 55e-6], DISTANCE, FOCUS)
    assert psize.tolist() == [75e-6 / 101, 55e-6 / 101]


def test_run_writes_the_effective_geometry_and_keeps_the_measured_one(tmp_path):
    scan = prepared(tmp_path, {"focus_to_sample_m": FOCUS})
    meta = scan.meta
    assert meta["propagation"] == "nearfield"
    assert meta["psize"].tolist() == [75e-6 / 101] * 2
    assert meta["distance"] == pytest.approx(0.05 * 5 / 5.05, rel=1e-12)
    assert meta["energy"] == 6.2 and meta["shape"].tolist() == [64, 64]
    geometry = json.loads(scan.info["geometry"])
    assert geometry == {"beam": "cone", "detector_psize_m": [75e-6, 75e-6],
                        "sample_to_detector_m": 5.0, "focus_to_sample_m": 0.05,
                        "focus_to_detector_m": pytest.approx(5.05, rel=1e-15),
                        "magnification": 101.0, "effective_psize_m": meta["psize"].tolist(),
                        "effective_distance_m": meta["distance"]}
    assert json.loads(scan.info["recipe"])["prep"]["focus_to_sample_m"] == 0.05
    # positions are sample-plane metres: the scaling leaves them as the source gives them
    want = SimulatedSource(num_frames=7, kind="index", **GEOMETRY).read_positions()
    np.testing.assert_array_equal(scan.positions, want)


@pytest.mark.parametrize("prep", [{}, {"propagation": "farfield"}])
def test_without_the_key_the_detector_geometry_is_written(tmp_path, prep):
    scan = prepared(tmp_path, prep)
    assert scan.meta["psize"].tolist() == [75e-6, 75e-6] and scan.meta["distance"] == 5.0
    assert "geometry" not in scan.info
    assert "focus_to_sample_m" not in json.loads(scan.info["recipe"])["prep"]   # not recorded unset


def test_scaling_follows_rebin_and_transpose(tmp_path):
    recipe = ptyprep.load_recipe(raw_recipe({"focus_to_sample_m": FOCUS, "rebin": 2}),
                                 base_dir=tmp_path)
    plan = make_plan(recipe, SimulatedSource(num_frames=7, kind="index", **GEOMETRY))
    plan = dataclasses.replace(plan, psize_m=(75e-6, 55e-6), orientation=(True, False, False))
    meta = plan.output_meta()
    assert plan.detector_psize().tolist() == [110e-6, 150e-6]   # (y, x) swapped, × 2
    assert meta["psize"].tolist() == [110e-6 / 101, 150e-6 / 101]
    assert meta["distance"] == 5.0 / 101
    assert plan.geometry_info()["detector_psize_m"] == [110e-6, 150e-6]


@pytest.mark.parametrize("text, value", [("0.01", 0.01), ("5e-2", 0.05), ("1", 1.0)])
def test_set_override_is_a_number(text, value):
    overrides = dict([parse_override("prep.propagation=nearfield"),
                      parse_override(f"prep.focus_to_sample_m={text}")])
    recipe = ptyprep.load_recipe(raw_recipe(), overrides=overrides)
    assert recipe.prep.focus_to_sample_m == value
    assert isinstance(recipe.prep.focus_to_sample_m, float)


def test_command_line_run_with_set(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text(
        '[source]\nname = "simulate"\nnum_frames = 4\nkind = "index"\npsize_m = 75e-6\n'
        'distance_m = 5.0\n[prep]\nshape = 64\n[output]\ndfile = "out/scan.ptyd"\n')
    with pytest.raises(SystemExit) as exc:
        main(["run", "r.toml", "--set", "prep.propagation=nearfield",
              "--set", "prep.focus_to_sample_m=0.05"])
        raise SystemExit(0)
    assert exc.value.code in (0, None), capsys.readouterr()
    meta = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd").meta
    assert meta["psize"].tolist() == [75e-6 / 101] * 2 and meta["distance"] == 5.0 / 101


@pytest.mark.parametrize("prep, fix", [
    ({"propagation": "farfield", "focus_to_sample_m": 0.05},
     "is only for near-field scans, but prep.propagation is 'farfield'; set prep.propagation = "
     "'nearfield' or remove prep.focus_to_sample_m"),
    ({"focus_to_sample_m": 0}, "got 0;"),
    ({"focus_to_sample_m": 0.0}, "got 0.0;"),
    ({"focus_to_sample_m": -0.05}, "got -0.05;"),
    ({"focus_to_sample_m": float("nan")}, "got nan;"),
    ({"focus_to_sample_m": float("inf")}, "got inf;"),
    ({"focus_to_sample_m": "5 cm"}, "got '5 cm';"),
    ({"focus_to_sample_m": True}, "got True;"),
    ({"focus_to_sample_m": [0.05]}, "got [0.05];"),
])
def test_bad_values_are_one_sentence_naming_the_key_and_the_fix(prep, fix):
    with pytest.raises(RecipeError) as info:
        ptyprep.load_recipe(raw_recipe(prep))
    message = str(info.value)
    assert message.startswith("prep.focus_to_sample_m ") and fix in message
    assert "\n" not in message
    if prep.get("propagation") != "farfield":
        assert message.endswith("give the focus-to-sample distance of the cone beam (e.g. "
                                "0.05), or remove it for a parallel beam")


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "abc", ""])
def test_bad_set_values_are_refused(text):
    with pytest.raises(RecipeError, match="prep.focus_to_sample_m must be a finite distance"):
        ptyprep.load_recipe(raw_recipe(), overrides={"prep.focus_to_sample_m": text})


def test_the_key_is_listed_among_the_prep_keys():
    with pytest.raises(RecipeError, match="focus_to_sample_m"):
        ptyprep.load_recipe({"prep": {"focus_to_sample": 0.05}})


def test_validate_shows_the_measured_and_the_written_geometry(tmp_path, capsys):
    from ptyprep.validate import describe_plan

    recipe = ptyprep.load_recipe(raw_recipe({"focus_to_sample_m": FOCUS}), base_dir=tmp_path)
    text = describe_plan(recipe)
    assert ("distance 5 m; cone beam, focus 0.05 m before the sample: magnification 101, "
            f"written as distance {5.0 / 101:.4g} m") in text
    assert f"pixel [{75e-6 / 101}, {75e-6 / 101}] m" in text
