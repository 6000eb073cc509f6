"""The right side of the proc_data page: the q-φ map, I(q) and I(φ) of one frame.

:class:`FramePanel` shows a :class:`~ptyprep.view.procdata_reader.Frame` — what a click
on a map reads — as its q-φ map on the true q and φ bins (one ``image`` per evenly
spaced q segment when the q grid comes in segments), its I(q) (log intensity axis) and its
I(φ) averaged over the q window of a slider, recomputed from the frame already read when
the slider moves.
The frame shown is named in the titles and in the ``frame_info`` line; that line sits in a
``Pane`` (not a layout), so a new text lays out the line alone, not the whole page (~70 ms
a click on a page of six maps).
"""

import numpy as np

from ..saxs.plot import UNIT_TEXT
from .heatmap import TOOLS, Heatmap
from .procdata_reader import iphi_of

QPHI_SIZE = (500, 320)
CURVE_SIZE = (500, 210)
Q_UNIT = UNIT_TEXT["1/angstrom"]


def frame_name(frame):
    """``"<sample> frame <index>"``: how the page names the frame it shows."""
    return f"{frame.sample} frame {frame.index}"


class FramePanel:
    """The figures of one frame, built on the q and φ bins of ``first`` (a Frame)."""

    def __init__(self, first, qrange=None):
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource, Div, Pane, RangeSlider
        from bokeh.plotting import figure

        self.frame = first
        self.info = Div(text="", name="frame_info", width=QPHI_SIZE[0], height=40)
        self.qphi = Heatmap(first.qphi, (first.q_lo, first.q_hi),
                            (first.phi_edges[:-1], first.phi_edges[1:]), title="",
                            xlabel=f"q ({Q_UNIT})", ylabel="φ (deg)", label="intensity (a.u.)",
                            name="qphi", width=QPHI_SIZE[0], height=QPHI_SIZE[1])
        self.iq_source = ColumnDataSource(iq_columns(first), name="iq_source")
        self.iq = figure(name="iq", width=CURVE_SIZE[0], height=CURVE_SIZE[1], tools=TOOLS,
                         y_axis_type="log", x_axis_label=f"q ({Q_UNIT})",
                         y_axis_label="I(q) (a.u.)")
        self.iq.line("q", "I", source=self.iq_source)
        q = np.asarray(first.q, float)
        lo, hi = qrange if qrange else (float(q[0]), float(q[max(len(q) // 4, 1) - 1]))
        step = float(np.min(np.diff(q))) if len(q) > 1 else 0.001
        self.qrange = RangeSlider(start=float(q.min()), end=float(q.max()), value=(lo, hi),
                                  step=step, title=f"I(φ) over q ({Q_UNIT})", name="qrange",
                                  width=CURVE_SIZE[0], format="0[.]0000")
        self.iphi_source = ColumnDataSource({"phi": first.phi, "I": iphi_of(first, (lo, hi))},
                                            name="iphi_source")
        self.iphi = figure(name="iphi", width=CURVE_SIZE[0], height=CURVE_SIZE[1], tools=TOOLS,
                           x_axis_label="φ (deg)", y_axis_label="I(φ) (a.u.)")
        self.iphi.line("phi", "I", source=self.iphi_source)
        self.iphi.scatter("phi", "I", source=self.iphi_source, size=4)
        self.qrange.on_change("value_throttled", lambda attr, old, new: self._iphi())
        self.layout = column(Pane(elements=[self.info]), self.qphi.figure, self.iq,
                             self.qrange, self.iphi)
        self.show(first)

    def show(self, frame, of=None):
        """Show ``frame``; ``of`` is the number of frames of its sample (for the info line)."""
        self.frame = frame
        name = frame_name(frame)
        self.qphi.set_values(frame.qphi)
        self.qphi.set_title(f"q-φ map: {name}")
        self.iq_source.data = iq_columns(frame)
        self.iq.title.text = f"I(q): {name}"
        self._iphi()
        where = ", ".join(f"{motor} = {value:g}" for motor, value in frame.where.items())
        total = f" of {of}" if of else ""
        self.info.text = (f"<b>{frame.sample}</b> frame <b>{frame.index}</b>{total}"
                          + (f" at {where}" if where else ""))

    def _iphi(self):
        lo, hi = self.qrange.value
        self.iphi_source.data = {"phi": self.frame.phi, "I": iphi_of(self.frame, (lo, hi))}
        self.iphi.title.text = (f"I(φ), q {lo:.4g}–{hi:.4g} {Q_UNIT}: "
                                f"{frame_name(self.frame)}")

    def set_scale(self, scale):
        self.qphi.set_scale(scale)


def iq_columns(frame):
    """``{"q", "I"}`` of a frame's I(q) for a line on a log axis: non-positive values NaN,
    and a NaN point between two q segments so the line breaks over the gap."""
    q = np.asarray(frame.q, dtype=np.float64)
    values = np.asarray(frame.iq, dtype=np.float64)
    values = np.where(values > 0, values, np.nan)
    gaps = np.flatnonzero(np.asarray(frame.q_lo)[1:] > np.asarray(frame.q_hi)[:-1] + 1e-12) + 1
    return {"q": np.insert(q, gaps, (q[gaps - 1] + q[gaps]) / 2),
            "I": np.insert(values, gaps, np.nan)}
