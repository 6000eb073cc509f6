"""Pre-compressed chunks (ptyprep.fast.chunkwrite): equal to HDF5's own filters, bit for bit."""

import sys
import textwrap
import time
import zlib

import h5py
import numpy as np
import pytest

import ptyprep
from ptyprep.fast import deflate as compression
from ptyprep.layout.filters import dataset_filters
from ptyprep.engine.comm import SerialComm
from ptyprep.ptycho.chunks import append_chunk_arrays, write_chunk_arrays
from ptyprep.ptycho.share import ChunkStream
from ptyprep.engine.stack import FrameStack
from ptyprep.fast import chunkwrite as cw
from ptyprep.fast import chunkdatasets as cd
from ptyprep.fast import shuffle as sh
from ptyprep.engine.shares import ChunkShare
from ptyprep.ptycho.writer import WRITERS, PartWriter
from ptyprep.sources.ptyd import read_ptyd

GZIP = dataset_filters("gzip")


def writer_of(path, meta, info, comm, save="append", compression="gzip"):
    """The .ptyd writer of save mode ``save``."""
    return WRITERS[save](path, meta, info, comm, compression=compression)


def write_share(writer, chunk, stack, counts):
    """Write chunk ``chunk``: a FrameStack or an iterable of consecutive parts."""
    parts = [stack] if isinstance(stack, FrameStack) else stack
    writer.write(None, ChunkShare(chunk, 0, int(np.sum(counts)), np.asarray(counts)), parts)


DTYPES = [np.uint8, np.uint16, np.uint32, np.int32, np.uint64, np.int64, np.float32, np.float64]
SHAPES = [(3, 37, 53), (1, 1, 1), (2, 1, 7), (4, 16, 16), (2, 5, 3)]


def frames_of(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 1e4).astype(dtype)
    info = np.iinfo(dtype)
    # photon-count-like values plus some extremes, so every byte of the type is exercised
    out = rng.poisson(3.0, shape).astype(dtype)
    out.reshape(-1)[::7] = info.max
    out.reshape(-1)[1::11] = info.min
    return out


def photon_frames(n=8, size=128, seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lam = 2000.0 / (1.0 + ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / 30.0 ** 2) ** 1.5 + 0.05
    return rng.poisson(lam, (n, size, size)).astype(np.uint32)


def write_direct(path, frames, filters=GZIP):
    with h5py.File(path, "w") as f:
        dset = cd.create_frame_dataset(f, "d", frames.shape, frames.dtype, filters)
        cd.write_encoded(dset, 0, cw.encode_frames(frames, cw.chunk_codec(filters)))


def write_h5py(path, frames, filters=GZIP):
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=frames, chunks=(1,) + frames.shape[1:], **filters)


def read(path):
    with h5py.File(path, "r") as f:
        return f["d"][()], f["d"].compression, f["d"].shuffle, f["d"].chunks


# --------------------------------------------------------------------------- shuffle


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 7, 8, 17, 1001])
def test_shuffle_is_hdf5_byte_transpose_and_simd_equals_numpy(dtype, n):
    x = frames_of(dtype, (n,), seed=n)
    size = x.dtype.itemsize
    raw = x.view(np.uint8)
    expected = np.array([raw[i * size + b] for b in range(size) for i in range(n)], np.uint8)
    np.testing.assert_array_equal(sh.shuffle_bytes(raw, size), expected)
    if size > 1:
        np.testing.assert_array_equal(sh.shuffle_frame(x), expected)
    np.testing.assert_array_equal(sh.unshuffle_bytes(expected, size), raw)


def test_numpy_shuffle_used_without_bitshuffle(monkeypatch):
    x = frames_of(np.uint32, (5, 9))
    with_simd = sh.shuffle_frame(x)
    monkeypatch.setattr(sh, "simd_byte_transpose", None)
    np.testing.assert_array_equal(sh.shuffle_frame(x), with_simd)


