"""The ``ptyprep view`` page of a proc_data file.

A sample selector (the samples, then ``overall``), a linear/log colour switch, the maps
(or curves) and tomograms of the chosen sample on the left (:class:`MapsPanel`), and the
frame clicked on the right (:class:`FramePanel`: q-φ map, I(q), I(φ)).  A click reads
that frame only.  Every second the page looks at the file: when a daemon published a
new version (``ptyprep watch``), the maps, the header and the frame shown are read
again; the daemon's status line is read every time.
"""

from pathlib import Path

from ..layout import procdata as L
from .batch import batched
from .files import Version, default_status_path, read_status, status_text
from .procdata_frame import FramePanel
from .procdata_maps import MapsPanel
from .procdata_reader import ProcdataReader

SCALES = ("linear", "log")


class ProcdataPage:
    """The page of proc_data file ``path`` in Bokeh document ``doc``.

    Parameters
    ----------
    doc : bokeh.document.Document
    path : str or Path
    status_path : str or Path, optional
        The status file of a daemon writing ``path`` (default ``<path>.status.json``).
    """

    def __init__(self, doc, path, status_path=None):
        from bokeh.layouts import column, row
        from bokeh.models import Div, RadioButtonGroup, Select

        self.doc = doc
        self.path = Path(path)
        self.status_path = status_path or default_status_path(path)
        self.reader = ProcdataReader(path)
        self.version = Version(path)
        self.samples = self.reader.samples()
        groups = self.reader.groups()
        self.header = Div(text="", name="header")
        self.status = Div(text="", name="status")
        self.select = Select(title="sample", options=groups, value=groups[0] if groups else "",
                             name="sample", width=320)
        self.scale = RadioButtonGroup(labels=list(SCALES), active=0, name="scale")
        self.maps = MapsPanel(self.pick)
        self.current, self.frame = None, None
        self.body = row(self.maps.layout, Div(text="<i>no q-φ maps in this file yet</i>"))
        self._frame_panel()
        controls = row(self.select, column(Div(text="colour scale"), self.scale))
        doc.add_root(column(self.header, self.status, controls, self.body, name="page"))
        doc.title = f"ptyprep view: {self.path.name}"
        self.select.on_change("value", lambda attr, old, new: self.show_sample(new))
        self.scale.on_change("active", lambda attr, old, new: self.set_scale(SCALES[new]))
        self.show_sample(self.select.value)
        self._header()
        self._status()

    def _frame_panel(self):
        """Build the frame panel on frame 0 of the first sample with processed frames
        (nothing while there is none)."""
        for name, sample in self.samples.items():
            if sample.frames_done:
                self.current = self.reader.frame(name, 0, sample)
                self.frame = FramePanel(self.current, self.reader.iphi_qrange(name))
                self.frame.show(self.current, of=sample.n_frames)
                self.frame.set_scale(SCALES[self.scale.active])
                self.body.children = [self.maps.layout, self.frame.layout]
                return

    @batched
    def show_sample(self, name):
        """Show the maps and tomograms of ``name`` (a sample or ``overall``)."""
        if not name:
            return
        self.maps.show(name, self.reader.images(name), self.reader.images(name, L.TOMO))
        if self.current is not None:
            self._mark(self.current)

    @batched
    def pick(self, sample, x, y):
        """A click at motor position ``(x, y)`` of ``sample``'s maps: show that frame."""
        found = self.reader.locate(sample, x, y, self.samples)
        if self.frame is None:
            return
        if found is None:
            self.frame.info.text = f"no frame was measured at ({x:.4g}, {y:.4g})"
            return
        self.show_frame(*found)

    @batched
    def show_frame(self, name, index):
        """Read frame ``index`` of sample ``name`` (one slice) and show it."""
        sample = self.samples[name]
        if self.frame is None:
            return
        self.current = self.reader.frame(name, index, sample)
        self.frame.show(self.current, of=sample.n_frames)
        self._mark(self.current)

    def _mark(self, frame):
        sample = self.samples.get(frame.sample)
        if sample is not None and frame.where:
            self.maps.mark(frame.where[sample.fast_motor], frame.where[sample.slow_motor])

    @batched
    def set_scale(self, scale):
        self.maps.set_scale(scale)
        if self.frame:
            self.frame.set_scale(scale)

    def _header(self):
        parts = [f"<b>{self.path.name}</b> — proc_data, {len(self.samples)} sample(s)"]
        for name, s in self.samples.items():
            parts.append(f"{name}: {s.frames_done} of {s.n_frames} frames processed "
                         f"({s.shape[0]} × {s.shape[1]} raster, {s.slow_motor} × {s.fast_motor})")
        state = self.reader.watch_state()
        if state is not None:
            done = "complete" if state.get("complete") else "being acquired"
            parts.append(f"ptyprep watch output, {done}: {state.get('frames_published', 0)} of "
                         f"{state.get('frames_expected') or '?'} frames published, maps of "
                         f"the first {state.get('maps_frames', 0)}")
        self.header.text = "<br>".join(parts)

    def _status(self):
        self.status.text = status_text(read_status(self.status_path))

    @batched
    def refresh(self):
        """Periodic: the daemon's status; everything shown again after a publish."""
        self._status()
        if not self.version.is_new():
            return
        try:
            self.samples = self.reader.samples()
            groups = self.reader.groups()
        except (OSError, KeyError):      # replaced as we looked: the next tick reads it
            self.version.forget()
            return
        self.select.options = groups
        if self.select.value not in groups and groups:
            self.select.value = groups[0]
        self.show_sample(self.select.value)
        if self.frame is None:
            self._frame_panel()
        elif self.current is not None:
            self.show_frame(self.current.sample, self.current.index)
        self._header()
