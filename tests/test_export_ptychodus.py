"""The ``ptychodus`` export (and the ``cxi`` one) read back by ptychodus 1.7's own readers.

Every comparison is with the ``.ptyd`` the files came from: ptychodus's
``load_diffraction_data`` and ``load_product`` on ``<stem>_ptychodus/``, its CXI readers on
``<stem>.cxi``.  Skipped when ptychodus is not importable (``pip install ptychodus
--no-deps`` plus pydantic; see the README).
"""

import errno
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from export_helpers import demo_ptyd, demo_recipe

import ptyprep
from ptyprep.errors import OutputError, WriteFault
from ptyprep import export
from ptyprep.exports import ptychodus as PT
from ptyprep.exports.geometry import ScanGeometry

pio = pytest.importorskip("ptychodus.api.io", reason="ptychodus is not installed (its readers "
                          "check the export): pip install ptychodus --no-deps pydantic")
from ptychodus.api.assemble import AssembledDiffractionData  # noqa: E402
from ptychodus.api.probe import ProbeGeometry, resample_probe_sequence  # noqa: E402
from ptychodus.api.propagate import compute_product_geometry  # noqa: E402

FRAMES = 60


def rel(expected, tolerance):
    """``pytest.approx`` relative only: its default absolute 1e-12 would swamp the relative
    tolerance of quantities of 1e-7 m and less (pixel sizes, positions)."""
    return pytest.approx(expected, rel=tolerance, abs=0)


def load(folder):
    """ptychodus's own reading of an export folder: (AssembledDiffractionData, Product)."""
    return (pio.load_diffraction_data(Path(folder) / "diffraction.h5"),
            pio.load_product(Path(folder) / "product.h5"))


def contents(folder):
    """``{(file, dataset or "/", attribute or ""): value}`` of both files, with h5py."""
    out = {}
    for name in ("diffraction.h5", "product.h5"):
        with h5py.File(Path(folder) / name, "r") as f:
            for key, value in f.attrs.items():
                out[name, "/", key] = value

            def visit(path, obj, name=name):
                if isinstance(obj, h5py.Dataset):
                    out[name, path, ""] = obj[()]
                    for key, value in obj.attrs.items():
                        out[name, path, key] = value
            f.visititems(visit)
    return out


def layout(folder):
    """``{(file, dataset or "/", attribute or ""): (type, dtype, shape)}`` of both files."""
    return {key: (type(v).__name__ if not isinstance(v, (np.ndarray, np.generic)) else "array",
                  str(np.asarray(v).dtype) if not isinstance(v, str) else "str",
                  np.shape(v))
            for key, v in contents(folder).items()}


def assert_same_contents(a, b, skip=()):
    ca, cb = contents(a), contents(b)
    assert sorted(ca) == sorted(cb)
    for key in ca:
        if key[2] in skip:
            continue
        va, vb = ca[key], cb[key]
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype, key
        np.testing.assert_array_equal(va, vb, err_msg=str(key))


def ptychodus_pixel(data, product):
    """The probe/object pixel ptychodus derives from the diffraction data and the metadata
    (what it resamples a probe to, and warns of an object differing from, beyond 1e-9)."""
    m = product.metadata
    return compute_product_geometry(
        photon_energy_eV=m.photon_energy_eV, probe_photon_count=m.probe_photon_count,
        exposure_time_s=m.exposure_time_s, detector_distance_m=m.detector_distance_m,
        focus_object_distance_m=m.focus_object_distance_m, far_field=m.far_field,
        detector_extent=data.get_image_extent(),
        detector_pixel_geometry=data.get_pixel_geometry()).object_plane_pixel_geometry


def assert_object_covers_every_probe(product):
    """Every probe footprint, placed as ptychodus places it, lies inside the object array."""
    geometry = product.object_.get_geometry()
    probe_geometry = product.probes.get_geometry()
    xs = geometry.map_probe_positions_to_object_x_px(product.probe_positions)
    ys = geometry.map_probe_positions_to_object_y_px(product.probe_positions)
    height, width = product.object_.get_array().shape[-2:]
    for x, y in zip(xs, ys):
        bounds = probe_geometry.resolve_patch_bounds(x, y)
        assert 0 <= bounds.x_slice.start and bounds.x_slice.stop <= width, (x, width)
        assert 0 <= bounds.y_slice.start and bounds.y_slice.stop <= height, (y, height)


