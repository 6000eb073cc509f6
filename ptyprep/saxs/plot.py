"""Pictures of proc_data files: maps, tomograms and q-φ maps (matplotlib, Agg canvas).

Each picture is built by a function returning a :class:`matplotlib.figure.Figure`
(:func:`maps_figure`, :func:`qphi_figure`) on its own Agg canvas, without pyplot state;
:func:`plot_procdata` writes them as PNG files.  Every colour bar and axis is labelled with
the quantity and, when known, its unit: axis units come from the ``units`` attribute of the
axis datasets (rotation motors are in degrees), attribute units from a ``units`` attribute
of the map or from :data:`QUANTITIES`.  A map with one row or one column (a time series,
a line scan) is drawn as curves, one panel per attribute, against the motor that moves.
"""

import re
import textwrap
import warnings
from pathlib import Path

import numpy as np

from ..layout import procdata as L
from .tomo import is_angle_axis

WHAT = ("maps", "tomo", "qphi")
DPI = 110
PANEL_IN = (4.4, 3.6)          # one image panel with its colour bar, inches (width, height)
SERIES_IN = (7.5, 2.1)         # one curve panel of a series
QPHI_IN = (6.4, 4.8)           # one q-φ panel
MAX_COLS = 3
QPHI_FRAMES = 16               # frames (drawn at random, seed 0) averaged in a q-φ panel
#: labels of the attributes ptyprep makes: quantity and unit ("a.u." for intensities)
QUANTITIES = {"transmission": "transmission I_t/I_0",
              "absorption": "absorption −ln(T/T_ref)",
              "incident": "incident monitor (a.u.)",
              "transmitted": "transmitted monitor (a.u.)",
              "hop": "Hermans orientation (hop)"}
INTENSITY = re.compile(r"^(iq|iphi|I|Iq|Iphi)(_|$)|^int")   # names taken as intensities
UNIT_TEXT = {"1/angstrom": "1/Å", "angstrom": "Å", "degree": "deg", "degrees": "deg"}
TITLES = {L.MAPS: "maps", L.TOMO: "tomograms"}


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _unit(attrs):
    """The ``units`` attribute of ``attrs`` as shown on a label ('' when absent)."""
    u = _text(attrs.get(L.ATTR_UNITS, "")).strip()
    return UNIT_TEXT.get(u.lower(), u)


def _wrap(text, width, lines=2):
    """``text`` wrapped at ``width`` characters into at most ``lines`` lines (… when cut)."""
    width = max(int(width), 8)
    out = textwrap.wrap(str(text), width, break_long_words=True, break_on_hyphens=False)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][:width - 1] + "…"
    return "\n".join(out)


def _chars(width_in, pt=12.0):
    """How many characters of a ``pt`` font fit in ``width_in`` inches (generous average)."""
    return int(width_in * 72.0 / (0.62 * pt))


def axis_label(ds, fallback=""):
    """Label of a motor axis dataset: its ``long_name`` (or ``fallback``) and unit.

    Parameters
    ----------
    ds : h5py.Dataset
        An axis dataset (``x``/``y`` of a map, ``q``/``phi`` of a q-φ cube).
    fallback : str
        Name used when the dataset has no ``long_name``.

    Returns
    -------
    str
        ``"name (unit)"``; a rotation motor without ``units`` is in degrees, a ``frame``
        axis is the frame index, and a name without a known unit stands alone.
    """
    name = _text(ds.attrs.get(L.ATTR_LONG_NAME, "")) or fallback
    unit = _unit(ds.attrs)
    if not unit and name == "frame":
        return "frame index"
    if not unit and is_angle_axis(name):
        unit = "deg"
    return f"{name} ({unit})" if unit else name


def quantity(name, attrs=None):
    """Colour-bar (or curve) label of attribute ``name``: quantity and unit.

    Parameters
    ----------
    name : str
        The attribute's name (``transmission``, ``int_saxs``...).
    attrs : mapping, optional
        Attributes of the map; a ``units`` entry there wins over the built-in table.

    Returns
    -------
    str
    """
    unit = _unit(attrs or {}) or ("a.u." if INTENSITY.match(name) else "")
    return f"{name} ({unit})" if unit else QUANTITIES.get(name, name)