# --------------------------------------------------------------------------- chunks vs HDF5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_precompressed_gzip_shuffle_reads_back_bit_identical(tmp_path, dtype, shape):
    frames = frames_of(dtype, shape)
    write_direct(tmp_path / "direct.h5", frames)
    got, comp, shuffle, chunks = read(tmp_path / "direct.h5")
    assert (comp, shuffle, chunks) == ("gzip", True, (1,) + shape[1:])
    assert got.dtype == frames.dtype
    assert got.tobytes() == frames.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_file_equals_h5py_gzip_file(tmp_path, dtype):
    frames = frames_of(dtype, (3, 37, 53), seed=1)
    write_direct(tmp_path / "direct.h5", frames)
    write_h5py(tmp_path / "h5py.h5", frames)
    a, b = read(tmp_path / "direct.h5"), read(tmp_path / "h5py.h5")
    assert a[0].tobytes() == b[0].tobytes()
    assert a[1:] == b[1:]
    # each stored chunk decodes (plain zlib + unshuffle) to the frame's bytes, as HDF5's does
    with h5py.File(tmp_path / "direct.h5") as f, h5py.File(tmp_path / "h5py.h5") as g:
        for i in range(len(frames)):
            mask, ours = f["d"].id.read_direct_chunk((i, 0, 0))
            mask2, theirs = g["d"].id.read_direct_chunk((i, 0, 0))
            assert mask == mask2 == 0
            size = frames.dtype.itemsize

            def decoded(chunk):
                raw = np.frombuffer(zlib.decompress(chunk), np.uint8)
                return sh.unshuffle_bytes(raw, size).tobytes()

            assert decoded(ours) == decoded(theirs) == frames[i].tobytes()


def test_file_size_within_a_few_percent_of_hdf5_gzip(tmp_path):
    frames = photon_frames()
    write_direct(tmp_path / "direct.h5", frames)
    write_h5py(tmp_path / "h5py.h5", frames)
    with h5py.File(tmp_path / "direct.h5") as f, h5py.File(tmp_path / "h5py.h5") as g:
        ours, theirs = f["d"].id.get_storage_size(), g["d"].id.get_storage_size()
    assert ours <= 1.08 * theirs
    assert ours < 0.5 * frames.nbytes


@pytest.mark.parametrize("filters", [{}, {"shuffle": True}, {"compression": "gzip"},
                                     {"compression": "gzip", "compression_opts": 6}])
def test_other_builtin_filter_sets_round_trip(tmp_path, filters):
    frames = frames_of(np.uint16, (3, 11, 13))
    write_direct(tmp_path / "direct.h5", frames, filters)
    write_h5py(tmp_path / "h5py.h5", frames, filters)
    a, b = read(tmp_path / "direct.h5"), read(tmp_path / "h5py.h5")
    assert a[0].tobytes() == b[0].tobytes() == frames.tobytes()
    assert a[1:] == b[1:]


def test_zlib_fallback_without_isal_gives_a_readable_file(tmp_path, monkeypatch):
    monkeypatch.setattr(compression, "isal_zlib", None)
    assert compression.deflate_backend() == "zlib"
    quiet = np.random.default_rng(0).poisson(0.5, (3, 64, 64)).astype(np.uint32)
    raw = sh.shuffle_frame(quiet[0])
    assert cw.Codec(1, True).encode(quiet[0]) == zlib.compress(raw, 1)     # no plane stored
    for frames in (quiet, photon_frames(3, 64), noisy_low_byte((3, 200, 200))):
        write_direct(tmp_path / "zlib.h5", frames)
        assert read(tmp_path / "zlib.h5")[0].tobytes() == frames.tobytes()


def test_isal_missing_is_detected(monkeypatch):
    monkeypatch.setitem(sys.modules, "isal", None)
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)
    assert compression._load_isal() is None


