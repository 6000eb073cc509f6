"""End-to-end preparation on the simulated sources: exact values and .ptyd round trips."""

import os

import h5py
import numpy as np
import pytest

import ptyprep
import ptyprep.ptycho.job
import ptyprep.ptycho.writer
from ptyprep.ptycho import frames as F
from ptyprep.errors import OutputError, RecipeError, SourceError
from ptyprep.sources.simulate import SimulatedSource


def recipe(tmp_path, source=None, prep=None, output=None):
    raw = {"source": {"name": "simulate", "num_frames": 23, "kind": "index", **(source or {})},
           "prep": {"shape": 64, **(prep or {})},
           "output": {"dfile": "out/scan.ptyd", "chunk_frames": 5, **(output or {})}}
    return ptyprep.load_recipe(raw, base_dir=tmp_path)


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_modes_round_trip_in_scan_order(tmp_path, save):
    result = ptyprep.run(recipe(tmp_path, output={"save": save}))
    scan = ptyprep.read_ptyd(result["path"])
    assert scan["indices"].tolist() == list(range(23))
    # kind="index": every pixel off the ring holds its frame index
    assert [int(np.median(f)) for f in scan["data"]] == list(range(23))
    src = SimulatedSource(num_frames=23, kind="index")
    np.testing.assert_array_equal(scan["positions"], src.read_positions())
    assert scan["data"].shape == (23, 64, 64)
    meta = scan["meta"]
    assert meta["num_frames"] == 23 and meta["shape"].tolist() == [64, 64]
    assert meta["center"].tolist() == [32.0, 32.0]
    assert meta["energy"] == 6.2 and meta["distance"] == 7.0
    with h5py.File(result["path"]) as h5:
        n_chunks = len(h5["chunks"])
        assert list(h5["meta"])[0] == "num_frames"  # written first, listed first
        for name in ("num_frames", "energy", "distance", "version"):
            assert h5["meta"][name].attrs["type"] == "scalar"
        assert h5["meta"]["label"].attrs["type"] == "string"
        assert h5["chunks"].attrs["type"] == "dict"
        assert h5["info"]["complete"][()] == 1
    assert n_chunks == (1 if save == "merge" else 5)


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_shares_prepared_in_cache_sized_batches_write_the_same_file(tmp_path, save, monkeypatch):
    # 64² crops of 4 bytes: a 40 KiB budget gives batches of 2 frames in chunks of 5
    r = recipe(tmp_path, source={"kind": "ptycho"}, output={"save": save, "chunk_frames": 5})
    whole = np.concatenate([s.data for s in ptyprep.iter_chunks(r)])
    batches = []
    real = ptyprep.ptycho.job.prepared_parts

    def spy(*args):
        for part in real(*args):
            batches.append(len(part))
            yield part

    monkeypatch.setattr(ptyprep.ptycho.writer, "CACHE_BATCH_BYTES", 40 << 10)
    monkeypatch.setattr(ptyprep.ptycho.job, "prepared_parts", spy)
    scan = ptyprep.read_ptyd(ptyprep.run(r)["path"])
    assert batches == [2, 2, 1] * 4 + [2, 1]
    assert scan["indices"].tolist() == list(range(23))
    assert scan["data"].tobytes() == whole.tobytes() and scan["data"].dtype == whole.dtype
    np.testing.assert_array_equal(scan["positions"], SimulatedSource(num_frames=23).read_positions())


