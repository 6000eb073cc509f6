"""ptyprep.read_ptyd returns a PreparedScan: a dict whose entries are attributes as well."""

import copy
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import ptyprep
from ptyprep.sources.ptyd import PreparedScan

ENTRIES = ["data", "weights", "positions", "indices", "meta", "info"]


def prepare(tmp_path, save="append", num_frames=23):
    raw = {"source": {"name": "simulate", "num_frames": num_frames, "kind": "index"},
           "prep": {"shape": 64},
           "output": {"dfile": "out/scan.ptyd", "chunk_frames": 5, "save": save}}
    return ptyprep.run(ptyprep.load_recipe(raw, base_dir=tmp_path))["path"]


@pytest.fixture
def scan(tmp_path):
    return ptyprep.read_ptyd(prepare(tmp_path))


def test_every_entry_is_an_attribute(scan):
    assert isinstance(scan, PreparedScan) and isinstance(scan, dict)
    for key in ENTRIES:
        assert getattr(scan, key) is scan[key], key
    assert scan.data.shape == (23, 64, 64) and scan.weights.dtype == bool
    assert scan.positions.shape == (23, 2) and scan.indices.dtype == np.int64
    assert scan.indices.tolist() == list(range(23))
    assert scan.meta["shape"].tolist() == [64, 64] and scan.info["complete"] == 1


def test_dict_use_is_unchanged(scan):
    assert list(scan.keys()) == ENTRIES and list(scan) == ENTRIES and len(scan) == 6
    assert "data" in scan and "path" not in scan and "nope" not in scan
    assert scan.get("meta") is scan.meta and scan.get("nope") is None
    assert scan.get("nope", 3) == 3
    assert dict(scan).keys() == {**scan}.keys() == set(ENTRIES)
    assert [k for k, _ in scan.items()] == ENTRIES
    data, weights = scan["data"], scan["weights"]
    np.testing.assert_array_equal(data[weights == 0], 0)
    with pytest.raises(KeyError):
        scan["nope"]
    with pytest.raises(AttributeError):
        scan.nope


def test_an_entry_replaced_either_way_is_seen_both_ways(scan):
    first = scan.data[:2]
    scan["data"] = first
    assert scan.data is first
    scan.positions = scan.positions * 2
    assert scan["positions"] is scan.positions


def test_path_is_an_attribute_not_an_entry(tmp_path):
    path = prepare(tmp_path)
    scan = ptyprep.read_ptyd(os.path.relpath(path))
    assert scan.path == Path(os.path.relpath(path)) and "path" not in scan


def test_repr_names_the_file_the_frames_and_their_shape(scan):
    text = repr(scan)
    assert text.startswith("PreparedScan(") and str(scan.path) in text
    assert "23 frames of 64×64 uint32" in text and " of 23 " not in text
    assert "entries data, weights, positions, indices, meta, info" in text


def test_repr_of_a_scan_not_yet_whole_says_how_many_are_expected(tmp_path):
    path = prepare(tmp_path, save="link")
    os.remove(tmp_path / "out" / "scan.ptyd.part004")    # the last chunk: not written yet
    scan = ptyprep.read_ptyd(path)
    assert len(scan.indices) == 20
    assert "20 of 23 frames of 64×64" in repr(scan)


def test_repr_survives_a_missing_entry(scan):
    del scan["data"], scan["meta"]
    assert "0 frames of ?" in repr(scan)


def test_pickle_and_copies_keep_entries_and_path(scan):
    for other in (pickle.loads(pickle.dumps(scan)), copy.deepcopy(scan), copy.copy(scan)):
        assert type(other) is PreparedScan and other.path == scan.path
        assert list(other) == ENTRIES
        np.testing.assert_array_equal(other.data, scan.data)
