"""Crop on read of Blosc2 chunks (hdf5plugin's filter 32026): bit-identical to h5py's read."""

import h5py
import hdf5plugin
import numpy as np
import pytest

from ptyprep.fast import chunkread

blosc2 = pytest.importorskip("blosc2", reason="the fast path needs `pip install ptyprep[fast]`")

CODECS = [dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)),
          dict(hdf5plugin.Blosc2(cname="zstd", clevel=3, filters=hdf5plugin.Blosc2.BITSHUFFLE)),
          dict(hdf5plugin.Blosc2(cname="blosclz", clevel=0))]
DTYPES = [np.uint16, np.uint32, np.int32, np.float32, np.uint8, np.float64]


def _write(path, data, filters=CODECS[0]):
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=(1,) + data.shape[1:], **filters)
    return path


@pytest.fixture
def decoded(monkeypatch):
    """Counts the chunks the Blosc2 fast path decoded (None results are fallbacks)."""
    calls = {"fast": 0, "fallback": 0}
    real = chunkread._decode_roi_blosc2

    def spy(*args):
        out = real(*args)
        calls["fast" if out is not None else "fallback"] += 1
        return out

    monkeypatch.setattr(chunkread, "_decode_roi_blosc2", spy)
    return calls


@pytest.mark.parametrize("codec", range(len(CODECS)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (600, 700), (3, 5), (1, 2051)])
def test_rois_equal_plain_read(tmp_path, decoded, codec, dtype, shape):
    rng = np.random.default_rng(2)
    data = (rng.poisson(4, (3,) + shape) - (6 if np.dtype(dtype).kind == "i" else 0)).astype(dtype)
    h, w = shape
    with h5py.File(_write(tmp_path / "a.h5", data, CODECS[codec]), "r") as f:
        d = f["d"]
        assert chunkread.blosc2_layout(d) == shape
        assert chunkread.bitshuffle_lz4_layout(d) is None
        rois = [(0, h, 0, w), (0, 1, 0, 1), (h - 1, h, w - 1, w), (h // 3, h, w // 4, w // 2 + 1)]
        for _ in range(6):
            r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            rois.append((r0, int(rng.integers(r0 + 1, h + 1)), c0, int(rng.integers(c0 + 1, w + 1))))
        for r0, r1, c0, c1 in rois:
            got = chunkread.read_frames_roi(d, [2, 0, 2], (r0, r1, c0, c1))
            want = np.stack([d[i, r0:r1, c0:c1] for i in (2, 0, 2)])
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert decoded["fast"] == 3 * len(rois) and decoded["fallback"] == 0


def test_a_crop_decodes_only_its_blocks(tmp_path):
    data = np.random.default_rng(3).poisson(4, (1, 1024, 1024)).astype(np.uint32)
    with h5py.File(_write(tmp_path / "a.h5", data), "r") as f:
        frame = blosc2.ndarray_from_cframe(f["d"].id.read_direct_chunk((0, 0, 0))[1])
    assert frame.shape == (1, 1024, 1024) and frame.blocks[1:] < (1024, 1024)


def test_a_chunk_that_is_not_a_b2nd_frame_is_read_by_h5py(tmp_path, decoded):
    data = np.arange(2 * 16 * 16, dtype=np.uint32).reshape(2, 16, 16)
    with h5py.File(_write(tmp_path / "a.h5", data), "r+") as f:
        # chunk 1 written as HDF5's filter-skipped raw bytes (mask bit 0 set): decoded as raw
        f["d"].id.write_direct_chunk((1, 0, 0), data[1].tobytes(), filter_mask=1)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        got = chunkread.read_frames_roi(f["d"], [0, 1], (2, 9, 3, 15))
        np.testing.assert_array_equal(got, data[:, 2:9, 3:15])
    assert chunkread._decode_roi_blosc2(blosc2, b"not a frame", np.dtype(np.uint32), (16, 16),
                                        (0, 1, 0, 1)) is None


def test_missing_blosc2_falls_back(tmp_path, monkeypatch):
    data = np.ones((2, 16, 16), np.uint16)
    monkeypatch.setattr(chunkread, "_blosc2", lambda: None)
    with h5py.File(_write(tmp_path / "a.h5", data), "r") as f:
        assert chunkread.blosc2_layout(f["d"]) is None
        assert chunkread.read_frames_roi(f["d"], [0], (0, 4, 0, 4)) is None


def test_hdf5_source_crops_blosc2_frames_on_read(tmp_path, decoded):
    from ptyprep.sources.hdf5 import HDF5Source

    data = np.random.default_rng(4).poisson(9, (5, 96, 80)).astype(np.uint32)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(1, 96, 80), **CODECS[0])
    src = HDF5Source(str(path), frames="/entry/data/data", positions=None, energy_keV=8.0,
                     distance_m=5.0, psize_m=75e-6)
    got = src.read_frames([4, 1, 2], (10, 74, 8, 72))
    np.testing.assert_array_equal(got, data[[4, 1, 2], 10:74, 8:72])
    assert decoded["fast"] == 3


def test_blosc2_is_imported_only_for_blosc2_datasets(tmp_path, monkeypatch):
    imported = []
    monkeypatch.setattr(chunkread, "_blosc2", lambda: imported.append(1) or blosc2)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("gz", data=np.ones((2, 8, 8), np.uint16), chunks=(1, 8, 8), compression="gzip")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert chunkread.read_frames_roi(f["gz"], [0], (0, 4, 0, 4)) is None
    assert imported == []