def _suptitle(fig, what, sn, width_in):
    """``what: sn`` over the figure; a long sample name is wrapped, then cut (…)."""
    fig.suptitle(_wrap(f"{what}: {sn}", _chars(width_in, 13), 3))


def _new_figure(width_in, height_in):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _extent(x, y):
    """imshow extent ``[left, right, bottom, top]``: first row on top, pixels centred."""
    dx = (x[-1] - x[0]) / (len(x) - 1) / 2 if len(x) > 1 else 0.5
    dy = (y[-1] - y[0]) / (len(y) - 1) / 2 if len(y) > 1 else 0.5
    return [x[0] - dx, x[-1] + dx, y[-1] + dy, y[0] - dy]


def _images(f, sn, key):
    """The 2-D images of ``maps`` or ``tomo`` of sample ``sn`` (vector-valued maps skipped)."""
    from . import store as W

    g = f.get(L.data_group(sn, key))
    out = []
    for name in (g if g is not None else []):
        sub = g[name]
        if L.SIGNAL not in sub or sub[L.SIGNAL].ndim != 2:
            continue
        ds = sub[L.SIGNAL]
        attrs = dict(sub.attrs)
        attrs.update({k: v for k, v in ds.attrs.items() if k == L.ATTR_UNITS})
        if L.AXIS_X in sub:
            xs, ys = sub[L.AXIS_X], sub[L.AXIS_Y]
            axes = {"x": xs[()], "y": ys[()], "xlabel": axis_label(xs), "ylabel": axis_label(ys),
                    "motor": _text(xs.attrs.get(L.ATTR_LONG_NAME, "")), "unit": _unit(xs.attrs)}
        else:                 # lixtools' layout: the coordinates are the group's @xc/@yc
            y, x, ylabel, xlabel = W.image_axes(sub)
            axes = {"x": x, "y": y, "xlabel": xlabel or "x", "ylabel": ylabel or "y",
                    "motor": xlabel, "unit": ""}
        out.append({"name": name, "d": ds[()], "attrs": attrs, **axes})
    return out