def noisy_low_byte(shape, seed=5):
    """uint32 counts whose lowest byte is uniform noise (entropy ~8 bits) and higher bytes ~0."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape) + 256 * rng.poisson(0.2, shape)).astype(np.uint32)


def test_plane_entropy():
    rng = np.random.default_rng(1)
    planes = np.stack([np.zeros(50000, np.uint8),
                       rng.integers(0, 256, 50000).astype(np.uint8),
                       rng.choice(np.array([3, 200], np.uint8), 50000)])
    h = compression.plane_entropy(planes)
    assert h[0] == 0.0
    assert 7.7 < h[1] <= 8.0
    assert abs(h[2] - 1.0) < 0.01


@pytest.mark.parametrize("isal", [True, False])
@pytest.mark.parametrize("shape", [(300, 300), (128, 256), (181, 191)])
def test_noise_planes_are_stored_blocks_of_one_zlib_stream(monkeypatch, isal, shape):
    if not isal:
        monkeypatch.setattr(compression, "isal_zlib", None)
    elif compression.isal_zlib is None:
        pytest.skip("isal not installed")
    frame = noisy_low_byte(shape)
    raw = sh.shuffle_frame(frame)
    n = frame.size
    assert compression.plane_entropy(raw.reshape(4, -1))[0] >= compression.STORE_ENTROPY_BITS
    enc = cw.Codec(1, True).encode(frame)
    assert zlib.decompress(enc) == raw.tobytes()
    # plane 0 went in verbatim (stored blocks of at most 65535 bytes), the rest was deflated
    assert raw[:min(n, 65535)].tobytes() in enc
    assert n < len(enc) < n + 0.2 * 3 * n + 64


def test_small_planes_are_always_deflated():
    frame = noisy_low_byte((31, 256))                   # planes of 7936 bytes < MIN_PLANE
    raw = sh.shuffle_frame(frame)
    assert compression.plane_entropy(raw.reshape(4, -1))[0] >= compression.STORE_ENTROPY_BITS
    assert cw.Codec(1, True).encode(frame) == compression._compress(raw, 1)


def test_stored_and_deflated_planes_interleave():
    rng = np.random.default_rng(2)
    # uint64: planes 1 and 3 noise, the others nearly constant → runs deflate/stored/deflate/...
    lo = rng.integers(0, 256, 40000).astype(np.uint64)
    frame = (lo << np.uint64(8)) | (lo << np.uint64(24)) | np.uint64(7)
    raw = sh.shuffle_frame(frame.reshape(200, 200))
    enc = cw.Codec(1, True).encode(frame.reshape(200, 200))
    assert zlib.decompress(enc) == raw.tobytes()
    assert raw[40000:80000].tobytes() in enc and raw[120000:160000].tobytes() in enc


@pytest.mark.parametrize("isal", [True, False])
def test_zero_planes_are_one_ready_made_block(monkeypatch, isal):
    if not isal:
        monkeypatch.setattr(compression, "isal_zlib", None)
    elif compression.isal_zlib is None:
        pytest.skip("isal not installed")
    frame = noisy_low_byte((256, 300))                  # < 65536: planes 2 and 3 are zeros
    raw = sh.shuffle_frame(frame)
    enc = cw.Codec(1, True).encode(frame)
    assert zlib.decompress(enc) == raw.tobytes()
    zeros = compression._zero_run(2 * frame.size, 1, compression.deflate_backend())
    assert zeros in enc and len(zeros) < 2 * frame.size // 100


def test_a_zero_mode_plane_that_is_not_zero_is_deflated():
    frame = noisy_low_byte((200, 200))
    frame[7, 9] = 0x01020304                            # planes 2 and 3 are no longer all zero
    raw = sh.shuffle_frame(frame)
    modes = [compression.STORED, compression.DEFLATED, compression.ZERO, compression.ZERO]
    assert zlib.decompress(cw.Codec(1, True).encode(frame, modes)) == raw.tobytes()
    with pytest.raises(ValueError, match="3 plane modes for 4 planes"):
        compression.deflate(raw, 1, 4, modes[:3])


@pytest.mark.parametrize("n", [0, 1, 5000, 65521, 65522, 300000])
def test_adler32_after_zeros(n):
    head = np.random.default_rng(n).integers(0, 256, 777).astype(np.uint8).tobytes()
    assert compression._adler32_zeros(zlib.adler32(head), n) == zlib.adler32(head + bytes(n))


def test_plane_modes_of_a_stack():
    stack = noisy_low_byte((5, 256, 256))
    assert list(cw.Codec(1, True).plane_modes(stack)) == [
        compression.STORED, compression.DEFLATED, compression.ZERO, compression.ZERO]
    ones = np.broadcast_to(np.ones((64, 64), np.uint8), (6, 64, 64))
    assert list(cw.Codec(1, True).plane_modes(ones)) == [compression.DEFLATED]
    assert list(cw.Codec(None, True).plane_modes(stack) or []) == []
    assert list(compression.plane_modes(stack[:0])) == [compression.DEFLATED] * 4
    # a stack repeating one frame is sampled as that frame alone, for any length
    noisy = np.broadcast_to(stack[2], (7,) + stack.shape[1:])
    assert compression.plane_modes(noisy) == compression.plane_modes(stack[2:3])
    assert compression.plane_modes(stack[2:3])[0] == compression.STORED


def test_plane_modes_sample_the_whole_frame_whatever_its_width():
    # noise everywhere but in the first 16 columns: a sample taken every k rows at a fixed
    # column would see only zeros
    for width in (256, 272, 320):
        frames = noisy_low_byte((4, 256, width))
        frames[:, :, :16] = 0
        assert compression.plane_modes(frames)[0] == compression.STORED


def test_modes_decided_on_early_frames_stay_exact_on_later_ones(tmp_path):
    quiet = np.random.default_rng(3).poisson(0.3, (6, 128, 256)).astype(np.uint32)
    bright = noisy_low_byte((6, 128, 256)) * np.uint32(70000)     # every plane busy
    codec = cw.chunk_codec(GZIP)
    modes = [codec.plane_modes(quiet)]
    assert compression.ZERO in modes[0]
    frames = np.concatenate([quiet, bright])
    buf, sizes = cw.encode_stacks([frames], codec, modes)
    enc = cw.split_encoded(buf, sizes, [frames.shape[1:]], [frames.dtype], codec)[0]
    with h5py.File(tmp_path / "m.h5", "w") as f:
        dset = cd.create_frame_dataset(f, "d", frames.shape, frames.dtype, GZIP)
        cd.write_encoded(dset, 0, enc)
    assert read(tmp_path / "m.h5")[0].tobytes() == frames.tobytes()


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int64])
def test_files_with_stored_planes_read_back_with_plain_h5py(tmp_path, dtype):
    frames = noisy_low_byte((3, 300, 301)).astype(dtype)
    write_direct(tmp_path / "noisy.h5", frames)
    write_h5py(tmp_path / "ref.h5", frames)
    got, comp, shuffle, chunks = read(tmp_path / "noisy.h5")
    assert got.dtype == frames.dtype and got.tobytes() == frames.tobytes()
    assert (comp, shuffle, chunks) == read(tmp_path / "ref.h5")[1:]


def test_isal_stream_is_a_standard_zlib_stream():
    if compression.isal_zlib is None:
        pytest.skip("isal not installed")
    data = sh.shuffle_frame(photon_frames(1, 64)[0])
    assert compression.deflate_backend() == "isal"
    assert zlib.decompress(compression.deflate(data, 1)) == data.tobytes()


# --------------------------------------------------------------------------- codecs


@pytest.mark.parametrize("filters, codec", [
    ({}, cw.Codec(None, False)),
    (GZIP, cw.Codec(1, True)),
    ({"compression": "gzip"}, cw.Codec(4, False)),
    ({"compression": "lzf", "shuffle": True}, None),
    ({"compression": "gzip", "fletcher32": True}, None),
    ({"compression": 32008, "compression_opts": (0, 2)}, None),  # bitshuffle plugin
])
def test_chunk_codec(filters, codec):
    assert cw.chunk_codec(filters) == codec


def test_dataset_codec_reads_the_filter_pipeline(tmp_path):
    import hdf5plugin

    with h5py.File(tmp_path / "f.h5", "w") as f:
        a = f.create_dataset("a", (2, 4, 4), "u4", chunks=(1, 4, 4), **GZIP)
        b = f.create_dataset("b", (2, 4, 4), "u4", chunks=(1, 4, 4))
        c = f.create_dataset("c", (2, 4, 4), "u4", chunks=(1, 4, 4), **hdf5plugin.Bitshuffle())
        d = f.create_dataset("d", (2, 4, 4), "u4", chunks=(1, 4, 4), compression="lzf")
        assert cw.dataset_codec(a) == cw.Codec(1, True)
        assert cw.dataset_codec(b) == cw.Codec(None, False)
        assert cw.dataset_codec(c) is None
        assert cw.dataset_codec(d) is None


def test_broadcast_stack_is_encoded_once_and_interleaved():
    data = photon_frames(4, 32)
    weights = np.broadcast_to(np.ones((32, 32), np.uint8), data.shape)
    buf, sizes = cw.encode_stacks([data, weights], cw.Codec(1, True))
    assert sizes.shape == (4, 2) and buf.size == sizes.sum()
    enc_data, enc_w = cw.split_encoded(buf, sizes, [(32, 32)] * 2, [data.dtype, np.uint8],
                                       cw.Codec(1, True))
    for i in range(4):
        raw = np.frombuffer(zlib.decompress(enc_data.chunk(i)), np.uint8)
        assert sh.unshuffle_bytes(raw, 4).tobytes() == data[i].tobytes()
        assert zlib.decompress(enc_w.chunk(i)) == weights[i].tobytes()


# --------------------------------------------------------------------------- chunks of K frames


def test_frames_per_chunk_rule():
    assert cw.frames_per_chunk(256 * 256 * 4, 64) == 4          # 1 MiB chunks
    assert cw.frames_per_chunk(128 * 128 * 8, 64) == 8          # rebinned uint64: at most 8
    assert cw.frames_per_chunk(512 * 512 * 4, 64) == 1
    assert cw.frames_per_chunk(1000, 3) == 2                    # never more than the frames
    assert cw.frames_per_chunk(1000, 1) == 1
    assert cw.frames_per_chunk(1000, 64, [0, 32]) == 8
    assert cw.frames_per_chunk(1000, 64, [0, 20]) == 4          # every share starts a chunk
    assert cw.frames_per_chunk(1000, 64, [0, 21, 42]) == 1
    assert cw.share_boundaries([32, 0, 30, 0]) == [0, 32]       # empty shares do not count
    assert cw.share_boundaries([0, 5]) == [0]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.float32, np.uint64, np.uint8])
@pytest.mark.parametrize("m, k", [(1, 1), (5, 2), (8, 8), (13, 4), (13, 8)])
@pytest.mark.parametrize("filters", [GZIP, {}], ids=["gzip", "none"])
def test_chunks_of_k_frames_read_back_with_plain_h5py(tmp_path, dtype, m, k, filters):
    """K frames a chunk, the last one short (padded as HDF5 stores edge chunks)."""
    frames = frames_of(dtype, (m, 19, 23), seed=m + k)
    enc = cw.encode_frames(frames, cw.chunk_codec(filters), k)
    assert len(enc.sizes) == -(-m // k) and len(enc) == m
    with h5py.File(tmp_path / "k.h5", "w") as f:
        dset = cd.create_frame_dataset(f, "d", frames.shape, frames.dtype, filters,
                                       frames_per_chunk=k)
        cd.write_encoded(dset, 0, enc)
    with h5py.File(tmp_path / "k.h5", "r") as f:
        assert f["d"].chunks == (k, 19, 23)
        assert f["d"][()].tobytes() == frames.tobytes()
        assert f["d"][m - 1].tobytes() == frames[m - 1].tobytes()       # the short chunk alone


def test_chunk_of_k_frames_is_hdf5s_own_chunk():
    """The shuffled chunk of K frames is HDF5's shuffle of the whole (K, H, W) block."""
    frames = photon_frames(4, 32)
    chunk = cw.encode_frames(frames, cw.Codec(1, True), 4).chunk(0)
    raw = np.frombuffer(zlib.decompress(chunk), np.uint8)
    assert sh.unshuffle_bytes(raw, 4).tobytes() == frames.tobytes()


