"""Eiger-style bitshuffle-LZ4 raw frames: 256×256 crop-on-read vs h5py.

Writes ``--frames`` 1024×1024 uint32 frames, one chunk per frame, bitshuffle + LZ4 (HDF5
filter 32008, as an Eiger writes them), then reads a centred 256×256 crop of every frame:

* ``whole``: h5py reads whole frames (16 at a time into one buffer), then crops;
* ``hyperslab``: h5py reads the crop hyperslab (HDF5 still decodes every whole chunk);
* ``ours``: ptyprep.fast.chunkread.read_frames_roi decodes only the LZ4 blocks of the crop's rows.

The contract is whole / ours (≥ 3×). The same frames written with hdf5plugin's Blosc2 filter
(``blosc2`` in the JSON, when the ``blosc2`` package is installed) give an info row. With ``--real`` the same on the real Eiger 4M file
of the shared data folder, when present.

    python benchmarks/bench_eiger_crop.py [--frames 500] [--json-out FILE]
"""

import argparse
import tempfile
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)
import numpy as np

SHAPE = (1024, 1024)
CROP = 256
BATCH = 16
REAL = C.ROOT.parent / "shared" / "data" / "biocat_eiger2" / "vac_007_data_000001.h5"


def make_file(folder, n, codec="bslz4"):
    """Frames one chunk each: Eiger's bitshuffle-LZ4, or hdf5plugin's Blosc2 (``"blosc2"``)."""
    import hdf5plugin

    path = Path(folder) / f"eiger_{codec}.h5"
    filters = (hdf5plugin.Bitshuffle(cname="lz4") if codec == "bslz4" else
               hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE))
    C.write_frames(path, n, C.diffraction_frames(8, SHAPE, seed=7), filters=dict(filters))
    return path


def centred_roi(shape, crop=CROP):
    r0, c0 = shape[0] // 2 - crop // 2, shape[1] // 2 - crop // 2
    return r0, r0 + crop, c0, c0 + crop


def time_reads(path, roi, repeat=3, dataset="/entry/data/data"):
    """Seconds per frame of each way of reading the crop; checks they agree."""
    import h5py

    from ptyprep.fast.chunkread import read_frames_roi

    r0, r1, c0, c1 = roi
    with h5py.File(path, "r") as f:
        d = f[dataset]
        n = d.shape[0]
        out = np.empty((n, r1 - r0, c1 - c0), d.dtype)
        batch = min(BATCH, n)
        whole_buf = np.empty((batch,) + d.shape[1:], d.dtype)

        def whole():
            for s in range(0, n, batch):
                e = min(n, s + batch)
                d.read_direct(whole_buf, np.s_[s:e], np.s_[:e - s])
                out[s:e] = whole_buf[:e - s, r0:r1, c0:c1]
            return out.copy()

        def hyperslab():
            d.read_direct(out, np.s_[:, r0:r1, c0:c1])
            return out.copy()

        def ours():
            for s in range(0, n, batch):
                e = min(n, s + batch)
                read_frames_roi(d, np.arange(s, e), roi, out=out[s:e])
            return out.copy()

        def ours_full():
            for s in range(0, n, batch):
                e = min(n, s + batch)
                whole_buf[:e - s] = read_frames_roi(d, np.arange(s, e), (0, d.shape[1], 0, d.shape[2]))
            return whole_buf

        ref = whole()
        for fn in (hyperslab, ours):
            if not np.array_equal(fn(), ref):
                raise AssertionError(f"{fn.__name__} differs from the plain read")
        times = {fn.__name__: C.best_of(fn, repeat) / n for fn in (whole, hyperslab, ours, ours_full)}
        times["whole_full"] = C.best_of(lambda: [d.read_direct(whole_buf, np.s_[s:min(n, s + batch)],
                                                               np.s_[:min(n, s + batch) - s])
                                                 for s in range(0, n, batch)], repeat) / n
    return times


def summarise(times, frames, what):
    return {"what": what, "frames": frames,
            "ms_per_frame": {k: v * 1e3 for k, v in times.items()},
            "fps": {k: 1.0 / v for k, v in times.items()},
            "ours_vs_whole": times["whole"] / times["ours"],
            "ours_vs_hyperslab": times["hyperslab"] / times["ours"],
            "full_frame_ours_vs_h5py": times["whole_full"] / times["ours_full"]}


def run(frames=500, repeat=3, real=True, folder=None):
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = make_file(tmp, frames)
        synth = summarise(time_reads(path, centred_roi(SHAPE), repeat), frames,
                          "1024x1024 uint32 bitshuffle-LZ4, 256x256 centred crop")
        out = {"synthetic": synth, "eiger_crop_read_vs_h5py": synth["ours_vs_whole"]}
        try:
            import blosc2  # noqa: F401
        except ImportError:
            blosc2 = None
        if blosc2 is not None:
            path = make_file(tmp, frames, "blosc2")
            out["blosc2"] = summarise(time_reads(path, centred_roi(SHAPE), repeat), frames,
                                      "1024x1024 uint32 Blosc2 (LZ4, shuffle), 256x256 centred crop")
    if real and REAL.is_file():
        out["real_eiger4m"] = summarise(time_reads(REAL, centred_roi((3262, 3108)), repeat), 2,
                                        f"{REAL.name} (3262x3108 uint32), 256x256 centred crop")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-real", action="store_true", help="skip the real Eiger file")
    p.add_argument("--tmp", default=None)
    p.add_argument("--json-out", default=None)
    a = p.parse_args()
    C.emit(run(a.frames, a.repeat, not a.no_real, a.tmp), a.json_out)


if __name__ == "__main__":
    main()
