"""Tests of ptyprep.engine.shares: ptypy's balancing rule, as pure index arithmetic."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptyprep.engine.shares import LoadManager, share_counts

PROPERTY = settings(max_examples=50, deadline=None)


def shares_as_lists(lm, indices):
    return [s.tolist() for s in lm.split(indices)]


def test_spec_example_size_2_chunks_of_7():
    lm = LoadManager(2)
    assert shares_as_lists(lm, range(0, 7)) == [[0, 1, 2], [3, 4, 5, 6]]
    assert shares_as_lists(lm, range(7, 14)) == [[7, 8, 9, 10], [11, 12, 13]]
    assert shares_as_lists(lm, range(14, 21)) == [[14, 15, 16], [17, 18, 19, 20]]
    assert lm.load.tolist() == [10, 11]


def test_spec_example_size_4_chunks_10_3_1_1():
    lm = LoadManager(4)
    assert shares_as_lists(lm, range(0, 10)) == [[0, 1], [2, 3], [4, 5, 6], [7, 8, 9]]
    assert lm.load.tolist() == [2, 2, 3, 3]
    assert shares_as_lists(lm, range(10, 13)) == [[10], [11], [], [12]]
    assert lm.load.tolist() == [3, 3, 3, 4]
    assert shares_as_lists(lm, [13]) == [[], [], [13], []]
    assert lm.load.tolist() == [3, 3, 4, 4]
    assert shares_as_lists(lm, [14]) == [[], [14], [], []]
    assert lm.load.tolist() == [3, 4, 4, 4]


def test_remainder_goes_to_the_last_eligible_ranks():
    assert share_counts(np.zeros(3, np.int64), 4).tolist() == [1, 1, 2]
    assert share_counts(np.zeros(4, np.int64), 6).tolist() == [1, 1, 2, 2]
    assert share_counts(np.zeros(4, np.int64), 7).tolist() == [1, 2, 2, 2]
    # ranks already ahead are not eligible
    assert share_counts(np.array([1, 1, 0, 0]), 1).tolist() == [0, 0, 0, 1]
    assert share_counts(np.array([1, 1, 0, 0]), 2).tolist() == [0, 0, 1, 1]


def test_counts_updates_the_load():
    lm = LoadManager(3)
    assert lm.counts(5).tolist() == [1, 2, 2]
    # load (1, 2, 2), chunk of 2: all eligible, shares 4//3, 1//3, 1//3 = (1, 0, 0),
    # remainder (1 + 1 + 1) // 3 = 1 goes to the last rank
    assert lm.counts(2).tolist() == [1, 0, 1]
    assert lm.load.tolist() == [2, 2, 3]


def test_size_one_gets_everything():
    lm = LoadManager(1)
    for chunk in (range(0, 5), range(5, 6), range(6, 6), range(6, 30)):
        shares = lm.split(chunk)
        assert len(shares) == 1 and shares[0].tolist() == list(chunk)
    assert lm.load.tolist() == [30]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_empty_chunk_gives_empty_shares_and_keeps_the_load(size):
    lm = LoadManager(size)
    lm.split(range(7))
    before = lm.load.copy()
    shares = lm.split([])
    assert len(shares) == size
    assert all(s.size == 0 and s.dtype == np.int64 for s in shares)
    np.testing.assert_array_equal(lm.load, before)
    assert share_counts(before, 0).tolist() == [0] * size


@pytest.mark.parametrize("size", [0, -1])
def test_size_must_be_positive(size):
    with pytest.raises(ValueError, match=f"size must be >= 1, got {size}"):
        LoadManager(size)


def test_shares_keep_the_given_index_values_and_are_int64():
    lm = LoadManager(3)
    indices = [100, 103, 7, 42, 8]  # not a range: values travel unchanged, order kept
    shares = lm.split(indices)
    assert [s.tolist() for s in shares] == [[100], [103, 7], [42, 8]]
    assert all(s.dtype == np.int64 for s in shares)


@pytest.mark.parametrize("size", range(1, 6))
def test_balanced_loads_never_give_negative_counts(size):
    # Every load LoadManager can reach has max - min <= 1; check them all.
    for base in (0, 3):
        for extra in itertools.product((0, 1), repeat=size):
            load = np.array(extra) + base
            for n in range(0, 3 * size + 2):
                counts = share_counts(load, n)
                assert counts.sum() == n
                assert (counts >= 0).all()
                new = load + counts
                assert new.max() - new.min() <= 1, (load.tolist(), n, counts.tolist())


@PROPERTY
@given(size=st.integers(1, 8), chunks=st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_property_shares_contiguous_covering_and_balanced(size, chunks):
    lm = LoadManager(size)
    start = 0
    received = np.zeros(size, dtype=np.int64)
    for n in chunks:
        indices = np.arange(start, start + n, dtype=np.int64)
        shares = lm.split(indices)
        assert len(shares) == size
        # contiguous blocks in rank order that cover the chunk exactly once
        np.testing.assert_array_equal(np.concatenate(shares), indices)
        for s in shares:
            assert s.size == 0 or (np.diff(s) == 1).all()
        received += [len(s) for s in shares]
        np.testing.assert_array_equal(lm.load, received)
        # cumulative load stays balanced after every chunk
        assert lm.load.max() - lm.load.min() <= 1
        assert lm.load.sum() == start + n
        start += n


# -- shares that follow the ranks' measured speed (append mode: rank 0 also writes)

def test_rate_shares_are_whole_granules_in_proportion_to_speed():
    from ptyprep.engine.shares import rate_share_counts

    assert rate_share_counts(64, np.array([600.0, 1000.0]), 8).tolist() == [24, 40]
    assert rate_share_counts(64, np.array([1.0, 1.0]), 8).tolist() == [32, 32]
    assert rate_share_counts(64, np.array([1.0, 2.0, 2.0]), 8).tolist() == [16, 24, 24]
    # a short last chunk: whole granules first, the rest to the last rank
    assert rate_share_counts(13, np.array([1.0, 1.0]), 8).tolist() == [8, 5]
    assert rate_share_counts(5, np.array([1.0, 1.0]), 8).tolist() == [0, 5]
    assert rate_share_counts(0, np.array([1.0, 1.0]), 8).tolist() == [0, 0]


@PROPERTY
@given(rates=st.lists(st.floats(0.1, 100.0), min_size=1, max_size=6), n=st.integers(0, 300),
       granule=st.sampled_from([1, 4, 8]))
def test_property_rate_shares_cover_the_chunk_and_start_on_granules(rates, n, granule):
    from ptyprep.engine.shares import rate_share_counts

    counts = rate_share_counts(n, np.array(rates), granule)
    assert counts.sum() == n and (counts >= 0).all()
    starts = np.cumsum(counts) - counts
    assert all(s % granule == 0 for s in starts)
    # no rank is more than one granule (plus the last rank's remainder) from its part
    want = n * np.array(rates) / sum(rates)
    assert (np.abs(counts[:-1] - want[:-1]) <= granule).all()


def test_observe_learns_speeds_and_only_with_a_granule():
    equal = LoadManager(2)
    equal.observe([32, 32], [1.0, 0.5])
    assert equal.rates is None and equal.counts(64).tolist() == [32, 32]    # ptypy's rule
    lm = LoadManager(2, granule=8)
    assert lm.counts(64).tolist() == [32, 32]              # nothing observed yet: ptypy's rule
    lm.observe([32, 32], [0.08, 0.048])                   # rank 0: 400 frames/s, rank 1: 667
    np.testing.assert_allclose(lm.rates, [400.0, 2000.0 / 3])
    assert lm.counts(64).tolist() == [24, 40]
    lm.observe([24, 40], [0.06, 0.06])                    # averaged with what was seen
    np.testing.assert_allclose(lm.rates, [(400 + 400) / 2, (2000 / 3 + 2000 / 3) / 2])
    lm.observe([0, 64], [0.01, 0.1])                       # an empty share teaches nothing
    np.testing.assert_allclose(lm.rates[0], 400.0)
    assert lm.load.tolist() == [56, 72]


def test_observe_fills_a_rank_not_seen_yet():
    lm = LoadManager(3, granule=4)
    lm.observe([8, 8, 0], [0.1, 0.05, 0.0])
    np.testing.assert_allclose(lm.rates, [80.0, 160.0, 120.0])