def test_write_encoded_refuses_a_start_inside_a_chunk(tmp_path):
    frames = frames_of(np.uint32, (4, 4, 4))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        dset = cd.create_frame_dataset(f, "d", (8, 4, 4), np.uint32, GZIP, frames_per_chunk=4)
        with pytest.raises(ValueError, match="from frame 2"):
            cd.write_encoded(dset, 2, cw.encode_frames(frames, cw.Codec(1, True), 4))


@pytest.mark.parametrize("sizes", [[3, 3, 3, 1], [8, 2], [1] * 10, [10]])
def test_writer_forms_chunks_across_parts_of_any_size(tmp_path, sizes):
    """Parts that do not end on a chunk boundary: their last frames wait for the next part."""
    parts, start = [], 0
    for n in sizes:
        parts.append(stack_of(start, n))
        start += n
    writer = writer_of(tmp_path / "p.ptyd", meta(num_frames=10), {}, SerialComm())
    write_share(writer, 0, iter(parts), np.array([10]))
    writer.close()
    got = read_ptyd(tmp_path / "p.ptyd")
    np.testing.assert_array_equal(got["data"], np.concatenate([p.data for p in parts]))
    np.testing.assert_array_equal(got["weights"], np.concatenate([p.valid_stack for p in parts]))
    np.testing.assert_array_equal(got["indices"], np.arange(10))
    with h5py.File(tmp_path / "p.ptyd") as f:
        assert f["chunks/0/data"].chunks == (8, 24, 24)
        assert f["chunks/0/weights"].chunks == (8, 24, 24)


