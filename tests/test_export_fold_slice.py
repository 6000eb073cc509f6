"""The fold_slice export, read the way fold_slice's MATLAB loader reads it.

:func:`fold_slice_load` below is a line-by-line transcription of what fold_slice (PtychoShelves,
github.com/yijiang1/fold_slice, commit d9a1204b9d43a6f34c6f10cc5549f3606fa3f396) does with the
parameter lines the export prints and the two files it opens: MATLAB's ``h5read`` (column-major:
an HDF5 dataset of shape ``(a, b, c)`` is the MATLAB array ``A(i, j, k) = H[k, j, i]``), the
detector package's transpose, the double negation of the positions, the sample pixel and the
mask crop.  ptychodus's fold_slice plugin (installed) is the second reader.
"""

import logging
import os
import re

import h5py
import numpy as np
import pytest
from export_helpers import demo_ptyd, demo_recipe, serial_and_mpi

import ptyprep
from ptyprep.errors import OutputError, RecipeError, WriteFault
from ptyprep.exports import fold_slice as FS
from ptyprep.exports.geometry import HC_KEV_M, ScanGeometry
from ptyprep.layout import files as LF

META = {"shape": np.array([64, 64]), "center": np.array([32.0, 32.0]),
        "psize": np.array([75e-6, 75e-6]), "energy": 8.0, "distance": 5.0}

#: fold_slice's detector packages, read from their .m files: (det.pixel_size, det.orientation)
#: +detector/+eiger_APS/eiger_APS.m:16,31 · +Pilatus300K_APS/Pilatus300K_APS.m:16,31 ·
#: +medipix3/medipix3.m:16,31 · +eiger_APS_temp/eiger_APS_temp.m:16 (75e-6/2),31.
#: (+empad/empad.m:30 has [0 0 0] and pixel 1: electron data, not named by the export.)
PACKAGES = {"eiger_APS": (75e-6, (1, 0, 0)), "Pilatus300K_APS": (172e-6, (1, 0, 0)),
            "medipix3": (55e-6, (1, 0, 0)), "eiger_APS_temp": (75e-6 / 2, (1, 0, 0))}


# -- a reader that does what fold_slice's MATLAB does ------------------------------------------

def h5read(path, name):
    """MATLAB's ``h5read``: the dataset with its dimensions reversed (column-major)."""
    with h5py.File(path, "r") as f:
        value = f[name][()]
    value = np.asarray(value)
    if value.ndim == 1:                         # an (N,) dataset is an N×1 column in MATLAB
        return value.reshape(-1, 1)
    return value.transpose()


def _matlab_value(text):
    text = text.strip()
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        return np.array([float(v) for v in text[1:-1].split()])
    return float(text)


def parse_matlab(text):
    """The printed lines as MATLAB runs them: ``p.<field> = value;`` into a dict, and the
    two mask lines (``h5read`` of ``/mask`` then ``save``) into ``saved``: {mat file: a
    function giving the array saved}."""
    p, saved, mask = {}, {}, None
    for line in text.splitlines():
        code = re.sub(r"%.*$", "", line).strip()          # MATLAB comments (no % in values)
        if not code:
            continue
        m = re.fullmatch(r"p\.\s+([\w.]+)\s*=\s*(.+);", code)
        if m:
            p[m.group(1)] = _matlab_value(m.group(2))
            continue
        m = re.fullmatch(r"mask = permute\(h5read\('(.+)', '/mask'\), \[2 1\]\);", code)
        if m:
            mask = (lambda file: lambda: h5read(file, "/mask").transpose(1, 0))(m.group(1))
            continue
        m = re.fullmatch(r"save\('(.+)', 'mask'\);", code)
        if m:
            saved[m.group(1)] = mask
            continue
        raise AssertionError(f"a MATLAB line the test does not know: {line!r}")
    return p, saved


