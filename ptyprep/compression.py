"""Output compression: recipe names → h5py dataset keywords, and ptyprep's own deflate.

``gzip`` (the default) and ``none`` are read by any HDF5 library without
plugins; ``lzf`` needs h5py; ``bitshuffle`` (LZ4) and ``blosc2`` are faster and
need ``hdf5plugin`` on the reading side too.

For ``gzip`` and ``none`` ptyprep does not let HDF5 compress: it encodes every
frame itself (byte shuffle + a standard zlib stream, see
:mod:`ptyprep.writers.chunkwrite`) and writes the chunk as is into a dataset that
declares HDF5's own ``shuffle`` + ``deflate`` filters, so any reader decodes it.
The zlib stream comes from ISA-L (the ``isal`` package, ~4× faster than zlib at
level 1) when it is installed, else from the standard library's ``zlib``.
"""

import zlib

from .errors import OutputError


def _load_isal():
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


#: ``isal.isal_zlib`` or None; tests set it to None to exercise the zlib fallback.
isal_zlib = _load_isal()


def deflate_backend():
    """Name of the library that :func:`deflate` uses: ``"isal"`` or ``"zlib"``."""
    return "isal" if isal_zlib is not None else "zlib"


def deflate(buf, level=1):
    """A standard zlib stream (RFC 1950: header, deflate, adler32) of ``buf``.

    Level 1 uses ISA-L's level 1 when available (same format, ~4× faster than
    zlib's level 1, output a few % larger); any other level uses zlib at that level.
    """
    if level == 1 and isal_zlib is not None:
        return isal_zlib.compress(buf, 1)
    return zlib.compress(buf, level)


def dataset_filters(name):
    """h5py ``create_dataset`` keywords for compression ``name``.

    Raises
    ------
    OutputError
        When the filter is not available in this installation.
    """
    if name == "none":
        return {}
    if name == "gzip":
        # level 1 + shuffle: about as small as level 6 on photon counts, several times faster
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    try:
        import hdf5plugin
    except ImportError as exc:
        raise OutputError(f"output.compression = {name!r} needs the hdf5plugin package; "
                          "pip install hdf5plugin, or choose 'gzip'") from exc
    if name == "bitshuffle":
        filt = hdf5plugin.Bitshuffle(cname="lz4")
    elif name == "blosc2":
        filt = hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)
    else:
        raise OutputError(f"unknown compression {name!r}; choose none, gzip, lzf, bitshuffle or blosc2")
    import h5py

    if not h5py.h5z.filter_avail(filt.filter_id):
        raise OutputError(f"compression filter {name!r} (HDF5 filter {filt.filter_id}) is not "
                          "available in this HDF5 build; choose 'gzip'")
    return dict(filt)
