"""Fault injection for the reliability tests (imported by test modules, not collected)."""

import h5py
import numpy as np

#: A recipe of the ``hdf5`` source on ``{raw}`` (a :func:`corrupt_scan`), writing ``{dfile}``.
HDF5_RECIPE = """\
[source]
name = "hdf5"
path = "{raw}"
frames = "/entry/data/data"
positions = "/entry/positions"
energy_keV = 8.0
distance_m = 5.0
psize_m = 75e-6
[prep]
shape = 64
center = [48, 50]
[output]
dfile = "{dfile}"
chunk_frames = 5
"""


def corrupt_scan(path, bad=13, n=20):
    """A gzip frame dataset of ``n`` Poisson frames whose chunk ``bad`` is overwritten
    (``bad=None``: an intact file)."""
    frames = np.random.default_rng(0).poisson(50, size=(n, 96, 100)).astype(np.uint32)
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=frames, chunks=(1, 96, 100), compression="gzip")
        f["entry/positions"] = np.zeros((n, 2))
    if bad is None:
        return path
    with h5py.File(path, "r") as f:
        offset = f["entry/data/data"].id.get_chunk_info(bad).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        fh.write(b"\xff" * 40)
    return path


def error_lines(stderr):
    """The non-empty lines of ``stderr``."""
    return [line for line in stderr.splitlines() if line.strip()]


def snapshot(folder):
    """``{name: bytes}`` of every file in ``folder`` (hidden ones included)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
