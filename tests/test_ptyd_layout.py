"""The .ptyd layout against ptypy's h5rw encoding rules (specs/ptyd.md), in every save mode."""

import h5py
import numpy as np
import pytest

import ptyprep
from ptyprep.layout import ptyd as L
from ptyprep.ptycho.h5rw import write_meta
from ptyprep.sources.ptyd import read_value

ALLOWED = {"dict", "array", "scalar", "string", "None", "arraylist"}


def h5rw_like_read(node):
    """Decode a node the way ptypy's h5rw does (groups → dict by 'type'; datasets by 'type')."""
    if isinstance(node, h5py.Group):
        kind = node.attrs.get("type", "dict")
        assert kind == "dict", node.name
        return {k: h5rw_like_read(node[k]) for k in node}
    kind = node.attrs.get("type")
    if node.ndim == 0:
        assert kind in ("scalar", "string"), f"0-d dataset {node.name} without scalar/string type"
    if kind is None or kind == "array":
        return node[()]
    if kind == "arraylist":
        return list(node[()])
    if kind == "scalar":
        return node[()].item()
    if kind == "string":
        value = node[()]
        return value.decode() if isinstance(value, bytes) else value
    if kind == "None":
        assert node.shape == (1,) and node.dtype == np.float64
        return None
    raise AssertionError(f"unknown type {kind!r} at {node.name}")


@pytest.mark.parametrize("save", ["append", "link", "merge"])
def test_every_node_is_typed_for_h5rw(tmp_path, save):
    recipe = ptyprep.load_recipe({"source": {"name": "simulate", "num_frames": 9},
                                  "prep": {"shape": 32},
                                  "output": {"dfile": "s.ptyd", "save": save, "chunk_frames": 4}},
                                 base_dir=tmp_path)
    ptyprep.run(recipe)
    with h5py.File(tmp_path / "s.ptyd") as h5:
        seen = []

        def check(name, node):
            seen.append(name)
            if isinstance(node, h5py.Dataset) and (name.startswith(L.META) or name.startswith(L.CHUNKS)):
                assert node.attrs.get("type") in ALLOWED, name

        h5.visititems(check)
        tree = {k: h5rw_like_read(h5[k]) for k in (L.META, L.CHUNKS)}
    meta = tree[L.META]
    assert meta["num_frames"] == 9 and meta["version"] == 0.1
    assert meta["label"] == "simulated-ptycho" and meta["propagation"] == "farfield"
    assert isinstance(meta["energy"], float) and isinstance(meta["distance"], float)
    chunks = tree[L.CHUNKS]
    names = sorted(chunks, key=int)
    assert names == [str(i) for i in range(len(names))]
    indices = [i for n in names for i in chunks[n]["indices"]]
    assert indices == list(range(9))
    for n in names:
        c = chunks[n]
        assert c["data"].shape[1:] == (32, 32) and c["weights"].shape == c["data"].shape
        assert c["positions"].shape == (len(c["indices"]), 2) and c["positions"].dtype == np.float64


def test_label_none_encoding(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        write_meta(h5, {"num_frames": 1, "shape": [4, 4], "center": [2, 2], "psize": [1e-4, 1e-4],
                          "energy": 8.0, "distance": 1.0, "label": None})
        node = h5["meta/label"]
        assert node.attrs["type"] == "None" and node.shape == (1,) and node.dtype == np.float64
        assert read_value(node) is None
        assert list(h5["meta"])[0] == "num_frames"


def test_ptydscan_style_check_skips_dangling_links(tmp_path):
    """ptypy's PtydScan.check iterates ``f['chunks'].items()`` and drops None (dangling links):
    a link-mode file whose last part is not written yet must count only the frames present."""
    import os

    recipe = ptyprep.load_recipe({"source": {"name": "simulate", "num_frames": 9},
                                  "prep": {"shape": 32},
                                  "output": {"dfile": "s.ptyd", "save": "link", "chunk_frames": 4}},
                                 base_dir=tmp_path)
    ptyprep.run(recipe)
    os.remove(tmp_path / "s.ptyd.part002")
    with h5py.File(tmp_path / "s.ptyd", "r") as f:
        assert f.get("chunks/0") is not None  # PtydScan refuses a file without chunks/0
        items = sorted((int(k), v) for k, v in f["chunks"].items() if v is not None)
        frames = sum(v["data"].shape[0] for _, v in items)
        first_keys = sorted(items[0][1].keys())
    assert [k for k, _ in items] == [0, 1] and frames == 8
    assert first_keys == ["data", "indices", "positions", "weights"]