def mean_pattern(scan):
    """Mean of each pixel over the frames where it is valid (0 where never)."""
    count = scan.weights.sum(axis=0)
    return np.where(scan.weights, scan.data, 0).sum(axis=0) / np.maximum(count, 1)


def one_pass(folder, formats=("ptyd", "ptychodus"), save="link", frames=FRAMES):
    folder.mkdir(exist_ok=True)
    ptyprep.run(demo_recipe(folder, formats=formats, save=save, frames=frames))
    return folder / "scan.ptyd"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """One run writing scan.ptyd, scan_ptychodus/ and scan.cxi; and the .ptyd read back."""
    folder = tmp_path_factory.mktemp("ptychodus")
    ptyd = one_pass(folder, formats=("ptyd", "ptychodus", "cxi"))
    return folder, ptyprep.read_ptyd(ptyd)


# -- ptychodus's own files ----------------------------------------------------------------------

def test_load_diffraction_data_gives_the_ptyd_frames_mask_and_indices(scan):
    folder, ptyd = scan
    data, _ = load(folder / "scan_ptychodus")
    patterns = data.get_patterns()
    assert patterns.dtype == ptyd.data.dtype and patterns.shape == (FRAMES, 128, 128)
    np.testing.assert_array_equal(patterns, ptyd.data)
    union = np.any(~ptyd.weights, axis=0)
    assert union.any() and not union.all()
    np.testing.assert_array_equal(data.get_bad_pixels(), union)       # True = bad
    assert data.get_bad_pixels().dtype == bool
    np.testing.assert_array_equal(data.get_indexes(), ptyd.indices)
    pixel = data.get_pixel_geometry()
    assert (pixel.width_m, pixel.height_m) == (ptyd.meta["psize"][1], ptyd.meta["psize"][0])
    assert not data.has_measured_probe_photon_counts()


def test_load_product_gives_the_ptyd_positions_and_geometry(scan):
    folder, ptyd = scan
    data, product = load(folder / "scan_ptychodus")
    positions = product.probe_positions
    np.testing.assert_array_equal(positions.get_indexes(), ptyd.indices)
    np.testing.assert_array_equal(positions.get_coordinates_x_m(), ptyd.positions[:, 1])
    np.testing.assert_array_equal(positions.get_coordinates_y_m(), ptyd.positions[:, 0])
    m = product.metadata
    assert m.photon_energy_eV == rel(ptyd.meta["energy"] * 1e3, 1e-9)
    assert m.detector_distance_m == ptyd.meta["distance"]
    assert m.far_field is True and m.focus_object_distance_m == 0.0
    assert m.probe_photon_count == 0.0        # ptychodus estimates it from the patterns
    assert m.name == ptyd.meta["label"] == "simulated-ptycho"
    # the probe: (coherent, incoherent, H, W) on λz/(N psize)
    probe = product.probes.get_array()
    assert probe.shape == (1, 1, 128, 128) and probe.dtype == np.complex64
    geometry = ScanGeometry.from_meta(ptyd.meta)
    pixel = product.probes.get_pixel_geometry()
    (wy, wx) = geometry.sample_pixel_m
    assert pixel.width_m == rel(wx, 1e-8)
    assert pixel.height_m == rel(wy, 1e-8)
    # ... to ptychodus's own precision: it keeps the probe as it is and the object agrees
    own = ptychodus_pixel(data, product)
    assert pixel.width_m == rel(own.width_m, 1e-13)
    assert pixel.height_m == rel(own.height_m, 1e-13)
    target = ProbeGeometry(128, 128, own.width_m, own.height_m)
    assert resample_probe_sequence(product.probes, target) is product.probes
    # the far-field probe guess: its far field is the mean pattern
    np.testing.assert_allclose(np.abs(np.fft.fft2(np.fft.ifftshift(probe[0, 0]),
                                                  norm="ortho")) ** 2,
                               np.roll(mean_pattern(ptyd), (-64, -64), axis=(0, 1)),
                               rtol=1e-3, atol=1e-3)
    # the object: (layers, Ho, Wo) of ones on the same pixel, centred on the scan
    obj = product.object_
    assert obj.get_array().ndim == 3 and obj.num_layers == 1 and len(obj.layer_spacing_m) == 0
    assert obj.get_array().dtype == np.complex64 and np.all(obj.get_array() == 1)
    assert obj.get_pixel_geometry() == pixel
    center = obj.get_center()
    low, high = ptyd.positions.min(axis=0), ptyd.positions.max(axis=0)
    assert center.x_m == rel((low[1] + high[1]) / 2, 1e-12)
    assert center.y_m == rel((low[0] + high[0]) / 2, 1e-12)
    assert_object_covers_every_probe(product)
    assert list(product.losses) == []


