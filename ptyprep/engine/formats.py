"""The Format contract, and the registry of formats by name (``[output] format``).

A format is what a recipe asks ptyprep to make: ``ptyd`` (ptypy's prepared data, in
append, link or merge mode), ``procdata`` (scanning SAXS/WAXS), or one defined outside the
package.  The engine (:mod:`ptyprep.engine.run`, :mod:`ptyprep.engine.follow`) knows no
format: it asks the format's objects, in this order,

1. ``Format(recipe)`` and :meth:`Format.check` on every rank — every bad input raises
   before any output is touched;
2. :meth:`Format.open` — the input opened and the plan made (a :class:`Job`); the first
   format of the recipe (the *lead*) does this for all of them;
3. for every :class:`Scan` of the job and every chunk of it: this rank's share
   :meth:`Scan.prepare`-d **once**, then handed to every format's :class:`Writer`;
4. :meth:`Writer.close` when everything succeeded, :meth:`Writer.abandon` on failure;

and for ``ptyprep watch`` a :class:`~ptyprep.engine.follower.Follower` per format
(:meth:`Format.follower`) that publishes a growing prefix and recovers it after a crash.

Formats that prepare frames the same way (the same :attr:`Format.preparation`) can be
named together in one recipe, ``format = ["ptyd", "cxi"]``: the scan is read and
prepared once and each format writes its own file.  A writer never calls the
communicator: it uses the collective helpers of :mod:`ptyprep.engine.collective`.

Formats are looked up like sources: built-ins, the entry-point group
``ptyprep.formats``, and modules in ``experiments/`` (or ``PTYPREP_EXPERIMENTS``)
calling :func:`register_format`.  docs/writing-a-format.md has a worked example.
"""

import abc
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError, RecipeError
from ..sources.plugins import Registry


#: How a recipe says "replace the output" (the hint of "output exists").
OVERWRITE_HINT = ("set output.overwrite = true (or --set output.overwrite=true) or choose "
                  "another output.dfile")


def check_output(path, overwrite, hint=OVERWRITE_HINT, folder=False):
    """Raise OutputError if ``path`` cannot be written (before anything is touched);
    ``hint`` says how to replace an existing output; ``folder``: the output is a folder
    (written beside, then renamed into place)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"output {str(path)!r} exists; {hint}")
    if path.is_dir() and not folder:
        raise OutputError(f"output {str(path)!r} is a directory; output.dfile must name a file")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create the output folder: {str(parent)!r} is a file; "
                          "choose another output.dfile")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {str(parent)!r} is not writable; "
                          "choose another output.dfile")


class Format(abc.ABC):
    """An output format (subclass it and register it with :func:`register_format`).

    Parameters
    ----------
    recipe : Recipe
        The validated recipe; its ``[output]`` table and, when :attr:`section` is set,
        ``recipe.section(section)`` configure the format.

    Attributes
    ----------
    name : str
        The value of ``[output] format`` (set by :func:`register_format` if empty).
    section : str or None
        The recipe table this format owns (``"saxs"``), parsed by :meth:`parse_section`.
    preparation : str
        Formats with the same preparation share the lead's plan and prepared shares.
    """

    name = ""
    section = None
    preparation = ""

    def __init__(self, recipe):
        self.recipe = recipe

    @classmethod
    def parse_section(cls, table):
        """Validate this format's recipe table (a dict) into a typed value (RecipeError if bad).

        Called with ``{}`` when the recipe names the format but has no such table.
        """
        return dict(table)

    @classmethod
    def section_defaults(cls):
        """``{key: default}`` of the section's keys (types ``--set`` values); default none."""
        return {}

    def check_input(self):
        """Raise a :class:`~ptyprep.errors.PtyprepError` for bad input this (lead) format
        reads — raw files, their geometry and frame type — before :meth:`check` looks at
        the output, so a wrong raw path is not reported as "output exists".  Opens and
        closes the input; writes nothing.  Default: nothing to check."""

    @abc.abstractmethod
    def check(self):
        """Raise a :class:`~ptyprep.errors.PtyprepError` for any bad input or unwritable
        output; every rank calls it before anything is opened or written."""

    @property
    def dfile(self):
        """The recipe's ``[output] dfile`` as a path: what the format writes, or writes beside."""
        return self.recipe.path(self.recipe.output.dfile)

    def outputs(self):
        """The paths this format writes (for messages); default none."""
        return []

    def describe(self, formats=()):
        """Lines for ``ptyprep validate`` (opens the input, writes nothing).

        The lead format describes the plan, then the outputs of ``formats`` (the recipe's
        formats, itself first; default itself).
        """
        return [f"recipe OK: {self.name}"] + [
            f"  output        {', '.join(map(str, f.outputs())) or '(none)'} ({f.name})"
            for f in (formats or [self])]

    # -- the lead format: input and preparation ---------------------------------------------------
    def open(self, comm):
        """Open the input and plan the run (collective: engine helpers only): a :class:`Job`."""
        raise RecipeError(f"format {self.name!r} cannot lead a recipe: name a format that "
                          "prepares frames first in [output] format")

    # -- every format: its output --------------------------------------------------------------------
    @abc.abstractmethod
    def writer(self, job, comm):
        """The :class:`Writer` of this run (every rank makes one)."""

    def follower(self, comm, **options):
        """The :class:`~ptyprep.engine.follower.Follower` that grows this format's output
        during ``ptyprep watch`` (every rank; checks the recipe).  ``options`` are the
        format's own watch options (``procdata``: ``maps_every``)."""
        raise RecipeError(f"format {self.name!r} cannot be followed while a scan is acquired; "
                          "prepare it with `ptyprep run` after the scan")

    def companion(self, lead, comm):
        """The :class:`~ptyprep.engine.follower.Companion` that grows this format's output
        beside the lead format's follower ``lead`` during ``ptyprep watch`` (every rank;
        checks the recipe), e.g. a CXI file over the parts of a growing ``.ptyd``."""
        raise RecipeError(f"ptyprep watch grows {self.name!r} only when it leads; output.format "
                          f"names {list(self.recipe.output.formats)}: watch the first and "
                          "export the others after the scan")


