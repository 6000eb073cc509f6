"""The command line: every bad input is one line `ptyprep: error: ...`, exit status 2, nothing written."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from fault_helpers import HDF5_RECIPE, corrupt_scan

from ptyprep.cli import main

GOOD = """\
[source]
name = "simulate"
num_frames = 12
kind = "index"
[prep]
shape = 64
[output]
dfile = "out/scan.ptyd"
chunk_frames = 5
"""


def write_recipe(tmp_path, text=GOOD, name="r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def assert_bad_input(capsys, tmp_path, *args, match):
    code, out, err = run_main(capsys, *args)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ptyprep: error: "), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def make_h5(tmp_path, frames_shape=(6, 32, 32), n_pos=6, nan_at=None):
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as h5:
        h5["/entry/data/data"] = np.arange(np.prod(frames_shape), dtype=np.uint16).reshape(frames_shape)
        pos = np.stack([np.arange(n_pos), -np.arange(n_pos)], axis=1) * 1e-6
        if nan_at is not None:
            pos[nan_at] = np.nan
        h5["/entry/sample/positions"] = pos
    return path


H5_RECIPE = """\
[source]
name = "hdf5"
path = "raw.h5"
frames = "{frames}"
positions = "/entry/sample/positions"
energy_keV = 8.0
distance_m = 2.0
psize_m = 75e-6
beam_center = [16, 16]
[prep]
shape = 16
[output]
dfile = "out/scan.ptyd"
"""


@pytest.mark.parametrize("override, match", [
    ("prep.shape=0", "prep.shape must be positive"),
    ("prep.shape=-4", "prep.shape must be positive"),
    ("prep.rebin=33", "outside 1..32"),
    ("prep.rebin=0", "outside 1..32"),
    ("prep.rebin=3", "does not divide"),
    ("prep.orientation=8", "out of range"),
    ("prep.center=[500, 3]", "outside the raw frame"),
    ("prep.bogus=1", "valid keys of [prep]: shape, center"),
    ("prep.rebin=two", "prep.rebin must be an integer"),
    ("output.overwrite=1", "output.overwrite must be true or false"),
    ("output.compression=zstd", "is not one of none, gzip"),
    ("source.name=nope", "unknown source 'nope'; known sources: cxi, files, hdf5"),
    ("source.colour=red", "unknown option(s) colour for source 'simulate'"),
])
def test_bad_recipe_values(capsys, tmp_path, override, match):
    assert_bad_input(capsys, tmp_path, "run", write_recipe(tmp_path), "--set", override, match=match)


def test_missing_recipe(capsys, tmp_path):
    assert_bad_input(capsys, tmp_path, "run", tmp_path / "nope.toml", match="does not exist")


def test_bad_set_syntax(capsys, tmp_path):
    assert_bad_input(capsys, tmp_path, "run", write_recipe(tmp_path), "--set", "rebin2",
                     match="section.key=value")


def test_output_exists_and_not_writable(capsys, tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path)
    code, out, _ = run_main(capsys, "-q", "run", recipe)
    assert code == 0 and "wrote" in out
    before = (tmp_path / "out" / "scan.ptyd").stat().st_mtime_ns
    code, _, err = run_main(capsys, "run", recipe)
    assert code == 2 and "exists; set output.overwrite = true" in err
    assert (tmp_path / "out" / "scan.ptyd").stat().st_mtime_ns == before
    (tmp_path / "afile").write_text("")
    code, _, err = run_main(capsys, "run", recipe, "--set", "output.dfile=afile/x.ptyd")
    assert code == 2 and "is a file" in err
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    code, _, err = run_main(capsys, "run", recipe, "--set", "output.dfile=new/x.ptyd")
    assert code == 2 and "is not writable" in err and not (tmp_path / "new").exists()


def test_unavailable_compression_filter(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda fid: False)
    assert_bad_input(capsys, tmp_path, "run", write_recipe(tmp_path), "--set",
                     "output.compression=bitshuffle", match="is not available")


@pytest.mark.parametrize("case, match", [
    ("missing_file", "does not exist"),
    ("missing_dataset", "/entry/data/nothing"),
    ("not_3d", "3-D"),
    ("count", "positions"),
    ("nan", "NaN"),
])
def test_bad_raw_data(capsys, tmp_path, case, match):
    frames = "/entry/data/nothing" if case == "missing_dataset" else "/entry/data/data"
    if case != "missing_file":
        make_h5(tmp_path, frames_shape=(6, 32 * 32) if case == "not_3d" else (6, 32, 32),
                n_pos=4 if case == "count" else 6, nan_at=3 if case == "nan" else None)
    recipe = write_recipe(tmp_path, H5_RECIPE.format(frames=frames))
    assert_bad_input(capsys, tmp_path, "run", recipe, match=match)


def test_subprocess_exit_status_and_single_line(cli, tmp_path):
    proc = cli("run", write_recipe(tmp_path), "--set", "prep.rebin=33", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("ptyprep: error: ")


def test_validate_prints_plan_and_writes_nothing(capsys, tmp_path):
    code, out, _ = run_main(capsys, "validate", write_recipe(tmp_path))
    assert code == 0
    assert "frames        12 of raw shape (192, 200)" in out
    assert "prepared      shape [64, 64], centre [32.0, 32.0]" in out
    assert not (tmp_path / "out").exists()


def test_inspect_plot_sources(capsys, tmp_path):
    recipe = write_recipe(tmp_path)
    assert run_main(capsys, "-q", "run", recipe)[0] == 0
    ptyd = tmp_path / "out" / "scan.ptyd"
    code, out, _ = run_main(capsys, "inspect", ptyd, "--json")
    summary = json.loads(out)
    assert summary["kind"] == "ptyd" and summary["frames"] == 12 and summary["complete"]
    assert summary["shape"] == [64, 64] and summary["indices_in_order"]
    png = tmp_path / "p.png"
    code, out, _ = run_main(capsys, "plot", ptyd, "--out", png)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20000
    code, out, _ = run_main(capsys, "sources")
    assert "simulate" in out and "hdf5" in out and "num_frames" in out


def test_demo_writes_ptyd_and_picture(capsys, tmp_path):
    code, out, _ = run_main(capsys, "-q", "demo", "--out", tmp_path / "demo")
    assert code == 0
    import ptyprep

    scan = ptyprep.read_ptyd(tmp_path / "demo" / "demo.ptyd")
    assert scan["data"].shape == (200, 128, 128)
    assert (tmp_path / "demo" / "demo_ptycho.png").stat().st_size > 20000
    # the automatic centre finds the off-centre beam of the simulation (101.3, 93.6)
    np.testing.assert_allclose(scan["info"]["raw_center"], [101.3, 93.6], atol=1.0)


def test_help_teaches(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "mpiexec -n 4 python -m mpi4py -m ptyprep run" in out


def test_plot_raw_file_draws_its_frames(capsys, tmp_path):
    raw = make_h5(tmp_path)
    png = tmp_path / "raw.png"
    code, out, err = run_main(capsys, "plot", raw, "--out", png)
    assert code == 0 and "wrote" in out and not err
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10000
    with h5py.File(raw, "w") as h5:
        h5["x"] = np.arange(5)
    code, _, err = run_main(capsys, "plot", raw)
    assert code == 2 and "no 2-D or 3-D image dataset" in err


def test_a_reader_that_stops_early_ends_the_command_quietly():
    # `ptyprep sources | head -0`: the pipe is closed before the command writes
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run([sys.executable, "-m", "ptyprep", "sources"], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_a_corrupt_chunk_is_one_line_naming_file_dataset_and_frame(tmp_path):
    raw = corrupt_scan(tmp_path / "raw.h5")
    recipe = write_recipe(tmp_path, HDF5_RECIPE.format(raw=raw, dfile="out/x.ptyd"))
    done = subprocess.run([sys.executable, "-m", "ptyprep", "-q", "run", str(recipe)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptyprep: error: cannot read frame 13 of ")
    assert f"{str(raw)!r} dataset '/entry/data/data'" in lines[0]
    assert not list((tmp_path / "out").iterdir())  # the master's temporary file was removed


PADDED = """\
[source]
name = "simulate"
num_frames = 6
frame_shape = [128, 128]
beam_center = [64, 64]
pattern_size = 64
[prep]
shape = {shape}
center = "geometric"
rebin = 2
[output]
dfile = "out/pad.ptyd"
"""


@pytest.mark.parametrize("shape", [100, 200])
def test_validate_predicts_the_valid_fraction_and_warns_of_padding(capsys, tmp_path, shape):
    recipe = write_recipe(tmp_path, PADDED.format(shape=shape))
    code, out, _ = run_main(capsys, "validate", recipe)
    assert code == 0
    predicted = float(out.split("% of the prepared frame")[0].rsplit(" ", 1)[1])
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    code, _, err = run_main(capsys, "run", recipe)
    assert code == 0
    import ptyprep

    weights = ptyprep.read_ptyd(tmp_path / "out" / "pad.ptyd")["weights"]
    assert predicted == pytest.approx(100 * weights.mean(), abs=0.005)
    if shape == 200:     # 200² around (63.5, 63.5) on a 128² frame: 1 - 128²/200² padding
        assert warnings == ["warning: the crop rows -36:164, columns -36:164 reach beyond the "
                            "raw frame (128, 128): 59.0% of each prepared frame is padding "
                            "(zero, invalid); reduce prep.shape or move prep.center"]
        assert "reach beyond the raw frame (128, 128): 59.0%" in err
    else:
        assert warnings == [] and "reach beyond" not in err


def test_plot_takes_the_frames_not_a_mask_of_their_shape(capsys, tmp_path):
    from ptyprep.plot import frames_dataset

    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as h5:
        h5["entry/data/data"] = np.ones((3, 32, 32), np.uint16)
        h5["entry/zz_mask"] = np.ones((32, 32), np.uint8)     # sorts after the frames
        h5["entry/big_image"] = np.ones((40, 40), np.float32)  # larger, but one image
        assert frames_dataset(h5) == "/entry/data/data"
    code, out, _ = run_main(capsys, "plot", path, "--dataset", "/entry/zz_mask", "--out",
                            tmp_path / "m.png")
    assert code == 0 and (tmp_path / "m.png").stat().st_size > 1000
    code, _, err = run_main(capsys, "plot", path, "--dataset", "/entry/nothing")
    assert code == 2 and err.strip() == (
        f"ptyprep: error: {str(path)!r} has no 2-D or 3-D dataset '/entry/nothing'; give "
        "--dataset the HDF5 path of the frames (see ptyprep inspect)")


@pytest.mark.parametrize("command", ["inspect", "plot"])
def test_inspect_and_plot_of_a_damaged_or_foreign_file_is_one_line(tmp_path, command):
    good = tmp_path / "good.h5"
    corrupt_scan(good, bad=None)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:4000])
    foreign = tmp_path / "notes.h5"
    foreign.write_text("not HDF5\n")
    damaged = corrupt_scan(tmp_path / "damaged.h5", bad=0)
    cases = [truncated, foreign] + ([damaged] if command == "plot" else [])
    for path in cases:
        done = subprocess.run([sys.executable, "-m", "ptyprep", command, str(path)],
                              capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and lines[0].startswith("ptyprep: error: "), lines
        assert repr(str(path)) in lines[0] or repr(path.name) in lines[0]
    assert not list(tmp_path.glob("*.png"))


def test_inspect_json_into_a_closed_pipe_is_quiet(tmp_path):
    path = tmp_path / "many.h5"
    with h5py.File(path, "w") as h5:      # a summary far larger than a pipe's buffer
        for k in range(3000):
            h5[f"group_{k:04d}/values"] = np.arange(3)
    done = subprocess.run(f"{sys.executable} -m ptyprep inspect --json {path} | head -c 10",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert len(done.stdout) == 10 and done.stdout.startswith("{")
    assert done.stderr == ""


def test_every_command_and_option_is_described():
    import argparse

    from ptyprep.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"run", "watch", "validate", "inspect", "plot", "sources",
                                     "formats", "demo", "export", "view"}
    helps = {c.dest: c.help for c in commands._choices_actions}
    for name, sub in commands.choices.items():
        assert helps.get(name), f"command {name} has no help"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help is not argparse.SUPPRESS, \
                f"ptyprep {name}: {action.option_strings or action.dest} has no help"


def test_sources_prints_every_description_whole_and_plain(capsys):
    code, out, _ = run_main(capsys, "sources")
    assert code == 0
    assert "``" not in out and ":class:" not in out and ":func:" not in out
    # a description spanning several docstring lines is printed whole (wrapped)
    text = " ".join(line.strip() for line in out.split("\nhdf5")[1].splitlines())
    assert ("Dataset (N, H, W) of frames, or a group whose 3-D datasets (Eiger data_000001, ...) "
            "are concatenated in natural name order.") in text
    assert all(len(line) <= 100 for line in out.splitlines() if line.startswith("    "))


def test_acquire_help_says_what_it_writes():
    done = subprocess.run([sys.executable, "-m", "ptyprep.acquire", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "/entry/data/data (N, H, W) uint32 frames" in done.stdout
    assert "pixel_mask" in done.stdout and "--kind" in done.stdout
