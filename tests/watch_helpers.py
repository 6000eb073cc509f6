"""Helpers of the on-the-fly tests: recipes written as TOML, a reader thread that keeps opening
a daemon's output, and waiting for a condition."""

import json
import threading
import time


def toml_value(v):
    """``v`` (bool, str, number, list, dict) as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


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