def fold_slice_load(text):
    """What fold_slice prepares from the export, given the printed parameter lines.

    Returns
    -------
    dict
        ``data`` (H, W, N) as MATLAB indexes it (``data(:, :, k)`` = pattern k),
        ``positions`` (N, 2) probe positions in object pixels, column 0 = row (dim 1),
        ``dx_spec`` (2,) sample pixel (m), ``fmask`` (H, W) bool (True = valid), ``p``.
    """
    p, saved = parse_matlab(text)
    assert p["src_positions"] == "hdf5_pos" and p["prepare.data_preparator"] == "matlab_aps"
    assert p["scan.type"] == "default" and p["prop_regime"] == "farfield"
    assert p["beam_source"] != "electron"
    folder = p["base_path"] + p["scan.format"]       # sprintf('', p.scan_number) is ''
    # +scans/get_filenames_aps.m:15: strcat(p.base_path, sprintf(p.scan.format, n),
    #   '/data_roi', p.scan.roi_label, '_dp.hdf5')
    dp_file = folder + "/data_roi" + p["scan.roi_label"] + "_dp.hdf5"
    # +scans/+positions/hdf5_pos.m:9: the same with '_para.hdf5'
    para_file = folder + "/data_roi" + p["scan.roi_label"] + "_para.hdf5"

    # +detector/+prep_data/+matlab_aps/load_data.m:32,36: data = squeeze(h5read(file, '/dp'))
    data = h5read(dp_file, "/dp")
    ds, orientation = PACKAGES[p["detector.name"]]
    if orientation[0]:                       # load_data.m:39-41: permute(data, [2 1 3])
        data = data.transpose(1, 0, 2)
    assert orientation[1:] == (0, 0)         # load_data.m:43-54: no flips for these packages

    # hdf5_pos.m:11-18: ppX(:), ppY(:); positions_real = [-ppY, -ppX]
    ppx = h5read(para_file, "/ppX").ravel(order="F")
    ppy = h5read(para_file, "/ppY").ravel(order="F")
    positions_real = np.column_stack([-ppy, -ppx])
    # +core/initial_checks.m:56: p.lambda = 1.23984193e-9/p.energy (keV -> m)
    lam = 1.23984193e-9 / p["energy"]
    # +core/initialize_ptycho.m:78,100: p.ds = det.pixel_size; dx_spec = λ z ./ (asize ds)
    asize = p["asize"]
    dx_spec = lam * p["z"] / (asize * ds)
    # +core/ptycho_adjust_positions.m:59,82,107: negate, to pixels, minus the minimum
    positions = -positions_real / dx_spec
    positions = positions - positions.min(axis=0)
    # +detector/+prep_data/+matlab_aps/matlab_aps.m:41-42: as many patterns as positions
    assert data.shape[2] == len(positions)

    # +detector/+prep_data/update_defaults.m:79-80: det.mask = p.io.default_mask_file;
    # +matlab_aps/prepare_data.m:50-51: load(mask file); mask = logical(mask)
    mask = saved[p["io.default_mask_file"]]().astype(bool)
    # +matlab_aps/get_center.m:55-56 and get_mask.m:80: the crop ctr - asize/2 : ctr + asize/2 - 1
    lim_inf, lim_sup = p["ctr"] - asize / 2, p["ctr"] + asize / 2 - 1
    assert (lim_inf == np.round(lim_inf)).all() and (lim_inf >= 1).all()   # MATLAB subscripts
    lo, hi = lim_inf.astype(int), lim_sup.astype(int)
    fmask = mask[lo[0] - 1:hi[0], lo[1] - 1:hi[1]]
    assert fmask.shape == data.shape[:2]
    return {"data": data, "positions": positions, "dx_spec": dx_spec, "fmask": fmask, "p": p}


def read_export(path):
    """Every dataset of an export (strings decoded)."""
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out["dp.dtype"] = f["dp"].dtype
    out["matlab_parameters"] = out["matlab_parameters"].decode()
    return out


def assert_same_export(a, b, replace=()):
    assert sorted(a) == sorted(b)
    for key in a:
        if key == "matlab_parameters":
            text = a[key]
            for old, new in replace:
                text = text.replace(old, new)
            assert text == b[key]
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- pure parts ---------------------------------------------------------------------------------

