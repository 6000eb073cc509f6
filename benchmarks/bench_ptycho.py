"""Ptychography end to end vs a plain read of the same raw frames, in the same run.

Writes ``--frames`` raw 512×512 uint32 frames (far-field-like Poisson counts) to an HDF5
file, reads them all back with h5py (the read limit), then prepares them with
``ptyprep.run`` (hdf5 source, 256×256 crop around the beam centre, rebin 1 and 2, .ptyd
append, default compression). The ratio read time / preparation time is the contract
(≥ 0.5: preparing costs at most as much again as reading).

    python benchmarks/bench_ptycho.py [--frames 2000] [--profile] [--json-out FILE]
"""

import argparse
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)
import numpy as np

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


def prepare(raw, out, rebin, compression="gzip", save="append"):
    import ptyprep

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


def run(frames=2000, repeat=2, profile=False, folder=None, extra=True):
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        raw = make_raw(tmp, frames)
        plain_read(raw, frames)                                  # warm the page cache
        t_read = min(plain_read(raw, frames) for _ in range(repeat))
        out = {"frames": frames, "read_s": t_read, "read_fps": frames / t_read, "cases": {}}
        cases = [("rebin1", 1, "gzip", "append"), ("rebin2", 2, "gzip", "append")]
        if extra:
            cases += [("rebin1_none", 1, "none", "append"), ("rebin1_lzf", 1, "lzf", "append"),
                      ("rebin1_bitshuffle", 1, "bitshuffle", "append")]
        for name, rebin, comp, save in cases:
            t = min(prepare(raw, Path(tmp) / f"{name}.ptyd", rebin, comp, save)
                    for _ in range(repeat if not name.endswith(("none", "lzf", "bitshuffle")) else 1))
            size = (Path(tmp) / f"{name}.ptyd").stat().st_size
            (Path(tmp) / f"{name}.ptyd").unlink()
            out["cases"][name] = {"seconds": t, "fps": frames / t, "ratio": t_read / t,
                                  "compression": comp, "rebin": rebin, "mb": size / 1e6}
        for rebin in (1, 2):
            t = min(prepare_only(raw, rebin) for _ in range(repeat))
            out["cases"][f"rebin{rebin}_no_write"] = {"seconds": t, "fps": frames / t,
                                                      "ratio": t_read / t, "compression": "-",
                                                      "rebin": rebin, "mb": 0.0}
        out["ptycho_vs_read_limit"] = min(out["cases"][k]["ratio"] for k in ("rebin1", "rebin2"))
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
    a = p.parse_args()
    C.emit(run(a.frames, a.repeat, a.profile, a.tmp, not a.no_extra), a.json_out)


if __name__ == "__main__":
    main()
