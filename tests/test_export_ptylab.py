"""The ``ptylab`` export, proven with PtyLab's own reader and engine (PtyLab 0.3.7).

PtyLab's ``ExperimentalData(file, "CPM")`` reads the file; the arrays it holds are compared
exactly with the ``.ptyd`` they came from.  A short mPIE reconstruction from the export of a
simulated scan proves the positions' convention: with the encoder as written it fits the data
far better than with its axes swapped or one axis negated.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import matplotlib
import numpy as np
import pytest
from export_helpers import demo_ptyd, demo_recipe

import ptyprep
from ptyprep.demo import DEMO_RECIPE
from ptyprep.errors import RecipeError
from ptyprep import export
from ptyprep.exports import ptylab as P
from ptyprep.exports.geometry import HC_KEV_M
from ptyprep.exports.guesses import initial_probe, mean_pattern

matplotlib.use("Agg")                     # PtyLab imports pyplot; no window, ever
try:
    from PtyLab import Engines, ExperimentalData, Params, Reconstruction
    from PtyLab.Monitor.Monitor import DummyMonitor
except ImportError as exc:                 # pragma: no cover - depends on the environment
    pytest.skip(f"PtyLab is not importable ({exc}); `pip install -e .[interop]` installs "
                "PtyLab 0.3.7", allow_module_level=True)

TESTS = Path(__file__).resolve().parent


def read_all(path):
    """``{name: array}`` of every dataset of an HDF5 file (groups flattened)."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_files(a, b):
    arrays_a, arrays_b = read_all(a), read_all(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name, value in arrays_a.items():
        other = arrays_b[name]
        assert np.asarray(value).dtype == np.asarray(other).dtype, name
        assert np.array_equal(value, other), name


def expected_encoder(positions):
    """The documented transform: ptyprep's (y, x) minus the middle of the scan's extent."""
    return positions - (positions.min(axis=0) + positions.max(axis=0)) / 2


# -- PtyLab reads what the .ptyd holds ------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo scan (128², module gap, dead and hot pixels) and its ptylab export."""
    folder = tmp_path_factory.mktemp("ptylab_demo")
    ptyd = demo_ptyd(folder, save="link", frames=60)
    out = export(ptyd, "ptylab")["path"]
    return ptyprep.read_ptyd(ptyd), Path(out)


def test_ptylab_reads_the_frames_with_invalid_pixels_zeroed(demo):
    scan, path = demo
    assert path.name == "scan_ptylab.hdf5"
    data = ExperimentalData(path, "CPM")
    expected = np.where(scan.weights, scan.data, 0)
    assert (~scan.weights).any()               # module gap, dead and hot pixels
    assert data.ptychogram.dtype == scan.data.dtype
    assert np.array_equal(data.ptychogram, expected)
    assert data.numFrames == 60 and data.Nd == 128
    with h5py.File(path, "r") as f:
        frames = f["ptychogram"]
        assert frames.compression == "gzip" and frames.maxshape == (None, 128, 128)
        assert f["orientation"][()] == 0 and f["Nd"][()] == 128
        assert np.array_equal(f["ptyprep/indices"][()], scan.indices)
        assert np.array_equal(f["ptyprep/center"][()], scan.meta["center"])


def test_invalid_pixels_that_carry_counts_are_written_as_zero(tmp_path):
    # a .ptyd already holds 0 at its invalid pixels: give the writer frames that do not
    rng = np.random.default_rng(3)
    meta = {"shape": np.array([16, 16]), "center": np.array([8.0, 8.0]),
            "psize": np.array([75e-6, 75e-6]), "energy": 8.0, "distance": 5.0}
    data = rng.integers(1, 1000, size=(6, 16, 16)).astype(np.float32)
    valid = rng.random((6, 16, 16)) > 0.1
    positions = rng.random((6, 2)) * 1e-6
    out = P.PtylabFile(tmp_path / "x_ptylab.hdf5", meta, 6)
    out.append(np.arange(4), data[:4], valid[:4], positions[:4])
    out.append(np.arange(4, 6), data[4:], valid[4:], positions[4:])
    out.finish()
    read = ExperimentalData(tmp_path / "x_ptylab.hdf5", "CPM")
    assert read.ptychogram.dtype == np.float32
    assert np.array_equal(read.ptychogram, np.where(valid, data, 0))
    assert np.array_equal(read.encoder, expected_encoder(positions))
    with h5py.File(tmp_path / "x_ptylab.hdf5", "r") as f:
        assert np.array_equal(f["W"][()], valid.all(axis=0).astype(np.float32))


def test_ptylab_reads_the_encoder_as_the_documented_transform_of_the_positions(demo):
    scan, path = demo
    data = ExperimentalData(path, "CPM")
    assert data.encoder.shape == (60, 2)
    assert np.array_equal(data.encoder, expected_encoder(scan.positions))
    # centred: the scan's extent is symmetric about 0, column 0 is y (it varies slowest)
    assert np.array_equal(data.encoder.min(axis=0), -data.encoder.max(axis=0))
    assert data.encoder[1, 0] == data.encoder[0, 0] and data.encoder[1, 1] > data.encoder[0, 1]
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["encoder"][()] + f["ptyprep/encoder_origin"][()],
                              scan.positions)


