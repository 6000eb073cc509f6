"""Bad input of the scanning-SAXS chain through ``ptyprep run``: exit status 2, one line
``ptyprep: error: ...`` naming the problem, and no output file (nor a partial one)."""

import json
import logging
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import saxs_fixtures as F

from ptyprep.cli import main

LIX = """
[source]
name = "nsls2-lix"
path = ["scanA.h5"]
[output]
format = "procdata"
dfile = "{out}"
chunk_frames = 8
[saxs]
qgrid = {qgrid}
nphi = {nphi}
detectors = [{detectors}]
attrs = [{attrs}]
maps = {maps}
tomo = {tomo}
"""
DEFAULT = dict(qgrid="[[0.02, 0.12, 0.01], [0.4, 1.6, 0.1]]", nphi=12,
               detectors='{dataset = "pil1M_image", poni = "saxs.poni"}, '
                         '{dataset = "pilW2_image", poni = "waxs.poni"}',
               attrs='{name = "int_saxs", func = "get_roi", '
                     'kwargs = {qphirange = [0.03, 0.1, -180, 180]}}',
               maps='["transmission", "int_saxs"]', tomo="[]")
HDF5 = """
[source]
name = "hdf5"
path = "scanA.h5"
incident = "/spec_A/primary/data/em1_sum_all_mean_value"
transmitted = "/spec_A/primary/data/em2_sum_all_mean_value"
motor_positions = ["/spec_A/primary/data/ss_rot", "/spec_A/primary/data/ss_x"]
motors = {motors}
scan_shape = {shape}
snaking = true
[output]
format = "procdata"
dfile = "{out}"
[saxs]
qgrid = [[0.02, 0.12, 0.01]]
nphi = 12
detectors = [{{dataset = "/spec_A/primary/data/pil1M_image", poni = "saxs.poni"}}]
maps = ["transmission"]
tomo = ["transmission"]
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    F.make_scans(folder)
    (folder / "broken.poni").write_text("this is not a calibration\nDistance: banana\n")
    np.save(folder / "small_mask.npy", np.ones((5, 5), bool))
    bad = folder / "badshape.h5"
    shutil.copy(folder / "scanA.h5", bad)
    with h5py.File(bad, "a") as f:
        start = json.loads(f["spec_A"].attrs["start"])
        start["shape"] = [5, F.N_TRANS]
        f["spec_A"].attrs["start"] = json.dumps(start)
    return folder


@pytest.fixture
def run(folder, capsys):
    """``run(text)`` writes the recipe, runs ``ptyprep run`` in-process; returns stderr."""
    logger = logging.getLogger("ptyprep")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    count = [0]

    def go(text):
        count[0] += 1
        out = f"bad_{count[0]}.h5"
        recipe = folder / f"bad_{count[0]}.toml"
        recipe.write_text(text.replace("{out}", out))
        try:
            with pytest.raises(SystemExit) as exc:
                main(["-q", "run", str(recipe)])
        finally:
            logger.handlers[:], logger.level, logger.propagate = saved
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2, err
        assert err and err[-1].startswith("ptyprep: error: "), err
        assert sum(line.startswith("ptyprep: error:") for line in err) == 1
        assert not (folder / out).exists() and not (folder / f".{out}.partial").exists()
        return err[-1]

    return go


def lix(**kw):
    text = LIX
    for key, value in {**DEFAULT, **kw}.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def test_good_recipe_runs(run, folder):
    (folder / "good.toml").write_text(lix().replace("{out}", "good.h5"))
    assert main(["-q", "run", str(folder / "good.toml")]) == 0
    assert (folder / "good.h5").exists()


@pytest.mark.parametrize("poni, match", [("missing.poni", "poni file .*missing.poni.* does not exist"),
                                         ("broken.poni", "poni file .*broken.poni")])
def test_poni_missing_or_invalid(run, poni, match):
    line = run(lix(detectors=f'{{dataset = "pil1M_image", poni = "{poni}"}}'))
    assert re.search(match, line), line


def test_mask_shape(run):
    line = run(lix(detectors='{dataset = "pil1M_image", poni = "saxs.poni", valid = "small_mask.npy"}'))
    assert "valid mask shape (5, 5) differs from the detector shape (24, 28)" in line


def test_detector_dataset_missing(run):
    line = run(lix(detectors='{dataset = "pilW1_image", poni = "waxs.poni"}'))
    assert "detector dataset 'pilW1_image' missing" in line


def test_scan_shape_inconsistent(run):
    line = run(lix().replace('path = ["scanA.h5"]', 'path = ["badshape.h5"]'))
    assert "needs 45 frames, the raw file holds 36" in line
    line = run(HDF5.format(motors='["ss_rot", "ss_x"]', shape=f"[5, {F.N_TRANS}]", out="{out}"))
    assert "needs 45 frames, the raw file holds 36" in line


def test_nphi_below_two(run):
    assert "nphi = 1 must be an integer >= 2" in run(lix(nphi=1))


@pytest.mark.parametrize("qgrid, match", [
    ("[[0.12, 0.02, 0.01]]", "must have 0 <= q0 < q1"),
    ("[[0.02, 0.12, 0.01], [0.1, 0.2, 0.01]]", "segments must increase"),
    ("[[40.0, 50.0, 1.0]]", "outside every detector's q coverage")])
def test_qgrid_not_increasing_or_uncovered(run, qgrid, match):
    assert match in run(lix(qgrid=qgrid))


def test_attribute_function_raising_names_frames(run):
    line = run(lix(attrs='{name = "hop", func = "hop", kwargs = {xrang = [0.03, 0.1]}}',
                   maps='["transmission", "hop"]'))
    assert "attribute function hop failed on sample 'spec_A' frames 0..7" in line


@pytest.mark.parametrize("attrs, match", [
    ('{name = "x", func = "iq_mean", data_key = "maps", kwargs = {qrange = [0.03, 0.1]}}',
     "data_key = 'maps' must be"),
    ('{name = "x", func = "iq_mean", data_key = "Iq", sub_key = "smoothed", '
     'kwargs = {qrange = [0.03, 0.1]}}', "sub_key = 'smoothed' must be"),
    ('{name = "x", func = "iq_mean", data_key = "Iq", sub_key = "subtracted", '
     'kwargs = {qrange = [0.03, 0.1]}}', "sub key 'subtracted' of data key 'Iq' does not exist")])
def test_unknown_data_or_sub_key(run, attrs, match):
    assert match in run(lix(attrs=attrs, maps='["transmission", "x"]'))


def test_tomography_without_angle_axis(run):
    line = run(HDF5.format(motors='["ss_y", "ss_x"]', shape=f"[4, {F.N_TRANS}]", out="{out}"))
    assert "slow axis 'ss_y', not a rotation angle" in line


def test_an_output_folder_without_permission_is_one_line(as_user, open_folder):
    F.make_scans(open_folder)
    locked = open_folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    (open_folder / "r.toml").write_text(lix().replace("{out}", str(locked / "an.h5")))
    for path in open_folder.iterdir():
        if path.is_file():
            path.chmod(0o644)
    for command in ("validate", "run"):
        done = as_user([sys.executable, "-m", "ptyprep", "-q", command, "r.toml"],
                       cwd=open_folder)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"ptyprep: error: output directory {str(locked)!r} is not writable; choose "
            "another output.dfile"]
    assert list(locked.iterdir()) == []


def test_a_full_disk_is_one_line_exit_1_and_keeps_the_previous_file(small_disk, tmp_path):
    F.make_scans(tmp_path)
    previous = small_disk / "an.h5"
    previous.write_bytes(b"the previous output")
    text = lix(nphi=180, qgrid="[[0.02, 0.12, 0.0001]]",
               detectors='{dataset = "pil1M_image", poni = "saxs.poni"}')
    text = text.replace("{out}", str(previous)).replace("chunk_frames = 8",
                                                        "chunk_frames = 8\noverwrite = true")
    (tmp_path / "r.toml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "ptyprep", "-q", "run", "r.toml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptyprep: error: cannot write "), lines
    assert "No space left on device" in lines[0]
    assert sorted(p.name for p in small_disk.iterdir()) == ["an.h5"]
    assert previous.read_bytes() == b"the previous output"


@pytest.mark.parametrize("kw, match", [
    (dict(maps='["transmission", "int_foo"]'),
     "saxs.maps names 'int_foo', which no step makes; the attributes are incident, "
     "transmitted, transmission, absorption, int_saxs"),
    (dict(tomo='["absorption"]'),
     "saxs.tomo names 'absorption', which is not in saxs.maps (transmission, int_saxs)"),
])
def test_maps_and_tomograms_of_what_no_step_makes_are_refused_before_running(folder, capsys,
                                                                             kw, match):
    recipe = folder / "never.toml"
    recipe.write_text(lix(**kw).replace("{out}", "never.h5"))
    for command in ("validate", "run"):
        with pytest.raises(SystemExit) as exc:
            main(["-q", command, str(recipe)])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and match in err[0], err
    assert not (folder / "never.h5").exists()


def _corrupt_saxs_scan(folder, bad=5):
    """The acquire module's SAXS raster with gzip frames, chunk ``bad`` of the SAXS detector
    overwritten; returns the recipe."""
    from ptyprep.acquire import acquire_saxs, saxs_setup, saxs_source_options

    acquire_saxs(folder / "raw.h5", rate_hz=0)
    items = {}

    def keep(name, node):
        if isinstance(node, h5py.Dataset):
            items[name] = node[()]

    with h5py.File(folder / "raw.h5", "r") as f:
        f.visititems(keep)
    with h5py.File(folder / "bad.h5", "w") as f:
        for name, values in items.items():
            if values.ndim == 3:
                f.create_dataset(name, data=values, chunks=(1,) + values.shape[1:],
                                 compression="gzip")
            else:
                f[name] = values
    with h5py.File(folder / "bad.h5", "r") as f:
        offset = f["/entry/saxs/data"].id.get_chunk_info(bad).byte_offset
    with open(folder / "bad.h5", "r+b") as fh:
        fh.seek(offset + 10)
        fh.write(b"\xff" * 40)
    detectors = saxs_setup(folder)[:1]
    source = saxs_source_options(folder / "bad.h5")
    lines = ["[source]"] + [f"{k} = {json.dumps(v)}" for k, v in source.items()]
    lines += ["[output]", 'format = "procdata"', 'dfile = "out/an.h5"', "chunk_frames = 8",
              "[saxs]", "qgrid = [[0.01, 0.15, 0.005]]", "nphi = 12",
              "detectors = [" + ", ".join("{" + ", ".join(f"{k} = {json.dumps(v)}"
                                                          for k, v in d.items()) + "}"
                                          for d in detectors) + "]",
              'maps = ["transmission"]']
    (folder / "out").mkdir()
    recipe = folder / "r.toml"
    recipe.write_text("\n".join(lines) + "\n")
    return recipe


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_corrupt_frame_is_one_line_naming_file_dataset_and_frame(tmp_path, run_mpi, ranks):
    recipe = _corrupt_saxs_scan(tmp_path)
    args = ["-m", "ptyprep", "-q", "run", recipe]
    if ranks == 1:
        done = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    else:
        done = run_mpi(ranks, args, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ptyprep: error: cannot read frame 5 of "
                               f"{str(tmp_path / 'bad.h5')!r} dataset '/entry/saxs/data': ")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