def test_repeated_frame_is_encoded_once_across_calls(monkeypatch):
    """A static mask's weights: one encoding for the scan, redone when the mask changes."""
    codec = cw.Codec(1, True)
    calls = []
    real = cw.Codec.encode_parts
    monkeypatch.setattr(cw.Codec, "encode_parts",
                        lambda self, f, m=None: calls.append(1) or real(self, f, m))
    mask = np.ones((16, 16), np.uint8)
    cache = cw.RepeatedChunks()

    def encode(frame):
        stack = np.broadcast_to(frame, (8, 16, 16))
        pieces, sizes = cw.encode_pieces([stack], codec, [(0,)], 4, cache)
        chunk = cw.join_pieces(pieces)[:sizes[0, 0]]
        return np.frombuffer(zlib.decompress(chunk), np.uint8).reshape(4, 16, 16)

    assert (encode(mask) == 1).all() and len(calls) == 1
    assert (encode(mask.copy()) == 1).all() and len(calls) == 1      # equal frame: reused
    mask[3, 4] = 0
    got = encode(mask)
    assert len(calls) == 2 and (got[:, 3, 4] == 0).all() and got.sum() == 4 * 255


@pytest.mark.parametrize("save", ["append", "link"])
def test_a_share_failing_between_batches_leaves_no_file(tmp_path, save):
    """The frames streamed so far are not left where a reader would take them for data."""
    def parts():
        yield stack_of(0, 4)
        raise RuntimeError("source died")

    writer = writer_of(tmp_path / "f.ptyd", meta(num_frames=8), {}, SerialComm(), save=save)
    with pytest.raises(RuntimeError, match="source died"):
        write_share(writer, 0, parts(), np.array([8]))
    writer.abandon()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_write_encoded_refuses_a_mismatched_dataset(tmp_path):
    frames = frames_of(np.uint16, (2, 4, 4))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        dset = f.create_dataset("d", (2, 4, 4), "u4", chunks=(1, 4, 4), **GZIP)
        with pytest.raises(ValueError, match="does not match"):
            cd.write_encoded(dset, 0, cw.encode_frames(frames, cw.Codec(1, True)))


