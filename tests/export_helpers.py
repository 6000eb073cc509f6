"""A small prepared scan for the export tests (imported by test modules, not collected)."""

import json
from pathlib import Path

import ptyprep
from ptyprep.demo import DEMO_RECIPE


def demo_recipe(folder, formats=("ptyd",), save="link", frames=60, chunk_frames=20):
    """The demo's simulated far-field scan (off-centre beam, module gap, dead and hot
    pixels), ``frames`` of 128², writing ``folder/scan.ptyd`` and the exports ``formats``."""
    folder = Path(folder)
    path = folder / "scan.toml"
    path.write_text(DEMO_RECIPE.format(recipe=path))
    return ptyprep.load_recipe(path, overrides={
        "source.num_frames": frames, "output.save": save, "output.dfile": "scan.ptyd",
        "output.chunk_frames": chunk_frames, "output.format": list(formats)})


def demo_ptyd(folder, save="link", frames=60):
    """Prepare the demo scan as ``folder/scan.ptyd``; return its path."""
    ptyprep.run(demo_recipe(folder, save=save, frames=frames))
    return Path(folder) / "scan.ptyd"


def demo_run_args(formats, frames=60, chunk_frames=20):
    """``python -m ptyprep run`` arguments (for ``mpiexec``) of :func:`demo_recipe`'s scan,
    run in the folder :func:`demo_recipe` wrote ``scan.toml`` into."""
    return ["-m", "ptyprep", "-q", "run", "scan.toml", "--set", f"source.num_frames={frames}",
            "--set", "output.dfile='scan.ptyd'", "--set", f"output.chunk_frames={chunk_frames}",
            "--set", f"output.format={json.dumps(list(formats))}"]


def serial_and_mpi(tmp_path, run_mpi, formats):
    """The demo scan written with ``formats`` serially in ``tmp_path/serial`` and by
    ``mpiexec -n 2`` in ``tmp_path/parallel``; returns the two folders."""
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    serial.mkdir()
    parallel.mkdir()
    ptyprep.run(demo_recipe(serial, formats=formats))
    demo_recipe(parallel, formats=formats)
    proc = run_mpi(2, demo_run_args(formats), cwd=parallel)
    assert proc.returncode == 0, proc.stderr
    return serial, parallel
