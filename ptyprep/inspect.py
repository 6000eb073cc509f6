"""Summaries of the files ptyprep reads and writes (``ptyprep inspect``)."""

from pathlib import Path

import numpy as np

from .errors import SourceError
from .layout.ptyd import is_ptyd


def inspect_file(path):
    """Summarise a ``.ptyd``, a proc_data file or any raw HDF5 file as a JSON-able dict."""
    import h5py
    import hdf5plugin  # noqa: F401  (so compressed datasets can be described)

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no file at {str(path)!r}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise SourceError(f"{str(path)!r} is not an HDF5 file ({exc})") from exc
    with h5:
        if is_ptyd(h5):
            return _ptyd_summary(path)
        try:
            from .saxs.inspect import is_procdata, summarize
        except ImportError:
            is_procdata = None
        if is_procdata is not None and is_procdata(h5):
            return summarize(path)
        return _raw_summary(path, h5)


def _ptyd_summary(path):
    from .sources.ptyd import read_ptyd

    scan = read_ptyd(path)
    meta = scan["meta"]
    n = len(scan["indices"])
    pos = scan["positions"]
    return {
        "kind": "ptyd", "path": str(path), "frames": n,
        "num_frames_expected": int(meta["num_frames"]),
        "complete": bool(scan["info"].get("complete", 0)),
        "shape": np.asarray(meta["shape"]).tolist(), "center": np.asarray(meta["center"]).tolist(),
        "psize_m": np.asarray(meta["psize"]).tolist(), "energy_keV": float(meta["energy"]),
        "distance_m": float(meta["distance"]), "dtype": str(scan["data"].dtype),
        "valid_fraction": float(scan["weights"].mean()) if n else None,
        "counts_per_frame_mean": float(scan["data"].sum(axis=(1, 2)).mean()) if n else None,
        "positions_extent_m": (pos.max(axis=0) - pos.min(axis=0)).tolist() if n else None,
        "indices_in_order": bool(np.array_equal(scan["indices"], np.arange(n))),
    }


def _raw_summary(path, h5):
    datasets = []

    def visit(name, node):
        if hasattr(node, "shape") and len(datasets) < 200:
            datasets.append({"path": "/" + name, "shape": list(node.shape), "dtype": str(node.dtype),
                             "filters": list(node._filters) if hasattr(node, "_filters") else []})

    h5.visititems(visit)
    return {"kind": "hdf5", "path": str(path), "datasets": datasets}


def format_summary(summary):
    """Text form of :func:`inspect_file`'s dict."""
    if summary.get("kind") == "hdf5":
        lines = [f"{summary['path']}: HDF5 file"]
        for d in summary["datasets"]:
            filt = f"  [{', '.join(d['filters'])}]" if d["filters"] else ""
            lines.append(f"  {d['path']:<50} {str(tuple(d['shape'])):<20} {d['dtype']}{filt}")
        return "\n".join(lines)
    return "\n".join(_format_items(summary, 0))


def _format_items(mapping, depth):
    width = max((len(str(k)) for k in mapping), default=0)
    pad = "  " * depth
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            yield f"{pad}{key}:"
            yield from _format_items(value, depth + 1)
        else:
            yield f"{pad}{str(key):<{width}}  {value}"
