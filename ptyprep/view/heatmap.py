"""A Bokeh image on real axes, with a labelled colour bar and a linear/log colour scale.

:class:`Heatmap` draws values ``(ny, nx)`` whose pixels are centred on the positions
``x`` (nx,) and ``y`` (ny,) — motor positions of a map, q and φ bins of a q-φ map, pixel
indices of a detector frame.  On evenly spaced axes it is one ``image`` glyph (the
values in its source, as given); on uneven ones (a q grid in segments) one ``quad`` per
pixel with the pixel's bin edges, so the axes are right either way.  NaN pixels (points
not measured yet) are transparent: drawn as missing.
"""

import numpy as np

#: Transparent: a NaN pixel (not measured, masked) shows the plot's background.
MISSING = "rgba(0, 0, 0, 0)"
TOOLS = "pan,wheel_zoom,box_zoom,reset"
#: Tools of the small map figures (fewer models: a page of many maps opens faster).
MAP_TOOLS = "pan,wheel_zoom,reset"


def bounds_of(centres):
    """``(lo, hi)`` bounds of pixels centred on ``centres``: halfway between neighbours,
    the ends half a step out (one centre gets a bin of width 1)."""
    c = np.asarray(centres, dtype=np.float64).ravel()
    if c.size == 0:
        return np.array([0.0]), np.array([1.0])
    if c.size == 1:
        return c - 0.5, c + 0.5
    mid = (c[1:] + c[:-1]) / 2
    edges = np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])
    return edges[:-1], edges[1:]


def evenly_spaced(lo, hi):
    """True when bins ``[lo, hi)`` tile an axis in equal steps (no gaps, to 0.1 %)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    width = hi - lo
    if width.size == 0 or not np.all(width * width[0] > 0):
        return False
    step = abs(width[0])
    return bool(np.allclose(width, width[0], rtol=1e-3, atol=0)
                and np.allclose(lo[1:], hi[:-1], rtol=0, atol=1e-3 * step))


def value_range(values, log=False):
    """``(low, high)`` of the finite values (of the positive ones for a log scale);
    ``(0, 1)`` / ``(1, 10)`` when there are none; never ``low == high``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if v.size == 0:
        return (1.0, 10.0) if log else (0.0, 1.0)
    low, high = float(v.min()), float(v.max())
    if low == high:
        return (low / 2, low * 2) if log else (low - 0.5, high + 0.5)
    return low, high


class Heatmap:
    """A figure showing one image with a colour bar.

    Parameters
    ----------
    values : (ny, nx) array_like
    x, y : (nx,), (ny,) array_like, or a pair of them
        Pixel centres along the columns and the rows, or their bounds ``(lo, hi)``
        (bins with gaps between them: a q grid in segments).
    title, xlabel, ylabel, label : str
        Figure title, axis labels and colour-bar title (quantity and unit).
    name : str
        Name of the figure; its source is ``<name>_source``, so tests and scripts find
        them in the document (``doc.get_model_by_name``).
    scale : {"linear", "log"}
    flip_y : bool
        Draw the first row on top (detector frames), not at the bottom.
    palette : sequence of colours
    width, height : int
        Figure size in pixels.
    """

    def __init__(self, values, x, y, *, title, xlabel, ylabel, label, name, scale="linear",
                 flip_y=False, palette=None, width=360, height=300, match_aspect=False,
                 tools=TOOLS):
        from bokeh.models import ColorBar, LinearColorMapper, LogColorMapper
        from bokeh.palettes import Viridis256
        from bokeh.plotting import ColumnDataSource, figure

        values = np.asarray(values, dtype=np.float64)
        self.x_bins = x if isinstance(x, tuple) else bounds_of(x)
        self.y_bins = y if isinstance(y, tuple) else bounds_of(y)
        self.as_image = evenly_spaced(*self.x_bins) and evenly_spaced(*self.y_bins)
        palette = palette or Viridis256
        self.mappers = {"linear": LinearColorMapper(palette=palette, nan_color=MISSING),
                        "log": LogColorMapper(palette=palette, nan_color=MISSING)}
        self.scale = scale
        x_range = (float(np.min(self.x_bins)), float(np.max(self.x_bins)))
        y_range = (float(np.min(self.y_bins)), float(np.max(self.y_bins)))
        self.figure = figure(title=title, name=name, width=width, height=height, tools=tools,
                             x_range=x_range, y_range=y_range[::-1] if flip_y else y_range,
                             x_axis_label=xlabel, y_axis_label=ylabel,
                             match_aspect=match_aspect)
        self.source = ColumnDataSource(self._columns(values), name=f"{name}_source")
        mapper = self.mappers[scale]
        if self.as_image:
            self.renderer = self.figure.image(
                image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                color_mapper=mapper)
        else:
            self.renderer = self.figure.quad(
                left="left", right="right", bottom="bottom", top="top", source=self.source,
                fill_color={"field": "value", "transform": mapper}, line_color=None)
        self.colour_bar = ColorBar(color_mapper=mapper, title=label, width=10)
        self.figure.add_layout(self.colour_bar, "right")
        self._range(values)

    def _columns(self, values):
        """The source's columns for ``values`` on this figure's geometry."""
        values = np.asarray(values, dtype=np.float64)
        (x_lo, x_hi), (y_lo, y_hi) = self.x_bins, self.y_bins
        if self.as_image:
            if x_hi[0] < x_lo[0]:
                values = values[:, ::-1]
            if y_hi[0] < y_lo[0]:
                values = values[::-1]
            x0, x1 = float(np.min(self.x_bins)), float(np.max(self.x_bins))
            y0, y1 = float(np.min(self.y_bins)), float(np.max(self.y_bins))
            return {"image": [values], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}
        rows, cols = np.indices(values.shape)
        lo_x, hi_x = np.minimum(x_lo, x_hi), np.maximum(x_lo, x_hi)
        lo_y, hi_y = np.minimum(y_lo, y_hi), np.maximum(y_lo, y_hi)
        return {"left": lo_x[cols].ravel(), "right": hi_x[cols].ravel(),
                "bottom": lo_y[rows].ravel(), "top": hi_y[rows].ravel(),
                "value": values.ravel()}

    def _range(self, values):
        for kind, mapper in self.mappers.items():
            mapper.low, mapper.high = value_range(values, log=kind == "log")

    def set_values(self, values):
        """Show ``values`` (same shape and axes); the colour range follows them."""
        values = np.asarray(values, dtype=np.float64)
        if self.as_image:
            self.source.data.update(image=self._columns(values)["image"])
        else:
            self.source.data["value"] = values.ravel()
        self._range(values)

    def set_title(self, text):
        self.figure.title.text = text

    def set_scale(self, scale):
        """Switch the colour scale: ``"linear"`` or ``"log"`` (non-positive values of a log
        scale take the lowest colour)."""
        mapper = self.mappers[scale]
        self.scale = scale
        if self.as_image:
            self.renderer.glyph.color_mapper = mapper
        else:
            self.renderer.glyph.fill_color = {"field": "value", "transform": mapper}
        self.colour_bar.color_mapper = mapper