def test_ptylab_reads_the_geometry_from_the_ptyd_meta(demo):
    scan, path = demo
    meta = scan.meta
    data = ExperimentalData(path, "CPM")
    assert data.wavelength == HC_KEV_M / float(meta["energy"])
    assert data.zo == float(meta["distance"])
    assert data.dxd == float(meta["psize"][0]) == float(meta["psize"][1])
    assert data.Nd == int(meta["shape"][0]) == int(meta["shape"][1])
    assert data.spectralDensity is None and data.theta is None and data.emptyBeam is None
    recon = Reconstruction(data, Params())
    # PtyLab's sample pixel is ptyprep's: λ zo / (Nd dxd)
    assert recon.dxp == pytest.approx(HC_KEV_M / meta["energy"] * meta["distance"]
                                      / (128 * meta["psize"][0]), rel=1e-12)


def test_the_entrance_pupil_is_ptylabs_beam_size_of_the_probe_guess(demo):
    scan, path = demo
    data = ExperimentalData(path, "CPM")
    valid_count = scan.weights.sum(axis=0)
    total = np.where(scan.weights, scan.data, 0).sum(axis=0, dtype=np.float64)
    probe = initial_probe(mean_pattern(total, valid_count), tuple(scan.meta["center"]))
    dxp = HC_KEV_M / scan.meta["energy"] * scan.meta["distance"] / (128 * scan.meta["psize"][0])
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    yy, xx = np.indices(intensity.shape) - 64
    rms = np.sqrt(((yy ** 2 + xx ** 2) * intensity).sum() / intensity.sum())
    assert data.entrancePupilDiameter == pytest.approx(2.355 * rms * dxp, rel=1e-5)
    # a real size: several sample pixels, well inside the probe window
    assert 4 * dxp < data.entrancePupilDiameter < 128 * dxp / 2


def test_W_marks_the_pixels_invalid_in_any_frame(demo):
    scan, path = demo
    with h5py.File(path, "r") as f:
        weight = f["W"][()]
    assert weight.dtype == np.float32 and weight.shape == (128, 128)
    assert np.array_equal(weight, np.where(scan.weights.all(axis=0), 1.0, 0.0))
    assert 0 < (weight == 0).sum() < weight.size / 10       # module gap, dead and hot pixels


# -- one pass and export() agree, serially and under MPI ------------------------------------------

@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_one_pass_and_export_from_the_ptyd_are_identical(tmp_path, save):
    ptyprep.run(demo_recipe(tmp_path, formats=("ptyd", "ptylab"), save=save))
    again = export(tmp_path / "scan.ptyd", "ptylab", out=tmp_path / "again_ptylab.hdf5")
    assert again["frames"] == 60
    assert_same_files(tmp_path / "scan_ptylab.hdf5", tmp_path / "again_ptylab.hdf5")
    scan = ptyprep.read_ptyd(tmp_path / "scan.ptyd")
    data = ExperimentalData(tmp_path / "scan_ptylab.hdf5", "CPM")
    assert np.array_equal(data.ptychogram, np.where(scan.weights, scan.data, 0))
    assert np.array_equal(data.encoder, expected_encoder(scan.positions))


