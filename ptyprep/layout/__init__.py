"""On-disk layouts: every HDF5 path and attribute name of the files ptyprep writes."""

import numpy as np


def json_default(obj):
    """``json.dumps`` fallback of the layouts: numpy arrays → lists, numpy scalars → Python
    numbers, anything else → ``str``."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
