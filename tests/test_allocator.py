"""keep_freed_memory: freed batch-sized buffers come back without page faults."""

import subprocess
import sys
import textwrap

import pytest

from ptyprep import cli

FAULTS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from ptyprep.fast.allocator import keep_freed_memory
    if sys.argv[1] == "tuned":
        assert keep_freed_memory()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def chunk():                            # the buffers of one chunk, alive together, then freed
        bufs = [np.ones(2 << 20, np.uint8) for _ in range(8)]
        del bufs
    chunk()                                 # warm up: the first blocks are faulted in anyway
    before = faults()
    for _ in range(30):
        chunk()
    print(faults() - before)
""")


def page_faults(mode):
    res = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True,
                         check=True)
    return int(res.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_buffers_are_reused_without_page_faults():
    plain, tuned = page_faults("plain"), page_faults("tuned")
    assert plain > 30 * 8 * 400             # 512 pages per buffer, every time
    assert tuned < plain / 20


def test_the_command_line_applies_it(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("ptyprep.fast.allocator.keep_freed_memory", lambda: calls.append(1))
    assert cli.main(["sources"]) == 0
    assert calls == [1]
