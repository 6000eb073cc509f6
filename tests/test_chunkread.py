"""Crop on read of bitshuffle-LZ4 chunks: bit-identical to h5py's hyperslab read.

Blosc2 chunks: tests/test_chunkread_blosc2.py."""

import h5py
import hdf5plugin
import numpy as np
import pytest

from ptyprep.fast import chunkread

pytest.importorskip("bitshuffle", reason="the fast path needs `pip install ptyprep[fast]`")

BSLZ4 = dict(hdf5plugin.Bitshuffle(cname="lz4"))
DTYPES = [np.uint16, np.uint32, np.int32, np.float32, np.uint8, np.float64]


def _frames(dtype, shape, n=3, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(4, (n,) + shape)
    if np.dtype(dtype).kind == "f":
        return (counts * rng.normal(1, 0.3, counts.shape)).astype(dtype)
    if np.dtype(dtype).kind == "i":
        return (counts - 6).astype(dtype)
    return counts.astype(dtype)


def _write(path, data, **filters):
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=(1,) + data.shape[1:], **(filters or BSLZ4))
    return path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (129, 77), (3, 5), (1, 2051)])
def test_random_rois_equal_plain_read(tmp_path, dtype, shape):
    data = _frames(dtype, shape)
    rng = np.random.default_rng(1)
    h, w = shape
    with h5py.File(_write(tmp_path / "a.h5", data), "r") as f:
        d = f["d"]
        assert chunkread.bitshuffle_lz4_layout(d) == shape
        rois = [(0, h, 0, w), (0, 1, 0, 1), (h - 1, h, w - 1, w), (0, h, w - 1, w),
                (h - 1, h, 0, w)]
        for _ in range(25):
            r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            rois.append((r0, int(rng.integers(r0 + 1, h + 1)), c0, int(rng.integers(c0 + 1, w + 1))))
        for roi in rois:
            r0, r1, c0, c1 = roi
            idx = [2, 0, 2]
            got = chunkread.read_frames_roi(d, idx, roi)
            want = np.stack([d[i, r0:r1, c0:c1] for i in idx])
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_frame_sizes_around_block_edges(tmp_path):
    # uint32 blocks hold 2048 elements: one row of 2048, a short last block, a raw tail (% 8)
    for w in (2048, 2047, 2049, 2055, 4103):
        data = _frames(np.uint32, (5, w), n=2, seed=w)
        with h5py.File(_write(tmp_path / f"w{w}.h5", data), "r") as f:
            for roi in [(0, 5, 0, w), (4, 5, w - 7, w), (2, 4, 1000, 1100), (0, 1, 0, 8)]:
                r0, r1, c0, c1 = roi
                np.testing.assert_array_equal(chunkread.read_frames_roi(f["d"], [1, 0], roi),
                                              data[[1, 0], r0:r1, c0:c1])


def test_out_argument_filled_in_place(tmp_path):
    data = _frames(np.uint32, (40, 30))
    with h5py.File(_write(tmp_path / "a.h5", data), "r") as f:
        big = np.zeros((5, 10, 12), np.uint32)
        res = chunkread.read_frames_roi(f["d"], [1, 2], (5, 15, 3, 15), out=big[2:4])
        assert np.shares_memory(res, big)
        np.testing.assert_array_equal(big[2:4], data[1:3, 5:15, 3:15])
        assert not big[[0, 1, 4]].any()
        with pytest.raises(ValueError, match="out has shape"):
            chunkread.read_frames_roi(f["d"], [1], (5, 15, 3, 15), out=big[:2])


def test_unwritten_chunks_read_as_fill_value(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", shape=(3, 20, 20), dtype=np.uint16, chunks=(1, 20, 20),
                             fillvalue=7, **BSLZ4)
        d[1] = np.arange(400, dtype=np.uint16).reshape(20, 20)
    with h5py.File(path, "r") as f:
        got = chunkread.read_frames_roi(f["d"], [0, 1, 2], (2, 9, 3, 20))
        np.testing.assert_array_equal(got, f["d"][:, 2:9, 3:20])


@pytest.mark.parametrize("kwargs", [
    {"compression": "gzip"},                                   # another filter
    {},                                                        # chunked, no filter
    dict(hdf5plugin.Bitshuffle(cname="none")),                 # bitshuffle without LZ4
])
def test_other_filters_fall_back(tmp_path, kwargs):
    data = _frames(np.uint16, (16, 16))
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("d", data=data, chunks=(1, 16, 16), **kwargs)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert chunkread.read_frames_roi(f["d"], [0], (0, 4, 0, 4)) is None


def test_other_chunking_and_contiguous_fall_back(tmp_path):
    data = _frames(np.uint16, (16, 16), n=4)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("two", data=data, chunks=(2, 16, 16), **BSLZ4)
        f.create_dataset("tiles", data=data, chunks=(1, 8, 8), **BSLZ4)
        f.create_dataset("contiguous", data=data)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        for name in ("two", "tiles", "contiguous"):
            assert chunkread.read_frames_roi(f[name], [0], (0, 4, 0, 4)) is None


def test_missing_bitshuffle_falls_back(tmp_path, monkeypatch):
    data = _frames(np.uint32, (16, 16))
    monkeypatch.setattr(chunkread, "_bitshuffle", lambda: None)
    with h5py.File(_write(tmp_path / "a.h5", data), "r") as f:
        assert chunkread.read_frames_roi(f["d"], [0], (0, 4, 0, 4)) is None


def test_bad_roi_and_index_raise(tmp_path):
    data = _frames(np.uint32, (16, 16))
    with h5py.File(_write(tmp_path / "a.h5", data), "r") as f:
        with pytest.raises(ValueError, match="outside the frame"):
            chunkread.read_frames_roi(f["d"], [0], (0, 17, 0, 4))
        with pytest.raises(ValueError, match="empty"):
            chunkread.read_frames_roi(f["d"], [0], (4, 4, 0, 4))
        with pytest.raises(IndexError, match="outside the dataset"):
            chunkread.read_frames_roi(f["d"], [3], (0, 4, 0, 4))


@pytest.mark.realdata
def test_real_eiger_file(shared_data):
    path = shared_data / "biocat_eiger2" / "vac_007_data_000001.h5"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with h5py.File(path, "r") as f:
        d = f["/entry/data/data"]                     # (2, 3262, 3108) uint32, filter 32008
        assert chunkread.bitshuffle_lz4_layout(d) == (3262, 3108)
        for roi in [(1500, 1756, 1400, 1656), (0, 256, 0, 256), (3006, 3262, 2852, 3108),
                    (0, 3262, 0, 3108)]:
            r0, r1, c0, c1 = roi
            want = np.stack([d[1, r0:r1, c0:c1], d[0, r0:r1, c0:c1]])
            np.testing.assert_array_equal(chunkread.read_frames_roi(d, [1, 0], roi), want)
