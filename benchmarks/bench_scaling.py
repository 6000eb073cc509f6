"""2 ranks vs 1 rank, under a real ``mpiexec``: CPU-bound kernels and whole preparations.

* ``integrate``: every rank builds a StackIntegrator (Eiger 1M, 500×180 bins, bbox,
  corrections on) and integrates its contiguous share of the frames, 32 at a time;
* ``bslz4``: every rank reads a 256×256 crop of its share of 1024×1024 bitshuffle-LZ4
  frames with crop-on-read (ptyprep.fast.chunkread), 16 at a time;
* ``bslz4_h5py`` (info): the same frames read whole through h5py's filter, then cropped;
* ``ptycho_append`` / ``ptycho_link``: ``ptyprep.run`` on bitshuffle-LZ4 raw 512² frames
  (Eiger-style, one chunk a frame) → 256², rebin 1, gzip, ``.ptyd`` append / link
  (CPU-bound: decode + encode);
* ``ptycho_uncompressed``: the same from uncompressed contiguous raw 512² frames in the page
  cache, append (memory-bound).

Timing: ``--rounds`` interleaved rounds per case, each round one ``mpiexec -n 1`` launch and
then one ``mpiexec -n 2`` launch (1, 2, 1, 2, ...: a slow spell of the shared machine falls
on both sides). A launch does its setup (and one untimed warm-up run for the preparations),
then times ``TIMING[case]`` runs, each from a barrier after the setup to a barrier after the
work, and reports the best. A round's speed-up is time(1 rank) / time(2 ranks) for the same
total number of frames; a case reports the median over its rounds and the spread (min, max).

    python benchmarks/bench_scaling.py [--frames 256] [--ptycho-frames 8000] [--rounds 5]
                                       [--cases integrate,ptycho_link] [--ranks 1,2,4]
                                       [--json-out FILE]
    (internally: mpiexec -n N python bench_scaling.py --worker CASE ...)
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)
import numpy as np

CASES = ("integrate", "bslz4", "bslz4_h5py", "ptycho_append", "ptycho_link",
         "ptycho_uncompressed")
PTYCHO = {"ptycho_append": ("bslz4", "append"), "ptycho_link": ("bslz4", "link"),
          "ptycho_uncompressed": ("raw", "append")}
#: the contract cases and their targets (2 ranks / 1 rank, by the median of the rounds)
TARGETS = {"integrate": 1.7, "bslz4": 1.7, "ptycho_append": 1.7, "ptycho_link": 1.7,
           "ptycho_uncompressed": 1.5}
PASSES = 4          # passes over the frames per timed kernel run (longer runs, steadier numbers)
#: timed runs per launch (the best counts); the preparations also run once untimed first.
#: bslz4_h5py (info only, ~2.5 s a run) and the bitshuffle preparations (~1-2 s a run with
#: --quick) get one: the median over the rounds is what counts.
TIMING = {"integrate": 3, "bslz4": 3, "bslz4_h5py": 1, "ptycho_append": 1, "ptycho_link": 1,
          "ptycho_uncompressed": 2}
#: rounds for the info case (fewer: it is slow and counts for nothing)
INFO_ROUNDS = 2


def _share(n, rank, size):
    bounds = np.linspace(0, n, size + 1).round().astype(int)
    return int(bounds[rank]), int(bounds[rank + 1])


def ptycho_worker(case, path, out, repeats):
    """``ptyprep.run`` of the whole scan from a barrier to a barrier after the end (all ranks);
    one untimed warm-up run first (imports, filter set-up and first calls are not a run's cost)."""
    import ptyprep
    from bench_ptycho import recipe, remove_output

    from ptyprep.engine.comm import world
    from ptyprep.fast.allocator import keep_freed_memory

    keep_freed_memory()                     # as `ptyprep run` does
    comm = world()
    save = PTYCHO[case][1]
    times = []
    for i in range(repeats + 1):
        if comm.rank == 0:
            remove_output(out)
        comm.barrier()
        t0 = time.perf_counter()
        ptyprep.run(recipe(path, out, 1, save=save), comm)
        comm.barrier()
        if i:
            times.append(time.perf_counter() - t0)
    if comm.rank == 0:
        remove_output(out)
        print(json.dumps({"case": case, "ranks": comm.size, "seconds": min(times),
                          "runs": times}))


def worker(case, frames, path, repeats):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    s, e = _share(frames, comm.rank, comm.size)
    if case == "integrate":
        from bench_integrate import DETECTORS, QMAX, geometry

        from ptyprep.saxs.integrate import StackIntegrator

        from ptyprep.saxs.qgrid import make_qgrid

        shape = DETECTORS["eiger1m"]
        ai, valid = geometry(shape)
        integ = StackIntegrator(ai, make_qgrid((QMAX / 1000, QMAX - QMAX / 1000, QMAX / 500)), 180,
                                valid=valid, split="bbox", polarization_factor=0.99)
        block = C.noise_frames(32, shape, seed=comm.rank)
        integ.qphi(block)            # warm-up: the plan and the compiled kernel

        def work():
            for _ in range(PASSES):
                for a in range(s, e, 32):
                    integ.qphi(block[:min(32, e - a)])
    else:
        import h5py
        import hdf5plugin  # noqa: F401

        from bench_eiger_crop import BATCH, centred_roi

        from ptyprep.fast.chunkread import read_frames_roi

        f = h5py.File(path, "r")
        d = f["/entry/data/data"]
        r0, r1, c0, c1 = roi = centred_roi(d.shape[1:])
        out = np.empty((BATCH, r1 - r0, c1 - c0), d.dtype)
        whole = np.empty((BATCH,) + d.shape[1:], d.dtype)

        def work():
            for _ in range(PASSES):
                for a in range(s, e, BATCH):
                    b = min(e, a + BATCH)
                    if case == "bslz4":
                        read_frames_roi(d, np.arange(a, b), roi, out=out[:b - a])
                    else:
                        d.read_direct(whole, np.s_[a:b], np.s_[:b - a])
                        out[:b - a] = whole[:b - a, r0:r1, c0:c1]
    times = []
    for _ in range(repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        work()
        comm.Barrier()
        times.append(time.perf_counter() - t0)
    if comm.rank == 0:
        print(json.dumps({"case": case, "ranks": comm.size, "seconds": min(times),
                          "runs": times}))


def mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def launch(n, case, frames, path, repeats, out=None):
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", __file__, "--worker", case,
           "--frames", str(frames), "--file", str(path), "--repeats", str(repeats)]
    if out is not None:
        cmd += ["--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=C.single_thread_env(),
                         cwd=str(C.HERE), timeout=600)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["seconds"]


def speedup_case(frames, t1, t2):
    """A case's figures from its per-round times of 1 and 2 ranks (paired by round)."""
    sp = C.round_stats(C.paired_ratios(t1, t2))
    m1, m2 = C.median(t1), C.median(t2)
    return {"frames": frames, "rounds": len(t1), "t1_rounds_s": list(t1),
            "t2_rounds_s": list(t2), "t1_s": m1, "t2_s": m2, "speedup": sp["median"],
            "speedup_spread": [sp["min"], sp["max"]], "speedup_stats": sp,
            "fps_1": frames / m1, "fps_2": frames / m2}


def curve(frames, times):
    """Frames/s and speed-up over one rank (paired by round, median and spread) for every
    rank count of ``times`` ({ranks: per-round seconds})."""
    rows = {}
    for r, t in times.items():
        case = speedup_case(frames, times[1], t)
        rows[r] = {"seconds": case["t2_s"], "fps": case["fps_2"], "speedup": case["speedup"],
                   "speedup_spread": case["speedup_spread"]}
    return rows


def run(frames=256, int_frames=128, folder=None, rounds=5, ptycho_frames=8000,
        ptycho_raw_frames=2000, cases=CASES, ranks=(1, 2)):
    if mpiexec() is None:
        return {"error": "mpiexec not found (pip install mpich)"}
    ranks = sorted(set(ranks) | {1, 2})
    from bench_eiger_crop import make_file

    out = {"cases": {}, "rounds": rounds}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        paths = {}
        if {"bslz4", "bslz4_h5py"} & set(cases):
            paths["eiger"] = make_file(tmp, frames)
        if {"ptycho_append", "ptycho_link"} & set(cases):
            from bench_ptycho import make_raw_bslz4

            paths["bslz4"] = make_raw_bslz4(tmp, ptycho_frames)
        if "ptycho_uncompressed" in cases:
            from bench_ptycho import make_raw, plain_read

            paths["raw"] = make_raw(tmp, ptycho_raw_frames)
            plain_read(paths["raw"], ptycho_raw_frames)          # in the page cache
        for case in cases:
            if case in PTYCHO:
                kind = PTYCHO[case][0]
                n, path = (ptycho_frames if kind == "bslz4" else ptycho_raw_frames), paths[kind]
                done, dest = n, Path(tmp) / f"{case}.ptyd"
            else:
                n = int_frames if case == "integrate" else frames
                path, dest, done = paths.get("eiger", ""), None, n * PASSES
            # interleaved rounds: 1 rank, 2 ranks (, 4 ranks), 1 rank, 2 ranks, ...
            times = {r: [] for r in ranks}
            for _ in range(INFO_ROUNDS if case not in TARGETS else rounds):
                for r in ranks:
                    times[r].append(launch(r, case, n, path, TIMING[case], dest))
            out["cases"][case] = speedup_case(done, times[1], times[2])
            if len(ranks) > 2:
                out.setdefault("curves", {})[case] = curve(done, times)
    got = out["cases"]
    kernels = [c for c in ("integrate", "bslz4") if c in got]
    if kernels:
        worst = min(kernels, key=lambda c: got[c]["speedup"])
        out["scaling_2_ranks"] = got[worst]["speedup"]
        out["scaling_2_ranks_spread"] = got[worst]["speedup_spread"]
    for case, key in (("ptycho_append", "ptycho_scaling_2_ranks_append"),
                      ("ptycho_link", "ptycho_scaling_2_ranks_link"),
                      ("ptycho_uncompressed", "ptycho_scaling_2_ranks_uncompressed")):
        if case in got:
            out[key] = got[case]["speedup"]
            out[key + "_spread"] = got[case]["speedup_spread"]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=256, help="bitshuffle 1024² frames")
    p.add_argument("--int-frames", type=int, default=128, help="frames to integrate")
    p.add_argument("--ptycho-frames", type=int, default=8000,
                   help="bitshuffle-LZ4 raw 512² frames of the ptycho_append/link cases")
    p.add_argument("--ptycho-raw-frames", type=int, default=2000,
                   help="uncompressed raw 512² frames of the ptycho_uncompressed case")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    p.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--ranks", default="1,2",
                   help="rank counts to launch, e.g. 1,2,4 (4 oversubscribes a 2-core node): "
                        "adds 'curves' (frames/s and speed-up over 1 rank) to the output")
    p.add_argument("--tmp", default=None)
    p.add_argument("--json-out", default=None)
    a = p.parse_args()
    if a.worker in PTYCHO:
        ptycho_worker(a.worker, a.file, a.out, a.repeats)
        return
    if a.worker:
        worker(a.worker, a.frames, a.file, a.repeats)
        return
    cases = [c for c in a.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown case(s) {sorted(unknown)}; choose from {', '.join(CASES)}")
    C.emit(run(a.frames, a.int_frames, a.tmp, a.rounds, a.ptycho_frames, a.ptycho_raw_frames,
               cases, [int(r) for r in a.ranks.split(",") if r]), a.json_out)


if __name__ == "__main__":
    main()
