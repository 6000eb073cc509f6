"""Helpers of the on-the-fly tests: a reader thread that keeps opening a daemon's output, and
waiting for a condition."""

import threading
import time


class PollingReader(threading.Thread):
    """Calls :meth:`look` on ``path`` every 10 ms while a daemon writes it; keeps what every look
    returns, and every exception (a failed look is a test failure). Subclasses define ``look``."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.done = path, threading.Event()
        self.looks, self.errors = [], []

    def run(self):
        while not self.done.is_set():
            if self.path.exists():
                try:
                    self.looks.append(self.look())
                except Exception as exc:  # noqa: BLE001  any failure to read is a test failure
                    self.errors.append(repr(exc))
            time.sleep(0.01)

    def look(self):
        raise NotImplementedError

    def finish(self):
        """Stop polling; assert that no look failed."""
        self.done.set()
        self.join(5)
        assert not self.errors, self.errors[:3]


def wait_for(condition, timeout=30):
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.005)