def test_matlab_parameters_name_the_package_with_the_pixel_and_keep_the_distance():
    g = ScanGeometry.from_meta(META)
    p, _ = parse_matlab(FS.matlab_parameters(g, "/data/scan 7", "s_fold_slice.h5"))
    assert p["detector.name"] == "eiger_APS" and PACKAGES["eiger_APS"][0] == 75e-6
    assert p["energy"] == 8.0 and p["z"] == 5.0
    np.testing.assert_array_equal(p["asize"], [64, 64])
    np.testing.assert_array_equal(p["ctr"], [33, 33])      # 1-based (32, 32)
    assert p["base_path"] == "/data/scan 7/" and p["scan.format"] == ""
    assert p["scan.roi_label"] == "0"
    assert p["io.default_mask_file"] == "/data/scan 7/s_fold_slice_mask.mat"
    # fold_slice's sample pixel (initialize_ptycho.m:100) is ptyprep's (λ constants differ 4e-8)
    dx = 1.23984193e-9 / p["energy"] * p["z"] / (p["asize"] * PACKAGES["eiger_APS"][0])
    np.testing.assert_allclose(dx, g.sample_pixel_m, rtol=1e-7)


@pytest.mark.parametrize("psize, package", [(172e-6, "Pilatus300K_APS"), (55e-6, "medipix3"),
                                            (37.5e-6, "eiger_APS_temp"), (100e-6, "eiger_APS")])
def test_matlab_parameters_keep_the_sample_pixel_for_any_detector_pixel(psize, package):
    g = ScanGeometry.from_meta(dict(META, psize=np.array([psize, psize])))
    p, _ = parse_matlab(FS.matlab_parameters(g))
    assert p["detector.name"] == package
    ds = PACKAGES[package][0]
    # no package has 100 µm: eiger_APS (75 µm) with p.z scaled by 75/100
    assert p["z"] == pytest.approx(5.0 * ds / psize, rel=1e-15)
    dx = 1.23984193e-9 / p["energy"] * p["z"] / (p["asize"] * ds)
    np.testing.assert_allclose(dx, g.sample_pixel_m, rtol=1e-7)


def test_matlab_parameters_quote_a_folder_with_an_apostrophe():
    text = FS.matlab_parameters(ScanGeometry.from_meta(META), "/data/it's", "a.h5")
    assert "p.   base_path = '/data/it''s/';" in text
    assert parse_matlab(text)[0]["base_path"] == "/data/it's/"


def test_frames_are_written_in_a_floating_type_that_holds_every_value():
    assert FS.matlab_dtype(np.uint16) == np.float32 and FS.matlab_dtype(np.uint8) == np.float32
    assert FS.matlab_dtype(np.uint32) == np.float64 and FS.matlab_dtype(np.int64) == np.float64
    assert FS.matlab_dtype(np.float32) == np.float32 and FS.matlab_dtype(np.float64) == np.float64
    assert FS.matlab_dtype(np.float16) == np.float32


@pytest.mark.parametrize("change, said", [
    ({"propagation": "nearfield"}, "far-field scans only"),
    ({"shape": np.array([63, 63])}, "needs an even size"),
    ({"psize": np.array([75e-6, 172e-6])}, "one detector pixel size"),
])
def test_scans_fold_slice_cannot_load_are_refused(change, said):
    assert FS.fold_slice_error(META) is None
    error = FS.fold_slice_error(dict(META, **change))
    assert isinstance(error, RecipeError) and said in str(error)


