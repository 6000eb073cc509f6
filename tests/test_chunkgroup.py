"""Chunk groups copied from a template (ptyprep.fast.chunkgroup) are the groups made one
object at a time: same creation properties, attributes, storage and values."""

import h5py
import numpy as np
import pytest

from ptyprep.layout.filters import dataset_filters
from ptyprep.layout import ptyd as L
from ptyprep.ptycho.h5rw import dict_group, set_type
from ptyprep.ptycho.chunks import create_chunk_group, create_frame_datasets, write_positions
from ptyprep.fast import chunkgroup as cg
from ptyprep.fast import chunkdatasets as cd
from ptyprep.fast import chunkwrite as cw

GZIP = dataset_filters("gzip")


def describe(node):
    """Everything a reader can see of a chunk group's members but the values."""
    out = {"attrs": dict(node.attrs)}
    for name, d in node.items():
        plist = d.id.get_create_plist()
        out[name] = (d.shape, d.dtype, d.chunks, d.compression, d.compression_opts, d.shuffle,
                     d.fillvalue, plist.get_obj_track_times(), plist.get_fill_time(),
                     plist.get_alloc_time(), plist.get_layout(), dict(d.attrs),
                     d.id.get_storage_size() if name in (L.DATA, L.WEIGHTS) else None)
    return out


def one_by_one(parent, name, n, shape, dtype, filters, k, positions, indices):
    """The chunk group as made before templates: every object and attribute on its own."""
    group = parent.create_group(name)
    data, weights = create_frame_datasets(group, n, shape, dtype, filters, k)
    for member, array, kind in ((L.POSITIONS, positions, "array"),
                                (L.INDICES, indices, "arraylist")):
        set_type(group.create_dataset(member, data=array), kind)
    return group, data, weights


def fill(data, weights, frames, valid, k):
    codec = cw.chunk_codec(GZIP)
    cd.write_encoded(data, 0, cw.encode_frames(frames, codec, k))
    cd.write_encoded(weights, 0, cw.encode_frames(valid, codec, k))


@pytest.mark.parametrize("libver", [None, "v108", "v110", "latest"])
@pytest.mark.parametrize("n, k, dtype", [(16, 4, np.uint32), (5, 1, np.uint64), (8, 8, np.float32)])
def test_copied_group_equals_group_made_one_object_at_a_time(tmp_path, libver, n, k, dtype):
    rng = np.random.default_rng(n)
    frames = rng.poisson(5.0, (n, 12, 12)).astype(dtype)
    valid = (rng.random((n, 12, 12)) > 0.1).astype(np.uint8)
    positions, indices = rng.random((n, 2)), np.arange(100, 100 + n, dtype=np.int64)
    path = tmp_path / "g.h5"
    with h5py.File(path, "w", libver=libver) as f:
        chunks = dict_group(f, L.CHUNKS)
        made = one_by_one(chunks, "0", n, (12, 12), dtype, GZIP, k, positions, indices)
        copied = create_chunk_group(chunks, "1", n, (12, 12), dtype, GZIP, k)
        copied_again = create_chunk_group(chunks, "2", n, (12, 12), dtype, GZIP, k)
        for group, data, weights in (made, copied, copied_again):
            fill(data, weights, frames, valid, k)
        for group in (copied[0], copied_again[0]):
            write_positions(group, positions, indices)
    with h5py.File(path) as f:
        groups = [f["chunks"][name] for name in "012"]
        assert describe(groups[1]) == describe(groups[0]) == describe(groups[2])
        for g in groups:
            assert g.attrs["type"] == "dict"
            np.testing.assert_array_equal(g["data"][()], frames)
            np.testing.assert_array_equal(g["weights"][()], valid)
            np.testing.assert_array_equal(g["positions"][()], positions)
            np.testing.assert_array_equal(g["indices"][()], indices)
            assert [g[m].attrs["type"] for m in L.CHUNK_ARRAYS] == \
                ["array", "array", "array", "arraylist"]


def test_templates_are_kept_per_kind_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(cg, "MAX_TEMPLATES", 2)
    cg.clear()
    with h5py.File(tmp_path / "t.h5", "w", libver="latest") as f:
        for number, n in enumerate((4, 3, 4, 2, 1, 4)):
            group, data, _ = create_chunk_group(f, str(number), n, (8, 8), np.uint16, GZIP, 1)
            assert data.shape == (n, 8, 8) and group["positions"].shape == (n, 2)
            assert len(cg._TEMPLATES) <= 2
    with h5py.File(tmp_path / "t.h5") as f:
        assert [f[str(i)]["indices"].shape for i in range(6)] == [(4,), (3,), (4,), (2,), (1,), (4,)]
    cg.clear()
    assert not cg._TEMPLATES


def test_write_positions_makes_the_datasets_a_group_lacks(tmp_path):
    """A link-mode part's root has no positions/indices until write_positions makes them."""
    with h5py.File(tmp_path / "p.h5", "w") as f:
        create_frame_datasets(f, 3, (4, 4), np.uint32, GZIP, 1)
        write_positions(f, np.ones((3, 2), np.float32), [7, 8, 9])
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["positions"].dtype == np.float64 and f["positions"].attrs["type"] == "array"
        assert f["indices"][()].tolist() == [7, 8, 9]
        assert f["indices"].attrs["type"] == "arraylist"
