"""Pictures of proc_data files: maps, tomograms and q-φ maps (matplotlib, Agg backend)."""

import warnings
from pathlib import Path

import numpy as np

from ..layout import procdata as L

WHAT = ("maps", "tomo", "qphi")


def _figure(n):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return plt, fig, axes.ravel()


def _extent(x, y):
    dx = (x[-1] - x[0]) / max(len(x) - 1, 1) / 2 if len(x) > 1 else 0.5
    dy = (y[-1] - y[0]) / max(len(y) - 1, 1) / 2 if len(y) > 1 else 0.5
    return [x[0] - dx, x[-1] + dx, y[-1] + dy, y[0] - dy]


def _images(f, sn, key):
    g = f.get(L.data_group(sn, key))
    if g is None:
        return []
    out = []
    for name in g:
        sub = g[name]
        if L.SIGNAL in sub and sub[L.SIGNAL].ndim == 2:
            out.append((name, sub[L.SIGNAL][()], sub[L.AXIS_X][()], sub[L.AXIS_Y][()],
                        str(sub[L.AXIS_X].attrs.get(L.ATTR_LONG_NAME, "")),
                        str(sub[L.AXIS_Y].attrs.get(L.ATTR_LONG_NAME, ""))))
    return out


def plot_procdata(path, out_png, sample=None, what=None):
    """Draw maps, tomograms and a q-φ map of ``path``; returns the written PNG paths.

    Parameters
    ----------
    path : str or Path
        A proc_data file.
    out_png : str or Path
        Base name: ``<stem>_<sample>_<what>.png`` files are written beside it.
    sample : str, optional
        Default ``overall`` when present, else every sample.
    what : list of {"maps", "tomo", "qphi"}, optional
        Default all three.
    """
    import h5py

    from . import store as W

    what = list(WHAT if what is None else ([what] if isinstance(what, str) else what))
    out_png = Path(out_png)
    written = []
    with h5py.File(path, "r") as f:
        sns = [sample] if sample else (([L.OVERALL] if L.OVERALL in f else []) + W.samples(f))
        for sn in sns:
            for key in ("maps", "tomo"):
                if key in what:
                    written += _plot_images(_images(f, sn, key), out_png, sn, key)
            if "qphi" in what and L.qphi_path(sn) in f:
                written.append(_plot_qphi(f, sn, out_png))
    return written


def _plot_images(images, out_png, sn, key):
    if not images:
        return []
    plt, fig, axes = _figure(len(images))
    for ax, (name, d, x, y, xl, yl) in zip(axes, images):
        im = ax.imshow(d, extent=_extent(x, y), aspect="auto", interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{sn}: {key}")
    fig.tight_layout()
    png = out_png.with_name(f"{out_png.stem}_{sn}_{key}.png")
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return [png]


def _plot_qphi(f, sn, out_png):
    g = f[L.qphi_group(sn)]
    ds = g[L.SIGNAL]
    n = ds.shape[0]
    frames = np.arange(0, n, max(1, n // 8))[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # bins no detector covers stay NaN
        mean = np.nanmean(np.stack([ds[i] for i in frames]), axis=0)
    q, phi = g[L.AXIS_Q][()], g[L.AXIS_PHI][()]
    plt, fig, axes = _figure(1)
    ax = axes[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        img = np.log10(np.where(mean > 0, mean, np.nan))
    ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest",
              extent=[0, len(q), phi[0] - (phi[1] - phi[0]) / 2, phi[-1] + (phi[1] - phi[0]) / 2])
    ticks = np.linspace(0, len(q) - 1, 5).astype(int)
    ax.set_xticks(ticks + 0.5, [f"{q[i]:.3g}" for i in ticks])
    ax.set_xlabel("q (1/Å, bin index scale)")
    ax.set_ylabel("φ (deg)")
    ax.set_title(f"{sn}: log10 mean q-φ map")
    fig.tight_layout()
    png = out_png.with_name(f"{out_png.stem}_{sn}_qphi.png")
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png
