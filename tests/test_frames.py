"""Tests of ptyprep.ptycho.frames: pure numpy frame operations with exact answers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ptyprep.ptycho import frames as F
from ptyprep.ptycho.frames import (center_of_mass, clip_window, correct, crop_pad, crop_window, flat_valid, orient, orient_center, pad_to_window, parse_orientation, rebin, round_center, threshold_valid)

DTYPES = [np.uint16, np.uint32, np.int32, np.float32]
CODES = range(8)

# Inverse of each orientation code.  Without a transpose every code is its own
# inverse; with one, T·ud and T·lr undo each other ((T·ud)^-1 = ud·T = T·lr).
INVERSE = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 5, 7: 7}

PROPERTY = settings(max_examples=50, deadline=None)


def stack(n, h, w, dtype, start=0):
    return (np.arange(n * h * w) + start).reshape(n, h, w).astype(dtype)


# --------------------------------------------------------------------------- correct


@pytest.mark.parametrize("dtype", DTYPES)
def test_correct_without_dark_or_flat_returns_the_input_itself(dtype):
    frames = stack(2, 3, 4, dtype)
    assert correct(frames) is frames


@pytest.mark.parametrize("dtype", DTYPES)
def test_correct_dark_is_subtracted_and_clipped_at_zero(dtype):
    frames = stack(1, 3, 4, dtype)  # 0..11
    dark = np.full((3, 4), 5, dtype=dtype)
    out = correct(frames, dark=dark)
    assert out.dtype == np.float32
    expected = np.array([[[0, 0, 0, 0], [0, 0, 1, 2], [3, 4, 5, 6]]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)  # uint: no wrap-around to 65531
    np.testing.assert_array_equal(frames, stack(1, 3, 4, dtype))  # input untouched


@pytest.mark.parametrize("dtype", DTYPES)
def test_correct_flat_divides_and_zeroes_non_positive_gain(dtype):
    frames = stack(2, 2, 3, dtype, start=1)  # 1..12
    flat = np.array([[2.0, 0.0, -1.0], [4.0, 0.5, np.nan]])
    out = correct(frames, flat=flat)
    expected = np.array([[[1 / 2, 0, 0], [4 / 4, 5 / 0.5, 0]],
                         [[7 / 2, 0, 0], [10 / 4, 11 / 0.5, 0]]], dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_correct_dark_then_flat(dtype):
    frames = stack(1, 2, 2, dtype, start=10)  # 10, 11, 12, 13
    dark = np.array([[4, 20], [2, 1]], dtype=dtype)
    flat = np.array([[2.0, 2.0], [0.0, 4.0]])
    out = correct(frames, dark=dark, flat=flat)
    np.testing.assert_array_equal(out, np.array([[[3.0, 0.0], [0.0, 3.0]]], dtype=np.float32))


def test_flat_valid():
    flat = np.array([2.0, 0.0, -1.0, np.nan, np.inf, 1e-9])
    np.testing.assert_array_equal(flat_valid(flat), [True, False, False, False, False, True])


# --------------------------------------------------------------------------- threshold


@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold_valid_masks_pixels_at_or_above_saturation(dtype):
    frames = stack(2, 2, 3, dtype)  # 0..11
    valid = threshold_valid(frames, saturation=7)
    assert valid.dtype == bool and valid.shape == (2, 2, 3)
    np.testing.assert_array_equal(valid.ravel(), np.arange(12) < 7)
    assert valid[1, 0, 0] and not valid[1, 0, 1]  # 6 valid, 7 (== saturation) invalid


@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold_valid_zero_means_no_mask(dtype):
    assert threshold_valid(stack(1, 2, 2, dtype), saturation=0) is None


# --------------------------------------------------------------------------- centre and window


@pytest.mark.parametrize("center, expected", [
    ((2.5, 3.5), (2, 4)),
    ((0.5, 1.5), (0, 2)),
    ((-0.5, -1.5), (0, -2)),
    ((4.6, 5.2), (5, 5)),
    ((108.94, 79.01), (109, 79)),
    ((7, 3), (7, 3)),
])
def test_round_center_is_half_to_even(center, expected):
    got = round_center(center)
    assert got == expected
    assert all(type(v) is int for v in got)


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("c", [0, 3, 10])
def test_crop_window_rows_follow_ptypy(n, c):
    r0, r1, c0, c1 = crop_window((c, c + 1), (n, n))
    assert r0 == c - n // 2
    assert r1 - 1 == c + (n + 1) // 2 - 1  # last row, inclusive
    assert (c0, c1) == (c + 1 - n // 2, c + 1 + (n + 1) // 2)
    assert r1 - r0 == n


def test_crop_window_explicit_values():
    assert crop_window((5, 5), (6, 6)) == (2, 8, 2, 8)
    assert crop_window((5, 5), (5, 5)) == (3, 8, 3, 8)
    assert crop_window((2.5, 3.5), (4, 3)) == (0, 4, 3, 6)  # centre rounds to (2, 4)
    assert crop_window((0, 0), (4, 4)) == (-2, 2, -2, 2)


@pytest.mark.parametrize("window, frame_shape, expected", [
    ((2, 8, 2, 8), (9, 11), (2, 8, 2, 8)),
    ((-2, 4, 3, 9), (5, 7), (0, 4, 3, 7)),
    ((-3, 10, -1, 12), (5, 7), (0, 5, 0, 7)),
    ((5, 8, 0, 3), (5, 7), None),   # starts at the last row + 1
    ((-4, 0, 0, 3), (5, 7), None),  # ends at row 0 (half-open)
    ((0, 3, 7, 9), (5, 7), None),
    ((-10, -5, -10, -5), (5, 7), None),
])
def test_clip_window(window, frame_shape, expected):
    assert clip_window(window, frame_shape) == expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("valid_ndim", [2, 3])
def test_pad_to_window_places_roi_and_invalidates_outside(dtype, valid_ndim):
    window = (-1, 3, 2, 6)  # 4 x 4
    roi = (0, 3, 2, 5)      # rows 0..2, cols 2..4 of the raw frame
    frames = stack(2, 3, 3, dtype, start=1)
    valid = np.ones((2, 3, 3) if valid_ndim == 3 else (3, 3), dtype=bool)
    valid[..., 1, 1] = False
    out, vout = pad_to_window(frames, valid, window, roi)
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 4, 4)
    assert vout.shape == ((2, 4, 4) if valid_ndim == 3 else (4, 4))
    expected = np.zeros((2, 4, 4), dtype=dtype)
    expected[:, 1:4, 0:3] = frames
    np.testing.assert_array_equal(out, expected)
    expected_valid = np.zeros((4, 4), dtype=bool)
    expected_valid[1:4, 0:3] = True
    expected_valid[2, 1] = False
    np.testing.assert_array_equal(vout, np.broadcast_to(expected_valid, vout.shape))


def reference_crop(frames, valid, center, shape):
    """Element by element crop/pad, written independently of the module."""
    c = (round(float(center[0])), round(float(center[1])))
    n, h, w = frames.shape
    out = np.zeros((n,) + tuple(shape), dtype=frames.dtype)
    vout = np.zeros(valid.shape[:-2] + tuple(shape), dtype=bool)
    for i in range(shape[0]):
        for j in range(shape[1]):
            r, q = c[0] - shape[0] // 2 + i, c[1] - shape[1] // 2 + j
            if 0 <= r < h and 0 <= q < w:
                out[:, i, j] = frames[:, r, q]
                vout[..., i, j] = valid[..., r, q]
    return out, vout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 5), (3, 6), (7, 2), (12, 13)])
@pytest.mark.parametrize("center", [
    (4.6, 5.2),   # inside
    (0, 0),       # top-left corner
    (8, 10),      # bottom-right corner
    (0.4, 9.6),   # near the top-right corner
    (8.5, 0.5),   # rounds to (8, 0)
    (-1.2, 5),    # just above the frame
    (4, 11.4),    # just right of the frame
])
@pytest.mark.parametrize("valid_ndim", [2, 3])
def test_crop_pad_matches_elementwise_reference(dtype, shape, center, valid_ndim):
    frames = stack(2, 9, 11, dtype, start=1)  # no zero inside the raw frame
    rng = np.random.default_rng(0)
    valid = rng.random((2, 9, 11) if valid_ndim == 3 else (9, 11)) > 0.2
    out, vout = crop_pad(frames, valid, center, shape)
    ref, vref = reference_crop(frames, valid, center, shape)
    assert out.shape == (2,) + shape and out.dtype == np.dtype(dtype)
    assert vout.shape == vref.shape and vout.dtype == bool
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(vout, vref)


def test_crop_pad_explicit_padding():
    frames = stack(1, 3, 3, np.uint16, start=1)  # [[1,2,3],[4,5,6],[7,8,9]]
    valid = np.ones((3, 3), dtype=bool)
    out, vout = crop_pad(frames, valid, (0, 2), (3, 4))  # window rows -1..1, cols 0..3
    np.testing.assert_array_equal(out[0], [[0, 0, 0, 0], [1, 2, 3, 0], [4, 5, 6, 0]])
    np.testing.assert_array_equal(vout, [[False] * 4, [True] * 3 + [False], [True] * 3 + [False]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("center", [(-20, 3), (3, -20), (40, 40), (-5.6, -5.6), (12, 5)])
def test_crop_pad_centre_completely_outside_gives_all_invalid(dtype, center):
    frames = stack(2, 5, 6, dtype, start=1)
    valid = np.ones((5, 6), dtype=bool)
    out, vout = crop_pad(frames, valid, center, (4, 4))
    assert out.shape == (2, 4, 4) and out.dtype == np.dtype(dtype)
    assert not out.any()
    assert vout.shape == (4, 4) and not vout.any()


def test_crop_pad_lands_centre_on_half_shape():
    frames = np.zeros((1, 9, 11), dtype=np.uint32)
    frames[0, 5, 5] = 7  # round((4.6, 5.2)) == (5, 5)
    out, vout = crop_pad(frames, np.ones((9, 11), bool), (4.6, 5.2), (6, 6))
    assert out[0, 3, 3] == 7 and out.sum() == 7 and vout.all()


# --------------------------------------------------------------------------- orientation

PROBE = np.arange(6).reshape(2, 3)  # [[0, 1, 2], [3, 4, 5]]
ORIENTED = {
    0: [[0, 1, 2], [3, 4, 5]],
    1: [[2, 1, 0], [5, 4, 3]],          # fliplr
    2: [[3, 4, 5], [0, 1, 2]],          # flipud
    3: [[5, 4, 3], [2, 1, 0]],          # flipud, fliplr
    4: [[0, 3], [1, 4], [2, 5]],        # transpose
    5: [[3, 0], [4, 1], [5, 2]],        # transpose, fliplr
    6: [[2, 5], [1, 4], [0, 3]],        # transpose, flipud
    7: [[5, 2], [4, 1], [3, 0]],        # transpose, flipud, fliplr
}


@pytest.mark.parametrize("code", CODES)
def test_orient_explicit_values(code):
    np.testing.assert_array_equal(orient(PROBE, code), ORIENTED[code])


def explicit_orient(frames, code):
    out = []
    for f in frames:
        if code & 4:
            f = f.T
        if code & 2:
            f = np.flipud(f)
        if code & 1:
            f = np.fliplr(f)
        out.append(f)
    return np.array(out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("hw", [(3, 5), (4, 4), (1, 6)])
def test_orient_stack_matches_numpy_per_frame(dtype, code, hw):
    frames = stack(3, *hw, dtype)
    out = orient(frames, code)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, explicit_orient(frames, code))


@pytest.mark.parametrize("code", CODES)
def test_orient_triple_form_equals_code(code):
    frames = stack(2, 3, 5, np.int32)
    triple = (bool(code & 4), bool(code & 2), bool(code & 1))
    assert parse_orientation(code) == triple
    np.testing.assert_array_equal(orient(frames, triple), orient(frames, code))
    np.testing.assert_array_equal(orient(frames, [int(t) for t in triple]), orient(frames, code))


def test_parse_orientation_values():
    assert parse_orientation(5) == (True, False, True)
    assert parse_orientation(np.int64(6)) == (True, True, False)
    assert parse_orientation([1, 0, 0]) == (True, False, False)
    assert parse_orientation((np.bool_(False), True, 0)) == (False, True, False)


@pytest.mark.parametrize("bad, match", [
    (8, "out of range"),
    (-1, "out of range"),
    (True, "got True"),
    ([1, 0], r"got \[1, 0\]"),
    ("x", "got 'x'"),
    ([2, 0, 0], r"got \[2, 0, 0\]"),
    ([1.0, 0, 0], "triple"),
])
def test_parse_orientation_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_orientation(bad)


@pytest.mark.parametrize("bad", [2.5, None])
def test_parse_orientation_non_integer_scalar_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="orientation"):
        parse_orientation(bad)


def test_orient_center_explicit_values():
    shape = (5, 7)
    center = (1, 2)
    assert orient_center(center, shape, 0) == ((1, 2), (5, 7))
    assert orient_center(center, shape, 1) == ((1, 4), (5, 7))
    assert orient_center(center, shape, 2) == ((3, 2), (5, 7))
    assert orient_center(center, shape, 3) == ((3, 4), (5, 7))
    assert orient_center(center, shape, 4) == ((2, 1), (7, 5))
    assert orient_center(center, shape, 5) == ((2, 3), (7, 5))
    assert orient_center(center, shape, 6) == ((4, 1), (7, 5))
    assert orient_center(center, shape, 7) == ((4, 3), (7, 5))


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("shape", [(5, 7), (6, 6), (1, 4), (8, 3)])
def test_orient_center_follows_a_bright_pixel(code, shape):
    for cy in range(shape[0]):
        for cx in range(shape[1]):
            frames = np.zeros((2,) + shape, dtype=np.uint16)
            frames[:, cy, cx] = 9
            out = orient(frames, code)
            (oy, ox), oshape = orient_center((cy, cx), shape, code)
            assert out.shape[1:] == oshape
            assert out[0, oy, ox] == 9 and out[1, oy, ox] == 9 and out.sum() == 18


@pytest.mark.parametrize("code", CODES)
def test_orientation_inverse_codes(code):
    probe = stack(1, 2, 3, np.int32)
    inverses = [v for v in CODES if orient(orient(probe, code), v).shape == probe.shape
                and np.array_equal(orient(orient(probe, code), v), probe)]
    assert inverses == [INVERSE[code]]


@PROPERTY
@given(frames=hnp.arrays(np.int32, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6)),
       code=st.integers(0, 7))
def test_property_orient_round_trips(frames, code):
    back = orient(orient(frames, code), INVERSE[code])
    assert back.shape == frames.shape
    np.testing.assert_array_equal(back, frames)
    (cy, cx), oshape = orient_center((1.25, 2.5), frames.shape[1:], code)
    assert orient_center((cy, cx), oshape, INVERSE[code]) == ((1.25, 2.5), frames.shape[1:])


# --------------------------------------------------------------------------- rebin


def reference_block_sum(frames, r):
    n, h, w = frames.shape
    out = np.zeros((n, h // r, w // r), dtype=object)
    for k in range(n):
        for i in range(h // r):
            for j in range(w // r):
                out[k, i, j] = sum(int(v) for v in frames[k, i * r:(i + 1) * r, j * r:(j + 1) * r].ravel())
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, h, w, r", [(1, 2, 2, 2), (2, 4, 6, 2), (3, 6, 6, 3), (1, 8, 4, 4)])
def test_rebin_sum_exact(dtype, n, h, w, r):
    frames = stack(n, h, w, dtype)
    valid = np.ones((h, w), dtype=bool)
    out, vout = rebin(frames, valid, r, mode="sum")
    assert out.shape == (n, h // r, w // r) and vout.shape == (h // r, w // r)
    np.testing.assert_array_equal(out.astype(np.int64), reference_block_sum(frames, r).astype(np.int64))
    assert int(out.sum()) == int(frames.astype(np.int64).sum())  # counts kept
    assert vout.all()


def test_rebin_sum_small_explicit():
    frames = np.arange(16, dtype=np.uint16).reshape(1, 4, 4)
    out, _ = rebin(frames, np.ones((4, 4), bool), 2)
    np.testing.assert_array_equal(out[0], [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int16, np.int32])
@pytest.mark.parametrize("r", [2, 3])
def test_rebin_sum_in_the_frames_type_only_when_no_block_sum_can_overflow(dtype, r, monkeypatch):
    """Block sums that fit the frames' type are added in it: exact at the limit, and one
    count above the limit takes the 64-bit path (both equal to the exact sum)."""
    info = np.iinfo(dtype)
    n = r * r
    used = []
    real = F._block_reduce
    monkeypatch.setattr(F, "_block_reduce", lambda a, f, u, d=None: used.append(d) or real(a, f, u, d))
    limits = [info.max // n] + ([-(-info.min // n)] if info.min < 0 else [])
    for limit in limits:
        for over in (0, 1 if limit > 0 else -1):
            frames = np.full((2, 2 * r, 2 * r), limit + over, dtype=dtype)
            frames[1, 0, 0] = 1
            used.clear()
            out, _ = rebin(frames, np.ones((2 * r, 2 * r), bool), r)
            assert out.dtype.itemsize == 8 and out.dtype.kind == np.dtype(dtype).kind
            np.testing.assert_array_equal(out.astype(object), reference_block_sum(frames, r))
            # the values block (first call reduces the valid mask)
            assert (used[-1] is None) == (over == 0)


@pytest.mark.parametrize("dtype, top, acc_kind", [
    (np.uint16, 65535, "u"),
    (np.uint32, 2**32 - 1, "u"),
    (np.int32, 2**31 - 1, "i"),
])
def test_rebin_sum_promotes_integers_so_it_cannot_overflow(dtype, top, acc_kind):
    frames = np.full((2, 4, 4), top, dtype=dtype)
    out, _ = rebin(frames, np.ones((4, 4), bool), 2)
    assert out.dtype.kind == acc_kind and out.dtype.itemsize == 8
    assert (out == 4 * top).all()
    assert int(out[0, 0, 0]) == 4 * top  # 262140 for uint16, not 65532


def test_rebin_sum_float32_stays_float32():
    frames = np.full((1, 4, 4), 0.5, dtype=np.float32)
    out, _ = rebin(frames, np.ones((4, 4), bool), 2)
    assert out.dtype == np.float32 and (out == 2.0).all()


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_rebin_valid_2d_only_if_all_block_pixels_valid(mode):
    frames = stack(2, 4, 6, np.uint16)
    valid = np.ones((4, 6), dtype=bool)
    valid[0, 1] = False  # block (0, 0)
    valid[3, 5] = False  # block (1, 2)
    _, vout = rebin(frames, valid, 2, mode=mode)
    np.testing.assert_array_equal(vout, [[False, True, True], [True, True, False]])


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_rebin_valid_3d_per_frame(mode):
    frames = stack(2, 4, 4, np.float32)
    valid = np.ones((2, 4, 4), dtype=bool)
    valid[0, 3, 0] = False  # frame 0, block (1, 0)
    valid[1, 0, 3] = False  # frame 1, block (0, 1)
    _, vout = rebin(frames, valid, 2, mode=mode)
    assert vout.shape == (2, 2, 2)
    np.testing.assert_array_equal(vout[0], [[True, True], [False, True]])
    np.testing.assert_array_equal(vout[1], [[True, False], [True, True]])


@pytest.mark.parametrize("dtype", DTYPES + [np.float64])
@pytest.mark.parametrize("n, h, w, r", [(1, 4, 4, 2), (3, 6, 9, 3), (2, 8, 8, 4)])
def test_rebin_mean_is_ptypy_bit_for_bit(dtype, n, h, w, r):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        a = (rng.random((n, h, w)) * 1000).astype(dtype)
    else:
        a = rng.integers(0, 60000, (n, h, w)).astype(dtype)
    out, _ = rebin(a, np.ones((h, w), bool), r, mode="mean")
    ptypy = a.reshape(n, h // r, r, w // r, r).mean(-1).mean(-2)
    assert out.dtype == ptypy.dtype
    assert out.tobytes() == ptypy.tobytes()


def test_rebin_mean_small_explicit():
    frames = np.arange(8, dtype=np.uint16).reshape(2, 2, 2)
    out, _ = rebin(frames, np.ones((2, 2), bool), 2, mode="mean")
    np.testing.assert_array_equal(out, [[[1.5]], [[5.5]]])


def test_rebin_factor_one_is_identity():
    frames = stack(1, 3, 5, np.uint16)
    valid = np.ones((3, 5), bool)
    out, vout = rebin(frames, valid, 1)
    np.testing.assert_array_equal(out, frames)
    np.testing.assert_array_equal(vout, valid)


def test_rebin_non_divisible_factor_error_message():
    with pytest.raises(ValueError, match=r"frame shape \(5, 6\) is not divisible by rebin=2; "
                                         r"choose a divisor or change prep\.shape"):
        rebin(stack(1, 5, 6, np.uint16), np.ones((5, 6), bool), 2)
    with pytest.raises(ValueError, match=r"\(6, 4\) is not divisible by rebin=3"):
        rebin(stack(1, 6, 4, np.uint16), np.ones((6, 4), bool), 3)


def test_rebin_bad_mode():
    with pytest.raises(ValueError, match="'max'"):
        rebin(stack(1, 2, 2, np.uint16), np.ones((2, 2), bool), 2, mode="max")


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(DTYPES), r=st.integers(1, 4),
       n=st.integers(1, 3), bh=st.integers(1, 4), bw=st.integers(1, 4))
def test_property_rebin_sum_keeps_counts(data, dtype, r, n, bh, bw):
    top = 1000 if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max
    elements = st.integers(0, int(top))
    frames = data.draw(hnp.arrays(dtype, (n, bh * r, bw * r), elements=elements))
    valid = np.ones((bh * r, bw * r), dtype=bool)
    out, vout = rebin(frames, valid, r, mode="sum")
    assert out.shape == (n, bh, bw) and vout.all()
    if np.dtype(dtype).kind == "f":  # integer-valued floats < 2**24: sums are exact
        assert out.sum(dtype=np.float64) == frames.sum(dtype=np.float64)
    else:
        assert int(out.astype(object).sum()) == int(frames.astype(object).sum())


# --------------------------------------------------------------------------- centre of mass


@pytest.mark.parametrize("dtype", DTYPES)
def test_center_of_mass_two_pixels(dtype):
    frames = np.zeros((1, 4, 5), dtype=dtype)
    frames[0, 1, 2] = 1
    frames[0, 3, 0] = 3
    com = center_of_mass(frames, np.ones((4, 5), bool))
    assert com.shape == (1, 2) and com.dtype == np.float64
    np.testing.assert_array_equal(com, [[(1 * 1 + 3 * 3) / 4, (2 * 1 + 0 * 3) / 4]])  # (2.5, 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("valid_ndim", [2, 3])
def test_center_of_mass_ignores_invalid_pixels(dtype, valid_ndim):
    frames = np.zeros((2, 4, 5), dtype=dtype)
    frames[:, 1, 2] = 1
    frames[:, 3, 0] = 3
    frames[:, 0, 4] = 60000 if dtype != np.int32 else 2**30  # hot pixel, masked
    valid = np.ones((4, 5) if valid_ndim == 2 else (2, 4, 5), dtype=bool)
    valid[..., 0, 4] = False
    np.testing.assert_array_equal(center_of_mass(frames, valid), [[2.5, 0.5], [2.5, 0.5]])


def test_center_of_mass_zero_frame_is_nan():
    frames = np.zeros((2, 3, 3), dtype=np.uint16)
    frames[1, 2, 1] = 5
    com = center_of_mass(frames, np.ones((3, 3), bool))
    assert np.isnan(com[0]).all()
    np.testing.assert_array_equal(com[1], [2.0, 1.0])
    masked = center_of_mass(frames, np.zeros((3, 3), bool))  # all pixels invalid
    assert np.isnan(masked).all()


# --------------------------------------------------------------------------- crop -> orient -> rebin


def test_centre_through_crop_orient_rebin():
    raw = np.zeros((1, 9, 11), dtype=np.uint16)
    raw[0, 5, 5] = 1  # the pixel under the centre (4.6, 5.2)
    valid = np.ones((9, 11), dtype=bool)
    n, code, r = 6, 2, 2

    assert round_center((4.6, 5.2)) == (5, 5)
    cropped, cvalid = crop_pad(raw, valid, (4.6, 5.2), (n, n))
    center = (n // 2, n // 2)
    assert center == (3, 3)
    assert cropped[0, 3, 3] == 1 and cropped.sum() == 1

    center, shape = orient_center(center, (n, n), code)
    assert (center, shape) == ((2, 3), (6, 6))
    oriented = orient(cropped, code)
    assert oriented[0, 2, 3] == 1

    binned, bvalid = rebin(oriented, orient(cvalid, code), r)
    meta_center = (center[0] / r, center[1] / r)
    assert meta_center == (1.0, 1.5)
    assert binned.shape == (1, 3, 3) and bvalid.all()
    assert binned[0, 1, 1] == 1 and binned.sum() == 1


# --------------------------------------------------------------------------- crop/pad property


@PROPERTY
@given(h=st.integers(1, 10), w=st.integers(1, 10),
       n0=st.integers(1, 9), n1=st.integers(1, 9),
       cy=st.floats(-4, 14, allow_nan=False), cx=st.floats(-4, 14, allow_nan=False))
def test_property_crop_pad_keeps_the_centre(h, w, n0, n1, cy, cx):
    ry, rx = round(cy), round(cx)  # Python's round is half to even too
    frames = np.zeros((1, h, w), dtype=np.uint16)
    inside = 0 <= ry < h and 0 <= rx < w
    if inside:
        frames[0, ry, rx] = 1
    out, vout = crop_pad(frames, np.ones((h, w), bool), (cy, cx), (n0, n1))
    assert out.shape == (1, n0, n1) and vout.shape == (n0, n1)
    if inside:
        assert out[0, n0 // 2, n1 // 2] == 1 and out.sum() == 1 and vout[n0 // 2, n1 // 2]
    else:
        assert not vout[n0 // 2, n1 // 2]
    # valid pixels are exactly the window pixels inside the raw frame
    rows = ry - n0 // 2 + np.arange(n0)
    cols = rx - n1 // 2 + np.arange(n1)
    expected = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    np.testing.assert_array_equal(vout, expected)


# ---------------------------------------------------------- rebin fast path (strided adds)


def _reshape_sum(frames, r, acc):
    """The former implementation: reshape + sum over the two block axes."""
    n, h, w = frames.shape
    return frames.reshape(n, h // r, r, w // r, r).sum(axis=(-3, -1), dtype=acc)


@pytest.mark.parametrize("dtype, acc", [
    (np.uint8, np.uint64), (np.uint16, np.uint64), (np.uint32, np.uint64), (np.uint64, np.uint64),
    (np.int8, np.int64), (np.int16, np.int64), (np.int32, np.int64), (np.int64, np.int64),
    (np.bool_, np.int64),
])
@pytest.mark.parametrize("r", [2, 3, 4, 5, 8])
def test_rebin_sum_strided_adds_bit_identical_to_reshape_sum(dtype, acc, r):
    rng = np.random.default_rng(r)
    h, w = 8 * r, 5 * r
    if dtype == np.bool_:
        frames = rng.random((3, h, w)) > 0.5
    else:
        info = np.iinfo(dtype)
        frames = rng.integers(info.min, info.max, (3, h, w), dtype=dtype, endpoint=True)
    # a non-contiguous input (a crop of a larger stack) takes the same path
    frames = np.ascontiguousarray(frames)
    view = np.pad(frames, ((0, 0), (1, 1), (2, 2)))[:, 1:-1, 2:-2]
    for f in (frames, view):
        out, _ = rebin(f, np.ones((h, w), bool), r)
        expected = _reshape_sum(frames, r, acc)
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rebin_sum_float_keeps_numpy_reduction_order(dtype):
    frames = np.random.default_rng(0).random((2, 12, 12)).astype(dtype) * 1e7
    out, _ = rebin(frames, np.ones((12, 12), bool), 3)
    expected = _reshape_sum(frames, 3, dtype)
    assert out.dtype == dtype
    assert out.tobytes() == expected.tobytes()  # not merely close: the same floats


@pytest.mark.parametrize("r", [2, 3, 4])
@pytest.mark.parametrize("ndim", [2, 3])
def test_rebin_valid_fast_path_equals_block_all(r, ndim):
    rng = np.random.default_rng(10 + r)
    shape = (4 * r, 3 * r) if ndim == 2 else (3, 4 * r, 3 * r)
    valid = rng.random(shape) > 0.1
    frames = np.ones((3, 4 * r, 3 * r), np.uint32)
    h, w = shape[-2:]
    expected = valid.reshape(shape[:-2] + (h // r, r, w // r, r)).all(axis=(-3, -1))
    for mode in ("sum", "mean"):
        _, vout = rebin(frames, valid, r, mode=mode)
        assert vout.dtype == np.bool_
        np.testing.assert_array_equal(vout, expected)


def test_rebin_mean_still_equals_ptypy_mean_of_means():
    frames = np.random.default_rng(1).integers(0, 1000, (2, 8, 8)).astype(np.uint32)
    out, _ = rebin(frames, np.ones((8, 8), bool), 2, mode="mean")
    expected = frames.reshape(2, 4, 2, 4, 2).mean(-1).mean(-2)
    assert out.tobytes() == expected.tobytes()