def test_the_provenance_round_trips_in_comments(scan):
    folder, ptyd = scan
    _, product = load(folder / "scan_ptychodus")
    with h5py.File(folder / "scan_ptychodus" / "product.h5", "r") as f:
        written = f.attrs["comments"]
    comments = product.metadata.comments
    assert comments == written
    first, second = comments.split("\n")
    assert first == f"Prepared by ptyprep {ptyprep.__version__} from simulate."
    record = json.loads(second.removeprefix("ptyprep provenance: "))
    assert record["ptyprep_version"] == ptyprep.__version__
    assert record["recipe"] == json.loads(ptyd.info["recipe"])
    assert record["source"] == json.loads(ptyd.info["source"])


def test_the_files_have_the_layout_ptychodus_itself_saves(scan, tmp_path):
    """ptychodus's save_diffraction_data and save_product, given what its readers loaded,
    write the same datasets and attributes with the same types and shapes."""
    folder, _ = scan
    data, product = load(folder / "scan_ptychodus")
    pio.save_diffraction_data(tmp_path / "diffraction.h5", AssembledDiffractionData(
        data.get_indexes(), data.get_patterns(), data.get_pixel_geometry(),
        data.get_bad_pixels()))
    pio.save_product(tmp_path / "product.h5", product)
    assert layout(folder / "scan_ptychodus") == layout(tmp_path)
    # and the values it writes back are ours (its reader lost nothing)
    assert_same_contents(folder / "scan_ptychodus", tmp_path)


# -- the cxi export through ptychodus's CXI readers --------------------------------------------

def test_ptychodus_cxi_readers_give_the_ptyd(scan):
    from ptychodus.plugins.cxi_file import CXIDiffractionFileReader, CXIProductFileIO

    folder, ptyd = scan
    dataset = CXIDiffractionFileReader().read(folder / "scan.cxi")
    (array,) = list(dataset)
    np.testing.assert_array_equal(array.get_patterns(), ptyd.data)
    np.testing.assert_array_equal(array.get_indexes(), ptyd.indices)
    np.testing.assert_array_equal(dataset.get_bad_pixels(), np.any(~ptyd.weights, axis=0))
    meta = dataset.get_metadata()
    assert meta.detector_pixel_geometry.width_m == ptyd.meta["psize"][1]
    assert meta.detector_pixel_geometry.height_m == ptyd.meta["psize"][0]
    assert meta.detector_distance_m == ptyd.meta["distance"]
    assert meta.photon_energy_eV == rel(ptyd.meta["energy"] * 1e3, 1e-9)
    product = CXIProductFileIO().read(folder / "scan.cxi")
    positions = product.probe_positions
    np.testing.assert_array_equal(positions.get_indexes(), ptyd.indices)
    np.testing.assert_array_equal(positions.get_coordinates_x_m(), ptyd.positions[:, 1])
    np.testing.assert_array_equal(positions.get_coordinates_y_m(), ptyd.positions[:, 0])
    assert product.metadata.photon_energy_eV == rel(ptyd.meta["energy"] * 1e3, 1e-9)
    assert product.metadata.detector_distance_m == ptyd.meta["distance"]
    wy, wx = ScanGeometry.from_meta(ptyd.meta).sample_pixel_m
    for pixel in (product.probes.get_pixel_geometry(), product.object_.get_pixel_geometry()):
        assert pixel.width_m == rel(wx, 1e-8)
        assert pixel.height_m == rel(wy, 1e-8)
    assert product.probes.get_array().shape[-2:] == (128, 128)
    assert_object_covers_every_probe(product)


