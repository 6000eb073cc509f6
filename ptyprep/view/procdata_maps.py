"""The left side of the proc_data page: a sample's maps, its tomograms, or its curves.

:class:`MapsPanel` shows every map of the chosen sample (``maps/*``; ``overall`` is one
of the choices) on its motor axes with a colour bar naming the quantity and unit, the
tomograms beside them, and for a line scan or a time series (a map of one row or one
column) the attributes as curves against the motor that moves.  A click on a map pixel
or a curve point calls ``on_pick(sample, x, y)`` with the motor position clicked
(fast, slow); a cross marks the point shown, drawn on the figures' overlay level so a
click repaints only the crosses, not the maps under them.
"""

import numpy as np

from .heatmap import MAP_TOOLS, Heatmap

COLUMNS = 3
MAP_SIZE = (300, 250)
CURVE_SIZE = (660, 170)


def is_series(images):
    """True when the maps are a line scan or time series (one row or one column)."""
    return bool(images) and min(images[0].d.shape) == 1


def geometry(images):
    """What decides whether the panel is rebuilt: names, shapes and axes of ``images``."""
    return [(im.name, im.d.shape, im.x.tobytes(), im.y.tobytes()) for im in images]


class MapsPanel:
    """The maps (or curves) and tomograms of one sample.

    Parameters
    ----------
    on_pick : callable
        ``on_pick(sample, x, y)`` after a click at motor position ``(x, y)``.
    """

    def __init__(self, on_pick):
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource, Div

        self.on_pick = on_pick
        self.sample = None
        self.scale = "linear"
        self.heatmaps, self.curves, self.spans = {}, {}, []
        self.marker = ColumnDataSource({"x": [], "y": []}, name="map_marker")
        self.note = Div(text="", name="maps_note")
        self.maps_box = column(name="maps")
        self.tomo_box = column(name="tomograms")
        self.layout = column(self.note, self.maps_box, self.tomo_box)
        self._shown = (None, None)

    def show(self, sample, images, tomograms):
        """Show ``images`` (maps) and ``tomograms`` of ``sample``: the figures are rebuilt
        when the sample or the maps' geometry changed, otherwise only their values."""
        shown = (sample, geometry(images), geometry(tomograms))
        if shown != self._shown:
            self._build(sample, images, tomograms)
            self._shown = shown
        else:
            self._update(images, tomograms)

    def _build(self, sample, images, tomograms):
        from bokeh.layouts import gridplot

        self.sample = sample
        self.heatmaps, self.curves, self.spans = {}, {}, []
        if not images:
            self.note.text = f"<i>{sample}: no maps yet</i>"
            self.maps_box.children = []
        elif is_series(images):
            self.note.text = f"<b>{sample}</b>: {len(images)} attributes along the scan"
            self.maps_box.children = [self._curve(sample, im) for im in images]
        else:
            ny, nx = images[0].d.shape
            self.note.text = f"<b>{sample}</b>: maps of {ny} × {nx} points (click a point to see its frame)"
            figures = [self._map(sample, im) for im in images]
            self.maps_box.children = [gridplot(figures, ncols=COLUMNS, toolbar_location="right")]
        tomo = [Heatmap(t.d, t.x, t.y, title=f"tomogram: {t.name}", xlabel=t.xlabel,
                        ylabel=t.ylabel, label=t.label, name=f"tomo_{t.name}", scale=self.scale,
                        width=MAP_SIZE[0], height=MAP_SIZE[1], match_aspect=True,
                        tools=MAP_TOOLS)
                for t in tomograms]
        self.heatmaps.update({f"tomo_{t.name}": h for t, h in zip(tomograms, tomo)})
        self.tomo_box.children = ([gridplot([h.figure for h in tomo], ncols=COLUMNS,
                                            toolbar_location="right")] if tomo else [])

    def _map(self, sample, im):
        from bokeh.events import Tap

        heat = Heatmap(im.d, im.x, im.y, title=im.name, xlabel=im.xlabel, ylabel=im.ylabel,
                       label=im.label, name=f"map_{im.name}", scale=self.scale,
                       width=MAP_SIZE[0], height=MAP_SIZE[1], tools=MAP_TOOLS)
        heat.figure.scatter("x", "y", source=self.marker, marker="cross", size=16,
                            line_color="red", line_width=2, level="overlay")
        heat.figure.on_event(Tap, lambda event: self.on_pick(sample, event.x, event.y))
        self.heatmaps[f"map_{im.name}"] = heat
        return heat.figure

    def _curve(self, sample, im):
        from bokeh.events import Tap
        from bokeh.models import ColumnDataSource, Span
        from bokeh.plotting import figure

        along_fast = im.d.shape[0] == 1
        position = im.x if along_fast else im.y
        other = float((im.y if along_fast else im.x)[0])
        label = im.xlabel if along_fast else im.ylabel
        fig = figure(title=im.name, name=f"curve_{im.name}", width=CURVE_SIZE[0],
                     height=CURVE_SIZE[1], tools=MAP_TOOLS, x_axis_label=label,
                     y_axis_label=im.label)
        source = ColumnDataSource({"position": np.asarray(position, float),
                                   "value": im.d.ravel()}, name=f"curve_{im.name}_source")
        fig.line("position", "value", source=source)
        fig.scatter("position", "value", source=source, size=4)
        span = Span(dimension="height", line_color="red", line_width=2, location=None)
        fig.add_layout(span)
        self.spans.append((span, "x" if along_fast else "y"))

        def picked(event):
            x, y = (event.x, other) if along_fast else (other, event.x)
            self.on_pick(sample, x, y)

        fig.on_event(Tap, picked)
        self.curves[im.name] = source
        return fig

    def _update(self, images, tomograms):
        for im in images:
            if im.name in self.curves:
                self.curves[im.name].data["value"] = im.d.ravel()
            elif f"map_{im.name}" in self.heatmaps:
                self.heatmaps[f"map_{im.name}"].set_values(im.d)
        for t in tomograms:
            self.heatmaps[f"tomo_{t.name}"].set_values(t.d)

    def mark(self, x, y):
        """Put the cross on motor position ``(x, y)`` (a line across the curves)."""
        self.marker.data = {"x": [float(x)], "y": [float(y)]}
        for span, key in self.spans:
            span.location = float(x if key == "x" else y)

    def set_scale(self, scale):
        """Linear or log colours on every map and tomogram."""
        self.scale = scale
        for heat in self.heatmaps.values():
            heat.set_scale(scale)

