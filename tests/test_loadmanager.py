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