# --------------------------------------------------------------------------- .ptyd writers


def stack_of(start, n, dtype=np.uint32, size=24, static_valid=False):
    rng = np.random.default_rng(start)
    data = rng.poisson(5.0, (n, size, size)).astype(dtype)
    if static_valid:
        valid = np.ones((size, size), bool)
        valid[3, 4] = False
    else:
        valid = rng.random((n, size, size)) > 0.2
    return FrameStack(np.arange(start, start + n), data, valid,
                      rng.uniform(-1e-6, 1e-6, (n, 2)))


def meta(size=24, num_frames=12):
    return {"num_frames": num_frames, "shape": (size, size), "center": (size / 2,) * 2,
            "psize": (75e-6,) * 2, "energy": 8.0, "distance": 5.0}


def creation_properties(group):
    """What a reader could tell apart between two chunk groups' datasets, but their length."""
    return {name: (d.dtype, d.chunks, d.compression, d.compression_opts, d.shuffle, d.fillvalue,
                   d.id.get_create_plist().get_obj_track_times(),
                   d.id.get_create_plist().get_fill_time(), d.id.get_create_plist().get_layout(),
                   dict(d.attrs))
            for name, d in group.items()}


@pytest.mark.parametrize("save", ["append", "merge", "link"])
@pytest.mark.parametrize("comp", ["gzip", "none", "lzf"])
@pytest.mark.parametrize("static_valid", [False, True])
def test_ptyd_writer_round_trips_every_mode(tmp_path, save, comp, static_valid):
    stacks = [stack_of(0, 5, static_valid=static_valid), stack_of(5, 0),
              stack_of(5, 7, static_valid=static_valid)]
    writer = writer_of(tmp_path / "s.ptyd", meta(), {}, SerialComm(), save=save, compression=comp)
    for k, s in enumerate(stacks):
        write_share(writer, k, s, np.array([len(s)]))
    writer.close()
    got = read_ptyd(tmp_path / "s.ptyd")
    np.testing.assert_array_equal(got["data"], np.concatenate([s.data for s in stacks]))
    np.testing.assert_array_equal(got["weights"],
                                  np.concatenate([s.valid_stack for s in stacks]))
    np.testing.assert_array_equal(got["indices"], np.arange(12))
    np.testing.assert_array_equal(got["positions"],
                                  np.concatenate([s.positions for s in stacks]))
    assert got["data"].dtype == np.uint32
    with h5py.File(tmp_path / "s.ptyd") as f:
        # the last chunk's datasets reuse the creation properties of the first's (create_like)
        for name in ("0",) if save == "merge" else sorted(f["chunks"], key=int):
            chunk = f["chunks"][name]
            assert chunk["weights"].dtype == np.uint8
            # encoded frames: 4 a chunk (5 or 7 frames: the last chunk short); merge appends
            # at any offset and HDF5's own filters (lzf) keep one frame a chunk
            assert chunk["data"].chunks == (4 if comp != "lzf" and save != "merge" else 1, 24, 24)
            assert chunk["positions"].dtype == np.float64 and chunk["indices"].dtype == np.int64
            if comp == "gzip":
                assert chunk["data"].compression == "gzip" and chunk["data"].shuffle
                assert chunk["data"].compression_opts == 1
        if save != "merge":
            names = sorted(f["chunks"], key=int)
            assert creation_properties(f["chunks"][names[-1]]) == \
                creation_properties(f["chunks"][names[0]])