def test_link_mode_parts_are_bare_names_and_open_from_elsewhere(tmp_path, monkeypatch):
    result = ptyprep.run(recipe(tmp_path, output={"save": "link"}))
    with h5py.File(result["path"]) as h5:
        links = [h5["chunks"].get(k, getlink=True) for k in h5["chunks"]]
    assert all(isinstance(link, h5py.ExternalLink) for link in links)
    assert sorted(link.filename for link in links) == [f"scan.ptyd.part{i:03d}" for i in range(5)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scan = ptyprep.read_ptyd(os.path.relpath(result["path"]))
    assert scan["indices"].tolist() == list(range(23))


def test_dangling_link_is_skipped(tmp_path):
    result = ptyprep.run(recipe(tmp_path, output={"save": "link"}))
    os.remove(tmp_path / "out" / "scan.ptyd.part004")
    scan = ptyprep.read_ptyd(result["path"])
    assert scan["indices"].tolist() == list(range(20))


def test_output_exists_without_overwrite(tmp_path):
    ptyprep.run(recipe(tmp_path))
    with pytest.raises(OutputError, match="overwrite"):
        ptyprep.run(recipe(tmp_path))
    ptyprep.run(recipe(tmp_path, output={"overwrite": True}))


def test_overwrite_link_removes_old_parts(tmp_path):
    # the new parts cannot take the names the previous output still links: they get the
    # alternate names, and the old parts go once the new master is in place
    ptyprep.run(recipe(tmp_path, output={"save": "link", "chunk_frames": 2}))
    ptyprep.run(recipe(tmp_path, output={"save": "link", "overwrite": True}))
    parts = sorted(p.name for p in (tmp_path / "out").glob("scan.ptyd.part*"))
    assert parts == [f"scan.ptyd.part{i:03d}.b" for i in range(5)]
    assert ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")["indices"].tolist() == list(range(23))
    ptyprep.run(recipe(tmp_path, output={"save": "link", "overwrite": True, "chunk_frames": 4}))
    parts = sorted(p.name for p in (tmp_path / "out").glob("scan.ptyd.part*"))
    assert parts == [f"scan.ptyd.part{i:03d}" for i in range(6)]
    ptyprep.run(recipe(tmp_path, output={"save": "append", "overwrite": True}))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scan.ptyd"]


def test_failed_run_leaves_no_output(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = SimulatedSource.read_frames

    def failing(self, indices, roi=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk vanished")
        return original(self, indices, roi)

    monkeypatch.setattr(SimulatedSource, "read_frames", failing)
    for save in ("append", "link"):
        calls["n"] = 0
        with pytest.raises(RuntimeError):
            ptyprep.run(recipe(tmp_path, output={"save": save}))
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_crop_orientation_rebin_exact(tmp_path):
    """Raw frames through the whole pipeline equal the frame functions applied by hand."""
    src = SimulatedSource(num_frames=6, kind="ptycho", photons=1e5)
    r = recipe(tmp_path, source={"num_frames": 6, "kind": "ptycho", "photons": 1e5},
               prep={"shape": 96, "orientation": 6, "rebin": 2, "center": [100.6, 90.2],
                     "saturation": 2.0**19})
    ptyprep.run(r)
    scan = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    raw = src.read_frames(np.arange(6))
    valid = src.read_valid() & (raw < 2**19)
    d, v = F.crop_pad(raw, valid, (100.6, 90.2), (96, 96))
    d, v = F.orient(d, 6), F.orient(v, 6)
    d, v = F.rebin(d, v, 2, "sum")
    np.testing.assert_array_equal(scan["weights"], v)
    np.testing.assert_array_equal(scan["data"], np.where(v, d, 0))
    assert scan["data"].dtype == np.uint64
    # transpose swaps (48, 48); flipud: 96 - 1 - 48 = 47; rebin 2 → (23.5, 24)
    assert scan["meta"]["center"].tolist() == [23.5, 24.0]
    assert scan["meta"]["shape"].tolist() == [48, 48]
    np.testing.assert_allclose(scan["meta"]["psize"], [344e-6, 344e-6])
    np.testing.assert_allclose(scan["info"]["raw_center"], [100.6, 90.2])


def test_mean_rebin_matches_ptypy_formula(tmp_path):
    src = SimulatedSource(num_frames=4, kind="ptycho")
    r = recipe(tmp_path, source={"num_frames": 4, "kind": "ptycho"},
               prep={"shape": 64, "rebin": 4, "rebin_mode": "mean", "center": "source"})
    ptyprep.run(r)
    scan = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    d, _ = F.crop_pad(src.read_frames(np.arange(4)), src.read_valid(), src.beam_center, (64, 64))
    expected = d.reshape(4, 16, 4, 16, 4).mean(-1).mean(-2)
    np.testing.assert_array_equal(scan["data"], expected)


def test_auto_center_is_mean_of_first_chunk_com(tmp_path):
    src = SimulatedSource(num_frames=12)
    r = recipe(tmp_path, source={"num_frames": 12, "kind": "ptycho"},
               prep={"center": "auto", "saturation": 2.0**19}, output={"chunk_frames": 4})
    ptyprep.run(r)
    scan = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    raw = src.read_frames(np.arange(4))
    com = F.center_of_mass(raw, src.read_valid() & (raw < 2**19)).mean(axis=0)
    np.testing.assert_allclose(scan["info"]["raw_center"], com)
    assert abs(com[0] - src.beam_center[0]) < 1.5 and abs(com[1] - src.beam_center[1]) < 1.5


def test_fftshift_undoes_shifted_frames(tmp_path):
    """Frames stored FFT-shifted come back centred with prep.fftshift."""
    from ptyprep.sources.base import ScanMeta, ScanSource, crop_roi

    base = np.zeros((3, 32, 32), np.float32)
    base[:, 16, 16] = [5, 6, 7]
    base[:, 10, 12] = 1

    class Shifted(ScanSource):
        def read_meta(self):
            return ScanMeta(3, (32, 32), np.dtype("float32"), 8.0, 2.0, (75e-6, 75e-6), None)

        def read_positions(self):
            return np.zeros((3, 2))

        def read_frames(self, indices, roi=None):
            return crop_roi(np.fft.ifftshift(base[indices], axes=(-2, -1)), roi)

    ptyprep.register_source("test-shifted", Shifted)
    r = ptyprep.load_recipe({"source": {"name": "test-shifted"},
                             "prep": {"fftshift": True, "center": "fftshift", "shape": 16},
                             "output": {"dfile": "s.ptyd"}}, base_dir=tmp_path)
    ptyprep.run(r)
    scan = ptyprep.read_ptyd(tmp_path / "s.ptyd")
    assert scan["data"][:, 8, 8].tolist() == [5, 6, 7]
    assert scan["data"][0, 2, 4] == 1


def test_ptyd_source_reprepares(tmp_path):
    ptyprep.run(recipe(tmp_path, source={"kind": "ptycho"}, prep={"saturation": 2.0**19}))
    first = ptyprep.read_ptyd(tmp_path / "out" / "scan.ptyd")
    r = ptyprep.load_recipe({"source": {"name": "ptyd", "path": "out/scan.ptyd"},
                             "prep": {"shape": 32, "rebin": 2},
                             "output": {"dfile": "again.ptyd"}}, base_dir=tmp_path)
    ptyprep.run(r)
    second = ptyprep.read_ptyd(tmp_path / "again.ptyd")
    d, v = F.crop_pad(first["data"], first["weights"], (32, 32), (32, 32))
    d, v = F.rebin(d, v, 2)
    np.testing.assert_array_equal(second["weights"], v)
    np.testing.assert_array_equal(second["data"], np.where(v, d, 0))
    np.testing.assert_array_equal(second["positions"], first["positions"])


def test_iter_chunks_gives_shares_in_memory(tmp_path):
    chunks = list(ptyprep.iter_chunks(recipe(tmp_path)))
    assert [c.indices.tolist() for c in chunks][:2] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert [c.meta["chunk"] for c in chunks] == [0, 1, 2, 3, 4]
    assert all(int(np.median(f)) == i for c in chunks for i, f in zip(c.indices, c.data))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("prep, match", [
    ({"center": [500.0, 10.0]}, "outside the raw frame"),
    ({"shape": 60, "rebin": 7}, "does not divide"),
    ({"shape": [64, 32]}, "not square"),
])
def test_bad_plan_raises_before_output(tmp_path, prep, match):
    with pytest.raises(RecipeError, match=match):
        ptyprep.run(recipe(tmp_path, prep=prep))
    assert not (tmp_path / "out").exists()


def test_nan_positions_and_count_mismatch(tmp_path, monkeypatch):
    pos = SimulatedSource(num_frames=23).read_positions()
    bad = pos.copy()
    bad[7] = np.nan
    monkeypatch.setattr(SimulatedSource, "read_positions", lambda self: bad)
    with pytest.raises(SourceError, match=r"\[7\].*NaN"):
        ptyprep.run(recipe(tmp_path))
    monkeypatch.setattr(SimulatedSource, "read_positions", lambda self: pos[:20])
    with pytest.raises(SourceError, match="23 frames but 20 positions"):
        ptyprep.run(recipe(tmp_path))


@pytest.mark.parametrize("save", ["append", "merge"])
def test_long_scan_through_reopened_master(tmp_path, save):
    """More chunks than the writer keeps through one open master (it closes and reopens it)."""
    from ptyprep.ptycho.writer import REOPEN_EVERY

    n = 2 * (2 * REOPEN_EVERY + 3)
    result = ptyprep.run(recipe(tmp_path, source={"num_frames": n}, prep={"shape": 16},
                                output={"save": save, "chunk_frames": 2}))
    scan = ptyprep.read_ptyd(result["path"])
    assert scan["indices"].tolist() == list(range(n))
    assert [int(np.median(f)) for f in scan["data"]] == list(range(n))
