"""The ``.ptyd`` layout (ptypy's prepared-data file): every name, nothing else.

Every path and attribute name of a ``.ptyd`` lives here; the writer
(:mod:`ptyprep.ptycho.h5rw`, :mod:`ptyprep.ptycho.chunks`) and the reader
(:mod:`ptyprep.sources.ptyd`) both use them.  Nodes carry ptypy's h5rw ``type``
attribute (:data:`TYPE`) so that ptypy's ``PtydScan`` reads the file unchanged:
groups ``'dict'``, arrays ``'array'``, 0-d numbers ``'scalar'``, 0-d strings
``'string'``, index lists ``'arraylist'`` and None as a (1,) float64 dataset of
type ``'None'`` (:data:`TYPES`).
"""


META = "meta"
CHUNKS = "chunks"
INFO = "info"
TYPE = "type"
#: h5rw ``type`` values: a group read as a dict, an array, a 0-d number, a 0-d string, an index
#: list, and None.
DICT, ARRAY, SCALAR, STRING, ARRAYLIST, NONE = "dict", "array", "scalar", "string", "arraylist", "None"
TYPES = (DICT, ARRAY, SCALAR, STRING, ARRAYLIST, NONE)
#: ``meta/`` members, ``num_frames`` first (ptypy reads them in this order).
NUM_FRAMES, SHAPE, CENTER, PSIZE, ENERGY, DISTANCE, VERSION, LABEL, PROPAGATION = (
    "num_frames", "shape", "center", "psize", "energy", "distance", "version", "label", "propagation")
DATA, WEIGHTS, POSITIONS, INDICES = "data", "weights", "positions", "indices"
CHUNK_ARRAYS = (DATA, WEIGHTS, POSITIONS, INDICES)
FORMAT_VERSION = 0.1

# The end-of-scan record and the restart state of an on-the-fly output (under info/).
COMPLETE = "complete"              # int64 0-d: 1 once the scan has ended and every frame is published
END_REASON = "end_reason"          # string: "count", "marker" or "timeout" ("" while acquiring)
FRAMES_WRITTEN = "frames_written"  # int64 0-d: frames published
RAW_CENTER = "raw_center"          # float64 (2,): raw-frame centre (row, col), reused on restart
RECIPE = "recipe"                  # JSON string of the recipe
NUM_FRAMES_KNOWN = "num_frames_known"  # int64 0-d: 1 if meta/num_frames is the scan's true length
END_REASONS = ("count", "marker", "timeout")
#: meta/num_frames while the scan's length is unknown: PtydScan then keeps waiting for frames.
NUM_FRAMES_UNKNOWN = 2**31 - 1

CONVENTIONS = (
    "coordinates (row, col) = (y, x); positions in metres, one row per frame, (y, x); "
    "weights > 0 marks a valid pixel; orientation applied as transpose, flipud, fliplr; "
    "meta/center is the optical axis in the prepared frame (row, col); psize in metres after rebin; "
    "energy in keV; distance in metres"
)


def is_ptyd(group):
    """Whether an open HDF5 file or group has the two groups of a ``.ptyd``
    (``meta/`` and ``chunks/``)."""
    return META in group and CHUNKS in group


def chunk_name(number):
    """Group name of chunk ``number`` under ``chunks/`` (decimal, no padding)."""
    return str(int(number))