def test_fold_slice_sees_the_frames_the_positions_made(tmp_path):
    """A simulated scan in ptyprep's (ptypy's) convention -- the probe of frame k on the object
    patch from pixel ``position / dx``, rows along y, the far field ``fft2`` -- is what fold_slice's
    forward model makes from the loaded export: ``object(positions(k,1) + (1:N), positions(k,2)
    + (1:N))`` times the probe, ``fft2`` (sim_electron_cbed.m:177-181, and
    +engines/+GPU_MS/+shared/find_reconstruction_ROI.m:75,91: dim 1 = positions(:,1))."""
    rng = np.random.default_rng(3)
    n, no = 16, 40
    g = ScanGeometry.from_meta(dict(META, shape=np.array([n, n]), center=np.array([8.0, 8.0])))
    dx = g.sample_pixel_m[0]
    obj = np.exp(1j * rng.uniform(0, 2, (no, no))) * rng.uniform(0.5, 1, (no, no))
    probe = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    pix = np.array([[3, 7], [3, 20], [11, 2], [20, 24], [5, 5], [24, 13]])     # (row, col)
    frames = np.stack([np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(
        probe * obj[r:r + n, c:c + n])))) ** 2 for r, c in pix])
    out = tmp_path / "sim_fold_slice.h5"
    f = FS.FoldSliceFile(out, dict(META, shape=np.array([n, n]), center=np.array([8.0, 8.0])),
                         len(pix))
    f.append(np.arange(len(pix)), frames, np.ones(frames.shape, bool), pix * dx)
    f.finish()
    with h5py.File(out, "r") as h5:
        loaded = fold_slice_load(h5["matlab_parameters"][()].decode())
    positions = loaded["positions"]
    np.testing.assert_allclose(positions, pix - pix.min(axis=0), rtol=0, atol=1e-5)
    rows, cols = np.round(positions).astype(int).T
    r0, c0 = pix.min(axis=0)                       # fold_slice's object starts at the minimum
    data = loaded["data"]
    for k in range(len(pix)):
        view = obj[r0 + rows[k]:r0 + rows[k] + n, c0 + cols[k]:c0 + cols[k] + n]
        model = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(probe * view)))) ** 2
        np.testing.assert_allclose(data[:, :, k], model, rtol=1e-10, atol=1e-8)
    # the test has teeth: without the package's transpose the patterns do not fit
    assert not np.allclose(data.transpose(1, 0, 2)[:, :, 0], frames[0])


# -- the file, from a real preparation ------------------------------------------------------------

def test_fold_slice_loads_the_prepared_scan(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ptyprep.exports.fold_slice"):
        ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "fold_slice")))
    scan = ptyprep.read_ptyd(tmp_path / "scan.ptyd")
    path = tmp_path / "scan_fold_slice.h5"
    got = read_export(path)
    text = got["matlab_parameters"]
    assert text.rstrip() in caplog.text            # logged as written

    loaded = fold_slice_load(text)
    # patterns: data(:, :, k) is ptyd frame k, rows along y; the same values in float64
    np.testing.assert_array_equal(loaded["data"].transpose(2, 0, 1), scan.data)
    assert scan.data.dtype == np.uint32 and got["dp.dtype"] == np.float64
    np.testing.assert_array_equal(got["dp"], scan.data)          # h5py: (N, H, W) as prepared
    # positions: object pixel (row, col) = ptyd (y, x) / dx, shifted to start at 0
    expected = (scan.positions - scan.positions.min(axis=0)) / loaded["dx_spec"]
    np.testing.assert_allclose(loaded["positions"], expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got["ppY"], scan.positions[:, 0])
    np.testing.assert_array_equal(got["ppX"], scan.positions[:, 1])
    # mask: fold_slice's fmask (1 = valid) is the pixels valid in every frame
    np.testing.assert_array_equal(loaded["fmask"], scan.weights.all(axis=0))
    assert not loaded["fmask"].all()
    # geometry
    meta = scan.meta
    p = loaded["p"]
    assert got["energy_keV"] == meta["energy"] == p["energy"] == 6.2
    assert got["distance_m"] == meta["distance"] == p["z"] == 7.0
    assert got["pixel_size_m"] == meta["psize"][1] == PACKAGES[p["detector.name"]][0] == 172e-6
    assert p["detector.name"] == "Pilatus300K_APS"
    np.testing.assert_array_equal(p["asize"], meta["shape"])
    np.testing.assert_array_equal(p["ctr"], np.asarray(meta["center"]) + 1)   # 1-based
    assert got["lambda"] == HC_KEV_M / meta["energy"]
    assert got["dx"] == HC_KEV_M / meta["energy"] * meta["distance"] / (128 * 172e-6)
    np.testing.assert_allclose(loaded["dx_spec"], got["dx"], rtol=1e-7)
    assert p["base_path"] == str(tmp_path.resolve()) + "/"
    with h5py.File(path, "r") as f:
        assert f["ppX"].attrs["units"] == "m" and f["energy_keV"].attrs["units"] == "keV"