def test_ptychodus_keeps_the_cxi_probe_as_it_is(scan):
    """The CXI probe's pixel is ptychodus's own λz/(N psize) to its 1e-9 (no resampling)."""
    from ptychodus.plugins.cxi_file import CXIProductFileIO

    folder, _ = scan
    data, _ = load(folder / "scan_ptychodus")
    product = CXIProductFileIO().read(folder / "scan.cxi")
    own = ptychodus_pixel(data, product)
    target = ProbeGeometry(128, 128, own.width_m, own.height_m)
    assert resample_probe_sequence(product.probes, target) is product.probes


# -- the same arrays however they are written ---------------------------------------------------

@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_one_pass_and_export_from_the_ptyd_write_the_same_arrays(tmp_path, save):
    ptyd = one_pass(tmp_path, save=save)
    result = export(ptyd, "ptychodus", out=tmp_path / "again_ptychodus")
    assert result == {"path": str(tmp_path / "again_ptychodus"), "frames": FRAMES}
    assert_same_contents(tmp_path / "scan_ptychodus", tmp_path / "again_ptychodus",
                         skip=("comments",))
    _, product = load(tmp_path / "again_ptychodus")
    assert product.metadata.comments.startswith(
        f"Prepared by ptyprep {ptyprep.__version__} from {ptyd}.\n")
    scan = ptyprep.read_ptyd(ptyd)
    data, _ = load(tmp_path / "again_ptychodus")
    np.testing.assert_array_equal(data.get_patterns(), scan.data)
    # the default output sits beside the .ptyd
    assert export(ptyd, "ptychodus", overwrite=True)["path"] == str(tmp_path / "scan_ptychodus")


@pytest.mark.mpi
def test_under_mpiexec_the_same_arrays(run_mpi, tmp_path):
    serial = tmp_path / "serial"
    one_pass(serial)
    parallel = tmp_path / "parallel"
    parallel.mkdir()
    demo_recipe(parallel)                                          # writes parallel/scan.toml
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "run", "scan.toml",
                       "--set", f"source.num_frames={FRAMES}", "--set", "output.dfile='scan.ptyd'",
                       "--set", "output.chunk_frames=20",
                       "--set", 'output.format=["ptyd", "ptychodus"]'], cwd=parallel)
    assert proc.returncode == 0, proc.stderr
    assert_same_contents(serial / "scan_ptychodus", parallel / "scan_ptychodus")
    proc = run_mpi(2, ["-m", "ptyprep", "-q", "export", "scan.ptyd", "--to", "ptychodus",
                       "--out", "exported_ptychodus"], cwd=parallel)
    assert proc.returncode == 0, proc.stderr
    assert_same_contents(serial / "scan_ptychodus", parallel / "exported_ptychodus",
                         skip=("comments",))


# -- replacing an output ------------------------------------------------------------------------

