"""Pictures of results (``ptyprep plot``): matplotlib, written as PNG."""

import warnings
from pathlib import Path

import numpy as np

from .errors import SourceError
from .layout.ptyd import is_ptyd


def plot_file(path, out=None, dataset=None):
    """Draw the picture that suits the file; return the written PNG paths.

    ``dataset`` (raw files): the HDF5 path of the frames to draw; default the frames
    found by :func:`frames_dataset`.  A file that is not HDF5, or is damaged, raises
    :class:`~ptyprep.errors.SourceError` naming it.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no file at {str(path)!r}")
    from .saxs.inspect import is_procdata

    try:
        with h5py.File(path, "r") as h5:
            kind = "ptyd" if is_ptyd(h5) else (
                "procdata" if is_procdata(h5) else "raw")
    except OSError as exc:
        raise SourceError(f"{str(path)!r} is not an HDF5 file, or is damaged ({exc})") from exc
    default = path.with_suffix(path.suffix + ".png")
    try:
        if kind == "ptyd":
            return [plot_ptyd(path, out or default)]
        if kind == "procdata":
            from .saxs.plot import plot_procdata

            return plot_procdata(path, out or path.with_suffix(".png"))
        return [plot_raw(path, out or default, dataset=dataset)]
    except (OSError, KeyError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"cannot read {str(path)!r} ({type(exc).__name__}: {exc}); the file "
                          "is damaged or truncated: check it (h5ls -r), or copy it again") from exc


def frames_dataset(h5):
    """Path of the frames of an open HDF5 file, or None: of the numeric datasets of 2-D
    images (each side > 1), the 3-D ones (a stack of frames) first, then the most data
    — so a mask of the frame's shape beside the frames is not taken for them."""
    found = []

    def visit(name, node):
        if hasattr(node, "shape") and node.ndim in (2, 3) and node.dtype.kind in "iuf" \
                and min(node.shape[-2:]) > 1:
            found.append((node.ndim == 3, int(np.prod(node.shape, dtype=np.int64)), name))

    h5.visititems(visit)
    return "/" + max(found)[2] if found else None


def plot_raw(path, out, max_frames=16, dataset=None):
    """Mean of the first frames of a raw file's image dataset (log scale), with a histogram.

    Parameters
    ----------
    dataset : str, optional
        HDF5 path of the frames; default :func:`frames_dataset`.

    Returns
    -------
    Path of the PNG.
    """
    import h5py
    import hdf5plugin  # noqa: F401  (compressed detector data)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with h5py.File(path, "r") as h5:
        name = dataset or frames_dataset(h5)
        if name is None:
            raise SourceError(f"{str(path)!r} holds no 2-D or 3-D image dataset to draw")
        dset = h5.get(name)
        if not isinstance(dset, h5py.Dataset) or dset.ndim not in (2, 3):
            raise SourceError(f"{str(path)!r} has no 2-D or 3-D dataset {name!r}; give "
                              "--dataset the HDF5 path of the frames (see ptyprep inspect)")
        shape, dtype = dset.shape, dset.dtype
        frames = dset[()] if dset.ndim == 2 else dset[:max_frames]
    frames = np.asarray(frames, dtype=np.float64).reshape((-1,) + frames.shape[-2:])
    if np.issubdtype(dtype, np.integer):  # gaps/bad pixels: negative or the dtype's maximum
        frames[(frames < 0) | (frames >= np.iinfo(dtype).max)] = np.nan
    with warnings.catch_warnings():  # pixels that are gaps in every frame stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(frames, axis=0)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True,
                             gridspec_kw={"width_ratios": [2, 1]})
    im = axes[0].imshow(np.log10(np.clip(mean, 0, None) + 1), cmap="magma", interpolation="nearest")
    axes[0].set_title(f"{name}: mean of {len(frames)} frame(s), log10(counts + 1)")
    axes[0].set_xlabel("column (pixel)")
    axes[0].set_ylabel("row (pixel)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    values = mean[np.isfinite(mean)]
    axes[1].hist(values, bins=100, log=True, color="0.3")
    axes[1].set_xlabel("counts (mean frame)")
    axes[1].set_title("histogram (gaps and bad pixels excluded)")
    fig.suptitle(f"{Path(path).name} {tuple(shape)} {dtype}")
    out = Path(out)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def plot_ptyd(path, out):
    """Mean prepared frame (log scale) with its invalid pixels, and the scan positions.

    Parameters
    ----------
    path : .ptyd file
    out : PNG to write

    Returns
    -------
    Path of the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .sources.ptyd import read_ptyd

    scan = read_ptyd(path)
    data, weights, pos = scan["data"], scan["weights"], scan["positions"]
    meta = scan["meta"]
    mean = data.mean(axis=0) if len(data) else np.zeros(tuple(meta["shape"]))
    valid = weights.all(axis=0) if len(weights) else np.ones_like(mean, bool)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    shown = np.log10(np.where(valid, mean, np.nan) + 1)
    im = axes[0].imshow(shown, cmap="magma", interpolation="nearest")
    cy, cx = np.asarray(meta["center"], dtype=float)
    axes[0].plot(cx, cy, "c+", ms=14, mew=1.5, label="meta/center")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"mean of {len(data)} frames, log10(counts + 1)")
    axes[0].set_xlabel("column (pixel)")
    axes[0].set_ylabel("row (pixel)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    axes[1].imshow(valid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_title(f"valid pixels ({valid.mean() * 100:.1f}%), black = masked")
    axes[1].set_xlabel("column (pixel)")
    sc = axes[2].scatter(pos[:, 1] * 1e6, pos[:, 0] * 1e6, c=np.arange(len(pos)), s=12,
                         cmap="viridis")
    axes[2].plot(pos[:, 1] * 1e6, pos[:, 0] * 1e6, lw=0.4, color="0.6")
    axes[2].set_aspect("equal")
    axes[2].invert_yaxis()
    axes[2].set_xlabel("x (µm)")
    axes[2].set_ylabel("y (µm)")
    axes[2].set_title("scan positions (colour = frame index)")
    fig.colorbar(sc, ax=axes[2], shrink=0.8)
    fig.suptitle(f"{Path(path).name}: {meta['shape'].tolist()} px, {float(meta['energy']):g} keV, "
                 f"{float(meta['distance']):g} m, pixel {np.asarray(meta['psize'])[0] * 1e6:g} µm")
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