def test_the_two_names_fold_slice_opens_link_to_the_file(tmp_path):
    ptyd = demo_ptyd(tmp_path)
    ptyprep.export(ptyd, "fold_slice")
    for name, needs in (("data_roi0_dp.hdf5", ["dp"]), ("data_roi0_para.hdf5", ["ppX", "ppY"])):
        link = tmp_path / name
        assert link.is_symlink() and os.readlink(link) == "scan_fold_slice.h5"   # relative
        assert link.resolve() == (tmp_path / "scan_fold_slice.h5").resolve()
        with h5py.File(link, "r") as f:
            assert all(isinstance(f[k], h5py.Dataset) for k in needs)
            assert len(f["ppX"]) == len(f["ppY"]) == f["dp"].shape[0] == 60


def test_ptychodus_fold_slice_plugin_reads_the_file(tmp_path):
    """ptychodus 1.7's fold_slice plugin (plugins/fold_slice/__init__.py: /dp through
    H5DiffractionFileReader, (N, H, W); position_file.py: /ppX as x, /ppY as y, /lambda, /dx)."""
    pytest.importorskip("ptychodus")
    from ptychodus.plugins.fold_slice.position_file import (FoldSlicePositionFileReader,
                                                            read_fold_slice_parameters)
    from ptychodus.plugins.h5_diffraction_file import H5DiffractionFileReader

    ptyd = demo_ptyd(tmp_path)
    ptyprep.export(ptyd, "fold_slice")
    scan = ptyprep.read_ptyd(ptyd)
    dataset = H5DiffractionFileReader(data_path="/dp").read(tmp_path / "data_roi0_dp.hdf5")
    patterns = np.concatenate([array.get_patterns() for array in dataset])
    np.testing.assert_array_equal(patterns, scan.data)
    points = list(FoldSlicePositionFileReader().read(tmp_path / "data_roi0_para.hdf5"))
    np.testing.assert_array_equal([pt.x_m for pt in points], scan.positions[:, 1])
    np.testing.assert_array_equal([pt.y_m for pt in points], scan.positions[:, 0])
    params = read_fold_slice_parameters(tmp_path / "data_roi0_para.hdf5")
    assert params.photon_wavelength_m == HC_KEV_M / scan.meta["energy"]
    assert params.object_pixel_size_m == ScanGeometry.from_meta(scan.meta).sample_pixel_m[1]


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_export_from_a_ptyd_equals_the_one_pass_run(tmp_path, save):
    ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "fold_slice"), save=save))
    one_pass = read_export(tmp_path / "scan_fold_slice.h5")
    result = ptyprep.export(tmp_path / "scan.ptyd", "fold_slice", overwrite=True)
    assert result == {"path": str(tmp_path / "scan_fold_slice.h5"), "frames": 60}
    assert_same_export(one_pass, read_export(tmp_path / "scan_fold_slice.h5"))


def test_fold_slice_under_mpi_is_the_serial_file(tmp_path, run_mpi):
    serial, parallel = serial_and_mpi(tmp_path, run_mpi, ("ptyd", "fold_slice"))
    want = read_export(serial / "scan_fold_slice.h5")
    folder = (str(serial.resolve()) + "/", str(parallel.resolve()) + "/")
    assert_same_export(want, read_export(parallel / "scan_fold_slice.h5"), replace=[folder])
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "export", "scan.ptyd", "--to", "fold_slice",
                       "--out", "exported/scan_fold_slice.h5"], cwd=parallel)
    assert proc.returncode == 0, proc.stderr
    exported = parallel / "exported"
    assert_same_export(want, read_export(exported / "scan_fold_slice.h5"),
                       replace=[(folder[0], str(exported.resolve()) + "/")])
    assert os.readlink(exported / "data_roi0_dp.hdf5") == "scan_fold_slice.h5"


