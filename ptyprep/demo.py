"""``ptyprep demo``: simulate a scan, prepare it, write the result and a picture."""

from pathlib import Path

from .engine.collective import on_root

DEMO_RECIPE = """\
# Demo recipe written by `ptyprep demo`: a simulated far-field ptychography scan
# (off-centre beam, module gap, dead and hot pixels) prepared for ptypy.
# Run it again with:  ptyprep run {recipe}
# or on 2 MPI ranks:  mpiexec -n 2 python -m mpi4py -m ptyprep run {recipe}

[source]
name = "simulate"
num_frames = 200
frame_shape = [192, 200]
beam_center = [101.3, 93.6]

[prep]
shape = 128
center = "auto"          # centre of mass of the first chunk (the beam is off-centre)
rebin = 1
saturation = 1000000     # hot pixels (2**20 counts) are masked
orientation = 0

[output]
dfile = "demo.ptyd"
save = "link"
chunk_frames = 50
overwrite = true
"""


def run_demo(kind, out_dir, comm):
    """Run the demo(s); yield lines to print."""
    out = Path(out_dir)
    on_root(comm, out.mkdir, parents=True, exist_ok=True)
    if kind in ("ptycho", "all"):
        yield from _ptycho(out, comm)
    if kind in ("saxs", "all"):
        result = run_saxs_demo(out / "saxs", comm=comm)
        for key, value in result.items():
            yield f"saxs {key}: {value}"
        if comm.rank == 0:
            yield f"saxs look: ptyprep view {result['procdata']}"


def _ptycho(out, comm):
    from .engine.run import run
    from .plot import plot_ptyd
    from .recipe import load_recipe

    recipe_path = out / "demo_ptycho.toml"
    on_root(comm, recipe_path.write_text, DEMO_RECIPE.format(recipe=recipe_path))
    result = run(load_recipe(recipe_path), comm)
    if comm.rank == 0:
        png = plot_ptyd(result["path"], out / "demo_ptycho.png")
        yield f"recipe:  {recipe_path}"
        yield f"prepared {result['frames']} frames in {result['seconds']:.1f} s -> {result['path']}"
        yield f"picture: {png}"
        yield f"next:    ptyprep inspect {result['path']}"
        yield f"look:    ptyprep view {result['path']}"


def run_saxs_demo(out_dir, comm=None):
    """Simulate, process and draw the SAXS demo (:mod:`ptyprep.saxs.demo`); returns
    ``{"raw", "recipe", "procdata", "pngs"}``."""
    from .engine.comm import world
    from .engine.run import run
    from .recipe import load_recipe
    from .saxs.demo import RECIPE, write_demo_data
    from .saxs.plot import plot_procdata

    comm = comm if comm is not None else world()
    out = Path(out_dir)

    def inputs():
        write_demo_data(out)
        (out / "saxs_demo.toml").write_text(RECIPE)

    on_root(comm, inputs)
    recipe = load_recipe(out / "saxs_demo.toml")
    procdata = Path(run(recipe, comm)["path"])
    pngs = plot_procdata(procdata, out / "saxs_demo.png") if comm.rank == 0 else []
    raw = [str(out / "scanA.h5"), str(out / "scanB.h5")]
    return {"raw": raw, "recipe": str(out / "saxs_demo.toml"), "procdata": str(procdata),
            "pngs": [str(p) for p in pngs]}
