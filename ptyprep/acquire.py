"""A simulated acquisition that grows raw data at a controlled rate (tutorials, tests, demos).

Frames come from the ``simulate`` source.  By default (``--kind ptycho``) they are a
far-field ptychography scan: a probe over a complex object, Poisson photon counts, a
two-column module gap, dead and hot pixels, positions in metres, and the geometry written
into the file as a detector writes it — what ptyprep prepares into a centred, mostly
valid ``.ptyd`` that a reconstruction code can reconstruct.  ``--kind index`` fills frame
*i* with *i* instead, so ordering mistakes of a follower show.  Three layouts, written
the way detector writers do:

* ``hdf5``: one file written in SWMR mode; ``/entry/data/data`` (N, H, W) uint32 grows
  frame by frame, then ``/entry/positions`` (N, 2) metres (y, x); at the end
  ``/entry/instrument/detector/end_of_scan`` is set to 1.  The geometry:
  ``/entry/instrument/source/energy`` (keV), ``/entry/instrument/detector/distance``
  (sample to detector, m), ``.../x_pixel_size`` and ``.../y_pixel_size`` (m),
  ``.../beam_center_y`` and ``.../beam_center_x`` (row, column of the optical axis,
  pixels) and ``.../pixel_mask`` (H, W) uint32, 0 = good (NeXus).
* ``eiger``: a master file (SWMR) whose ``/entry/data/data_000001``, ... are
  external links to data files written one by one (under a temporary name,
  then renamed); positions and the marker are in the master.
* ``files``: ``frame_00000.npy``, ... written under a hidden name and renamed,
  positions appended to ``positions.txt`` (``y x`` per line, metres); at the
  end an empty file ``scan_done`` appears.

A fourth, ``saxs``, is a scanning-SAXS raster (the fibre phantom of
:mod:`ptyprep.saxs.demo`, snaking, slow axis a rotation): one SWMR file with two
detectors ``/entry/saxs/data`` (60×70) and ``/entry/waxs/data`` (50×60), monitors
``/entry/monitors/i0``, ``/entry/monitors/it``, motor positions
``/entry/motors/rot``, ``/entry/motors/x`` and ``/entry/scan_shape``; per batch
the frames, then the monitors, then the motor positions are flushed.
``saxs.poni``, ``waxs.poni`` and ``*_valid.npy`` are written next to it
(:func:`saxs_setup`).

Run ``python -m ptyprep.acquire --help``.  The time each frame became
complete (Unix seconds) can be saved with ``--times FILE.npy``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from .saxs.acquire import MARKER, SAXS_RASTER, Clock, acquire_saxs
# the scanning-SAXS acquisition's helpers, where tests and benchmarks have found them
from .saxs.acquire import (SAXS_DETECTORS, SAXS_MONITORS, SAXS_MOTORS,  # noqa: F401
                           SAXS_PIXEL_M, SAXS_SHAPE, saxs_setup, saxs_source_options,
                           saxs_truth)
from .sources.simulate import SimulatedSource

FRAMES, POSITIONS = "/entry/data/data", "/entry/positions"
GEOMETRY = {"energy_keV": 6.2, "distance_m": 7.0, "psize_m": 172e-6}
#: Where the geometry is in the file (NeXus NXdetector / NXsource names).
DETECTOR = "/entry/instrument/detector"
GEOMETRY_PATHS = {"energy_keV": "/entry/instrument/source/energy",
                  "distance_m": f"{DETECTOR}/distance",
                  "psize_m": [f"{DETECTOR}/y_pixel_size", f"{DETECTOR}/x_pixel_size"],
                  "beam_center": [f"{DETECTOR}/beam_center_y", f"{DETECTOR}/beam_center_x"],
                  "mask": f"{DETECTOR}/pixel_mask", "mask_valid_value": 0}


def source_options(layout, path, frame_shape=(96, 100), pattern_size=64, beam_center=None):
    """The ``[source]`` table of a recipe that reads what :func:`acquire` writes."""
    path = str(path)
    geo = dict(GEOMETRY)
    if beam_center is not None:
        geo["beam_center"] = list(beam_center)
    if layout == "files":
        return {"name": "files", "pattern": f"{path}/frame_*.npy",
                "positions_file": f"{path}/positions.txt",
                "end_of_scan": f"{path}/scan_done", **geo}
    frames = FRAMES if layout == "hdf5" else "/entry/data"
    return {"name": "hdf5", "path": path, "frames": frames, "positions": POSITIONS,
            "end_of_scan": MARKER, **geo}


def simulated(num_frames, frame_shape, pattern_size, kind="ptycho"):
    """The simulated source the frames come from."""
    h, w = frame_shape
    return SimulatedSource(num_frames=num_frames, frame_shape=frame_shape,
                           pattern_size=pattern_size, beam_center=(h / 2 + 0.3, w / 2 - 0.4),
                           gap_cols=(w // 2 + 10, w // 2 + 12), kind=kind)


def acquire(layout, path, num_frames, rate_hz=100.0, frame_shape=(96, 100), pattern_size=64,
            batch=1, marker=True, stop_after=None, file_frames=8, kind="ptycho", times=None):
    """Write a scan at ``rate_hz`` frames per second; return the completion time of each frame.

    Parameters
    ----------
    layout : {"hdf5", "eiger", "files"}
    path : str or Path
        HDF5 (master) file, or folder of frame files.
    num_frames : int
    rate_hz : float
        Frames per second (0: as fast as possible).
    batch : int
        Frames written (and flushed) together.
    marker : bool
        Set the end-of-scan marker at the end (False: a writer that just stops).
    stop_after : int, optional
        Stop writing after this many frames and hang (a stalled writer), marker unset.
    file_frames : int
        Frames per data file (``eiger``).
    kind : {"ptycho", "index"}
        Far-field diffraction (Poisson counts), or frame *i* filled with *i*.
    times : str or Path, optional
        Save the completion times as ``.npy``.
    """
    src = simulated(num_frames, frame_shape, pattern_size, kind)
    positions = src.read_positions()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = {"hdf5": _HDF5Writer, "eiger": _EigerWriter, "files": _FilesWriter}[layout](
        Path(path), num_frames, frame_shape, file_frames)
    writer.geometry(src)
    clock, done = Clock(rate_hz), np.zeros(num_frames)
    last = num_frames if stop_after is None else min(stop_after, num_frames)
    for start in range(0, last, batch):
        stop = min(start + batch, last)
        clock.wait_for(stop)
        writer.write(start, src.read_frames(np.arange(start, stop)), positions[start:stop])
        done[start:stop] = time.time()
    if times is not None:
        np.save(times, done)
    if stop_after is not None:
        time.sleep(3600)  # a stalled writer: alive, file open, nothing more comes
    writer.finish(marker)
    return done


def write_geometry(h5, src):
    """Energy, distance, pixel size, beam centre and pixel mask of simulated source ``src``
    into open file ``h5`` (see :data:`GEOMETRY_PATHS`), with NeXus ``units``."""
    meta = src.read_meta()
    values = {GEOMETRY_PATHS["energy_keV"]: (meta.energy_keV, "keV"),
              GEOMETRY_PATHS["distance_m"]: (meta.distance_m, "m")}
    for path, value in zip(GEOMETRY_PATHS["psize_m"], meta.psize_m):
        values[path] = (value, "m")
    for path, value in zip(GEOMETRY_PATHS["beam_center"], meta.beam_center):
        values[path] = (value, "pixel")
    for path, (value, unit) in values.items():
        h5[path] = np.float64(value)
        h5[path].attrs["units"] = unit
    bad = ~src.read_valid()                   # the module gap and dead pixels
    bad |= src.read_frames([0])[0] == src.hot_value    # hot pixels, flagged by the detector
    h5[GEOMETRY_PATHS["mask"]] = bad.astype(np.uint32)  # NeXus: 0 = good


class _HDF5Writer:
    def __init__(self, path, num_frames, frame_shape, file_frames):
        self.h5 = h5py.File(path, "w", libver="latest")
        self.frames = self.h5.create_dataset(FRAMES, (0,) + tuple(frame_shape),
                                             maxshape=(None,) + tuple(frame_shape),
                                             chunks=(1,) + tuple(frame_shape), dtype=np.uint32)
        self.pos = self.h5.create_dataset(POSITIONS, (0, 2), maxshape=(None, 2), dtype=np.float64)
        self.marker = self.h5.create_dataset(MARKER, data=np.int64(0))

    def geometry(self, src):
        """The scan's geometry and pixel mask, as a detector writes them (before SWMR)."""
        write_geometry(self.h5, src)
        self.h5.swmr_mode = True

    def write(self, start, frames, positions):
        stop = start + len(frames)
        self.frames.resize(stop, axis=0)
        self.frames[start:stop] = frames
        self.frames.flush()
        self.pos.resize(stop, axis=0)
        self.pos[start:stop] = positions
        self.pos.flush()

    def finish(self, marker):
        if marker:
            self.marker[()] = 1
            self.marker.flush()
        self.h5.close()


