"""``ptyprep view``: an interactive page of a ``.ptyd`` or proc_data file (Bokeh).

>>> import ptyprep
>>> ptyprep.view("out/scan.ptyd")          # doctest: +SKIP

serves the page on localhost (or shows it in a Jupyter cell).  The modules, from the
bottom: :mod:`.files` (what a file is, the daemon's status), the readers
(:mod:`.procdata_reader`, :mod:`.ptyd_reader`: only what is shown, one frame per click),
:mod:`.heatmap` (an image on real axes with its colour bar), the pages
(:mod:`.procdata_page` with :mod:`.procdata_maps` and :mod:`.procdata_frame`;
:mod:`.ptyd_page`), :mod:`.app` (the Bokeh application) and :mod:`.server`.

The package itself can be called: ``ptyprep.view(FILE)`` is :func:`view` whether
``ptyprep.view`` names this package (once it is imported) or the function.
"""

import sys
import types

from .server import serve, view

__all__ = ["view", "serve"]


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`view` (``ptyprep.view(FILE)``)."""

    def __call__(self, *args, **kwargs):
        return view(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
