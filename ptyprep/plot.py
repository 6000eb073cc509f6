"""Pictures of results (``ptyprep plot``): matplotlib, written as PNG."""

from pathlib import Path

import numpy as np

from .errors import SourceError


def plot_file(path, out=None):
    """Draw the picture that suits the file; return the written PNG paths."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no file at {str(path)!r}")
    with h5py.File(path, "r") as h5:
        is_ptyd = "meta" in h5 and "chunks" in h5
    if is_ptyd:
        return [plot_ptyd(path, out or path.with_suffix(path.suffix + ".png"))]
    from .saxs.plot import plot_procdata

    return plot_procdata(path, out or path.with_suffix(".png"))


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

    from .writers.ptyd import read_ptyd

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
