"""Command line: ``ptyprep run|watch|validate|inspect|plot|view|sources|formats|demo``.

Every failure ends with one line ``ptyprep: error: ...`` on stderr: exit status 2 for
bad input (recipe, raw data), 1 for anything else (a full disk, no permission, an
internal error).  The traceback is shown only with ``--debug``, and written to the log
file when ``--log-file`` names one.  Under ``mpiexec`` an error raised on every rank
alike (the engine's collective steps) ends every rank by itself; an error on one rank
alone ends the whole job (MPI_Abort) instead of leaving the others waiting.
"""

import argparse
import json
import logging
import os
import signal
import sys
import time

from ._version import __version__
from .errors import OtherRankError, PtyprepError, WriteFault, write_fault

ABORT_GRACE_S = 1.0
#: Seconds between printing a failure and aborting the job: mpiexec forwards a rank's
#: stderr asynchronously, and an abort can end the forwarding before the line is out.
FORWARD_S = 0.2

EXAMPLES = """\
examples:
  ptyprep demo                                   simulate a scan, prepare it, write a .ptyd and a picture
  ptyprep validate scan.toml                     check a recipe and its source, print the plan
  ptyprep run scan.toml --set prep.rebin=2       prepare a scan (one process)
  mpiexec -n 4 python -m mpi4py -m ptyprep run scan.toml    the same on 4 MPI ranks
  ptyprep inspect out/scan.ptyd                  what is in a prepared file
  ptyprep plot out/scan.ptyd --out scan.png      mean frame, valid mask and scan positions
  ptyprep view out/scan.ptyd                     interactive page: click a position, see its frame
"""


class RankFilter(logging.Filter):
    """Rank 0 speaks; other ranks only for records logged with ``extra={"all_ranks": True}``."""

    def __init__(self, rank):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        return self.rank == 0 or getattr(record, "all_ranks", False) or record.levelno >= logging.ERROR


