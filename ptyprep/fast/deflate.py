"""ptyprep's own deflate: the zlib streams of HDF5's ``deflate`` filter, made fast.

For ``gzip`` and ``none`` ptyprep does not let HDF5 compress: it encodes every
frame itself (byte shuffle + a standard zlib stream, see
:mod:`ptyprep.fast.chunkwrite`) and writes the chunk as is into a dataset that
declares HDF5's own ``shuffle`` + ``deflate`` filters, so any reader decodes it.
The zlib stream comes from ISA-L (the ``isal`` package, ~4× faster than zlib at
level 1) when it is installed, else from the standard library's ``zlib``.

A shuffled chunk is a few byte planes (byte 0 of every element, then byte 1, …).
On photon counts the high planes are nearly all zeros and deflate shrinks them
~100× almost for free, while the lowest plane of a bright frame is close to
noise: deflate spends most of its time there to save a few %. :func:`deflate`
writes each plane by its *mode*: noise as *stored* deflate blocks (RFC 1951
§3.2.4, a copy), a plane of zeros as a ready-made deflate block (its adler32
follows from its length), the rest deflated — still one standard zlib stream
that every inflater reads, and faster to read back too.  :func:`plane_modes`
decides the modes once for many frames from a sample (sampled entropy, zeros);
a ``ZERO`` plane is still checked on every frame.
"""

import functools
import struct
import zlib

import numpy as np

#: A plane whose sampled order-0 entropy is at least this many bits per byte is stored, not
#: deflated: Huffman coding could save at most ~1 − 7/8 = 12 % of it.
STORE_ENTROPY_BITS = 7.0
#: Plane modes of :func:`deflate`: deflate it, copy it into stored blocks, or (all zeros)
#: write a ready-made deflate block for it.
DEFLATED, STORED, ZERO = 0, 1, 2
_SAMPLE_BYTES = 1024                      # per plane, for the entropy estimate of one frame
_STACK_SAMPLE_BYTES = 4096                # per plane, for a stack (estimate biased ~0.05 bit low)
_RUN = 16                                 # neighbouring elements per piece of a stack's sample
_GOLDEN = (5 ** 0.5 - 1) / 2
#: Planes shorter than this are never split out of one deflate call: what storing or
#: skipping them saves is less than the split stream's cost (a few µs per piece here).
MIN_PLANE = 8 << 10
_ADLER_MOD = 65521
_ZLIB_HEADER = b"\x78\x01"                 # deflate, 32 KiB window, FCHECK for 0x78 (RFC 1950)
_FINAL_EMPTY_BLOCK = b"\x01\x00\x00\xff\xff"  # BFINAL = 1, stored, LEN = 0
_STORED_MAX = 65535
_TABLE = max(2 * _SAMPLE_BYTES, _STACK_SAMPLE_BYTES) + 1   # longest sample + 1
_XLOGX = np.arange(_TABLE) * np.log2(np.maximum(1, np.arange(_TABLE)))   # c · log2(c)


def _load_isal():
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


#: ``isal.isal_zlib`` or None; tests set it to None to exercise the zlib fallback.
isal_zlib = _load_isal()


def deflate_backend():
    """Name of the library that :func:`deflate` uses: ``"isal"`` or ``"zlib"``."""
    return "isal" if isal_zlib is not None else "zlib"


def _zlib_module():
    return isal_zlib if isal_zlib is not None else zlib


def _compress(buf, level):
    if level == 1 and isal_zlib is not None:
        return isal_zlib.compress(buf, 1)
    return zlib.compress(buf, level)


