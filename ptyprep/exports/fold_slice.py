"""The ``fold_slice`` export (being written)."""

from .format import ExportFormat
from .sink import ExportFile


class _File(ExportFile):
    pass


class FoldSliceFormat(ExportFormat):
    """fold_slice export (not yet complete)."""

    name = "fold_slice"
    suffix = "_fold_slice.h5"
    file_class = _File