MPI_SCRIPT = """\
import sys
from pathlib import Path

import ptyprep
from ptyprep import export

folder = Path(sys.argv[1])
for save in ("append", "link", "merge"):
    sub = folder / save
    recipe = ptyprep.load_recipe(folder / "scan.toml", overrides={{
        "source.num_frames": 60, "output.save": save, "output.dfile": str(sub / "scan.ptyd"),
        "output.chunk_frames": 20, "output.format": ["ptyd", "ptylab"]}})
    ptyprep.run(recipe)
    export(sub / "scan.ptyd", "ptylab", out=sub / "again_ptylab.hdf5")
"""


@pytest.mark.mpi
def test_under_mpi_the_same_arrays_as_serially(run_mpi, tmp_path):
    serial = tmp_path / "serial"
    serial.mkdir()
    ptyprep.run(demo_recipe(serial, formats=("ptyd", "ptylab"), save="link"))
    folder = tmp_path / "mpi"
    folder.mkdir()
    (folder / "scan.toml").write_text(DEMO_RECIPE.format(recipe=folder / "scan.toml"))
    for save in ("append", "link", "merge"):
        (folder / save).mkdir()
    (folder / "run.py").write_text(MPI_SCRIPT.format())
    proc = run_mpi(2, [folder / "run.py", folder], cwd=folder, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for save in ("append", "link", "merge"):
        assert_same_files(serial / "scan_ptylab.hdf5", folder / save / "scan_ptylab.hdf5")
        assert_same_files(serial / "scan_ptylab.hdf5", folder / save / "again_ptylab.hdf5")


# -- what PtyLab cannot hold ---------------------------------------------------------------------

def _plan_of(shape, psize=(75e-6, 75e-6)):
    meta = {"shape": np.array(shape), "psize": np.array(psize), "center": np.array([0, 0])}
    return SimpleNamespace(shape=tuple(shape), output_meta=lambda: meta)


def test_check_plan_refuses_non_square_frames_in_one_sentence_naming_prep_shape(tmp_path):
    from ptyprep.ptycho.plan import make_plan
    from ptyprep.sources.registry import open_source

    demo_recipe(tmp_path)                                           # writes scan.toml
    recipe = ptyprep.load_recipe(tmp_path / "scan.toml", overrides={
        "prep.shape": "[128, 96]", "output.format": "ptylab", "output.dfile": "scan.ptyd"})
    with open_source(recipe) as source:
        plan = make_plan(recipe, source, require_square=False)      # a real 128×96 plan
    fmt = P.PtylabFormat(recipe)
    with pytest.raises(RecipeError) as info:
        fmt.check_plan(plan)
    message = str(info.value)
    assert message == ("the prepared frames are 128×96 pixels but PtyLab needs square frames "
                       "(one Nd); set prep.shape to one integer, e.g. prep.shape = 96")
    fmt.check_plan(_plan_of((64, 64)))                              # square: accepted
    with pytest.raises(RecipeError, match=r"^the prepared detector pixel is 7\.5e-05 × 0\.00015 m "
                       r"\(y × x\) but PtyLab holds one pixel size \(dxd\); the ptylab export "
                       r"needs square pixels$"):
        fmt.check_plan(_plan_of((64, 64), (75e-6, 150e-6)))


def test_a_non_square_ptylab_run_is_refused_in_one_line_before_anything_is_written(cli,
                                                                                 tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(DEMO_RECIPE.format(recipe=recipe).replace("shape = 128", "shape = [128, 96]")
                      .replace('dfile = "demo.ptyd"', 'dfile = "scan.ptyd"\nformat = ["ptylab"]'))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = cli("-q", "run", recipe, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ptyprep: error: ") and "prep.shape" in lines[0]
    assert "not square" in lines[0] or "square frames" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written


# -- a reconstruction proves the positions' convention -------------------------------------------

#: A simulated far-field scan for a short reconstruction: 64² frames, 100 positions on a
#: raster of 6 object pixels (the probe is a 16-pixel disc: ~60 % linear overlap), with a
#: module gap, dead pixels and hot pixels (masked by the saturation).
RECON_RECIPE = {
    "source": {"name": "simulate", "num_frames": 100, "frame_shape": [80, 84],
               "pattern_size": 64, "beam_center": [40, 42], "step_px": 6.0,
               "gap_cols": [60, 62], "photons": 1e6},
    "prep": {"shape": 64, "center": "source", "saturation": 1e6},
    "output": {"dfile": "scan.ptyd", "format": ["ptyd", "ptylab"], "chunk_frames": 50},
}


def mpie_error(path, change=None, iterations=20, seed=0):
    """PtyLab's own final error (``reconstruction.error``, the summed relative misfit of the
    measured intensities) after ``iterations`` of mPIE from PtyLab's default start (a ``circ``
    probe of ``entrancePupilDiameter``, an object of ones); ``change(data)`` edits the loaded
    data first."""
    np.random.seed(seed)                      # PtyLab's position order, momentum, start noise
    data = ExperimentalData(path, "CPM")
    if change is not None:
        change(data)
    params = Params()
    params.gpuSwitch = False
    reconstruction = Reconstruction(data, params)
    reconstruction.initializeObjectProbe()
    engine = Engines.mPIE(reconstruction, data, params, DummyMonitor())
    engine.numIterations = iterations
    engine.reconstruct()
    return float(np.asarray(reconstruction.error)[-1])


def swap_axes(data):
    data.encoder = np.ascontiguousarray(data.encoder[:, ::-1])


def negate_y(data):
    data.encoder = data.encoder * np.array([-1.0, 1.0])


def negate_x(data):
    data.encoder = data.encoder * np.array([1.0, -1.0])


def transpose_frames_and_swap_axes(data):
    data.ptychogram = np.ascontiguousarray(np.transpose(data.ptychogram, (0, 2, 1)))
    swap_axes(data)


@pytest.mark.slow
def test_mpie_fits_the_data_only_with_the_written_encoder_convention(tmp_path, capsys):
    ptyprep.run(ptyprep.load_recipe(RECON_RECIPE, base_dir=tmp_path))
    path = tmp_path / "scan_ptylab.hdf5"
    errors = {name: mpie_error(path, change) for name, change in [
        ("as written", None), ("axes swapped", swap_axes), ("y negated", negate_y),
        ("x negated", negate_x), ("frames transposed, axes swapped",
                                  transpose_frames_and_swap_axes)]}
    with capsys.disabled():
        print("\nPtyLab mPIE, 20 iterations, final error: " + ", ".join(
            f"{name} {value:.3f}" for name, value in errors.items()))
    correct = errors["as written"]
    for wrong in ("axes swapped", "y negated", "x negated"):
        assert correct < 0.5 * errors[wrong], errors
    # a swap is wrong because of the frames' orientation: transposing them as well makes the
    # scan consistent again (the probe is symmetric), and the fit as good as the one written
    assert errors["frames transposed, axes swapped"] == pytest.approx(correct, rel=0.1), errors


def test_pure_helpers():
    enc, origin = P.encoder(np.array([[1.0, 5.0], [3.0, 9.0], [2.0, 6.0]]))
    assert np.array_equal(origin, [2.0, 7.0])
    assert np.array_equal(enc, [[-1.0, -2.0], [1.0, 2.0], [0.0, -1.0]])
    frames = P.ptychogram(np.array([[[5, 7]]], np.uint32), np.array([[[True, False]]]))
    assert frames.dtype == np.uint32 and frames.tolist() == [[[5, 0]]]
    assert P.valid_weight(np.array([[True, False]])).tolist() == [[0.0, 1.0]]
    # a uniform disc of radius R: rms radius R/√2; clipped to [4 px, window]
    yy, xx = np.indices((64, 64)) - 32
    disc = (np.hypot(yy, xx) < 10).astype(complex)
    rms = np.sqrt((yy ** 2 + xx ** 2)[np.abs(disc) > 0].mean())
    assert P.entrance_pupil_diameter(disc, 2.0) == pytest.approx(2.355 * rms * 2.0)
    assert P.entrance_pupil_diameter(np.zeros((8, 8)), 1.0) == 8.0
    point = np.zeros((8, 8), complex)
    point[4, 4] = 1
    assert P.entrance_pupil_diameter(point, 1.0) == 4.0


if __name__ == "__main__":                    # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