def deflate(buf, level=1, planes=1, modes=None):
    """A standard zlib stream (RFC 1950: header, deflate, adler32) of ``buf``.

    Level 1 uses ISA-L's level 1 when available (same format, ~4× faster than
    zlib's level 1, output a few % larger); any other level uses zlib at that level.

    Parameters
    ----------
    buf : bytes-like or uint8 ndarray
    level : int, 0–9
    planes : int
        ``buf`` is this many equal byte planes (a chunk after HDF5's shuffle: the
        element size); 1 = one plane.  Planes of at least :data:`MIN_PLANE` bytes are
        written by their mode: noise as stored blocks, all-zero planes as a
        ready-made deflate block, the others deflated.
    modes : sequence of ``planes`` ints, optional
        :data:`DEFLATED`, :data:`STORED` or :data:`ZERO` for every plane, decided by the
        caller (:func:`plane_modes`, once for many frames); a ``ZERO`` plane is checked
        and deflated if it is not all zeros.  Default: from a sample of ``buf``'s planes.

    Returns
    -------
    bytes
    """
    return b"".join(deflate_parts(buf, level, planes, modes))


def deflate_parts(buf, level=1, planes=1, modes=None):
    """:func:`deflate` as a list of bytes-like pieces whose concatenation is the stream."""
    data = np.frombuffer(buf, dtype=np.uint8)
    if level == 0 or data.size % planes or data.size // planes < MIN_PLANE:
        return [_compress(buf, level)]
    rows = data.reshape(planes, -1)
    if modes is None:
        modes = _sample_modes(rows[:, ::max(1, rows.shape[1] // _SAMPLE_BYTES)])
    modes = list(modes)
    if len(modes) != planes:
        raise ValueError(f"{len(modes)} plane modes for {planes} planes")
    for k, mode in enumerate(modes):
        if mode == ZERO and not _all_zero(rows[k]):
            modes[k] = DEFLATED
    if all(mode == DEFLATED for mode in modes):
        return [_compress(buf, level)]
    return _mixed_stream(data, modes, level)


def plane_entropy(planes):
    """Order-0 entropy (bits per byte) of each row of ``planes``, from an evenly spaced sample.

    Parameters
    ----------
    planes : (P, n) uint8 ndarray

    Returns
    -------
    (P,) float64 ndarray, 0 … 8
    """
    n = planes.shape[1]
    return _entropy_of_sample(planes[:, ::max(1, n // _SAMPLE_BYTES)])  # ≤ 2 · _SAMPLE_BYTES


def _entropy_of_sample(sample):
    """Order-0 entropy (bits per byte) of every row of a (P, m) uint8 sample."""
    p, m = sample.shape
    codes = sample + np.arange(0, 256 * p, 256, dtype=np.intp)[:, None]
    counts = np.bincount(codes.ravel(), minlength=256 * p).reshape(p, 256)
    # H = −Σ (c/m) log2(c/m) = log2(m) − Σ c·log2(c) / m
    return np.log2(m) - _XLOGX[counts].sum(axis=1) / m


def _sample_modes(sample):
    """Plane modes from a (P, m) uint8 sample: noise → STORED, only zeros → ZERO."""
    noise = _entropy_of_sample(sample) >= STORE_ENTROPY_BITS
    zeros = sample.max(axis=1) == 0
    return tuple(ZERO if z else STORED if n else DEFLATED for n, z in zip(noise.tolist(),
                                                                          zeros.tolist()))


def plane_modes(frames, planes=None, max_frames=4):
    """How :func:`deflate` should write each byte plane of the frames of a stack.

    One decision for many frames (frames of a scan look alike), from
    :data:`_STACK_SAMPLE_BYTES` bytes per plane: runs of 16 neighbouring elements
    (a cache line or so, cheap to gather) spread over up to ``max_frames`` frames.
    Noise (sampled entropy ≥ :data:`STORE_ENTROPY_BITS`) is ``STORED``; a plane whose
    sample holds only zeros is ``ZERO`` (checked again on every frame); the rest
    ``DEFLATED``.

    Parameters
    ----------
    frames : (M, ...) ndarray
        Native byte order; any strides (a broadcast stack is not copied).
    planes : int, optional
        Planes per frame: the element size (default: after a byte shuffle), or 1.

    Returns
    -------
    tuple of ``planes`` ints
    """
    size = frames.dtype.itemsize if planes is None else planes
    if len(frames) == 0:
        return (DEFLATED,) * size
    # evenly spread, first and last included; a stack repeating one frame: that frame
    n_picks = 1 if frames.strides[0] == 0 else min(len(frames), max_frames)
    picks = sorted({i * (len(frames) - 1) // max(1, n_picks - 1) for i in range(n_picks)})
    per_frame = _STACK_SAMPLE_BYTES // len(picks)
    rows = []
    for i in picks:
        elements = np.ascontiguousarray(frames[i]).reshape(-1).view(np.uint8).reshape(-1, size)
        if len(elements) <= per_frame:
            rows.append(elements)
        else:
            rows.append(np.take(elements, _sample_index(len(elements), per_frame), axis=0))
    return _sample_modes(np.ascontiguousarray(np.concatenate(rows).T))


@functools.lru_cache(maxsize=16)
def _sample_index(n_elements, per_frame):
    """Elements :func:`plane_modes` samples of a frame: runs of :data:`_RUN` neighbours
    starting at k·φ mod 1 of the frame (even coverage that no row length can alias)."""
    starts = (np.arange(per_frame // _RUN) * _GOLDEN % 1.0 * (n_elements - _RUN))
    index = (starts.astype(np.intp)[:, None] + np.arange(_RUN)).ravel()
    index.flags.writeable = False
    return index


def _all_zero(plane):
    """True when the uint8 array ``plane`` holds only zeros (8 bytes at a time)."""
    n8 = plane.size // 8 * 8
    if n8 and plane[:n8].view(np.uint64).max():
        return False
    return n8 == plane.size or not plane[n8:].any()


@functools.lru_cache(maxsize=64)
def _zero_run(nbytes, level, backend):
    """Raw deflate of ``nbytes`` zeros, no history, ending byte-aligned (sync flush)."""
    lib = isal_zlib if backend == "isal" else zlib
    comp = lib.compressobj(level, zlib.DEFLATED, -15)
    return comp.compress(bytes(nbytes)) + comp.flush(zlib.Z_SYNC_FLUSH)


def _adler32_zeros(adler, nbytes):
    """Adler-32 after ``nbytes`` more zeros: A (1 + Σ bytes) stays, B (Σ of A) grows by n·A."""
    a, b = adler & 0xFFFF, adler >> 16
    return (((b + nbytes * a) % _ADLER_MOD) << 16) | a


def _mixed_stream(data, modes, level):
    """zlib stream pieces of ``data`` = equal planes, each run of planes written by its mode."""
    lib = _zlib_module() if level == 1 else zlib
    backend = deflate_backend() if level == 1 else "zlib"
    size = data.size // len(modes)
    parts = [_ZLIB_HEADER]
    adler, k = 1, 0
    while k < len(modes):                       # runs of planes of one mode
        end = k
        while end < len(modes) and modes[end] == modes[k]:
            end += 1
        run = memoryview(data[k * size:end * size])
        if modes[k] == STORED:
            for s in range(0, len(run), _STORED_MAX):
                piece = run[s:s + _STORED_MAX]
                parts += [struct.pack("<BHH", 0, len(piece), len(piece) ^ 0xFFFF), piece]
            adler = lib.adler32(run, adler)
        elif modes[k] == ZERO:
            parts.append(_zero_run(len(run), level, backend))
            adler = _adler32_zeros(adler, len(run))
        else:                                   # raw deflate, no history, ends byte-aligned
            comp = lib.compressobj(level, zlib.DEFLATED, -15)
            parts += [comp.compress(run), comp.flush(zlib.Z_SYNC_FLUSH)]
            adler = lib.adler32(run, adler)
        k = end
    return parts + [_FINAL_EMPTY_BLOCK, struct.pack(">I", adler)]