def test_a_failed_overwrite_keeps_the_old_folder_and_leaves_no_temporary(tmp_path, monkeypatch):
    ptyd = one_pass(tmp_path)
    target = tmp_path / "scan_ptychodus"
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    assert sorted(before) == ["diffraction.h5", "product.h5"]
    listing = sorted(p.name for p in tmp_path.iterdir())

    def full_disk(self, summary):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(PT.PtychodusFile, "_write_product", full_disk)
    with pytest.raises(WriteFault, match=r"No space left on device.*a previous output is left"):
        export(ptyd, "ptychodus", overwrite=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing      # no hidden folder left
    monkeypatch.undo()
    # a complete run then replaces it (the export's provenance names the .ptyd)
    export(ptyd, "ptychodus", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert sorted(p.name for p in target.iterdir()) == ["diffraction.h5", "product.h5"]
    assert load(target)[1].metadata.comments != load_comments(before)


def load_comments(files):
    import io

    with h5py.File(io.BytesIO(files["product.h5"]), "r") as f:
        return f.attrs["comments"]


def test_an_existing_folder_is_refused_without_overwrite(tmp_path):
    ptyd = one_pass(tmp_path)
    with pytest.raises(OutputError, match="scan_ptychodus' exists; pass --overwrite"):
        export(ptyd, "ptychodus")


def test_the_cli_exports_a_ptyd(tmp_path):
    ptyd = demo_ptyd(tmp_path, save="append", frames=FRAMES)
    proc = subprocess.run([sys.executable, "-m", "ptyprep", "export", str(ptyd), "--to",
                           "ptychodus"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {tmp_path / 'scan_ptychodus'} ({FRAMES} frames)"
    data, product = load(tmp_path / "scan_ptychodus")
    scan = ptyprep.read_ptyd(ptyd)
    np.testing.assert_array_equal(data.get_patterns(), scan.data)
    np.testing.assert_array_equal(product.probe_positions.get_coordinates_x_m(),
                                  scan.positions[:, 1])


# -- near field ---------------------------------------------------------------------------------

def nearfield_recipe(folder, formats=("ptyd", "ptychodus")):
    # psize 75 µm, 5 m, focus 5 cm before the sample: M = 101 (as tests/test_nearfield.py)
    return ptyprep.load_recipe({
        "source": {"name": "simulate", "num_frames": 7, "kind": "index", "psize_m": 75e-6,
                   "distance_m": 5.0},
        "prep": {"shape": 64, "propagation": "nearfield", "focus_to_sample_m": 0.05},
        "output": {"dfile": "scan.ptyd", "chunk_frames": 3, "format": list(formats)}},
        base_dir=folder)


def test_a_nearfield_scan_is_not_far_field_and_samples_at_the_detector_pixel(tmp_path):
    ptyprep.run(nearfield_recipe(tmp_path))
    scan = ptyprep.read_ptyd(tmp_path / "scan.ptyd")
    data, product = load(tmp_path / "scan_ptychodus")
    assert product.metadata.far_field is False
    assert product.metadata.detector_distance_m == scan.meta["distance"]
    np.testing.assert_array_equal(data.get_patterns(), scan.data)
    pixel = product.probes.get_pixel_geometry()
    assert (pixel.height_m, pixel.width_m) == tuple(scan.meta["psize"])
    assert ptychodus_pixel(data, product) == pixel == product.object_.get_pixel_geometry()
    probe = product.probes.get_array()[0, 0]
    np.testing.assert_allclose(np.abs(probe) ** 2, mean_pattern(scan), rtol=1e-5)
    assert_object_covers_every_probe(product)


def test_an_export_of_a_nearfield_ptyd_writes_the_same_arrays(tmp_path):
    ptyprep.run(nearfield_recipe(tmp_path))
    export(tmp_path / "scan.ptyd", "ptychodus", out=tmp_path / "again_ptychodus")
    assert load(tmp_path / "again_ptychodus")[1].metadata.far_field is False
    assert_same_contents(tmp_path / "scan_ptychodus", tmp_path / "again_ptychodus",
                         skip=("comments",))


# -- the writer alone ---------------------------------------------------------------------------

def test_fewer_frames_than_planned_are_trimmed(tmp_path):
    meta = {"shape": np.array([16, 16]), "center": np.array([8.0, 8.0]),
            "psize": np.array([75e-6, 55e-6]), "energy": 8.0, "distance": 5.0,
            "label": "short"}
    out = PT.PtychodusFile(tmp_path / "s_ptychodus", meta, num_frames=10, info={})
    rng = np.random.default_rng(0)
    data = rng.poisson(5.0, size=(7, 16, 16)).astype(np.float32)
    valid = np.ones(data.shape, bool)
    valid[3, 2, 5] = False
    positions = rng.normal(scale=1e-6, size=(7, 2))
    out.append(np.arange(4), data[:4], valid[:4], positions[:4])
    out.append(np.arange(4, 7), data[4:], valid[4:], positions[4:])
    out.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_ptychodus"]
    loaded, product = load(tmp_path / "s_ptychodus")
    np.testing.assert_array_equal(loaded.get_patterns(), data)
    assert loaded.get_bad_pixels().sum() == 1 and loaded.get_bad_pixels()[2, 5]
    assert (loaded.get_pixel_geometry().width_m, loaded.get_pixel_geometry().height_m) == \
        (55e-6, 75e-6)
    np.testing.assert_array_equal(product.probe_positions.get_coordinates_y_m(), positions[:, 0])
    np.testing.assert_array_equal(product.probe_positions.get_coordinates_x_m(), positions[:, 1])
    pixel = product.probes.get_pixel_geometry()           # non-square: x and y apart
    own = ptychodus_pixel(loaded, product)
    assert pixel.width_m == rel(own.width_m, 1e-13)
    assert pixel.height_m == rel(own.height_m, 1e-13)
    assert pixel.width_m != pixel.height_m
    assert product.metadata.name == "short" and product.metadata.comments.startswith(
        "Prepared by ptyprep")
    assert_object_covers_every_probe(product)
