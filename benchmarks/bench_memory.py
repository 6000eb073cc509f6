"""Peak memory per rank of a preparation: 1k vs 10k-frame scans, under ``mpiexec -n 2``.

Writes raw 256×256 uint32 scans of 1000 and 10000 frames, prepares each with
``ptyprep.run`` (hdf5 source, 128×128 crop, .ptyd append, default gzip, 64 frames per
chunk) on two ranks, and reports every rank's ``ru_maxrss``. Memory should be bounded
by the chunk, not the scan: flat within 10 % from 1k to 10k frames, and at most
2 × chunk bytes + 300 MB (chunk bytes = chunk_frames × raw frame bytes).

    python benchmarks/bench_memory.py [--ranks 2] [--json-out FILE]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)

RAW = (256, 256)
CROP = 128
CHUNK_FRAMES = 64


def worker(raw, out):
    import ptyprep
    from ptyprep.fast.allocator import keep_freed_memory
    from ptyprep.engine.comm import world

    keep_freed_memory()                     # as the command line does

    recipe = ptyprep.load_recipe({
        "source": {"name": "hdf5", "path": raw, "frames": "/entry/data/data",
                   "positions": "/entry/positions", "energy_keV": 8.0, "distance_m": 5.0,
                   "psize_m": 75e-6, "beam_center": [RAW[0] / 2, RAW[1] / 2]},
        "prep": {"shape": CROP, "center": "source"},
        "output": {"dfile": out, "overwrite": True, "chunk_frames": CHUNK_FRAMES},
    })
    comm = world()
    result = ptyprep.run(recipe, comm)
    rss = comm.allgather(C.max_rss_mb())
    if comm.rank == 0:
        print(json.dumps({"rss_mb": rss, "seconds": result["seconds"]}))


def baseline():
    """Peak RSS of a process that only imports what a run imports (no frames)."""
    code = ("import sys; sys.path.insert(0, %r); import _common as C; import ptyprep.engine.run, "
            "ptyprep.ptycho.writer, ptyprep.sources.hdf5; print(C.max_rss_mb())" % str(C.HERE))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=C.single_thread_env(), check=True)
    return float(res.stdout.strip())


def run(ranks=2, sizes=(1000, 10000), folder=None):
    from bench_scaling import mpiexec

    base = C.diffraction_frames(16, RAW, seed=11)
    chunk_mb = CHUNK_FRAMES * base[0].nbytes / 2**20
    out = {"ranks": ranks, "chunk_frames": CHUNK_FRAMES, "raw_shape": list(RAW),
           "chunk_mb": chunk_mb, "bound_mb": 2 * chunk_mb + 300, "import_baseline_mb": baseline(),
           "scans": {}}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for n in sizes:
            raw = Path(tmp) / f"raw{n}.h5"
            C.write_frames(raw, n, base, chunked=False)
            cmd = [sys.executable, "-m", "mpi4py", __file__, "--worker", str(raw),
                   str(Path(tmp) / f"out{n}.ptyd")]
            if ranks > 1:
                cmd = [mpiexec(), "-n", str(ranks)] + cmd
            res = subprocess.run(cmd, capture_output=True, text=True, env=C.single_thread_env(),
                                 cwd=str(C.HERE), timeout=900)
            if res.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
            out["scans"][n] = json.loads(res.stdout.strip().splitlines()[-1])
            raw.unlink()
    small, large = (out["scans"][n]["rss_mb"] for n in sizes)
    out["rss_per_rank_mb_1k"] = max(small)
    out["rss_per_rank_mb_10k"] = max(large)
    out["growth"] = max(large) / max(small) - 1
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--worker", nargs=2, metavar=("RAW", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None)
    p.add_argument("--json-out", default=None)
    a = p.parse_args()
    if a.worker:
        worker(*a.worker)
        return
    C.emit(run(a.ranks, folder=a.tmp), a.json_out)


if __name__ == "__main__":
    main()
