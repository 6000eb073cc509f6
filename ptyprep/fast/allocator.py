"""Allocator settings of the service process: freed buffers stay in the heap for reuse.

Preparing a scan allocates and frees the same few megabytes for every batch of
frames (crops, shuffled frames, encoded chunks).  glibc's ``malloc`` serves blocks
above its *mmap threshold* (128 KiB at start, raised as blocks are freed, at most
32 MiB) straight from the kernel and gives them back when they are freed; the
heap top is also trimmed back to the kernel.  The next batch then takes a page
fault for every 4 KiB page it touches: on 256² frames that was a quarter of the
time of ``ptyprep run`` here (0.27 → 0.19 ms per frame, benchmarks/bench_ptycho.py).

:func:`keep_freed_memory` raises both thresholds, so such blocks are reused
without faults; the process stays at its high-water mark, which is flat over a
scan (benchmarks/bench_memory.py).  The command line calls it; a program that
imports ptyprep as a library may call it too, or set ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` in the environment.  Where the C library has no
``mallopt`` (musl, macOS) it does nothing.
"""

import ctypes

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1          # mallopt parameters (glibc <malloc.h>)
_M_MMAP_THRESHOLD = -3
#: Blocks below this come from the heap (glibc's largest allowed value on 64-bit).
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free memory at the heap top kept before it is returned to the kernel.
TRIM_THRESHOLD_BYTES = 512 << 20


def keep_freed_memory():
    """Keep freed blocks below 32 MiB in the heap (glibc ``mallopt``), once per process.

    Returns
    -------
    bool
        True when the C library took both settings.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
