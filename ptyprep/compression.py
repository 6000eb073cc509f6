"""Output compression: recipe names → h5py dataset keywords, and ptyprep's own deflate.

``gzip`` (the default) and ``none`` are read by any HDF5 library without
plugins; ``lzf`` needs h5py; ``bitshuffle`` (LZ4) and ``blosc2`` are faster and
need ``hdf5plugin`` on the reading side too.

For ``gzip`` and ``none`` ptyprep does not let HDF5 compress: it encodes every
frame itself (byte shuffle + a standard zlib stream, see
:mod:`ptyprep.writers.chunkwrite`) and writes the chunk as is into a dataset that
declares HDF5's own ``shuffle`` + ``deflate`` filters, so any reader decodes it.
The zlib stream comes from ISA-L (the ``isal`` package, ~4× faster than zlib at
level 1) when it is installed, else from the standard library's ``zlib``.

A shuffled chunk is a few byte planes (byte 0 of every element, then byte 1, …).
On photon counts the high planes are nearly all zeros and deflate shrinks them
~100× almost for free, while the lowest plane of a bright frame is close to
noise: deflate spends most of its time there to save a few %. :func:`deflate`
samples each plane's byte entropy and writes such a plane as *stored* deflate
blocks (RFC 1951 §3.2.4, a copy) — still one standard zlib stream that every
inflater reads, and faster to read back too.
"""

import struct
import zlib

import numpy as np

from .errors import OutputError

#: A plane whose sampled order-0 entropy is at least this many bits per byte is stored, not
#: deflated: Huffman coding could save at most ~1 − 7/8 = 12 % of it.
STORE_ENTROPY_BITS = 7.0
_SAMPLE_BYTES = 1024                      # per plane, for the entropy estimate
#: Planes shorter than this are always deflated: storing them saves less than the
#: entropy estimate and the split stream cost (~20 µs per chunk here).
MIN_STORED_PLANE = 32 << 10
_ZLIB_HEADER = b"\x78\x01"                 # deflate, 32 KiB window, FCHECK for 0x78 (RFC 1950)
_FINAL_EMPTY_BLOCK = b"\x01\x00\x00\xff\xff"  # BFINAL = 1, stored, LEN = 0
_STORED_MAX = 65535
_XLOGX = np.arange(2 * _SAMPLE_BYTES + 1) * np.log2(np.maximum(1, np.arange(2 * _SAMPLE_BYTES + 1)))


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


def deflate(buf, level=1, planes=1):
    """A standard zlib stream (RFC 1950: header, deflate, adler32) of ``buf``.

    Level 1 uses ISA-L's level 1 when available (same format, ~4× faster than
    zlib's level 1, output a few % larger); any other level uses zlib at that level.

    Parameters
    ----------
    buf : bytes-like or uint8 ndarray
    level : int, 0–9
    planes : int
        ``buf`` is this many equal byte planes (a chunk after HDF5's shuffle: the
        element size). Planes of at least :data:`MIN_STORED_PLANE` bytes whose sampled
        entropy reaches :data:`STORE_ENTROPY_BITS` go into stored blocks; the others are
        deflated. 1 = one plane.

    Returns
    -------
    bytes
    """
    data = np.frombuffer(buf, dtype=np.uint8)
    if level == 0 or data.size % planes or data.size // planes < MIN_STORED_PLANE:
        return _compress(buf, level)
    noisy = plane_entropy(data.reshape(planes, -1)) >= STORE_ENTROPY_BITS
    if not noisy.any():
        return _compress(buf, level)
    return _mixed_stream(data, noisy, level)


def plane_entropy(planes):
    """Order-0 entropy (bits per byte) of each row of ``planes``, from an evenly spaced sample.

    Parameters
    ----------
    planes : (P, n) uint8 ndarray

    Returns
    -------
    (P,) float64 ndarray, 0 … 8
    """
    p, n = planes.shape
    sample = planes[:, ::max(1, n // _SAMPLE_BYTES)]          # m ≤ 2 · _SAMPLE_BYTES per plane
    m = sample.shape[1]
    codes = sample + np.arange(0, 256 * p, 256, dtype=np.intp)[:, None]
    counts = np.bincount(codes.ravel(), minlength=256 * p).reshape(p, 256)
    # H = −Σ (c/m) log2(c/m) = log2(m) − Σ c·log2(c) / m
    return np.log2(m) - _XLOGX[counts].sum(axis=1) / m


def _mixed_stream(data, stored, level):
    """zlib stream of ``data`` = equal planes, plane k in stored blocks where ``stored[k]``."""
    lib = _zlib_module() if level == 1 else zlib
    size = data.size // stored.size
    parts = [_ZLIB_HEADER]
    k = 0
    while k < stored.size:                      # runs of planes of one kind
        end = k
        while end < stored.size and stored[end] == stored[k]:
            end += 1
        run = memoryview(data[k * size:end * size])
        if stored[k]:
            for s in range(0, len(run), _STORED_MAX):
                piece = run[s:s + _STORED_MAX]
                parts += [struct.pack("<BHH", 0, len(piece), len(piece) ^ 0xFFFF), piece]
        else:                                   # raw deflate, no history, ends byte-aligned
            comp = lib.compressobj(level, zlib.DEFLATED, -15)
            parts += [comp.compress(run), comp.flush(zlib.Z_SYNC_FLUSH)]
        k = end
    parts += [_FINAL_EMPTY_BLOCK, struct.pack(">I", _zlib_module().adler32(data))]
    return b"".join(parts)


def dataset_filters(name):
    """h5py ``create_dataset`` keywords for compression ``name``.

    Raises
    ------
    OutputError
        When the filter is not available in this installation.
    """
    if name == "none":
        return {}
    if name == "gzip":
        # level 1 + shuffle: about as small as level 6 on photon counts, several times faster
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    try:
        import hdf5plugin
    except ImportError as exc:
        raise OutputError(f"output.compression = {name!r} needs the hdf5plugin package; "
                          "pip install hdf5plugin, or choose 'gzip'") from exc
    if name == "bitshuffle":
        filt = hdf5plugin.Bitshuffle(cname="lz4")
    elif name == "blosc2":
        filt = hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)
    else:
        raise OutputError(f"unknown compression {name!r}; choose none, gzip, lzf, bitshuffle or blosc2")
    import h5py

    if not h5py.h5z.filter_avail(filt.filter_id):
        raise OutputError(f"compression filter {name!r} (HDF5 filter {filt.filter_id}) is not "
                          "available in this HDF5 build; choose 'gzip'")
    return dict(filt)
