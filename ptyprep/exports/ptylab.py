"""The ``ptylab`` export (being written)."""

from .format import ExportFormat
from .sink import ExportFile


class _File(ExportFile):
    pass


class PtylabFormat(ExportFormat):
    """ptylab export (not yet complete)."""

    name = "ptylab"
    suffix = "_ptylab.hdf5"
    file_class = _File
