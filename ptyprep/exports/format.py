"""Exports as formats of the engine: :class:`ExportFormat` and its collective writer.

An export is a ptychography format (:class:`~ptyprep.ptycho.format.PtychoFormat`): it
can lead a recipe (``format = ["cxi"]``) or follow ``ptyd`` (``format = ["ptyd",
"cxi"]``), and the scan is read and prepared once for all of them.  Its output sits
beside ``[output] dfile``: ``<stem><suffix>``.

Under MPI each chunk's frames are gathered to rank 0, which writes them (the memory
bound per rank is one chunk, as for ``.ptyd`` append mode): the consumers' readers take
one plain file, and a virtual dataset over per-rank parts would make an export that
cannot be copied as one file.
"""

import numpy as np

from ..engine.collective import after_all, gather, on_root
from ..engine.formats import OVERWRITE_HINT, Writer, check_output
from ..errors import RecipeError, writing
from ..ptycho.format import PtychoFormat


def export_path(dfile, suffix):
    """The output of an export with ``suffix`` beside ``dfile``: ``<stem><suffix>``."""
    return dfile.with_name(dfile.stem + suffix)


class ExportFormat(PtychoFormat):
    """A ptychography export (subclass: set :attr:`suffix` and :attr:`file_class`).

    Attributes
    ----------
    suffix : str
        What follows the stem of ``dfile`` (``".cxi"``, ``"_ptychodus"``...).
    file_class : type
        The :class:`~ptyprep.exports.sink.ExportFile` that writes it.
    """

    suffix = ""
    file_class = None
    #: an explicit output path (``ptyprep export --out``); None: beside ``dfile``
    out = None
    #: how to replace an existing output, for "output exists"
    overwrite_hint = OVERWRITE_HINT
    #: what ``ptyprep formats`` says instead of watching it
    watch_instead = "watch ptyd, then ptyprep export FILE.ptyd --to FORMAT"

    @property
    def target(self):
        """The path this export writes."""
        return self.out if self.out is not None else export_path(self.dfile, self.suffix)

    def outputs(self):
        return [self.target]

    def check(self):
        check_output(self.target, self.recipe.output.overwrite, self.overwrite_hint,
                     folder=self.file_class.is_folder)

    def describe_output(self, plan):
        """``validate``'s line of this export, after :meth:`check_plan` (validate refuses
        what run would)."""
        self.check_plan(plan)
        return super().describe_output(plan)

    def check_plan(self, plan):
        """Raise a PtyprepError if this format cannot hold the prepared scan (default none)."""

    def follower(self, comm, **options):
        raise RecipeError(f"format {self.name!r} is not grown while a scan is acquired: watch "
                          "with output.format = 'ptyd', then `ptyprep export "
                          f"{self.dfile.name} --to {self.name}` (or `ptyprep run` after the "
                          "scan)")

    def writer(self, job, comm):
        self.check_plan(job.plan)
        meta, num_frames, info = job.plan.output_meta(), job.plan.num_frames, job.info
        return ExportWriter(self.target, lambda: self.file_class(self.target, meta, num_frames,
                                                                 info), comm)


def _share_arrays(parts):
    """This rank's share as ``(record, arrays)`` for :func:`~ptyprep.engine.collective.gather`."""
    stacks = list(parts)
    data = np.concatenate([s.data for s in stacks])
    record = (len(data), data.dtype.str)

    def arrays(records):
        # an empty share is float32 whatever the scan's type: take the type of the first
        # rank that has frames, so every rank sends one dtype
        dtype = next((np.dtype(d) for n, d in records if n), data.dtype)
        return [np.concatenate([s.indices for s in stacks]),
                np.concatenate([s.positions for s in stacks]),
                data.astype(dtype, copy=False),
                np.concatenate([s.valid_stack for s in stacks])]
    return record, arrays


class ExportWriter(Writer):
    """Collective writer of one export: each chunk gathered to rank 0 and appended there.

    Parameters
    ----------
    path : Path
        The export's output (for messages and the result).
    make_file : callable
        ``make_file()`` gives the :class:`~ptyprep.exports.sink.ExportFile` (rank 0 only).
    comm : communicator
    """

    def __init__(self, path, make_file, comm):
        self.path, self.comm = path, comm
        self.file = make_file() if comm.rank == 0 else None
        self.frames = 0

    def write(self, scan, share, parts):
        _, joined = gather(self.comm, lambda: _share_arrays(parts))
        on_root(self.comm, self._append, joined)
        self.frames += len(share)

    def _append(self, joined):
        # the ranks' shares of a chunk are consecutive ranges in rank order, as gathered:
        # the frames are in scan order already
        indices, positions, data, valid = joined
        with writing(self.path):
            self.file.append(indices, data, valid, positions)

    def close(self):
        after_all(self.comm, self._finish)

    def _finish(self):
        with writing(self.path):
            self.file.finish()

    def abandon(self):
        if self.file is not None:
            self.file.abandon()

    def result(self):
        return {"path": self.path, "frames": self.frames}