def maps_figure(f, sn, key=L.MAPS):
    """Figure of every map (or tomogram) of sample ``sn``, or None when it has none.

    Parameters
    ----------
    f : h5py.File
        An open proc_data file.
    sn : str
        Sample name (or ``overall``).
    key : {"maps", "tomo"}
        Data key drawn.

    Returns
    -------
    matplotlib.figure.Figure or None
        Images with labelled colour bars, motor axes and units; maps with one row or one
        column are curves instead (one panel per attribute, see :func:`series_figure`).
    """
    images = _images(f, sn, key)
    if not images:
        return None
    if key == L.MAPS and min(images[0]["d"].shape) == 1:
        return series_figure(sn, images)
    n = len(images)
    cols = min(n, MAX_COLS)
    rows = -(-n // cols)
    fig = _new_figure(PANEL_IN[0] * cols, PANEL_IN[1] * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    width = _chars(PANEL_IN[0] * 0.8)
    for ax, im in zip(axes, images):
        _draw_image(fig, ax, im, width, key == L.TOMO)
    what = TITLES.get(key, key)
    if key == L.MAPS:
        what += f" ({images[0]['d'].shape[0]} × {images[0]['d'].shape[1]} points)"
    _suptitle(fig, what, sn, PANEL_IN[0] * cols)
    return fig


def _colorbar(fig, ax, art, label):
    cb = fig.colorbar(art, ax=ax, shrink=0.9)
    cb.set_label(_wrap(label, _chars(PANEL_IN[1] * 0.8, 10), 3))
    cb.formatter.set_powerlimits((-3, 4))
    cb.update_ticks()


def _no_data(d):
    return "" if np.isfinite(d).any() else " (no data)"


def _draw_image(fig, ax, im, width, tomo):
    """A map on its motor axes, or a tomogram: a reconstructed slice whose axes are both
    positions along the translation motor (square pixels), valued per pixel (one step)."""
    art = ax.imshow(im["d"], extent=_extent(im["x"], im["y"]), interpolation="nearest",
                    aspect="equal" if tomo else "auto")
    a, title, label = im["attrs"], im["name"] + _no_data(im["d"]), quantity(im["name"], im["attrs"])
    if tomo:
        unit = im["unit"] or f"{im['motor'] or 'translation'} units"
        xlabel, ylabel, label = f"x ({unit})", f"y ({unit})", f"{label} per pixel"
        how = [_text(a[L.ATTR_ALGORITHM])] if L.ATTR_ALGORITHM in a else []
        how += [f"centre {float(a[L.ATTR_ROT_CEN]):.4g}"] if L.ATTR_ROT_CEN in a else []
        title += f" ({', '.join(how)})" if how else ""
    else:
        xlabel, ylabel = im["xlabel"], im["ylabel"]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_wrap(title, width))
    _colorbar(fig, ax, art, label)


def series_figure(sn, images):
    """Curves of a one-row (or one-column) map: one panel per attribute, shared x axis.

    Parameters
    ----------
    sn : str
        Sample name, for the title.
    images : list of dict
        Maps of one sample as read by the module (``name``, ``d`` of shape ``(1, n)`` or
        ``(n, 1)``, axes ``x``/``y`` and their labels, ``attrs``).

    Returns
    -------
    matplotlib.figure.Figure
        One Line2D per attribute against the motor that moves (the fast motor of a row,
        the slow motor of a column; the frame index of a time series).
    """
    first = images[0]
    row = first["d"].shape[0] == 1
    x, xlabel = (first["x"], first["xlabel"]) if row else (first["y"], first["ylabel"])
    n = len(images)
    fig = _new_figure(SERIES_IN[0], SERIES_IN[1] * n + 0.6)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False).ravel()
    marker = "o" if len(x) <= 60 else None
    for ax, im in zip(axes, images):
        values = np.ravel(im["d"])
        ax.plot(x, values, marker=marker, ms=3.5, lw=1.3, label=im["name"])
        ax.set_ylabel(_wrap(quantity(im["name"], im["attrs"]), _chars(SERIES_IN[1] * 0.8, 10), 3))
        ax.set_title(_wrap(im["name"] + _no_data(values), _chars(SERIES_IN[0] * 0.8)),
                     loc="left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(xlabel)
    _suptitle(fig, f"series of {len(x)} points", sn, SERIES_IN[0])
    return fig


def _mean_frames(ds, count=QPHI_FRAMES):
    """NaN-aware mean of up to ``count`` frames of ``ds``; ``(mean, frames used)``.

    The frames are drawn at random (fixed seed): a regular stride could fall on the same
    column of every raster row (the edge of the sample, say).
    """
    n = ds.shape[0]
    frames = np.sort(np.random.default_rng(0).choice(n, min(n, count), replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # bins no detector covers stay NaN
        return np.nanmean(np.stack([ds[i] for i in frames]), axis=0), len(frames)


def _q_bins(g):
    """``(q, q_lo, q_hi)`` of a q-φ group (bounds from the centres in older files and
    lixtools', whose q centres are the parent's ``@xc``)."""
    q = g[L.AXIS_Q][()] if L.AXIS_Q in g else np.asarray(g.parent.attrs[L.ATTR_XC], float)
    if L.AXIS_Q_LO in g and L.AXIS_Q_HI in g:
        return q, g[L.AXIS_Q_LO][()], g[L.AXIS_Q_HI][()]
    half = np.gradient(q) / 2 if len(q) > 1 else np.full(len(q), 0.5)
    return q, q - half, q + half


def _phi_range(g):
    edges = g[L.AXIS_PHI_EDGES][()] if L.AXIS_PHI_EDGES in g else [-180.0, 180.0]  # the circle
    return float(edges[0]), float(edges[-1])


def _q_axis(ax, q_lo, q_hi, unit):
    """A piecewise q grid on a bin-index scale: ticks read q, dashes mark segment breaks."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    n = len(q_lo)

    def q_at(pos, _=None):
        i = int(np.clip(np.floor(pos), 0, n - 1))
        return f"{q_lo[i] + (pos - i) * (q_hi[i] - q_lo[i]):.3g}"

    width = q_hi - q_lo
    starts = 1 + np.flatnonzero(~np.isclose(q_lo[1:], q_hi[:-1])
                                | ~np.isclose(width[1:], width[:-1]))
    for b in starts:
        ax.axvline(b, color="0.4", ls="--", lw=0.9)
    fixed = [0, *starts, n]                  # every segment's start is a tick, then fill in
    auto = MaxNLocator(nbins=6, integer=True).tick_values(0, n)
    ax.set_xticks(sorted(set(fixed) | {t for t in auto if 0 <= t <= n
                                       and min(abs(t - s) for s in fixed) >= n / 8}))
    ax.xaxis.set_major_formatter(FuncFormatter(q_at))
    ax.set_xlabel(f"q ({unit}), piecewise scale (dashes: segment breaks)")


def qphi_figure(f, sn, frames=QPHI_FRAMES):
    """Figure of the mean q-φ map of sample ``sn``, one panel per sub key, or None.

    Parameters
    ----------
    f : h5py.File
        An open proc_data file.
    sn : str
        Sample name.
    frames : int
        At most this many frames, drawn at random (seed 0), are averaged.

    Returns
    -------
    matplotlib.figure.Figure or None
        ``merged`` as log10 I, ``subtracted`` (when present) as linear I − background; q in
        1/Å (on a bin-index scale when the grid is piecewise), φ in degrees.
    """
    subs = [s for s in (L.MERGED, L.SUBTRACTED)
            if L.qphi_path(sn, s) in f and f[L.qphi_path(sn, s)].shape[0]]
    if not subs:
        return None
    fig = _new_figure(QPHI_IN[0] * len(subs), QPHI_IN[1])
    axes = fig.subplots(1, len(subs), squeeze=False).ravel()
    for ax, sub in zip(axes, subs):
        g = f[L.qphi_group(sn, sub)]
        ds = g[L.SIGNAL]
        mean, used = _mean_frames(ds, frames)
        if sub == L.MERGED:
            with np.errstate(invalid="ignore", divide="ignore"):
                img = np.log10(np.where(mean > 0, mean, np.nan))
            label = "log10 I (I in a.u.)"
        else:
            img, label = mean, "I − background (a.u.)"
        q, q_lo, q_hi = _q_bins(g)
        q_unit = (_unit(g[L.AXIS_Q].attrs) if L.AXIS_Q in g else "") or "1/Å"
        uniform = len(q) < 2 or bool(np.allclose(q_lo[1:], q_hi[:-1])
                                     and np.allclose(q_hi - q_lo, q_hi[0] - q_lo[0]))
        x0, x1 = (q_lo[0], q_hi[-1]) if uniform else (0, len(q))
        art = ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest",
                        extent=[x0, x1, *_phi_range(g)])
        if uniform:
            ax.set_xlabel(f"q ({q_unit})")
        else:
            _q_axis(ax, q_lo, q_hi, q_unit)
        ax.set_ylabel(axis_label(g[L.AXIS_PHI], "φ").replace("phi", "φ", 1) if L.AXIS_PHI in g
                      else "φ (deg)")
        ax.set_title(_wrap(f"{sub}: mean of {used} of {ds.shape[0]} frames",
                           _chars(QPHI_IN[0] * 0.75)))
        _colorbar(fig, ax, art, label)
    _suptitle(fig, "q-φ map", sn, QPHI_IN[0] * len(subs))
    return fig


def plot_procdata(path, out_png, sample=None, what=None):
    """Draw maps, tomograms and q-φ maps of ``path``; returns the written PNG paths.

    Parameters
    ----------
    path : str or Path
        A proc_data file.
    out_png : str or Path
        Base name: ``<stem>_<sample>_<what>.png`` files are written beside it.
    sample : str, optional
        Default ``overall`` (when present) and every sample.
    what : str or list of {"maps", "tomo", "qphi"}, optional
        Default all three.

    Returns
    -------
    list of Path
    """
    import h5py

    from . import store as W

    what = list(WHAT if what is None else ([what] if isinstance(what, str) else what))
    out_png = Path(out_png)
    written = []
    with h5py.File(path, "r") as f:
        sns = [sample] if sample else (([L.OVERALL] if L.OVERALL in f else []) + W.samples(f))
        for sn in sns:
            for key in (k for k in WHAT if k in what):
                fig = qphi_figure(f, sn) if key == L.QPHI else maps_figure(f, sn, key)
                if fig is not None:
                    png = out_png.with_name(f"{out_png.stem}_{sn}_{key}.png")
                    fig.savefig(png, dpi=DPI)
                    written.append(png)
    return written
