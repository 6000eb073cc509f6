"""HDF5's shuffle filter: a byte transpose of a chunk (byte 0 of every element, then byte 1, …).

Made with bitshuffle's SIMD byte transpose when that package is installed (same bytes,
~10× numpy), else with numpy.
"""

import numpy as np

__all__ = ["shuffle_bytes", "shuffle_frame", "unshuffle_bytes"]


def shuffle_bytes(raw, itemsize):
    """HDF5's shuffle filter in numpy: byte ``b`` of every element, for b = 0 .. itemsize-1.

    Parameters
    ----------
    raw : (n * itemsize,) uint8 ndarray
    itemsize : int

    Returns
    -------
    (n * itemsize,) uint8 ndarray
    """
    n = raw.size // itemsize
    out = np.empty(raw.size, dtype=np.uint8)
    np.copyto(out.reshape(itemsize, n), raw.reshape(n, itemsize).T)
    return out


def _simd_byte_transpose():
    """bitshuffle's SIMD byte transpose (same result as HDF5's shuffle, ~10× numpy), or None."""
    try:
        from bitshuffle import ext
    except ImportError:
        return None
    for flag, name in (("using_SSE2", "trans_byte_elem_SSE"),
                       ("using_NEON", "trans_byte_elem_NEON")):
        fn = getattr(ext, name, None)
        if fn is not None and getattr(ext, flag, lambda: False)():
            break
    else:
        return None
    probe = np.arange(37, dtype=np.uint64) * 0x0102030405060708
    try:
        ok = np.array_equal(np.asarray(fn(probe)).view(np.uint8).reshape(-1),
                            shuffle_bytes(probe.view(np.uint8), 8))
    except Exception:  # noqa: BLE001  (an unexpected build: use numpy)
        ok = False
    return fn if ok else None


#: Set to None (tests) to use the numpy shuffle.
simd_byte_transpose = _simd_byte_transpose()
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def shuffle_frame(frame):
    """HDF5's shuffle of a C-contiguous array, as ``(nbytes,)`` uint8."""
    size = frame.dtype.itemsize
    flat = frame.reshape(-1)
    if simd_byte_transpose is not None and size in _UINT:
        out = simd_byte_transpose(flat.view(_UINT[size]))
        return np.asarray(out).reshape(-1).view(np.uint8)
    return shuffle_bytes(flat.view(np.uint8), size)


def unshuffle_bytes(raw, itemsize):
    """Inverse of :func:`shuffle_bytes` (tests, and readers of direct chunks)."""
    n = raw.size // itemsize
    return np.ascontiguousarray(raw.reshape(itemsize, n).T).reshape(-1)
