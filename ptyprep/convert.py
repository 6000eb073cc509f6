"""``ptyprep export``: an existing ``.ptyd`` converted to another code's format.

The ``.ptyd`` becomes the source of a preparation that changes nothing (the whole
frame, its own centre, no rebin or orientation) and the export format writes it: the
same engine and the same writer as a one-pass ``format = ["ptyd", "cxi"]`` run, so the
arrays are the same either way, serial or under ``mpiexec``.
"""

from pathlib import Path

from .engine.formats import get_format
from .errors import RecipeError, SourceError
from .recipe import load_recipe
from .sources.ptyd import open_ptyd
from .exports.format import ExportFormat

#: The export formats by name, in the order ``--help`` lists them.
EXPORTS = ("cxi", "ptychodus", "ptylab", "fold_slice")


def export_format(name):
    """The :class:`ExportFormat` class named ``name`` (RecipeError naming the choices)."""
    try:
        cls = get_format(name)
    except RecipeError:
        cls = None
    if cls is None or not issubclass(cls, ExportFormat):
        raise RecipeError(f"--to {name!r} is not an export format; choose one of "
                          f"{', '.join(EXPORTS)}")
    return cls


def export_recipe(ptyd, to, overwrite=False):
    """The recipe that re-prepares ``ptyd`` unchanged (its propagation kept) and writes
    format ``to`` beside it."""
    ptyd = Path(ptyd).resolve()
    with open_ptyd(ptyd) as (_, meta, _):
        propagation = meta.get("propagation") or "farfield"      # near field stays near field
    return load_recipe({
        "source": {"name": "ptyd", "path": str(ptyd)},
        "prep": {"center": "geometric", "propagation": str(propagation)},
        "output": {"format": [to], "dfile": str(ptyd), "overwrite": bool(overwrite)},
    }, base_dir=ptyd.parent)


def export(ptyd, to, out=None, overwrite=False, comm=None):
    """Convert a prepared scan to another reconstruction code's format.

    Parameters
    ----------
    ptyd : str or Path
        A ``.ptyd`` file (append, link or merge mode).
    to : str
        ``"cxi"``, ``"ptychodus"``, ``"ptylab"`` or ``"fold_slice"``.
    out : str or Path, optional
        Where to write; default beside ``ptyd`` with the format's name
        (``scan.ptyd`` → ``scan.cxi``, ``scan_ptychodus/``, ``scan_ptylab.hdf5``,
        ``scan_fold_slice.h5``).
    overwrite : bool
        Replace an existing output (once the new one is complete).
    comm : communicator, optional
        Default: MPI's world under ``mpiexec``, else one process.

    Returns
    -------
    dict
        ``path`` written and ``frames``.
    """
    from .engine.run import run

    cls = export_format(to)
    if not Path(ptyd).is_file():
        raise SourceError(f"no .ptyd file at {str(ptyd)!r}; give the prepared scan to export")
    recipe = export_recipe(ptyd, to, overwrite)
    fmt = cls(recipe)
    fmt.overwrite_hint = "pass --overwrite (overwrite=True) or choose another --out"
    if out is not None:
        fmt.out = Path(out)
    result = run(recipe, comm, formats=[fmt])
    return {"path": result["path"], "frames": result["frames"]}