def setup_logging(rank, verbose=0, quiet=False, log_file=None):
    """The ``ptyprep`` logger: rank 0's records (see :class:`RankFilter`) on stderr at the
    level ``-v``/``-q`` choose; with ``log_file`` every record at DEBUG level (tracebacks
    of failures included) also in that file, ``<log_file>.rank<N>`` for ranks other than 0."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    prefix = f"[rank {rank}] " if rank else ""
    form = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
                             "%H:%M:%S")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(form)
    handler.setLevel(level)
    handler.addFilter(RankFilter(rank))
    logger = logging.getLogger("ptyprep")
    logger.handlers[:] = [handler]
    if log_file:
        name = str(log_file) if rank == 0 else f"{log_file}.rank{rank}"
        to_file = logging.FileHandler(name, delay=True)   # created by its first record
        to_file.setFormatter(logging.Formatter(
            f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"))
        to_file.setLevel(logging.DEBUG)
        logger.handlers.append(to_file)
    logger.setLevel(logging.DEBUG if log_file else level)
    logger.propagate = False


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptyprep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prepare raw scanning-diffraction data: ptychography frames → .ptyd "
                    "(ptypy), scanning SAXS/WAXS → q-φ maps, attributes, maps, tomograms.",
        epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"ptyprep {__version__}")
    add_common_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, argparse.SUPPRESS)   # also after the command: run R --debug

    def add_parser(name, **kwargs):
        kwargs.setdefault("description", kwargs.get("help"))
        return sub.add_parser(name, parents=[common], **kwargs)

    def recipe_command(name, help_text):
        p = add_parser(name, help=help_text, description=help_text)
        p.add_argument("recipe", metavar="RECIPE.toml", help="the recipe ([source], [prep], [output])")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="SECTION.KEY=VALUE",
                       help="override one recipe value, e.g. --set prep.rebin=2 (repeatable)")
        return p

    recipe_command("run", "prepare a scan (serially, or on every rank under mpiexec)")
    add_watch_arguments(recipe_command(
        "watch", "prepare a scan while it is being acquired, publishing each chunk as soon as "
                 "it is complete; killed and restarted, it continues where it stopped"))
    recipe_command("validate", "check a recipe and the source it names; print the plan")
    p = add_parser("inspect", help="summarise a .ptyd, proc_data or raw HDF5 file")
    p.add_argument("file", help="the file: a .ptyd, a proc_data file or any HDF5 file")
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    p = add_parser("plot", help="picture of a result (frames, positions, maps, tomograms)")
    p.add_argument("file", help="a .ptyd (mean frame, mask, positions), a proc_data file (maps, "
                                "q-φ maps, tomograms) or a raw HDF5 file (mean frame)")
    p.add_argument("--out", metavar="PNG", help="output picture (default: FILE.png)")
    p.add_argument("--dataset", metavar="PATH", default=None,
                   help="raw files: HDF5 path of the frames to draw (default: the 3-D "
                        "dataset holding the most data)")
    from .view.server import VIEW_DESCRIPTION, VIEW_HELP, add_view_arguments

    add_view_arguments(add_parser("view", help=VIEW_HELP, description=VIEW_DESCRIPTION))
    p = add_parser("export", help="convert a prepared scan (.ptyd) for another reconstruction "
                                  "code: cxi | ptychodus | ptylab | fold_slice",
                   description="Convert a prepared scan (.ptyd, any save mode) for another "
                               "reconstruction code, without the raw data: the same arrays a "
                               "recipe with [output] format = [\"ptyd\", FORMAT] writes. Runs "
                               "under mpiexec too.",
                   epilog="examples:\n  ptyprep export scan.ptyd --to cxi          # scan.cxi\n"
                          "  ptyprep export scan.ptyd --to ptychodus    # scan_ptychodus/\n"
                          "  ptyprep export scan.ptyd --to ptylab --out /data/p.hdf5",
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE.ptyd", help="the prepared scan")
    p.add_argument("--to", required=True, metavar="FORMAT",
                   help="cxi (CXI 1.6, as ptychodus reads it), ptychodus (diffraction.h5 and "
                        "product.h5, also for pty-chi), ptylab (PtyLab's CPM hdf5) or "
                        "fold_slice (PtychoShelves/fold_slice hdf5)")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="where to write (default: beside FILE with the format's name: "
                        "scan.cxi, scan_ptychodus/, scan_ptylab.hdf5, scan_fold_slice.h5)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (once the new one is complete)")
    add_parser("sources", help="list registered sources and their options")
    add_parser("formats", help="list registered output formats ([output] format)")
    p = add_parser("demo", help="simulate a scan, prepare it, show the result",
                       description="Simulate a scan, prepare it and write the result and a "
                                   "picture: a far-field ptychography scan (→ .ptyd) and/or a "
                                   "scanning SAXS/WAXS tomography scan (→ proc_data, maps, tomogram).")
    p.add_argument("--kind", choices=("ptycho", "saxs", "all"), default="ptycho",
                   help="ptycho: a far-field ptychography scan → .ptyd (default); saxs: a "
                        "scanning SAXS/WAXS tomography → proc_data; all: both")
    p.add_argument("--out", default="ptyprep-demo", metavar="DIR",
                   help="output folder (default ptyprep-demo)")
    return parser


def add_common_options(parser, default):
    """``-v``, ``-q``, ``--debug`` and ``--log-file``, given before or after the command
    (``default`` is argparse.SUPPRESS for the copy after it, so it does not reset them)."""
    def value(v):
        return v if default is None else default

    parser.add_argument("-v", "--verbose", action="count", default=value(0),
                        help="more log output (DEBUG level)")
    parser.add_argument("-q", "--quiet", action="store_true", default=value(False),
                        help="warnings and errors only")
    parser.add_argument("--debug", action="store_true", default=value(False),
                        help="show the traceback of a failure (it is one line without)")
    parser.add_argument("--log-file", dest="log_file", default=value(None), metavar="FILE",
                        help="also write the whole log to FILE, at DEBUG level, with the "
                             "traceback of a failure (other MPI ranks: FILE.rank<N>)")


def add_watch_arguments(parser):
    """Add the daemon's options to the ``watch`` subcommand's ``parser``."""
    from .engine.follow import DEFAULT_POLL_S

    parser.add_argument("--idle-timeout", dest="idle_timeout_s", type=float, default=None,
                        metavar="S", help="close the scan when no new frame arrived for S "
                                          "seconds (default: wait for the count or the marker)")
    parser.add_argument("--poll", dest="poll_s", type=float, default=DEFAULT_POLL_S, metavar="S",
                        help=f"seconds between looks at the raw data (default {DEFAULT_POLL_S})")
    parser.add_argument("--status", dest="status_path", default=None, metavar="FILE",
                        help="JSON status file for dashboards (default: <dfile>.status.json)")
    parser.add_argument("--maps-every", dest="maps_every", type=int, default=None,
                        metavar="N", help="format = 'procdata': rebuild the maps every N chunks "
                                          "and at the end (default 4)")
    return parser


def watch_options(args):
    """Keyword arguments of :func:`ptyprep.engine.follow.watch` from parsed command-line ``args``."""
    options = {k: getattr(args, k) for k in ("idle_timeout_s", "poll_s", "status_path")
               if hasattr(args, k)}
    if getattr(args, "maps_every", None) is not None:  # procdata only; given explicitly
        options["maps_every"] = args.maps_every
    return options


def _overrides(items):
    from .recipe import parse_override

    return dict(parse_override(item) for item in items)


def _cmd_run(args, comm):
    from .recipe import load_recipe
    from .engine.run import run

    recipe = load_recipe(args.recipe, overrides=_overrides(args.overrides))
    result = run(recipe, comm)
    if comm.rank == 0:
        frames = "" if result["frames"] is None else f"{result['frames']} frames, "
        print(f"wrote {result['path']} ({frames}{result['seconds']:.1f} s)")
        for path in result["paths"][1:]:
            print(f"wrote {path}")


def _cmd_watch(args, comm):
    from .engine.follow import watch
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, overrides=_overrides(args.overrides))
    result = watch(recipe, comm, **watch_options(args))
    if comm.rank == 0:
        state = "complete" if result["complete"] else "stopped"
        print(f"{state}: {result['path']} ({result['frames']} frames)", flush=True)
    if not result["complete"]:        # stopped before the scan ended: run again to resume
        return 128 + (result["signal"] or signal.SIGTERM)
    return 0


def _cmd_validate(args, comm):
    from .recipe import load_recipe
    from .validate import describe_plan

    recipe = load_recipe(args.recipe, overrides=_overrides(args.overrides))
    text = describe_plan(recipe)
    if comm.rank == 0:
        print(text)


def _cmd_inspect(args, comm):
    from .inspect import inspect_file

    summary = inspect_file(args.file)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        from .inspect import format_summary

        print(format_summary(summary))


def _cmd_plot(args, comm):
    from .plot import plot_file

    for path in plot_file(args.file, args.out, dataset=args.dataset):
        print(f"wrote {path}")


def _cmd_view(args, comm):
    from .view.server import serve

    return serve(args.file, args.port, args.browser, args.status_path, ranks=comm.size,
                 announce=lambda line: print(line, flush=True))


def _cmd_export(args, comm):
    from .convert import export

    result = export(args.file, args.to, out=args.out, overwrite=args.overwrite, comm=comm)
    if comm.rank == 0:
        print(f"wrote {result['path']} ({result['frames']} frames)")


def _cmd_sources(args, comm):
    from .validate import describe_sources

    print(describe_sources())


def _cmd_formats(args, comm):
    from .validate import describe_formats

    print(describe_formats())


def _cmd_demo(args, comm):
    from .demo import run_demo

    for line in run_demo(args.kind, args.out, comm):
        if comm.rank == 0:
            print(line)


COMMANDS = {"run": _cmd_run, "watch": _cmd_watch, "validate": _cmd_validate,
            "inspect": _cmd_inspect, "plot": _cmd_plot, "view": _cmd_view, "export": _cmd_export,
            "sources": _cmd_sources,
            "formats": _cmd_formats, "demo": _cmd_demo}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from .fast.allocator import keep_freed_memory
    from .engine.comm import world

    keep_freed_memory()          # buffers of every batch reused, not faulted in again

    comm = world()
    try:
        setup_logging(comm.rank, args.verbose, args.quiet, args.log_file)
    except OSError as exc:
        print(f"ptyprep: error: cannot write the log file {args.log_file!r}: {exc.strerror}",
              file=sys.stderr)
        return 2
    hooks = sys.excepthook, sys.unraisablehook
    sys.excepthook, sys.unraisablehook = _log_ignored, _log_unraisable
    try:
        code = COMMANDS[args.command](args, comm) or 0
        sys.stdout.flush()       # inside the try: a closed pipe is reported here, not at exit
    except BrokenPipeError:
        # the reader of our output went away (``ptyprep inspect --json F | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        _fail(comm, 130, "ptyprep: interrupted", None, args.debug)
    except Exception as exc:  # noqa: BLE001  every failure ends as one line
        code, text = describe_failure(exc, comm)
        _fail(comm, code, f"ptyprep: error: {text}", exc, args.debug)
    finally:
        sys.excepthook, sys.unraisablehook = hooks
    if code and comm.size > 1:
        from .engine.collective import exit_together

        exit_together(comm, code)     # every rank, no abort (``python -m mpi4py``)
    return code


def _log_unraisable(unraisable):
    """Errors Python cannot raise (e.g. h5py closing a dataset on a full disk while it is
    garbage-collected) go to the debug log, not to stderr: the failure they belong to is
    reported once, as one line."""
    logging.getLogger("ptyprep").debug("ignored in %r: %s", unraisable.object,
                                       unraisable.exc_value)


def _log_ignored(kind, value, tb):
    """``sys.excepthook`` while a command runs: h5py reports each object it cannot close
    (a full disk) through it; those go to the debug log (the command's own failure is
    caught and reported as one line)."""
    logging.getLogger("ptyprep").debug("ignored: %s: %s", kind.__name__, value,
                                       exc_info=(kind, value, tb))


def describe_failure(exc, comm):
    """Exit status and one line of text for exception ``exc`` (see the module notes)."""
    if isinstance(exc, PtyprepError):
        return 2, str(exc)
    if isinstance(exc, (WriteFault, OtherRankError)):
        return 1, str(exc)
    fault = write_fault(exc, getattr(exc, "filename", None) or "the output")
    if fault is not None:
        return 1, str(fault)
    where = f" on rank {comm.rank}" if comm.size > 1 else ""
    text = str(exc).replace("\n", " ") or "(no message)"
    return 1, (f"internal error{where}: {type(exc).__name__}: {text}; rerun with --debug for "
               f"the traceback and please report it")


def _fail(comm, code, line, exc, debug):
    from .engine.collective import ON_EVERY_RANK, exit_together

    log = logging.getLogger("ptyprep")
    if exc is not None:
        # the traceback: in the log file always, on stderr only with --debug
        for handler in log.handlers:
            if isinstance(handler, logging.FileHandler) or debug:
                handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s",
                                              (line,), (type(exc), exc, exc.__traceback__)))
    everyone = exc is not None and getattr(exc, ON_EVERY_RANK, False)
    if everyone:
        # raised alike on every rank by a collective step: rank 0 speaks, every rank ends
        # once all have cleaned up what they wrote
        if comm.rank == 0:
            print(line.replace("\n", " "), file=sys.stderr, flush=True)
        exit_together(comm, code)
    if comm.rank != 0:
        # Bad input usually fails on every rank alike: let rank 0 speak and end the job.
        # If rank 0 is fine (waiting in a collective), this rank reports it after the pause.
        time.sleep(ABORT_GRACE_S)
    print(line.replace("\n", " "), file=sys.stderr, flush=True)
    if comm.size > 1:
        time.sleep(FORWARD_S)       # let the launcher forward the line before the abort
        comm.abort(code)
    if isinstance(exc, WriteFault) or (exc is not None and isinstance(exc.__context__,
                                                                     WriteFault)):
        # HDF5 may hold files it could not close (full disk): closing them again at exit
        # can crash the interpreter, so end here, the log flushed
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
