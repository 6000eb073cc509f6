"""Serving the page: ``ptyprep view FILE`` (a Bokeh server on localhost) and notebooks.

The Bokeh server serves BokehJS from the installed ``bokeh`` package (its ``/static``
route), so the page works without a network; a notebook cell gets the same page with
the JavaScript inlined.  The port is bound before anything is served: a port in use is
one line (:class:`~ptyprep.view.files.ViewError`).  SIGINT (Ctrl-C) and SIGTERM stop the
server's loop; the server then closes its sessions and sockets and :func:`serve` returns.
"""

import errno
import signal
import threading
import webbrowser

from .app import page_builder
from .files import ViewError, file_kind

DEFAULT_PORT = 5006
ADDRESS = "localhost"
VIEW_HELP = ("interactive page of a .ptyd or proc_data file in the browser (maps, frames; "
             "follows a file ptyprep watch grows)")
VIEW_DESCRIPTION = (
    "Serve an interactive page of a .ptyd (mean frame, mask, scan positions; click a position "
    "to see its frame) or a proc_data file (maps of every attribute; click a point to see its "
    "q-φ map, I(q) and I(φ)) on localhost, and open it in the browser. On a file that ptyprep "
    "watch is growing, the page follows the publishes and shows the daemon's status. Ctrl-C "
    "stops it.")


def add_view_arguments(parser):
    """The options of ``ptyprep view`` on its subcommand ``parser``."""
    parser.add_argument("file", help="a .ptyd or proc_data file written by ptyprep run or watch")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                        help=f"port on localhost (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--no-browser", dest="browser", action="store_false",
                        help="only print the page's address, do not open a browser")
    parser.add_argument("--status", dest="status_path", default=None, metavar="FILE",
                        help="status file of the daemon writing FILE (default "
                             "FILE.status.json)")
    return parser


def make_server(path, port=DEFAULT_PORT, status_path=None, address=ADDRESS):
    """A started-but-not-running Bokeh server of the page of ``path`` on ``port`` (0: any
    free port); raises the file's error or :class:`ViewError` before serving anything."""
    kind = file_kind(path)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ViewError(f"--port {port!r} must be a port number 0..65535 (0: any free port)")
    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server

    app = Application(FunctionHandler(page_builder(path, status_path, kind)))
    try:
        server = Server({"/": app}, port=port, address=address, num_procs=1)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise ViewError(f"cannot serve on port {port} of {address}: "
                            f"{exc.strerror.lower()}; choose another with --port N "
                            "(--port 0 takes any free port)") from None
        raise
    server.start()
    return server


def url_of(server):
    """The address of the page ``server`` serves."""
    return f"http://{ADDRESS}:{server.port}/"


def serve(path, port=DEFAULT_PORT, browser=True, status_path=None, announce=print, ranks=1):
    """Serve the page of ``path`` until Ctrl-C or SIGTERM (``ptyprep view``).

    Parameters
    ----------
    path : str or Path
        A ``.ptyd`` or proc_data file.
    port : int
        Port on localhost (0: any free port).
    browser : bool
        Open the page in the default browser.
    status_path : str or Path, optional
        The status file of a ``ptyprep watch`` writing ``path``.
    announce : callable
        Called with the line telling where the page is.
    ranks : int
        MPI ranks of the caller: the page is served from one process only.

    Returns
    -------
    int
        0 once the server has stopped.
    """
    if ranks > 1:
        raise ViewError("ptyprep view serves a page from one process; run it without mpiexec")
    server = make_server(path, port, status_path)
    url = url_of(server)
    announce(f"serving {path} at {url} (Ctrl-C to stop)")
    loop = server.io_loop
    stopped = []
    if threading.current_thread() is threading.main_thread():
        def stop(signum):
            stopped.append(signum)
            loop.stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.asyncio_loop.add_signal_handler(signum, stop, signum)
    if browser:
        loop.add_callback(webbrowser.open, url)
    try:
        loop.start()
    finally:
        server.stop()
        server.unlisten()
        if stopped:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.asyncio_loop.remove_signal_handler(signum)
    announce(f"stopped serving {path}")
    return 0


def in_notebook():
    """True inside a Jupyter kernel (IPython's kernel app is configured)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def show_in_notebook(path, status_path=None, notebook_url="localhost:8888"):
    """Show the page of ``path`` in the current notebook cell (BokehJS inlined, so no
    network is needed); ``notebook_url`` is where the notebook server is."""
    kind = file_kind(path)
    from bokeh.io import output_notebook, show
    from bokeh.resources import INLINE

    output_notebook(resources=INLINE, hide_banner=True)
    show(page_builder(path, status_path, kind), notebook_url=notebook_url)


def view(path, port=DEFAULT_PORT, browser=True, status_path=None, notebook_url=None):
    """Look at a ptyprep output: in a notebook cell when called from Jupyter, otherwise
    served on localhost and opened in the browser until Ctrl-C (as ``ptyprep view``).

    Parameters
    ----------
    path : str or Path
        A ``.ptyd`` or proc_data file (one that ``ptyprep watch`` grows too).
    port : int
        Port of the server outside a notebook (0: any free port).
    browser : bool
        Open the browser (outside a notebook).
    status_path : str or Path, optional
        The status file of the daemon (default ``<path>.status.json``).
    notebook_url : str, optional
        Where the notebook server is (default ``localhost:8888``); giving it also asks
        for the notebook form outside a detected kernel.
    """
    if notebook_url is not None or in_notebook():
        return show_in_notebook(path, status_path, notebook_url or "localhost:8888")
    return serve(path, port, browser, status_path)