def test_creation_properties_do_not_travel_between_files(tmp_path, monkeypatch):
    """Link-mode parts (HDF5's 1.8 format) and an append-mode master (latest format) written in
    one process get the same dataset properties as when each is written alone."""
    def write(save, name):
        writer = writer_of(tmp_path / name, meta(), {}, SerialComm(), save=save)
        write_share(writer, 0, stack_of(0, 5), np.array([5]))
        write_share(writer, 1, stack_of(5, 7), np.array([7]))
        writer.close()
        with h5py.File(tmp_path / name) as f:
            return {(k, n): creation_properties(g)[n] for k, g in f["chunks"].items() for n in g}

    alone = {}
    for save in ("link", "append"):
        monkeypatch.setattr(cd, "_CREATE_PLISTS", {})
        alone[save] = write(save, f"alone_{save}.ptyd")
    monkeypatch.setattr(cd, "_CREATE_PLISTS", {})
    for k, save in enumerate(("link", "append", "link", "append")):
        assert write(save, f"after_{k}_{save}.ptyd") == alone[save], save


def test_merge_append_of_plain_arrays_encodes_for_the_dataset(tmp_path):
    """append_chunk_arrays given arrays writes direct chunks only where the filters allow."""
    import hdf5plugin

    s0, s1 = stack_of(0, 3), stack_of(3, 4)
    for filters in (GZIP, dict(hdf5plugin.Bitshuffle())):
        path = tmp_path / f"m{len(filters)}.h5"
        with h5py.File(path, "w") as f:
            g = f.create_group("0")
            write_chunk_arrays(g, s0.data, s0.valid.view(np.uint8), s0.positions, s0.indices,
                                 filters, resizable=True)
            append_chunk_arrays(g, s1.data, s1.valid.view(np.uint8), s1.positions, s1.indices)
        with h5py.File(path) as f:
            np.testing.assert_array_equal(f["0/data"][()], np.concatenate([s0.data, s1.data]))
            np.testing.assert_array_equal(f["0/weights"][()] > 0,
                                          np.concatenate([s0.valid, s1.valid]))


