"""ptyprep watch: latency from a frame's arrival to its visibility; highest rate kept up with.

A simulated acquisition (``python -m ptyprep.acquire hdf5``, SWMR) writes frames
while ``ptyprep watch`` (serial, or ``mpiexec -n 2``) publishes them; a reader
polls the master every few milliseconds and notes when each frame first
becomes readable.

* latency: the acquisition runs at a modest rate; per frame, the time from the
  writer's flush to the first look that shows it (median and 95th percentile).
  A frame waits for the rest of its chunk, so latency grows with
  ``chunk_frames / rate``; the table shows both.
* highest rate kept up with: the acquisition writes as fast as it can; the
  daemon's steady throughput (frames published per second between the first
  and the last publication) is the highest acquisition rate it follows.

Run ``python benchmarks/bench_watch.py`` (``--quick`` for a short run).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np

PY = sys.executable
MPIEXEC = str(Path(PY).parent / "mpiexec") if (Path(PY).parent / "mpiexec").exists() else \
    shutil.which("mpiexec")


class Visibility(threading.Thread):
    """Notes the first time each frame index can be read from the master."""

    def __init__(self, master, num_frames):
        super().__init__(daemon=True)
        self.master, self.seen = master, np.full(num_frames, np.nan)
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            n = self._published()
            now = time.time()
            fresh = np.isnan(self.seen[:n])
            self.seen[:n][fresh] = now
            time.sleep(0.002)

    def _published(self):
        if not self.master.exists():
            return 0
        try:
            with h5py.File(self.master, "r") as h5:
                return sum(len(h5["chunks"][k]["indices"]) for k in h5["chunks"]
                           if h5["chunks"].get(k) is not None)
        except (OSError, KeyError):
            return 0


def recipe_text(raw, shape, chunk, compression):
    crop, rebin = (shape // 2, 1) if shape <= 256 else (shape // 2, 2)
    return f"""[source]
name = "hdf5"
path = "{raw}"
frames = "/entry/data/data"
positions = "/entry/positions"
end_of_scan = "/entry/instrument/detector/end_of_scan"
energy_keV = 6.2
distance_m = 7.0
psize_m = 75e-6
beam_center = [{shape / 2}, {shape / 2}]
[prep]
shape = {crop}
rebin = {rebin}
center = "source"
[output]
dfile = "out/scan.ptyd"
save = "link"
chunk_frames = {chunk}
compression = "{compression}"
"""


def one_run(folder, shape, ranks, frames, rate, chunk, compression):
    """Acquire ``frames`` at ``rate`` (0 = max) while watching; return (written, visible) times."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    raw, times = folder / "raw.h5", folder / "times.npy"
    recipe = folder / "r.toml"
    recipe.write_text(recipe_text(raw, shape, chunk, compression))
    writer = subprocess.Popen([PY, "-m", "ptyprep.acquire", "hdf5", str(raw), "--kind", "index",
                               "--frames", str(frames), "--rate", str(rate), "--shape",
                               str(shape), str(shape), "--pattern", str(shape // 2),
                               "--times", str(times)])
    watch = [PY, "-m", "ptyprep", "-q", "watch", str(recipe), "--poll", "0.02"]
    if ranks > 1:
        watch = [MPIEXEC, "-n", str(ranks), PY, "-m", "mpi4py"] + watch[1:]
    reader = Visibility(folder / "out" / "scan.ptyd", frames)
    reader.start()
    daemon = subprocess.run(watch, capture_output=True, text=True, timeout=1800)
    writer.wait()
    time.sleep(0.05)
    reader.done.set()
    reader.join()
    if daemon.returncode:
        raise RuntimeError(daemon.stderr)
    return np.load(times), reader.seen


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, smaller runs")
    p.add_argument("--compression", default="gzip", help="output.compression (default gzip)")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args(argv)
    work = Path(a.dir or tempfile.mkdtemp(prefix="bench_watch_"))
    cases = [(256, 20.0, 8, 160 if not a.quick else 60), (1024, 5.0, 4, 40 if not a.quick else 16)]
    ranks_list = (1, 2) if MPIEXEC else (1,)
    print(f"ptyprep watch, {os.cpu_count()} cores, compression {a.compression}, poll 0.02 s")
    print(f"{'frame':>10} {'ranks':>5} | {'rate Hz':>7} {'chunk':>5} {'lat med s':>9} "
          f"{'lat p95 s':>9} | {'max kept-up Hz':>14} {'MB/s in':>8}")
    for shape, rate, chunk, frames in cases:
        for ranks in ranks_list:
            written, seen = one_run(work / "lat", shape, ranks, frames, rate, chunk, a.compression)
            lat = seen - written
            n_fast = frames if shape <= 256 else frames * 2
            written, seen = one_run(work / "max", shape, ranks, n_fast, 0, chunk * 4,
                                    a.compression)
            steady = (n_fast - np.sum(seen == seen[0])) / max(np.nanmax(seen) - seen[0], 1e-9)
            mb = steady * shape * shape * 4 / 1e6
            print(f"{shape:>5}x{shape:<4} {ranks:>5} | {rate:>7.0f} {chunk:>5} "
                  f"{np.nanmedian(lat):>9.3f} {np.nanpercentile(lat, 95):>9.3f} | "
                  f"{steady:>14.0f} {mb:>8.0f}", flush=True)
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
