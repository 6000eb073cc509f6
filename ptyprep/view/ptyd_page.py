"""The ``ptyprep view`` page of a ``.ptyd``: mean frame, mask, positions, one frame.

Top row: the mean of the frames published so far (log10(counts + 1), masked pixels
missing), the valid mask (black = masked in some frame) and the scan positions coloured
by frame index.  A click on a position reads that frame (one row of one chunk) and shows
it with its masked pixels in red, beside the ``meta/`` and ``info/`` table.  Every second
the page looks at the file: when a daemon published a new master (``ptyprep watch``), the
new chunks are read and the positions fill in; the daemon's status line is read every time.
"""

from pathlib import Path

import numpy as np

from ..errors import PtyprepError
from .batch import batched
from .files import Version, default_status_path, read_status, status_text
from .heatmap import MISSING, TOOLS, Heatmap
from .ptyd_reader import PtydReader

UM = 1e6
SIZE = (400, 360)
SCALES = ("linear", "log")


def log_counts(mean, valid):
    """``log10(mean + 1)`` where valid, NaN (missing) where masked."""
    with np.errstate(invalid="ignore"):
        return np.where(valid, np.log10(np.clip(mean, 0, None) + 1), np.nan)


class PtydPage:
    """The page of ``.ptyd`` file ``path`` in Bokeh document ``doc``.

    Parameters
    ----------
    doc : bokeh.document.Document
    path : str or Path
    status_path : str or Path, optional
        The status file of a daemon writing ``path`` (default ``<path>.status.json``).
    """

    def __init__(self, doc, path, status_path=None):
        from bokeh.layouts import column, row
        from bokeh.models import (ColumnDataSource, DataTable, Div, Pane, RadioButtonGroup,
                                  TableColumn)
        from bokeh.palettes import Greys256, Magma256

        self.doc = doc
        self.path = Path(path)
        self.status_path = status_path or default_status_path(path)
        self.reader = PtydReader(path)
        self.version = Version(path)
        self.index = None
        ny, nx = self.reader.shape
        cols, rows = np.arange(nx), np.arange(ny)
        common = {"x": cols, "y": rows, "xlabel": "column (pixel)", "ylabel": "row (pixel)",
                  "flip_y": True, "width": SIZE[0], "height": SIZE[1], "match_aspect": True}
        self.header = Div(text="", name="header")
        self.status = Div(text="", name="status")
        self.mean = Heatmap(np.full((ny, nx), np.nan), title="", label="log10(counts + 1)",
                            name="mean", palette=Magma256, **common)
        self.valid = Heatmap(np.ones((ny, nx)), title="", label="valid (1) / masked (0)",
                             name="valid", palette=Greys256, **common)
        self.positions = self._positions_figure()
        self.frame = Heatmap(np.full((ny, nx), np.nan), title="click a scan position",
                             label="counts", name="frame", palette=Magma256, scale="log",
                             **common)
        self.mask_source = ColumnDataSource(dict(self.frame.source.data), name="mask_source")
        self.frame.figure.image(image="image", x="x", y="y", dw="dw", dh="dh",
                                source=self.mask_source, global_alpha=0.55,
                                color_mapper=self._red())
        self.info = Div(text="", name="frame_info", width=SIZE[0], height=24)
        self.scale = RadioButtonGroup(labels=list(SCALES), active=1, name="scale")
        self.scale.on_change("active", lambda a, o, new: self.set_scale(SCALES[new]))
        self.table_source = ColumnDataSource({"key": [], "value": []}, name="meta_source")
        table = DataTable(source=self.table_source, name="meta_table", width=760, height=340,
                          reorderable=False, index_position=None,
                          columns=[TableColumn(field="key", title="entry", width=170),
                                   TableColumn(field="value", title="value", width=590)])
        top = row(self.mean.figure, self.valid.figure, self.positions)
        frame_box = column(Pane(elements=[self.info]),
                           column(Div(text="colour scale"), self.scale),
                           self.frame.figure)
        doc.add_root(column(self.header, self.status, top, row(frame_box, table), name="page"))
        doc.title = f"ptyprep view: {self.path.name}"
        self._show_scan()
        if self.reader.frames:
            self.show_frame(int(self.reader.indices[0]))
        self._status()

    @staticmethod
    def _red():
        from bokeh.models import LinearColorMapper

        return LinearColorMapper(palette=["red", "red"], low=0, high=1, nan_color=MISSING)

    def _positions_figure(self):
        from bokeh.events import Tap
        from bokeh.models import ColorBar, ColumnDataSource, DataRange1d, LinearColorMapper
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure

        fig = figure(name="positions", title="", width=SIZE[0] + 60, height=SIZE[1],
                     tools=TOOLS, match_aspect=True, x_axis_label="x (µm)",
                     y_axis_label="y (µm)", y_range=DataRange1d(flipped=True))
        self.scan_source = ColumnDataSource({"x": [], "y": [], "index": []},
                                            name="positions_source")
        self.index_mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        fig.line("x", "y", source=self.scan_source, line_width=0.5, line_color="#999999")
        fig.scatter("x", "y", source=self.scan_source, size=7, line_color=None,
                    fill_color={"field": "index", "transform": self.index_mapper})
        self.chosen = ColumnDataSource({"x": [], "y": []}, name="chosen_source")
        fig.scatter("x", "y", source=self.chosen, marker="circle", size=15, fill_alpha=0,
                    line_color="red", line_width=2, level="overlay")
        fig.add_layout(ColorBar(color_mapper=self.index_mapper, title="frame index",
                                width=10), "right")
        fig.on_event(Tap, lambda event: self.pick(event.y / UM, event.x / UM))
        return fig

    def _show_scan(self):
        """Mean frame, mask, positions, table and header from what the reader holds."""
        r = self.reader
        n = r.frames
        valid = r.valid_mask()
        self.mean.set_values(log_counts(r.mean_frame(), valid))
        self.mean.set_title(f"mean of {n} frames, log10(counts + 1)")
        self.valid.set_values(valid.astype(float))
        self.valid.set_title(f"valid pixels ({100 * valid.mean():.1f}%), black = masked")
        pos = r.positions * UM
        self.scan_source.data = {"x": pos[:, 1], "y": pos[:, 0], "index": r.indices}
        self.index_mapper.high = float(max(n - 1, 1))
        self.positions.title.text = f"{n} scan positions (colour = frame index)"
        keys, values = r.table()
        self.table_source.data = {"key": keys, "value": values}
        expected = r.expected()
        of = f" of {expected}" if expected else ""
        state = "complete" if r.complete() else "being acquired"
        meta = r.meta
        self.header.text = (f"<b>{self.path.name}</b> — .ptyd, {n}{of} frames of "
                            f"{r.shape[0]} × {r.shape[1]} pixels ({state}); "
                            f"{float(meta.get('energy', np.nan)):g} keV, "
                            f"{float(meta.get('distance', np.nan)):g} m")

    @batched
    def pick(self, y, x):
        """A click at scan position ``(y, x)`` metres: show the nearest frame."""
        index = self.reader.nearest(y, x)
        if index is not None:
            self.show_frame(index)

    @batched
    def show_frame(self, index):
        """Read frame ``index`` (one row of its chunk) and show it with its mask."""
        data, valid = self.reader.frame(index)
        self.index = int(index)
        self.frame.set_values(data)
        self.mask_source.data.update(image=[np.where(valid, np.nan, 1.0)])
        y, x = (v * UM for v in self.reader.position(index))
        self.frame.set_title(f"frame {index} at y = {y:.4g}, x = {x:.4g} µm; masked red")
        self.chosen.data = {"x": [x], "y": [y]}
        counts = float(np.sum(data, dtype=np.float64))
        self.info.text = (f"frame <b>{index}</b> of {self.reader.frames}: {counts:.6g} counts, "
                          f"{int((~valid).sum())} masked pixels")

    @batched
    def set_scale(self, scale):
        self.frame.set_scale(scale)

    def _status(self):
        self.status.text = status_text(read_status(self.status_path))

    @batched
    def refresh(self):
        """Periodic: the daemon's status; new chunks after a publish."""
        self._status()
        if not self.version.is_new():
            return
        try:
            changed = self.reader.refresh()
        except (OSError, KeyError, PtyprepError):      # replaced as we looked: the next tick reads it
            self.version.forget()
            return
        self._show_scan()
        if changed and self.index is None and self.reader.frames:
            self.show_frame(int(self.reader.indices[0]))