def test_write_part_encodes_gzip_and_reads_back(tmp_path):
    s = stack_of(0, 6)
    PartWriter(GZIP, cw.chunk_codec(GZIP)).write(tmp_path / "p.part000", [s], 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.part000"]   # no .tmp left
    with h5py.File(tmp_path / "p.part000") as f:
        assert f["data"].compression == "gzip" and f["data"].shuffle
        assert f["data"][()].tobytes() == s.data.tobytes()
        np.testing.assert_array_equal(f["weights"][()], s.valid.astype(np.uint8))


class SlowGatherComm(SerialComm):
    """One process whose all-gather takes ``wait_s``: the time a rank waits for the others."""

    def __init__(self, wait_s):
        self.wait_s = wait_s

    def allgather(self, obj):
        time.sleep(self.wait_s)
        return [obj]


def test_busy_seconds_count_writing_after_the_gather_not_waiting_in_it(tmp_path, monkeypatch):
    """Append mode: rank 0's writing of a chunk (after its gather) is work for the balance of
    the next chunk's shares; the seconds it waits in the gather are not."""
    write_s, wait_s = 0.2, 0.4
    real_finish = ChunkStream.finish

    def slow_finish(self, *args, **kwargs):
        real_finish(self, *args, **kwargs)
        time.sleep(write_s)

    monkeypatch.setattr(ChunkStream, "finish", slow_finish)
    writer = writer_of(tmp_path / "p.ptyd", meta(num_frames=8), {}, SlowGatherComm(wait_s))
    write_share(writer, 0, stack_of(0, 4), np.array([4]))
    write_share(writer, 1, stack_of(4, 4), np.array([4]))
    writer.close()
    (busy,) = writer.rank_seconds
    assert write_s <= busy < wait_s, busy
    np.testing.assert_array_equal(read_ptyd(tmp_path / "p.ptyd")["indices"], np.arange(8))


# --------------------------------------------------------------------------- under MPI

EMPTY_ROOT_SHARE = textwrap.dedent("""
    import sys
    import ptyprep
    save = sys.argv[1]
    ptyprep.run(ptyprep.load_recipe({
        "source": {"name": "simulate", "num_frames": 21, "photons": 1e5},
        "prep": {"shape": 32, "center": "auto", "rebin": 2},
        "output": {"dfile": f"{save}.ptyd", "save": save, "chunk_frames": 10},
    }))
""")


CHUNK_SHAPES = textwrap.dedent("""
    import sys
    import ptyprep
    save = sys.argv[1]
    ptyprep.run(ptyprep.load_recipe({
        "source": {"name": "simulate", "num_frames": 40, "photons": 1e5},
        "prep": {"shape": 32, "center": "auto"},
        "output": {"dfile": f"{save}.ptyd", "save": save, "chunk_frames": 16},
    }))
""")


@pytest.mark.mpi
@pytest.mark.parametrize("ranks, save, expected", [
    # append: the first chunk in ptypy's equal shares, the next ones in shares that follow the
    # ranks' measured speed, each a whole number of 8-frame chunks (whatever the speeds)
    (2, "append", [8, 8, 8]),        # chunks of 16, 16, 8 frames: 8 + 8, then 8s (or 0 / 16)
    (3, "append", [1, 8, 8]),        # first chunk 6 + 5 + 5: K must divide 5; then 8s
    (2, "link", [8, 8, 8, 8, 4, 4]),  # every share is a part file of its own
])
def test_chunks_of_k_frames_never_span_two_ranks(run_mpi, tmp_path, ranks, save, expected):
    """Under mpiexec: K divides every share boundary; the file equals a serial run."""
    script = tmp_path / "run.py"
    script.write_text(CHUNK_SHAPES)
    proc = run_mpi(ranks, [script, save], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    serial = tmp_path / "serial"
    serial.mkdir()
    ptyprep.run(ptyprep.load_recipe({
        "source": {"name": "simulate", "num_frames": 40, "photons": 1e5},
        "prep": {"shape": 32, "center": "auto"},
        "output": {"dfile": str(serial / "s.ptyd"), "chunk_frames": 16}}))
    par, ref = read_ptyd(tmp_path / f"{save}.ptyd"), read_ptyd(serial / "s.ptyd")
    for key in ("data", "weights", "positions", "indices"):
        np.testing.assert_array_equal(par[key], ref[key], err_msg=key)
    with h5py.File(tmp_path / f"{save}.ptyd") as f:
        shapes = [f["chunks"][name]["data"].chunks[0] for name in sorted(f["chunks"], key=int)]
    assert shapes == expected, shapes


@pytest.mark.mpi
@pytest.mark.parametrize("save", ["append", "merge"])
def test_chunk_whose_share_on_rank_0_is_empty(run_mpi, tmp_path, save):
    """Chunks of 10, 10, 1 on 2 ranks: rank 0 holds nothing of the last chunk.

    Rank 0's empty share must not decide the dtype of what it receives (it did:
    the last frame came back as uint64 bytes read as float32).
    """
    script = tmp_path / "run.py"
    script.write_text(EMPTY_ROOT_SHARE)
    proc = run_mpi(2, [script, save], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    serial = tmp_path / "serial"
    serial.mkdir()
    ptyprep.run(ptyprep.load_recipe({
        "source": {"name": "simulate", "num_frames": 21, "photons": 1e5},
        "prep": {"shape": 32, "center": "auto", "rebin": 2},
        "output": {"dfile": str(serial / "s.ptyd"), "chunk_frames": 10}}))
    par, ref = read_ptyd(tmp_path / f"{save}.ptyd"), read_ptyd(serial / "s.ptyd")
    for key in ("data", "weights", "positions", "indices"):
        assert par[key].dtype == ref[key].dtype, key
        np.testing.assert_array_equal(par[key], ref[key], err_msg=key)