@dataclass
class Scan:
    """A range of frames the engine walks in chunks (a job holds one or several).

    Subclasses implement :meth:`prepare`; :meth:`open`/:meth:`close` bracket the walk
    (e.g. open one sample's raw files).

    Attributes
    ----------
    key : object
        Which scan (None for a job of one; the sample name in proc_data).
    start, stop : int
        Frames ``[start, stop)`` to prepare (``start`` > 0 when a run resumes).
    chunk_frames : int
        Frames per chunk.
    """

    key: object
    start: int
    stop: int
    chunk_frames: int

    def open(self):
        """Called on every rank before the first chunk (not collective)."""

    def close(self):
        """Called on every rank after the last chunk, also after a failure."""

    def prepare(self, share, indices, batch_frames=None):
        """This rank's share: an iterator of prepared parts, in order.

        Parameters
        ----------
        share : ChunkShare
            The chunk (its ``number``, bounds and every rank's counts).
        indices : (M,) int64 ndarray
            Scan indices of this rank's share (may be empty).
        batch_frames : int, optional
            Prepare at most this many frames at a time (one part per batch, made as the
            iterator advances); default the whole share as one part.
        """
        raise NotImplementedError


class Job:
    """What the lead format opened: the :class:`Scan` list the engine walks.

    Attributes
    ----------
    scans : list of Scan
    """

    scans = ()

    def close(self):
        """Release what :meth:`Format.open` opened (every rank)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Writer(abc.ABC):
    """One format's output during a run; collective methods are called on every rank.

    Attributes
    ----------
    batch_frames : int or None
        The writer prefers shares prepared in batches of this many frames (streamed as
        they come, while in the CPU cache); None: whole shares.
    """

    batch_frames = None
    #: Frames per step of shares that follow the ranks' measured speed (a writer whose rank 0
    #: does more than the others); None: equal shares, ptypy's rule.  Such a writer sets
    #: ``rank_seconds`` after each ``write``: every rank's working seconds for that chunk,
    #: the same list on every rank.
    balance_granule = None
    rank_seconds = None

    def begin(self, scan):
        """Collective: a scan of the job starts (default nothing)."""

    @abc.abstractmethod
    def write(self, scan, share, parts):
        """Collective: this rank's prepared ``parts`` of chunk ``share`` (a
        :class:`~ptyprep.engine.shares.ChunkShare`); gather to rank 0 or write per rank."""

    def end(self, scan):
        """Collective: a scan of the job is done (default nothing)."""

    @abc.abstractmethod
    def close(self):
        """Collective: every chunk is written; complete the output."""

    def abandon(self):
        """After a failure, on every rank: remove what this rank wrote (not collective)."""

    def result(self):
        """What the run reports of this output: ``{"path": ..., "frames": ...}``."""
        return {}


FORMATS = Registry("format", Format, {
    "ptyd": "ptyprep.ptycho.format:PtydFormat",
    "procdata": "ptyprep.saxs.format:ProcdataFormat",
    "cxi": "ptyprep.exports.cxi:CxiFormat",
    "ptychodus": "ptyprep.exports.ptychodus:PtychodusFormat",
    "ptylab": "ptyprep.exports.ptylab:PtylabFormat",
    "fold_slice": "ptyprep.exports.fold_slice:FoldSliceFormat",
}, group="ptyprep.formats", hint="(see `ptyprep formats`)")


def register_format(name, cls):
    """Make ``cls`` (a :class:`Format` subclass) available as ``[output] format = name``."""
    if not cls.name:
        cls.name = name
    return FORMATS.register(name, cls)


def format_names():
    """Sorted names of every registered format."""
    return FORMATS.names()


def get_format(name):
    """The format class registered as ``name`` (RecipeError listing the known ones)."""
    return FORMATS.get(name)


def section_owners():
    """``{section: format class}`` of every registered format that owns a recipe table."""
    owners = {}
    for name in format_names():
        cls = get_format(name)
        if cls.section:
            owners.setdefault(cls.section, cls)
    return owners


def recipe_formats(recipe):
    """The :class:`Format` objects of ``recipe`` (lead first), their preparations checked.

    Raises
    ------
    RecipeError
        Two formats that prepare frames differently, or a name given twice.
    """
    names = recipe.output.formats
    if len(set(names)) != len(names):
        raise RecipeError(f"output.format {list(names)} names a format twice")
    formats = [get_format(name)(recipe) for name in names]
    lead = formats[0]
    for fmt in formats[1:]:
        if fmt.preparation != lead.preparation:
            raise RecipeError(f"output.format {list(names)}: {fmt.name!r} prepares frames "
                              f"differently from {lead.name!r} ({fmt.preparation!r} vs "
                              f"{lead.preparation!r}); write them with two recipes")
    return formats
