"""One message per user action: the changes a callback makes, sent to the browser together.

Every property a callback sets is otherwise its own message to the browser, and BokehJS
lays out and repaints the page after each (a click changed ~15 properties: ~15 repaints).
:func:`held` holds the document (``Document.hold("combine")``) while the callback runs and
releases it after, so the browser gets the changes in one message and paints once.
"""

from contextlib import contextmanager
from functools import wraps


@contextmanager
def held(doc):
    """Hold ``doc`` (may be None: nothing to hold) for the ``with`` block; nested holds
    release once, at the outermost."""
    if doc is None or doc.callbacks.hold_value is not None:
        yield
        return
    doc.hold("combine")
    try:
        yield
    finally:
        doc.unhold()


def batched(method):
    """Decorator: run a page method under :func:`held` of the page's ``self.doc``."""
    @wraps(method)
    def run(self, *args, **kwargs):
        with held(getattr(self, "doc", None)):
            return method(self, *args, **kwargs)
    return run
