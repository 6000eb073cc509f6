"""The median/spread helpers of benchmarks/_common.py and how benchmarks/run.py uses them
(pure logic: no timing is asserted)."""

import importlib
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def mods():
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        common = importlib.import_module("_common")
        run = importlib.import_module("run")
        yield common, run
    finally:
        # _common pins thread variables for benchmark processes: not for this test session
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def test_median_odd_even(mods):
    C, _ = mods
    assert C.median([3.0, 1.0, 2.0]) == 2.0
    assert C.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert C.median([7.0]) == 7.0
    with pytest.raises(ValueError):
        C.median([])


def test_quantile_linear_like_numpy(mods):
    C, _ = mods
    v = [10.0, 1.0, 4.0, 2.0, 3.0]          # sorted: 1 2 3 4 10
    assert C.quantile(v, 0.0) == 1.0
    assert C.quantile(v, 1.0) == 10.0
    assert C.quantile(v, 0.25) == 2.0
    assert C.quantile(v, 0.75) == 4.0
    assert C.quantile([1.0, 2.0, 3.0, 4.0], 0.25) == 1.75     # position 0.75
    assert C.quantile([5.0], 0.5) == 5.0


def test_round_stats(mods):
    C, _ = mods
    st = C.round_stats([2, 9, 1, 4, 3])
    assert st == {"median": 3.0, "min": 1.0, "max": 9.0, "q1": 2.0, "q3": 4.0, "n": 5,
                  "rounds": [2.0, 9.0, 1.0, 4.0, 3.0]}


def test_paired_ratios(mods):
    C, _ = mods
    assert C.paired_ratios([2.0, 6.0], [1.0, 4.0]) == [2.0, 1.5]
    assert C.paired_ratios([2.0], [4.0], scale=3.0) == [1.5]
    with pytest.raises(ValueError):
        C.paired_ratios([1.0, 2.0], [1.0])


def test_interleaved_rounds_order_and_recording(mods):
    C, _ = mods
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = C.interleaved_rounds(fns, 3)
    assert calls == ["a", "b"] * 3
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())
    calls.clear()
    with C.record_rounds() as log:
        best = C.best_of_interleaved(fns, 2)
        C.best_of_interleaved({"c": lambda: None}, 4)
    C.best_of_interleaved(fns, 1)                       # after the block: not recorded
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert [sorted(entry) for entry in log] == [["a", "b"], ["c"]]
    assert [len(entry["c"]) for entry in log[1:]] == [4]
    assert best == {k: min(v) for k, v in log[0].items()}
    assert C._RECORDERS == []


def test_put_rounds_and_summary_keys(mods):
    _, R = mods
    d = R.put_rounds({}, "ratio", [3.0, 1.0, 2.0])
    assert d["ratio"] == 2.0 and d["ratio_spread"] == [1.0, 3.0]
    assert d["stats"]["ratio"]["rounds"] == [3.0, 1.0, 2.0]
    doc = R.summary({"scaling": {"scaling_2_ranks": 1.8, "scaling_2_ranks_spread": [1.6, 1.9],
                                 "ptycho_scaling_2_ranks_link": 1.5,
                                 "ptycho_scaling_2_ranks_link_spread": [1.4, 1.7]},
                     "memory": {"rss_per_rank_mb_1k": 77.0}})
    assert list(doc) == [k for key in R.KEYS for k in (key, key + "_spread")]
    assert doc["scaling_2_ranks"] == 1.8 and doc["scaling_2_ranks_spread"] == [1.6, 1.9]
    assert doc["rss_per_rank_mb_1k"] == 77.0 and doc["rss_per_rank_mb_1k_spread"] is None
    assert doc["integrate_ms_per_frame_eiger1m_500x180"] is None
    for key in ("ptycho_scaling_2_ranks_append", "ptycho_scaling_2_ranks_link",
                "ptycho_scaling_2_ranks_uncompressed", "integrate_ms_per_frame_eiger1m_500x180",
                "integrate_vs_pyfai_csr", "ptycho_vs_read_limit", "eiger_crop_read_vs_h5py"):
        assert key in R.KEYS


def test_table_met_by_median(mods):
    _, R = mods
    case = {"frames": 100, "fps_1": 1.0, "fps_2": 2.0}
    results = {"scaling": {"cases": {
        # one lucky round above the target does not make it met, one unlucky one no miss
        "bslz4": dict(case, speedup=1.65, speedup_spread=[1.5, 1.9]),
        "ptycho_uncompressed": dict(case, speedup=1.55, speedup_spread=[1.2, 1.6]),
        "bslz4_h5py": dict(case, speedup=1.9, speedup_spread=[1.8, 2.0])}}}
    rows = {r[0]: r for r in R.table(results)}
    assert rows["2 ranks vs 1, bslz4"][4] is False
    assert rows["2 ranks vs 1, ptycho uncompressed raw, append"][4] is True
    assert rows["2 ranks vs 1, bslz4_h5py (info)"][4] is None
    assert rows["2 ranks vs 1, bslz4"][2] == [1.5, 1.9]
