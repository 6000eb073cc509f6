"""Ptychography end to end vs a plain read of the same raw frames, in the same run.

Writes ``--frames`` raw 512×512 uint32 frames (far-field-like Poisson counts) to an HDF5
file, reads them all back with h5py (the read limit), then prepares them with
``ptyprep.run`` (hdf5 source, 256×256 crop around the beam centre, rebin 1 and 2, .ptyd
append, default compression). The ratio read time / preparation time is the contract
(≥ 0.5: preparing costs at most as much again as reading).

The "plain read" of the contract is an uncompressed, contiguous raw file read from the page
cache (~0.07 ms per 512² frame here): a floor no detector file reaches. The same is also
measured on Eiger-style raw frames (bitshuffle-LZ4, one chunk per frame, what the detector
writes): end to end vs a plain h5py read of those compressed frames (cases ``*_bslz4raw``).

Info rows ``*_2ranks``: the same run under ``mpiexec -n 2`` (both cores of the node), still
against the one-process read. ``floor_*``: a bare loop over the same primitives (crop read,
ptyprep's encoder, ``write_direct_chunk``; or a raw HDF5 write) with nothing else: the
ratio no preparation of this kind can beat in one process.

Every measured process takes the allocator settings of the command line
(:func:`ptyprep.fast.allocator.keep_freed_memory`: freed buffers reused, not faulted in again).

``stages`` gives ms per frame of each stage of the rebin-1/2 runs: read + prepare (no
writing, ``iter_chunks``), encode (shuffle + deflate of data and weights, what every rank
does for its share) and the rest (HDF5 writes, file and group creation, gathers).

    python benchmarks/bench_ptycho.py [--frames 2000] [--profile] [--json-out FILE]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)
import numpy as np

from ptyprep.fast.allocator import keep_freed_memory

RAW = (512, 512)
CROP = 256
BATCH = 64


def plain_read(path, n):
    """Seconds to read every raw frame with h5py, 64 frames at a time into one buffer."""
    import h5py

    with h5py.File(path, "r") as f:
        d = f["/entry/data/data"]
        buf = np.empty((BATCH,) + d.shape[1:], d.dtype)
        t0 = time.perf_counter()
        for s in range(0, n, BATCH):
            e = min(n, s + BATCH)
            d.read_direct(buf, np.s_[s:e], np.s_[:e - s])
        return time.perf_counter() - t0


def recipe(raw, out, rebin, compression="gzip", save="append"):
    import ptyprep

    return ptyprep.load_recipe({
        "source": {"name": "hdf5", "path": str(raw), "frames": "/entry/data/data",
                   "positions": "/entry/positions", "energy_keV": 8.0, "distance_m": 5.0,
                   "psize_m": 75e-6, "beam_center": [RAW[0] / 2, RAW[1] / 2]},
        "prep": {"shape": CROP, "center": "source", "rebin": rebin},
        "output": {"dfile": str(out), "save": save, "compression": compression,
                   "overwrite": True},
    })


def remove_output(out):
    """Delete a previous run's master and part files (not part of preparing the next scan:
    dropping a 136 MB file from the page cache takes 10–30 ms here)."""
    for path in Path(out).parent.glob(Path(out).name + "*"):
        path.unlink()


def prepare(raw, out, rebin, compression="gzip", save="append"):
    import ptyprep

    remove_output(out)
    t0 = time.perf_counter()
    ptyprep.run(recipe(raw, out, rebin, compression, save))
    return time.perf_counter() - t0


def prepare_only(raw, rebin):
    """Seconds to read and prepare every frame in memory (``iter_chunks``), nothing written."""
    import ptyprep

    t0 = time.perf_counter()
    for _ in ptyprep.iter_chunks(recipe(raw, Path(raw).with_suffix(".unused"), rebin)):
        pass
    return time.perf_counter() - t0


def make_raw(folder, n):
    path = Path(folder) / "raw.h5"
    C.write_frames(path, n, C.diffraction_frames(16, RAW, seed=3), chunked=False)
    return path


def make_raw_bslz4(folder, n):
    """The same frames as an Eiger writes them: bitshuffle-LZ4, one chunk per frame."""
    import hdf5plugin

    path = Path(folder) / "raw_bslz4.h5"
    C.write_frames(path, n, C.diffraction_frames(16, RAW, seed=3),
                   filters=dict(hdf5plugin.Bitshuffle(cname="lz4")))
    return path


def encode_seconds(raw, rebin):
    """Seconds spent encoding (shuffle + deflate) data and weights of every prepared frame."""
    import ptyprep
    from ptyprep.layout.filters import dataset_filters
    from ptyprep.fast import chunkwrite as cw
    from ptyprep.ptycho.share import weights_of

    codec = cw.chunk_codec(dataset_filters("gzip"))
    total = 0.0
    for stack in ptyprep.iter_chunks(recipe(raw, Path(raw).with_suffix(".unused"), rebin)):
        k = cw.frames_per_chunk(stack.data[0].nbytes, len(stack))
        t0 = time.perf_counter()
        cw.encode_stacks([stack.data, weights_of(stack)], codec, None, k)
        total += time.perf_counter() - t0
    return total


def floor_loop(raw, out, n, encode=True, batch=8):
    """Seconds of the bare loop a preparation cannot beat: read the 256² crop (hyperslab),
    encode it as ptyprep does (shuffle + deflate, chunks of as many frames as ptyprep's)
    and write the chunks, ``batch`` frames at a time (as ptyprep's cache-sized batches); no
    weights, positions, gathers or ptyprep bookkeeping. ``encode=False``: write raw
    through HDF5 (chunks of one frame)."""
    import h5py
    from ptyprep.layout.filters import dataset_filters
    from ptyprep.fast import chunkdatasets as cd
    from ptyprep.fast import chunkwrite as cw

    filters = dataset_filters("gzip") if encode else {}
    codec = cw.chunk_codec(filters)
    k = cw.frames_per_chunk(CROP * CROP * 4, n) if encode else 1
    r0, c0 = (RAW[0] - CROP) // 2, (RAW[1] - CROP) // 2
    with h5py.File(raw, "r") as f, h5py.File(out, "w", libver="latest") as o:
        d = f["/entry/data/data"]
        buf = np.empty((batch, CROP, CROP), d.dtype)
        dset = o.create_dataset("data", (n, CROP, CROP), d.dtype, chunks=(k, CROP, CROP),
                                **filters)
        modes = None
        t0 = time.perf_counter()
        for s in range(0, n, batch):
            m = min(batch, n - s)
            d.read_direct(buf, np.s_[s:s + m, r0:r0 + CROP, c0:c0 + CROP], np.s_[:m])
            if encode:
                modes = modes or [codec.plane_modes(buf[:m])]
                data, sizes = cw.encode_stacks([buf[:m]], codec, modes, k)
                cd.write_encoded(dset, s, cw.split_encoded(data, sizes, [buf.shape[1:]],
                                                           [buf.dtype], codec, m, k)[0])
            else:
                dset[s:s + m] = buf[:m]
        return time.perf_counter() - t0


def prepare_hdf5_deflate(raw, out, rebin):
    """The former writer: HDF5's own gzip filter on rank 0 (ptyprep's encoder switched off)."""
    from ptyprep.fast import chunkwrite as cw

    saved = cw.chunk_codec
    cw.chunk_codec = lambda filters: None
    try:
        return prepare(raw, out, rebin)
    finally:
        cw.chunk_codec = saved


def read_back(path):
    """Seconds to read every frame's data of a .ptyd (all chunks) with plain h5py."""
    import h5py

    with h5py.File(path, "r") as f:
        t0 = time.perf_counter()
        for name in f["chunks"]:
            f["chunks"][name]["data"][()]
        return time.perf_counter() - t0


def mpi_worker(raw, out, rebin, save, repeat):
    """Under mpiexec: best time of ``ptyprep.run`` from a barrier to the end (all ranks)."""
    import ptyprep
    from ptyprep.engine.comm import world

    comm = world()
    best = float("inf")
    for _ in range(repeat):
        if comm.rank == 0:
            remove_output(out)
        comm.barrier()
        t0 = time.perf_counter()
        ptyprep.run(recipe(raw, out, rebin, save=save), comm)
        comm.barrier()
        best = min(best, time.perf_counter() - t0)
    if comm.rank == 0:
        print(json.dumps({"seconds": best, "ranks": comm.size}))


def prepare_mpi(raw, out, rebin, save="append", ranks=2, repeat=2):
    """Seconds of ``ptyprep.run`` on ``ranks`` MPI processes (None without mpiexec)."""
    import shutil
    import subprocess
    import sys

    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        return None
    cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py", __file__, "--worker",
           str(raw), str(out), str(rebin), save, str(repeat)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=C.single_thread_env(),
                         cwd=str(C.HERE), timeout=600)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["seconds"]


