"""Reading the files of a one-file-per-frame scan: the images and ptypy's text tables.

``positions.txt`` has lines ``filename y x`` (positions in metres; blank lines and
``#`` comments ignored); ``geometry.txt`` has ``key value`` lines (``energy`` keV,
``distance`` m, ``psize`` m).  Images are ``.npy`` (read by numpy, optionally
memory-mapped) or anything fabio reads (TIFF, CBF, EDF, ...).
"""

from pathlib import Path

import numpy as np

from ..errors import SourceError

__all__ = ["read_image", "parse_positions_txt", "parse_positions_txt_text", "parse_geometry_txt"]

NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}
GEOMETRY_KEYS = {"energy": "energy_keV", "distance": "distance_m", "psize": "psize_m"}


def read_image(path, mmap=False):
    """One 2-D image from ``path``: ``.npy`` via numpy (optionally memory-mapped), else fabio."""
    path = str(path)
    if not Path(path).is_file():
        raise SourceError(f"frame file {path!r} does not exist; check positions.txt or the pattern")
    if path.lower().endswith(".npy"):
        return np.load(path, mmap_mode="r" if mmap else None)
    import fabio  # only this layout needs it

    try:
        return fabio.open(path).data
    except Exception as exc:  # fabio raises many types for unreadable files  # noqa: BLE001
        raise SourceError(f"cannot read image {path!r} with fabio: {exc}") from exc


def parse_positions_txt(path):
    """``(names, (N, 2) positions)`` from a ptypy ``positions.txt`` (``filename y x`` lines)."""
    return parse_positions_txt_text(Path(path).read_text(), path)


def parse_positions_txt_text(text, path):
    """:func:`parse_positions_txt` of the ``text`` of file ``path``."""
    names, pos = [], []
    for k, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 3:
                raise ValueError
            pos.append((float(parts[1]), float(parts[2])))
        except ValueError:
            raise SourceError(f"{path}:{k}: expected 'filename y x', got {line!r}") from None
        names.append(parts[0])
    return names, np.array(pos, dtype=np.float64).reshape(-1, 2)


def parse_geometry_txt(path):
    """``{key: float}`` from ``key value`` lines of a ptypy ``geometry.txt``."""
    out = {}
    for k, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            out[parts[0]] = float(parts[1])
        except (IndexError, ValueError):
            raise SourceError(f"{path}:{k}: expected 'key value', got {line!r}") from None
    return out
