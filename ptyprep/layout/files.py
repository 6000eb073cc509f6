"""File names of ptyprep's outputs: parts, temporary names, the lock and the status file.

Every output is written under a temporary name in its own folder and renamed into place
when complete, so a reader never opens a half-written file; a daemon (``ptyprep watch``)
keeps a lock and a status file beside its output.

============================  =============================================================
``.<name>.incomplete``        a ``.ptyd`` master while ``ptyprep run`` writes it
``.<name>.publishing``        the next version of a master that ``ptyprep watch`` publishes
``.<name>.partial``           a proc_data file being written (``run``) or extended (``watch``)
``<dfile>.part000`` ...       link-mode part files (``[output] part_format``)
``<part>.tmp``                a part file being written
``<dfile>.lock``              held by the daemon writing ``dfile``
``<dfile>.status.json``       the daemon's status (``--status`` to move it)
``.<name>.tmp``               a status file being rewritten
============================  =============================================================
"""

from pathlib import Path

from ..errors import OutputError

#: Default ``[output] part_format``: ``<dfile>.part000``, ``<dfile>.part001``, ...
DEFAULT_PART_FORMAT = "{dfile}.part{part:03d}"


def _hidden(path, suffix):
    path = Path(path)
    return path.with_name(f".{path.name}.{suffix}")


def incomplete_name(path):
    """Temporary name of a master file while it is being written."""
    return _hidden(path, "incomplete")


def publishing_name(path):
    """Temporary name of the next version of a published master."""
    return _hidden(path, "publishing")


def partial_name(path):
    """Temporary name of a proc_data output being written."""
    return _hidden(path, "partial")


def tmp_name(path):
    """``<path>.tmp``: a part file being written, renamed to ``path`` when complete."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def status_tmp_name(path):
    """Temporary name of a status file being rewritten."""
    return _hidden(path, "tmp")


def part_name(dfile, part, part_format=DEFAULT_PART_FORMAT):
    """Bare file name of part number ``part`` of master ``dfile`` (no folder)."""
    name = part_format.format(dfile=Path(dfile).name, part=part)
    if Path(name).name != name or name in ("", ".", ".."):
        raise OutputError(f"output.part_format gives {name!r}; it must be a bare file name "
                          "so links resolve next to the master file")
    return name


#: Added to the part names of a new output while the previous one, still in place, uses
#: the plain names (``overwrite``): the two sets alternate, so the previous output stays
#: whole until the new master replaces it.
ALTERNATE_PART_SUFFIX = ".b"


def alternate_part_format(part_format, previous_names, dfile):
    """The part-name format of a new output of ``dfile`` whose previous version links
    ``previous_names``: ``part_format`` unless its first name is taken, else the same with
    :data:`ALTERNATE_PART_SUFFIX`."""
    if part_name(dfile, 0, part_format) not in previous_names:
        return part_format
    return part_format + ALTERNATE_PART_SUFFIX


def lock_name(dfile):
    """The lock file of output ``dfile``: ``<dfile>.lock``."""
    return Path(str(dfile) + ".lock")


def status_name(dfile):
    """The default JSON status file of output ``dfile``: ``<dfile>.status.json``."""
    return Path(str(dfile) + ".status.json")
