"""A Bokeh image on real axes, with a labelled colour bar and a linear/log colour scale.

:class:`Heatmap` draws values ``(ny, nx)`` whose pixels are centred on the positions
``x`` (nx,) and ``y`` (ny,) — motor positions of a map, q and φ bins of a q-φ map, pixel
indices of a detector frame.  On evenly spaced axes it is one ``image`` glyph (the
values in its source, as given); on a column axis that comes in evenly spaced segments
with gaps between them (a q grid in segments) one ``image`` per segment, each on its own
``x``/``dw`` (the per-bin table — bin edges and value — kept in ``source`` for scripts and
tests); on any other uneven axes one ``quad`` per pixel with the pixel's bin edges.  The
axes are right either way.  NaN pixels (points not measured yet) are transparent: drawn
as missing.
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


def segments_of(lo, hi):
    """``[(start, stop), ...]``: the runs of bins ``[lo, hi)`` that are each evenly spaced
    and contiguous (a q grid's segments), in order; None when a run's bins are ordered
    against the others' (descending bins: not split)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if lo.size == 0 or not np.all(hi > lo):
        return None
    runs, start = [], 0
    for i in range(1, lo.size + 1):
        if i == lo.size or not evenly_spaced(lo[start:i + 1], hi[start:i + 1]):
            runs.append((start, i))
            start = i
    return runs


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
        #: ``[(start, stop)]`` column runs drawn as one image each (None: one image / quads)
        self.segments = None
        if not self.as_image and evenly_spaced(*self.y_bins):
            self.segments = segments_of(*self.x_bins)
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
        # no grid lines: the image covers them (two models, views and layouts fewer each)
        self.figure.center = [m for m in self.figure.center if type(m).__name__ != "Grid"]
        self.source = ColumnDataSource(self._columns(values), name=f"{name}_source")
        mapper = self.mappers[scale]
        if self.as_image:
            self.renderer = self.figure.image(
                image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                color_mapper=mapper)
        elif self.segments is not None:
            # the drawn source: one row (an image, its x/dw) per segment; the per-bin
            # table rides along in the figure's tags so the document holds it
            self.image_source = ColumnDataSource(self._segment_columns(values),
                                                 name=f"{name}_images")
            self.renderer = self.figure.image(
                image="image", x="x", y="y", dw="dw", dh="dh", source=self.image_source,
                color_mapper=mapper)
            self.figure.tags = [self.source]
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

    def _segment_columns(self, values):
        """The drawn source's columns for ``values``: one image per segment of columns."""
        values = np.asarray(values, dtype=np.float64)
        (x_lo, x_hi), (y_lo, y_hi) = self.x_bins, self.y_bins
        if y_hi[0] < y_lo[0]:
            values = values[::-1]
        y0, y1 = float(np.min(self.y_bins)), float(np.max(self.y_bins))
        columns = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
        for start, stop in self.segments:
            columns["image"].append(np.ascontiguousarray(values[:, start:stop]))
            columns["x"].append(float(x_lo[start]))
            columns["dw"].append(float(x_hi[stop - 1] - x_lo[start]))
            columns["y"].append(y0)
            columns["dh"].append(y1 - y0)
        return columns

    def _range(self, values=None):
        """The colour range of the mapper in use follows ``values``; the other one's only
        when it is switched to (each range change is a colour-bar relayout in the browser)."""
        if values is not None:
            self._values = values
            self._stale = set(self.mappers)
        if self.scale in self._stale:
            mapper = self.mappers[self.scale]
            low, high = value_range(self._values, log=self.scale == "log")
            if (mapper.low, mapper.high) != (low, high):
                mapper.update(low=low, high=high)
            self._stale.discard(self.scale)

    def set_values(self, values):
        """Show ``values`` (same shape and axes); the colour range follows them."""
        values = np.asarray(values, dtype=np.float64)
        if self.as_image:
            self.source.data.update(image=self._columns(values)["image"])
        else:
            self.source.data["value"] = values.ravel()
        if self.segments is not None:
            self.image_source.data["image"] = self._segment_columns(values)["image"]
        self._range(values)

    def set_title(self, text):
        self.figure.title.text = text

    def set_scale(self, scale):
        """Switch the colour scale: ``"linear"`` or ``"log"`` (non-positive values of a log
        scale take the lowest colour)."""
        mapper = self.mappers[scale]
        self.scale = scale
        self._range()
        if self.as_image or self.segments is not None:
            self.renderer.glyph.color_mapper = mapper
        else:
            self.renderer.glyph.fill_color = {"field": "value", "transform": mapper}
        self.colour_bar.color_mapper = mapper