def test_overwrite_keeps_the_previous_file_until_the_new_one_is_complete(tmp_path, monkeypatch):
    ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "fold_slice"), frames=60))
    path = tmp_path / "scan_fold_slice.h5"
    before = path.read_bytes()
    seen = {}
    write_end = FS.FoldSliceFile.write_end

    def watched(self, summary):
        write_end(self, summary)
        # everything is written but not committed: the previous file is still the output
        seen["previous"] = path.read_bytes() == before
        seen["tmp"] = self.tmp.is_file() and self.tmp.name != path.name
        with h5py.File(path, "r") as f:
            seen["frames"] = f["dp"].shape[0]
    monkeypatch.setattr(FS.FoldSliceFile, "write_end", watched)
    ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "fold_slice"), frames=40))
    assert seen == {"previous": True, "tmp": True, "frames": 60}
    with h5py.File(path, "r") as f:
        assert f["dp"].shape[0] == len(f["ppX"]) == 40
    assert not LF.incomplete_name(path).exists()


def test_a_failed_run_keeps_the_previous_file_and_links(tmp_path, monkeypatch):
    ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "fold_slice")))
    path = tmp_path / "scan_fold_slice.h5"
    before = path.read_bytes()
    names = sorted(p.name for p in tmp_path.iterdir())
    written = []

    def fail(self, start, data, valid, positions, indices):
        if start:                                   # the second chunk of 20 frames
            raise OSError(28, "No space left on device")
        write_frames(self, start, data, valid, positions, indices)
        written.append(len(data))
    write_frames = FS.FoldSliceFile.write_frames
    monkeypatch.setattr(FS.FoldSliceFile, "write_frames", fail)
    with pytest.raises(WriteFault, match="No space left on device"):
        ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "fold_slice")))
    assert written == [20]                          # it failed part way
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names       # no hidden leftovers
    assert os.readlink(tmp_path / "data_roi0_para.hdf5") == "scan_fold_slice.h5"


def test_a_real_file_at_a_link_name_is_never_replaced(tmp_path):
    ptyd = demo_ptyd(tmp_path)
    real = tmp_path / "data_roi0_dp.hdf5"
    real.write_bytes(b"someone's fold_slice data")
    with pytest.raises(OutputError, match="data_roi0_dp.hdf5' exists and is not a link"):
        ptyprep.export(ptyd, "fold_slice")
    assert real.read_bytes() == b"someone's fold_slice data"
    assert not (tmp_path / "scan_fold_slice.h5").exists()


def test_a_link_to_another_scan_is_replaced_with_a_warning(tmp_path, caplog):
    ptyd = demo_ptyd(tmp_path)
    (tmp_path / "data_roi0_para.hdf5").symlink_to("other_fold_slice.h5")
    with caplog.at_level(logging.WARNING, logger="ptyprep.exports.fold_slice"):
        ptyprep.export(ptyd, "fold_slice")
    assert "data_roi0_para.hdf5 linked to other_fold_slice.h5" in caplog.text
    assert os.readlink(tmp_path / "data_roi0_para.hdf5") == "scan_fold_slice.h5"


def test_an_odd_frame_size_is_refused_before_the_file_is_written(tmp_path):
    demo_recipe(tmp_path)                        # writes scan.toml
    recipe = ptyprep.load_recipe(tmp_path / "scan.toml", overrides={
        "source.num_frames": 20, "output.dfile": "scan.ptyd", "prep.shape": 127,
        "output.format": ["ptyd", "fold_slice"]})
    with pytest.raises(RecipeError, match="127×127 pixels but fold_slice crops its mask"):
        ptyprep.run(recipe)
    assert not (tmp_path / "scan_fold_slice.h5").exists()
    assert not (tmp_path / "data_roi0_dp.hdf5").is_symlink()