class _EigerWriter(_HDF5Writer):
    def __init__(self, path, num_frames, frame_shape, file_frames):
        self.path, self.file_frames = path, file_frames
        self.h5 = h5py.File(path, "w", libver="latest")
        n_files = -(-num_frames // file_frames)
        for k in range(n_files):
            self.h5[f"/entry/data/data_{k + 1:06d}"] = h5py.ExternalLink(self._data_name(k),
                                                                          "/entry/data/data")
        self.pos = self.h5.create_dataset(POSITIONS, (0, 2), maxshape=(None, 2), dtype=np.float64)
        self.marker = self.h5.create_dataset(MARKER, data=np.int64(0))
        self.pending, self.pending_start = [], 0

    def _data_name(self, k):
        return f"{self.path.stem}_data_{k + 1:06d}.h5"

    def write(self, start, frames, positions):
        for i, frame in enumerate(frames):
            self.pending.append(frame)
            if len(self.pending) == self.file_frames:
                self._flush_file()
        self.pos.resize(start + len(frames), axis=0)
        self.pos[start:] = positions
        self.pos.flush()

    def _flush_file(self):
        k = self.pending_start // self.file_frames
        final = self.path.with_name(self._data_name(k))
        tmp = final.with_name("." + final.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("/entry/data/data", data=np.stack(self.pending))
        os.replace(tmp, final)
        self.pending_start += len(self.pending)
        self.pending = []

    def finish(self, marker):
        if self.pending:
            self._flush_file()
        super().finish(marker)


class _FilesWriter:
    def __init__(self, path, num_frames, frame_shape, file_frames):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.table = open(path / "positions.txt", "a")

    def geometry(self, src):
        """Frame files carry no geometry: the recipe gives it."""

    def write(self, start, frames, positions):
        for i, frame in enumerate(frames):
            final = self.path / f"frame_{start + i:05d}.npy"
            tmp = self.path / f".frame_{start + i:05d}.npy.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, frame)
            os.replace(tmp, final)
        self.table.write("".join(f"{float(y)!r} {float(x)!r}\n" for y, x in positions))
        self.table.flush()

    def finish(self, marker):
        self.table.close()
        if marker:
            (self.path / "scan_done").touch()


ACQUIRE_HELP = """\
what it writes (PATH):
  hdf5   one SWMR file: /entry/data/data (N, H, W) uint32 frames, /entry/positions (N, 2) m,
         the geometry under /entry/instrument (source/energy keV; detector/distance m,
         x_pixel_size, y_pixel_size m, beam_center_x, beam_center_y pixels, pixel_mask
         0 = good) and detector/end_of_scan, set to 1 at the end
  eiger  a master file PATH whose /entry/data/data_000001, ... link data files written one
         by one beside it; positions, geometry and end_of_scan in the master
  files  a folder PATH of frame_00000.npy, ... with positions.txt (y x, metres per line)
         and an empty scan_done at the end
  saxs   a scanning-SAXS raster in one SWMR file (two detectors, monitors, motors), with
         saxs.poni, waxs.poni and *_valid.npy beside it

example:
  python -m ptyprep.acquire hdf5 raw.h5 --frames 500 --rate 50   # in one shell
  ptyprep watch scan.toml --idle-timeout 30                       # in another
"""


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ptyprep.acquire",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Simulate a detector writing a scan at a controlled "
                                            "rate, as the real ones do (for ptyprep watch).",
                                epilog=ACQUIRE_HELP)
    p.add_argument("layout", choices=("hdf5", "eiger", "files", "saxs"),
                   help="how the frames are written (see below)")
    p.add_argument("path", help="the file (hdf5, eiger master, saxs) or folder (files)")
    p.add_argument("--kind", choices=("ptycho", "index"), default="ptycho",
                   help="ptycho: far-field diffraction of a probe over an object, Poisson "
                        "counts (default); index: frame i filled with i (ordering checks)")
    p.add_argument("--frames", type=int, default=None,
                   help="frames to write (default 100; saxs: the whole raster)")
    p.add_argument("--rate", type=float, default=100.0,
                   help="frames per second (default 100; 0 = as fast as possible)")
    p.add_argument("--shape", type=int, nargs=2, default=(96, 100), metavar=("H", "W"),
                   help="frame shape in pixels (default 96 100)")
    p.add_argument("--pattern", type=int, default=64,
                   help="side of the diffraction pattern on the frame, pixels (default 64)")
    p.add_argument("--batch", type=int, default=1, help="frames written and flushed together")
    p.add_argument("--file-frames", type=int, default=8, help="eiger: frames per data file")
    p.add_argument("--no-marker", action="store_true",
                   help="never set the end-of-scan marker (a writer that just stops)")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="write N frames, then hang with the file open (a stalled writer)")
    p.add_argument("--times", default=None, metavar="FILE.npy",
                   help="save the time each frame became complete (Unix seconds)")
    p.add_argument("--raster", type=int, nargs=2, default=SAXS_RASTER, metavar=("SLOW", "FAST"),
                   help="saxs: raster shape (default 6 8)")
    a = p.parse_args(argv)
    if a.layout == "saxs":
        acquire_saxs(a.path, a.frames, a.rate, a.batch, not a.no_marker, a.stop_after,
                     tuple(a.raster), a.times)
        return 0
    acquire(a.layout, a.path, 100 if a.frames is None else a.frames, a.rate, tuple(a.shape),
            a.pattern, a.batch, not a.no_marker, a.stop_after, a.file_frames, kind=a.kind,
            times=a.times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
