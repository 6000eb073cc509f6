"""The Bokeh application of ``ptyprep view``: one page per browser tab, refreshed live.

:func:`page_builder` returns the function Bokeh calls for every new session (a browser
tab, a notebook cell): it builds the page that suits the file and adds the periodic
look at the file that follows a ``ptyprep watch`` run.
"""

from .files import PTYD, file_kind

#: Milliseconds between two looks at the file and its status (live follow).
REFRESH_MS = 1000


def page_builder(path, status_path=None, kind=None, refresh_ms=REFRESH_MS):
    """The function ``build(doc)`` that puts the page of ``path`` into a Bokeh document.

    Parameters
    ----------
    path : str or Path
        A ``.ptyd`` or proc_data file.
    status_path : str or Path, optional
        The status file of the daemon writing it (default ``<path>.status.json``).
    kind : {"ptyd", "procdata"}, optional
        The file's kind when already known (:func:`~ptyprep.view.files.file_kind`).
    refresh_ms : int
        Milliseconds between two looks at the file (0: no live follow).
    """
    kind = kind or file_kind(path)

    def build(doc):
        if kind == PTYD:
            from .ptyd_page import PtydPage as Page
        else:
            from .procdata_page import ProcdataPage as Page
        page = Page(doc, path, status_path)
        if refresh_ms:
            doc.add_periodic_callback(page.refresh, refresh_ms)
        return page

    return build
