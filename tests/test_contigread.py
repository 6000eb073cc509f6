"""Crop on read of contiguous datasets through a memory map: the bytes h5py reads, or None."""

import h5py
import numpy as np
import pytest

from ptyprep import contigread
from ptyprep.contigread import mapped_frames
from ptyprep.sources.hdf5 import HDF5Source

N, H, W = 9, 12, 10


def frames(dtype):
    rng = np.random.default_rng(4)
    return rng.integers(0, 60000, (N, H, W)).astype(dtype)


@pytest.mark.parametrize("dtype", ["<u4", ">u4", "<i2", ">f8", "<f4"])
@pytest.mark.parametrize("userblock", [0, 1024])
def test_mapped_frames_are_the_dataset(tmp_path, dtype, userblock):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w", userblock_size=userblock) as f:
        f["other"] = np.arange(100)                # the frames do not start the file
        f["/entry/data/data"] = frames(dtype)
    with h5py.File(path, "r") as f:
        d = f["/entry/data/data"]
        mapped = mapped_frames(d)
        assert mapped is not None and mapped.dtype == d.dtype
        assert mapped.tobytes() == d[()].tobytes()
        assert not mapped.flags.writeable


@pytest.mark.parametrize("dtype", ["<u4", ">u2"])
def test_source_crops_through_the_map_equal_h5py(tmp_path, monkeypatch, dtype):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["/entry/data/data"] = frames(dtype)
    idx, roi = np.array([0, 1, 2, 5, 6, 8]), (2, 9, 3, 7)
    with HDF5Source(str(path)) as src:
        fast = src.read_frames(idx, roi)
        assert src._open().mapped(0) is not None
    monkeypatch.setattr("ptyprep.sources.hdf5.mapped_frames", lambda d: None)
    with HDF5Source(str(path)) as src:
        plain = src.read_frames(idx, roi)
        assert src._open().mapped(0) is None
    assert fast.dtype == plain.dtype and fast.tobytes() == plain.tobytes()
    assert fast.tobytes() == frames(dtype)[idx, 2:9, 3:7].tobytes()


def test_what_is_not_a_plain_array_in_the_file_is_read_by_h5py(tmp_path):
    path = tmp_path / "n.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("chunked", data=frames("<u4"), chunks=(1, H, W))
        f.create_dataset("gzip", data=frames("<u4"), compression="gzip")
        f.create_dataset("unwritten", shape=(N, H, W), dtype="<u4")   # no storage yet
        f.create_dataset("empty", shape=(0, H, W), dtype="<u4")
        f["text"] = np.array([b"abc", b"de"])
        f.create_dataset("external", shape=(4,), dtype="<u4", external=[(tmp_path / "x.raw", 0, 16)])
    with h5py.File(path, "r") as f:
        for name in ("chunked", "gzip", "unwritten", "empty", "text", "external"):
            assert mapped_frames(f[name]) is None, name
    with h5py.File(tmp_path / "mem.h5", "w", driver="core", backing_store=False) as f:
        f["d"] = frames("<u4")
        assert mapped_frames(f["d"]) is None


def test_a_file_shorter_than_the_dataset_is_left_to_h5py(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["d"] = frames("<u4")
    with h5py.File(path, "r") as f:
        offset = f["d"].id.get_offset()
        monkeypatch.setattr(contigread.os.path, "getsize", lambda p: offset + 10)
        assert mapped_frames(f["d"]) is None
