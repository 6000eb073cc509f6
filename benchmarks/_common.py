"""Helpers shared by the benchmark scripts: one thread per process, timing, data, machine.

Import this module before numpy in a benchmark script: it pins the thread pools of
BLAS/OpenMP to one thread (unless the caller already set them), so every measured
process uses one core, as the targets in benchmarks/README.md assume.
"""

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "BLOSC_NTHREADS", "VECLIB_MAXIMUM_THREADS")
for _name in THREAD_VARIABLES:
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def single_thread_env(extra=None):
    """Environment for a measured subprocess: this one plus one thread per pool."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = "1"
    env.update(extra or {})
    return env


def best_of(fn, repeat):
    """Smallest wall time of ``repeat`` calls of ``fn()`` in seconds."""
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


#: Lists that :func:`record_rounds` opened: every :func:`best_of_interleaved` call appends
#: its per-round times (name -> [seconds, ...]) to each, so a caller can take medians of a
#: benchmark that only returns the best of each.
_RECORDERS = []


def interleaved_rounds(fns, rounds):
    """Wall time of each of ``fns`` (a dict name → callable) in each of ``rounds`` rounds, in
    seconds, as name → [round 1, round 2, ...]. A round calls every function once, in order
    (A, B, A, B, ...), so a slow spell of a shared machine falls on all of them instead of one."""
    times = {name: [] for name in fns}
    for _ in range(max(1, rounds)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def best_of_interleaved(fns, repeat):
    """Smallest wall time of each of ``fns`` (a dict name → callable), in seconds, measured in
    ``repeat`` rounds that call every function once: a slow spell of a shared machine then
    falls on all of them instead of one. The rounds go to every open :func:`record_rounds`."""
    times = interleaved_rounds(fns, repeat)
    for log in _RECORDERS:
        log.append({name: list(t) for name, t in times.items()})
    return {name: min(t) for name, t in times.items()}


@contextlib.contextmanager
def record_rounds():
    """``with record_rounds() as log:`` every :func:`best_of_interleaved` call inside appends
    its per-round times (a dict name → list of seconds) to ``log``."""
    log = []
    _RECORDERS.append(log)
    try:
        yield log
    finally:
        _RECORDERS.remove(log)


def median(values):
    """Median of a non-empty sequence (the mean of the middle two for an even count)."""
    v = sorted(values)
    if not v:
        raise ValueError("median of no values")
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def quantile(values, q):
    """Quantile ``q`` (0..1) of a non-empty sequence, linear between order statistics
    (numpy's default: position ``q * (n - 1)`` in the sorted values)."""
    v = sorted(values)
    if not v:
        raise ValueError("quantile of no values")
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def round_stats(values):
    """Median and spread of per-round figures: ``median``, ``min``, ``max``, ``q1``, ``q3``
    (interquartile range), ``n`` and the ``rounds`` themselves in measured order."""
    values = [float(x) for x in values]
    return {"median": median(values), "min": min(values), "max": max(values),
            "q1": quantile(values, 0.25), "q3": quantile(values, 0.75), "n": len(values),
            "rounds": values}


def paired_ratios(numerators, denominators, scale=1.0):
    """``scale * a_i / b_i`` for the i-th round of each side (the two measured in one round)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} rounds against {len(denominators)}")
    return [scale * a / b for a, b in zip(numerators, denominators)]


def noise_frames(n, shape, seed=0, distinct=4, mean=50.0, dtype=np.uint32):
    """``(n, H, W)`` frames of Poisson noise: ``distinct`` independent frames repeated.

    Every frame is its own memory, so a product over the stack reads all of it; only the
    random draws are shared (32 independent Eiger 1M frames take ~3 s to draw).
    """
    distinct = max(1, min(n, distinct))
    base = np.random.default_rng(seed).poisson(mean, (distinct, *shape)).astype(dtype)
    return np.resize(base, (n, *shape))


def diffraction_frames(n_distinct, shape, seed=0, peak=2000.0, width=30.0, background=0.05,
                       dtype=np.uint32):
    """``(n_distinct, H, W)`` Poisson far-field-like frames: a bright centre, sparse tails."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - h / 2) ** 2 + (xx - w / 2) ** 2
    lam = peak / (1.0 + r2 / width ** 2) ** 1.5 + background
    return rng.poisson(lam, (n_distinct, h, w)).astype(dtype)


def write_frames(path, n_frames, base, dataset="/entry/data/data", filters=None, chunked=True,
                 batch=64):
    """Write ``n_frames`` frames cycling through ``base`` (K, H, W) into an HDF5 file."""
    import h5py

    k, h, w = base.shape
    with h5py.File(path, "w") as f:
        kwargs = dict(filters or {})
        if chunked or filters:
            kwargs["chunks"] = (1, h, w)
        d = f.create_dataset(dataset, shape=(n_frames, h, w), dtype=base.dtype, **kwargs)
        stack = np.concatenate([base] * max(1, -(-batch // k)))[:batch]
        for s in range(0, n_frames, batch):
            e = min(n_frames, s + batch)
            d[s:e] = np.roll(stack, -(s % k), axis=0)[:e - s]
        f.create_dataset("/entry/positions", data=np.random.default_rng(1).uniform(
            -5e-6, 5e-6, (n_frames, 2)))
    return path


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """Machine and library details printed with every table."""
    import h5py

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
    }
    from importlib.metadata import PackageNotFoundError, version

    for mod in ("scipy", "pyFAI", "hdf5plugin", "bitshuffle", "mpi4py", "mpich"):
        try:
            info[mod] = version(mod)
        except PackageNotFoundError:
            info[mod] = "missing"
    try:
        info["loadavg_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        info["loadavg_1min"] = None
    info["threads"] = {name: os.environ.get(name) for name in THREAD_VARIABLES[:3]}
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def emit(result, json_out=None):
    """Print ``result`` as JSON on stdout, or write it to ``json_out``."""
    text = json.dumps(result, indent=1, default=float)
    if json_out:
        Path(json_out).write_text(text)
    else:
        print(text)


def max_rss_mb():
    """Peak resident memory of this process, MB (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