#: Rounds of (plain read, rebin 1, rebin 2) of the contract, interleaved so that both sides
#: of each ratio see the same state of a shared host; the best of each is kept.
CONTRACT_ROUNDS = 5


def contract_times(raw, tmp, frames, rounds):
    """Best seconds of the plain read and of the rebin-1 and rebin-2 runs, interleaved."""
    best = {"read": float("inf"), 1: float("inf"), 2: float("inf")}
    for _ in range(rounds):
        best["read"] = min(best["read"], plain_read(raw, frames))
        for rebin in (1, 2):
            best[rebin] = min(best[rebin], prepare(raw, Path(tmp) / f"rebin{rebin}.ptyd", rebin))
    return best


def run(frames=2000, repeat=2, profile=False, folder=None, extra=True):
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        raw = make_raw(tmp, frames)
        plain_read(raw, frames)                                  # warm the page cache
        # imports and first calls (h5py filters, numpy ufunc loops) are not part of a run's cost
        prepare(raw, Path(tmp) / "warm_up.ptyd", 2)
        (Path(tmp) / "warm_up.ptyd").unlink()
        contract = contract_times(raw, tmp, frames, max(CONTRACT_ROUNDS, repeat))
        t_read = contract["read"]
        out = {"frames": frames, "read_s": t_read, "read_fps": frames / t_read, "cases": {}}

        def case(name, t, ref, comp, rebin, path=None, **more):
            size = path.stat().st_size if path is not None and path.exists() else 0
            out["cases"][name] = {"seconds": t, "fps": frames / t, "ratio": ref / t,
                                  "compression": comp, "rebin": rebin, "mb": size / 1e6,
                                  "ms_per_frame": 1e3 * t / frames, **more}

        cases = [("rebin1", 1, "gzip", "append"), ("rebin2", 2, "gzip", "append")]
        if extra:
            cases += [("rebin1_none", 1, "none", "append"), ("rebin1_lzf", 1, "lzf", "append"),
                      ("rebin1_bitshuffle", 1, "bitshuffle", "append"),
                      ("rebin1_link", 1, "gzip", "link")]
        for name, rebin, comp, save in cases:
            path = Path(tmp) / f"{name}.ptyd"
            if name in ("rebin1", "rebin2"):
                t = contract[rebin]                # its last run's file is still at path
            else:
                t = prepare(raw, path, rebin, comp, save)
            more = {}
            if name == "rebin1" and extra:
                t_back = min(read_back(path) for _ in range(2))
                more["read_back_ms_per_frame"] = 1e3 * t_back / frames
            case(name, t, t_read, comp, rebin, path, **more)
            remove_output(path)
        if extra:
            path = Path(tmp) / "hdf5_deflate.ptyd"
            t = prepare_hdf5_deflate(raw, path, 1)
            case("rebin1_gzip_by_hdf5_filter", t, t_read, "gzip", 1, path,
                 read_back_ms_per_frame=1e3 * min(read_back(path) for _ in range(2)) / frames)
            path.unlink()
        # the node: both cores, as under `mpiexec -n 2 ptyprep run` (info rows, also in --quick)
        for rebin, save in ((1, "append"), (2, "append")) + (((1, "link"),) if extra else ()):
            path = Path(tmp) / f"mpi_{save}.ptyd"
            t = prepare_mpi(raw, path, rebin, save)
            if t is not None:
                case(f"rebin{rebin}_{save}_2ranks", t, t_read, "gzip", rebin)
            remove_output(path)
        # the floor: the same primitives in a bare loop (what no preparation can beat)
        for name, enc in (("floor_read_encode_write", True), ("floor_read_write_raw", False)):
            path = Path(tmp) / f"{name}.h5"
            t = min(floor_loop(raw, path, frames, enc) for _ in range(repeat))
            case(name, t, t_read, "gzip" if enc else "none", 1, path)
            path.unlink()
        out["stages"] = {}
        for rebin in (1, 2):
            t = min(prepare_only(raw, rebin) for _ in range(repeat))
            case(f"rebin{rebin}_no_write", t, t_read, "-", rebin)
            enc = min(encode_seconds(raw, rebin) for _ in range(repeat))
            total = out["cases"][f"rebin{rebin}"]["seconds"]
            out["stages"][f"rebin{rebin}"] = {
                "plain_read_ms": 1e3 * t_read / frames,
                "read_prepare_ms": 1e3 * t / frames,
                "encode_ms": 1e3 * enc / frames,
                "write_and_rest_ms": 1e3 * max(0.0, total - t - enc) / frames,
                "total_ms": 1e3 * total / frames,
            }

        # Eiger-style raw: bitshuffle-LZ4 chunks, read by h5py through hdf5plugin
        raw_bs = make_raw_bslz4(tmp, frames)
        plain_read(raw_bs, frames)
        t_read_bs = min(plain_read(raw_bs, frames) for _ in range(repeat))
        out["read_bslz4_s"], out["read_bslz4_fps"] = t_read_bs, frames / t_read_bs
        for rebin in (1, 2):
            path = Path(tmp) / f"bs{rebin}.ptyd"
            t = min(prepare(raw_bs, path, rebin) for _ in range(repeat))
            case(f"rebin{rebin}_bslz4raw_vs_bslz4read", t, t_read_bs, "gzip", rebin, path,
                 read_fps=frames / t_read_bs)
            path.unlink()

        out["ptycho_vs_read_limit"] = min(out["cases"][k]["ratio"] for k in ("rebin1", "rebin2"))
        out["ptycho_bslz4_vs_read"] = min(out["cases"][f"rebin{r}_bslz4raw_vs_bslz4read"]["ratio"]
                                          for r in (1, 2))
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            prepare(raw, Path(tmp) / "profile.ptyd", 1)
            prof.disable()
            stats = pstats.Stats(prof).sort_stats("tottime")
            stats.print_stats(18)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="cProfile one rebin-1 run")
    p.add_argument("--no-extra", action="store_true", help="only the gzip cases of the contract")
    p.add_argument("--tmp", default=None, help="folder for the generated data")
    p.add_argument("--json-out", default=None)
    p.add_argument("--worker", nargs=5, metavar=("RAW", "OUT", "REBIN", "SAVE", "REPEAT"),
                   help=argparse.SUPPRESS)
    a = p.parse_args()
    keep_freed_memory()          # as `ptyprep run` does (ptyprep/allocator.py)
    if a.worker:
        raw, out, rebin, save, rep = a.worker
        mpi_worker(raw, out, int(rebin), save, int(rep))
        return
    C.emit(run(a.frames, a.repeat, a.profile, a.tmp, not a.no_extra), a.json_out)


if __name__ == "__main__":
    main()
