"""The ``ptychodus`` export (being written)."""

from .format import ExportFormat
from .sink import ExportFile


class _File(ExportFile):
    pass


class PtychodusFormat(ExportFormat):
    """ptychodus export (not yet complete)."""

    name = "ptychodus"
    suffix = "_ptychodus"
    file_class = _File
