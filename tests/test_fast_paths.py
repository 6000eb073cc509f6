"""Every fast path gives what the plain path gives.

* crop on read of bitshuffle-LZ4 frames (ptyprep.fast.chunkread) through the hdf5 source and
  through a whole preparation, against the same frames stored without compression;
* the faster output compressions (lzf, bitshuffle, blosc2, none) against the default gzip.

StackIntegrator vs pyFAI is covered in tests/test_integrate.py.
"""

import h5py
import hdf5plugin
import numpy as np
import pytest

import ptyprep
from ptyprep.sources.hdf5 import HDF5Source

N, H, W = 10, 40, 44
FILTERS = {"plain": {}, "bslz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
           "gzip": {"compression": "gzip"}}


def frames(n=N, dtype=np.uint32):
    """Frame i holds i * 100000 + Poisson counts, so a misplaced frame is visible."""
    rng = np.random.default_rng(5)
    return (np.arange(n)[:, None, None] * 100000 + rng.poisson(20, (n, H, W))).astype(dtype)


def write(path, data, filters):
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=data, chunks=(1,) + data.shape[1:], **filters)
        f["/entry/pos"] = np.stack([np.arange(len(data)) * 1e-6, np.zeros(len(data))], axis=1)
    return str(path)


@pytest.fixture
def files(tmp_path):
    data = frames()
    return data, {name: write(tmp_path / f"{name}.h5", data, kw) for name, kw in FILTERS.items()}


@pytest.mark.parametrize("roi", [None, (0, H, 0, W), (5, 37, 3, 41), (0, 1, 0, W),
                                 (H - 2, H, W - 3, W)])
@pytest.mark.parametrize("indices", [[0, 1, 2, 3], [7, 2, 9], [4]])
def test_hdf5_source_roi_reads_agree(files, roi, indices):
    data, paths = files
    r0, r1, c0, c1 = roi or (0, H, 0, W)
    want = data[indices, r0:r1, c0:c1]
    for name, path in paths.items():
        with HDF5Source(path) as src:
            np.testing.assert_array_equal(src.read_frames(indices, roi), want, err_msg=name)


def test_hdf5_source_multi_file_bslz4(tmp_path):
    data = frames(12, np.uint16)
    bs = FILTERS["bslz4"]
    paths = [write(tmp_path / "a.h5", data[:5], bs), write(tmp_path / "b.h5", data[5:], bs)]
    with HDF5Source(paths) as src:
        np.testing.assert_array_equal(src.read_frames([3, 4, 5, 6, 11], (2, 30, 7, 9)),
                                      data[[3, 4, 5, 6, 11], 2:30, 7:9])


def _prepare(tmp_path, raw, name, **prep):
    recipe = ptyprep.load_recipe({
        "source": {"name": "hdf5", "path": raw, "positions": "/entry/pos", "energy_keV": 8.0,
                   "distance_m": 5.0, "psize_m": 75e-6, "beam_center": [21.0, 19.0]},
        "prep": {"shape": 24, "center": "source", **prep},
        "output": {"dfile": str(tmp_path / f"{name}.ptyd"), "chunk_frames": 4},
    })
    ptyprep.run(recipe)
    return ptyprep.read_ptyd(tmp_path / f"{name}.ptyd")


@pytest.mark.parametrize("prep", [{"rebin": 1}, {"rebin": 2, "orientation": 5},
                                  {"rebin": 3, "rebin_mode": "mean"}])
def test_preparation_from_bslz4_equals_plain(files, tmp_path, prep):
    _, paths = files
    plain = _prepare(tmp_path, paths["plain"], "plain", **prep)
    fast = _prepare(tmp_path, paths["bslz4"], "fast", **prep)
    for key in ("data", "weights", "positions", "indices"):
        np.testing.assert_array_equal(fast[key], plain[key], err_msg=key)
        assert fast[key].dtype == plain[key].dtype


@pytest.mark.parametrize("compression", ["none", "lzf", "bitshuffle", "blosc2"])
def test_output_compressions_equal_gzip(files, tmp_path, compression):
    _, paths = files

    def prepare(comp):
        recipe = ptyprep.load_recipe({
            "source": {"name": "hdf5", "path": paths["plain"], "positions": "/entry/pos",
                       "energy_keV": 8.0, "distance_m": 5.0, "psize_m": 75e-6,
                       "beam_center": [21.0, 19.0]},
            "prep": {"shape": 24, "center": "source", "rebin": 2},
            "output": {"dfile": str(tmp_path / f"{comp}.ptyd"), "chunk_frames": 4,
                       "compression": comp},
        })
        ptyprep.run(recipe)
        return ptyprep.read_ptyd(tmp_path / f"{comp}.ptyd")

    ref, got = prepare("gzip"), prepare(compression)
    for key in ("data", "weights", "positions", "indices"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


def test_hdf5_source_takes_the_crop_on_read_path(files, monkeypatch):
    """The bitshuffle file is read through chunkread for a crop, and agrees with plain."""
    import ptyprep.sources.hdf5 as hdf5_module

    calls = []
    real = hdf5_module.roi_reader

    def counting(dset):
        reader = real(dset)
        calls.append(reader is not None)
        return reader

    monkeypatch.setattr(hdf5_module, "roi_reader", counting)
    data, paths = files
    with HDF5Source(paths["bslz4"]) as src:
        got = src.read_frames([1, 2, 3, 8], (5, 37, 3, 41))
    np.testing.assert_array_equal(got, data[[1, 2, 3, 8], 5:37, 3:41])
    assert calls and all(calls)  # decoded by the fast path, not the fallback
