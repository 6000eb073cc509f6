"""A worked example of an output format: the prepared frames as NumPy ``.npz`` files.

``[output] format = "npz"`` writes the folder ``<dfile stem>_npz/``: every rank saves its
share of every chunk as ``chunk<number>_<first index>.npz`` (``data``, ``weights``,
``positions``, ``indices``), and rank 0 writes ``index.json`` (frames, files, complete,
raw_center) once they are all there.  ``ptyprep watch`` grows the folder chunk by chunk
and rewrites ``index.json`` at every publication.  docs/writing-a-format.md explains it.
"""

import json
import os

import numpy as np

from ptyprep import register_format
from ptyprep.engine.collective import after_all
from ptyprep.engine.formats import Writer
from ptyprep.errors import OutputError
from ptyprep.ptycho.follow import FramesFollower
from ptyprep.ptycho.format import PtychoFormat

INDEX = "index.json"
ARRAYS = ("data", "weights", "positions", "indices")


def save_share(folder, share, parts):
    """Save this rank's prepared parts of chunk ``share``; return the file name (or None)."""
    parts = [p for p in parts if len(p.indices)]
    if not parts:
        return None
    name = f"chunk{share.number:05d}_{parts[0].indices[0]:07d}.npz"
    arrays = {k: np.concatenate([getattr(p, "valid_stack" if k == "weights" else k)
                                 for p in parts]) for k in ARRAYS}
    np.savez(folder / f"{name}.tmp.npz", **arrays)
    os.replace(folder / f"{name}.tmp.npz", folder / name)  # a reader never sees half a file
    return name


def fresh_folder(folder):
    """Rank 0: ``folder`` made, without the chunk files of an earlier run."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("chunk*.npz"):
        path.unlink()


def write_index(folder, frames, complete, raw_center=None):
    """Rank 0: list the chunk files in ``index.json`` (written whole, then renamed)."""
    files = sorted(p.name for p in folder.glob("chunk*.npz") if ".tmp" not in p.name)
    record = {"frames": frames, "files": files, "complete": complete, "raw_center": raw_center}
    (folder / f"{INDEX}.tmp").write_text(json.dumps(record))
    os.replace(folder / f"{INDEX}.tmp", folder / INDEX)
    return frames


class NpzFormat(PtychoFormat):
    """Prepared frames as ``.npz`` files, one per chunk and rank (a worked example)."""

    @property
    def folder(self):
        return self.dfile.with_name(f"{self.dfile.stem}_npz")

    def outputs(self):
        return [self.folder]

    def check(self):
        if (self.folder / INDEX).exists() and not self.recipe.output.overwrite:
            raise OutputError(f"{self.folder} exists; set output.overwrite = true to replace it")

    def writer(self, job, comm):
        return NpzWriter(self.folder, comm)

    def follower(self, comm, **options):
        return NpzFollower(self.recipe, comm, self.folder)


class NpzWriter(Writer):
    def __init__(self, folder, comm):
        self.folder, self.comm, self.frames, self.mine = folder, comm, 0, []

    def begin(self, scan):
        after_all(self.comm, fresh_folder, self.folder)

    def write(self, scan, share, parts):
        name = save_share(self.folder, share, parts)
        self.mine += [name] if name else []
        self.frames = share.stop

    def close(self):
        after_all(self.comm, write_index, self.folder, self.frames, True)

    def abandon(self):
        for name in self.mine:
            (self.folder / name).unlink(missing_ok=True)

    def result(self):
        return {"path": str(self.folder), "frames": self.frames}


class NpzFollower(FramesFollower):
    def recover(self):  # rank 0, under the lock: what index.json lists; drop the rest
        self.dfile.mkdir(parents=True, exist_ok=True)
        path = self.dfile / INDEX
        state = json.loads(path.read_text()) if path.exists() else {"frames": 0, "files": []}
        if state.get("complete"):
            raise OutputError(f"{self.dfile} holds a complete scan; remove it to prepare again")
        for p in self.dfile.glob("chunk*.npz"):
            if p.name not in state["files"]:
                p.unlink()
        return state["frames"], state.get("raw_center")

    def resume(self, state):
        self.written, self.raw_center = state
        return self.written

    def write_chunk(self, share, positions, acq):
        mine, parts = self.prepared(share, positions)
        save_share(self.dfile, share, parts)

    def publish(self, acq, complete=False):
        return write_index(self.dfile, self.written, complete, list(map(float, self.plan.center)))

    def finish(self, acq):
        return self.publish(acq, complete=True)


register_format("npz", NpzFormat)
