"""Loading single images (dark, flat, masks) from ``.npy``, HDF5 or fabio formats."""

from pathlib import Path

import numpy as np

from ..errors import SourceError


def load_image(spec):
    """Load a 2-D image; a 3-D stack is averaged over its first axis.

    Parameters
    ----------
    spec : str or Path
        ``file.npy``; ``file.h5::/path/to/dataset`` (HDF5); or any image format
        fabio reads (TIFF, EDF, CBF, ...).

    Returns
    -------
    (H, W) ndarray
    """
    spec = str(spec)
    path, _, dataset = spec.partition("::")
    if not Path(path).is_file():
        raise SourceError(f"image file {path!r} does not exist; check the path "
                          "(relative paths are relative to the recipe's folder)")
    try:
        if dataset:
            import h5py

            with h5py.File(path, "r") as h5:
                if dataset not in h5:
                    raise SourceError(f"dataset {dataset!r} not found in {path!r}")
                image = h5[dataset][()]
        elif path.endswith(".npy"):
            image = np.load(path)
        else:
            import fabio

            image = fabio.open(path).data
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot read image {spec!r}: {exc}") from exc
    image = np.asarray(image)
    if image.ndim == 3:
        image = image.mean(axis=0)
    if image.ndim != 2:
        raise SourceError(f"image {spec!r} has shape {image.shape}; expected a 2-D frame")
    return image
