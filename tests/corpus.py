"""A corpus of ptyprep's outputs, made through the public interface only, and a comparison.

Made before a refactor and again after it, two corpora must be the same: every HDF5 file
(datasets' values, dtypes, shapes, chunking and filters; attributes; groups; links and
their targets), every text the commands print, every ``iter_chunks`` array, and the
names of the files each run leaves behind.  Time stamps, run times, process ids and the
corpus folder's own path are left out of the comparison.

Usage (from the repository root, with the environment whose ``ptyprep`` is to be recorded)::

    python tests/corpus.py make  /tmp/corpus-before        # ~2 min, writes the corpus
    python tests/corpus.py make  /tmp/corpus-after
    python tests/corpus.py compare /tmp/corpus-before /tmp/corpus-after

``make`` uses only the command line (``ptyprep run/watch/demo/validate/inspect/sources``,
``python -m ptyprep.acquire``) and ``ptyprep.iter_chunks``, so the same script records any
version of the package.  ``compare`` exits 1 and lists every difference when they differ.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PY = sys.executable
MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))
PART_DELAY_ENV = "PTYPREP_TEST_PART_DELAY_S"
#: Values that differ between two runs of the same code.
VOLATILE_KEYS = {"seconds", "pid", "started", "updated", "rate_fps", "lag_s", "publish_s"}


# -- making the corpus ---------------------------------------------------------------------------
def sh(args, cwd, env=None, check=True, timeout=300):
    """Run a command; return its stdout (stderr is kept in ``<cwd>/_log.txt``)."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)
    with open(Path(cwd) / "_log.txt", "a") as log:
        log.write(f"$ {' '.join(map(str, args))}\n{proc.stderr}\n")
    if check and proc.returncode != 0:
        raise SystemExit(f"corpus: {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                         f"{proc.stderr}")
    return proc.stdout


def cli(*args):
    return [PY, "-m", "ptyprep", *args]


def mpi(n, *args):
    return [MPIEXEC, "-n", str(n), PY, "-m", "mpi4py", "-m", "ptyprep", *args]


def toml(tables):
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    return "".join(f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in t.items())
                   for name, t in tables.items())


PTYCHO_CASES = {
    # name: (--set overrides, ranks)
    "append": (["output.save=append"], 1),
    "link": (["output.save=link"], 1),
    "merge": (["output.save=merge"], 1),
    "append_n2": (["output.save=append"], 2),
    "link_n2": (["output.save=link"], 2),
    "merge_n2": (["output.save=merge"], 2),
    "append_n3": (["output.save=append", "output.chunk_frames=17"], 3),
    "rebin_mean": (["output.save=append", "prep.rebin=2", "prep.rebin_mode=mean",
                    "prep.orientation=5", "output.compression=none"], 1),
    "rebin_mean_n2": (["output.save=link", "prep.rebin=4", "prep.orientation=[true, false, true]",
                       "output.compression=none"], 2),
    "given_center_lzf": (["output.save=append", "prep.center=[100, 95]", "prep.shape=96",
                          "output.compression=lzf"], 1),
    "bitshuffle_n2": (["output.save=append", "output.compression=bitshuffle"], 2),
    "bitshuffle_link_n2": (["output.save=link", "output.compression=bitshuffle"], 2),
}


def make_ptycho(root):
    demo = root / "demo"
    demo.mkdir()
    (demo / "stdout.txt").write_text(sh(cli("demo", "--out", "d"), demo))
    recipe = demo / "d" / "demo_ptycho.toml"
    for name, (sets, ranks) in PTYCHO_CASES.items():
        case = root / "ptycho" / name
        case.mkdir(parents=True)
        args = ["run", recipe, "--set", f"output.dfile={case}/{name}.ptyd"]
        for s in sets:
            args += ["--set", s]
        out = sh(cli(*args) if ranks == 1 else mpi(ranks, *args), case)
        (case / "stdout.txt").write_text(out)
        (case / "validate.txt").write_text(sh(cli("validate", recipe, "--set", "output.overwrite=true",
                                                  *sum((["--set", s] for s in sets), [])), case))
        (case / "inspect.json").write_text(sh(cli("inspect", "--json", f"{name}.ptyd"), case))
    (root / "sources.txt").write_text(sh(cli("sources"), root))


ITER_SCRIPT = """
import sys, numpy as np, ptyprep
recipe = ptyprep.load_recipe(sys.argv[1], overrides={"prep.rebin": 2})
arrays = {}
for k, c in enumerate(ptyprep.iter_chunks(recipe)):
    arrays[f"{k}_indices"] = c.indices
    arrays[f"{k}_data"] = c.data
    arrays[f"{k}_valid"] = c.valid
    arrays[f"{k}_positions"] = c.positions
    arrays[f"{k}_meta"] = np.array(repr(sorted((key, np.asarray(v).tolist()) for key, v in c.meta.items())))
import os
np.savez(f"{sys.argv[2]}_rank{os.environ.get('PMI_RANK', '0')}.npz", **arrays)
"""


def make_iter_chunks(root):
    folder = root / "iter_chunks"
    folder.mkdir()
    script = folder / "iter.py"
    script.write_text(ITER_SCRIPT)
    recipe = root / "demo" / "d" / "demo_ptycho.toml"
    sh([PY, script, recipe, "serial"], folder)
    sh([MPIEXEC, "-n", "2", PY, "-m", "mpi4py", script, recipe, "n2"], folder)


def make_saxs(root):
    for name, command in (("saxs", cli("demo", "--kind", "saxs", "--out", "d")),
                          ("saxs_n2", mpi(2, "demo", "--kind", "saxs", "--out", "d"))):
        folder = root / name
        folder.mkdir()
        (folder / "stdout.txt").write_text(sh(command, folder).replace(str(folder), "<CASE>"))
        (folder / "inspect.json").write_text(sh(cli("inspect", "--json", "d/saxs/demo_an.h5"),
                                                folder))
        (folder / "validate.txt").write_text(
            sh(cli("validate", "d/saxs/saxs_demo.toml", "--set", "output.overwrite=true"), folder))
        for png in folder.rglob("*.png"):    # pictures are not compared
            png.unlink()


def _watch_until(recipe, folder, published, ranks=1, extra=()):
    """Start a watch daemon slowed down, kill -9 it once ``published()`` holds, restart it."""
    args = ["watch", recipe, "--poll", "0.05", *extra]
    command = cli(*args) if ranks == 1 else mpi(ranks, *args)
    env = dict(os.environ, **{PART_DELAY_ENV: "0.3"})
    with open(folder / "_log.txt", "a") as log:
        first = subprocess.Popen([str(a) for a in command], cwd=folder, env=env, stdout=log,
                                 stderr=log, start_new_session=True)
        t0 = time.monotonic()
        while not published():
            if time.monotonic() - t0 > 120 or first.poll() is not None:
                raise SystemExit(f"corpus: watch in {folder} never published a first chunk")
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    (folder / "stdout.txt").write_text(sh(command, folder))


def make_watch(root):
    folder = root / "watch_ptyd"
    folder.mkdir()
    sh([PY, "-m", "ptyprep.acquire", "hdf5", "raw.h5", "--kind", "index", "--frames", "45",
        "--rate", "0"], folder)
    source = {"name": "hdf5", "path": "raw.h5", "frames": "/entry/data/data",
              "positions": "/entry/positions", "end_of_scan": "/entry/instrument/detector/end_of_scan",
              "energy_keV": 6.2, "distance_m": 7.0, "psize_m": 172e-6}
    tables = {"source": source, "prep": {"shape": 64, "center": "auto", "saturation": 1e5},
              "output": {"dfile": "out/scan.ptyd", "chunk_frames": 7}}
    (folder / "r.toml").write_text(toml(tables))
    _watch_until("r.toml", folder, lambda: (folder / "out" / "scan.ptyd.part000").exists())
    sh(cli("run", "r.toml", "--set", "output.save=link", "--set", "output.dfile=ref/scan.ptyd"),
       folder)
    (folder / "inspect.json").write_text(sh(cli("inspect", "--json", "out/scan.ptyd"), folder))

    folder = root / "watch_ptyd_n2"
    folder.mkdir()
    sh([PY, "-m", "ptyprep.acquire", "hdf5", "raw.h5", "--kind", "index", "--frames", "45",
        "--rate", "0"], folder)
    (folder / "r.toml").write_text(toml(tables))
    _watch_until("r.toml", folder, lambda: (folder / "out" / "scan.ptyd.part001").exists(), ranks=2)

    folder = root / "watch_procdata"
    folder.mkdir()
    sh([PY, "-m", "ptyprep.acquire", "saxs", "raw.h5", "--rate", "0"], folder)
    from ptyprep.acquire import saxs_setup, saxs_source_options

    dets = saxs_setup(folder)
    tables = {
        "source": saxs_source_options("raw.h5", marker=True),
        "output": {"format": "procdata", "dfile": "out/an.h5", "chunk_frames": 5},
        "saxs": {"sample": "fib", "qgrid": [[0.01, 0.09, 0.005], [0.5, 1.5, 0.05]], "nphi": 24,
                 "errors": True, "iphi_qrange": [0.02, 0.06], "detectors": dets,
                 "attrs": [{"name": "int_saxs", "func": "get_roi",
                            "kwargs": {"qphirange": [0.02, 0.06, -180, 180]}},
                           {"name": "hop", "func": "hop", "kwargs": {"xrange": [0.02, 0.06]}}],
                 "maps": ["transmission", "absorption", "int_saxs", "hop"],
                 "tomo": ["absorption", "int_saxs"]}}
    text = toml({k: v for k, v in tables.items() if k != "saxs"})
    saxs = tables["saxs"]
    text += "[saxs]\n" + "".join(f"{k} = {_inline(v)}\n" for k, v in saxs.items())
    (folder / "r.toml").write_text(text)
    _watch_until("r.toml", folder, lambda: (folder / "out" / "an.h5").exists(), ranks=2,
                 extra=("--maps-every", "2"))
    sh(cli("run", "r.toml", "--set", "output.dfile=ref/an.h5"), folder)


def _inline(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_inline(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def make(root):
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=False)
    import ptyprep

    (root / "_made_with.txt").write_text(f"{ptyprep.__file__}\n")
    for step in (make_ptycho, make_iter_chunks, make_saxs, make_watch):
        t0 = time.monotonic()
        step(root)
        print(f"{step.__name__}: {time.monotonic() - t0:.1f} s", flush=True)


# -- comparing two corpora -----------------------------------------------------------------------
def _plain(value, root):
    """A comparable form of an attribute or small value, the corpus root path made neutral."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return _neutral_text(value, root)
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [_plain(v, root) for v in value.ravel().tolist()]
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return (value.dtype.str, value.tobytes())   # bytes: NaN equals NaN
    return value


def _neutral_text(text, root):
    text = text.replace(str(root), "<ROOT>")
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_drop_volatile(obj), sort_keys=True)


def _drop_volatile(obj):
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def describe_hdf5(path, root):
    """Every object of an HDF5 file as ``{path: description}`` (external links not followed)."""
    import h5py
    import hdf5plugin  # noqa: F401

    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = {"attrs": {k: _plain(v, root) for k, v in f.attrs.items()}}

        def visit(group, prefix):
            for name in group:
                link = group.get(name, getlink=True)
                where = f"{prefix}/{name}"
                if isinstance(link, h5py.ExternalLink):
                    out[where] = {"external": (link.filename, link.path)}
                    continue
                if isinstance(link, h5py.SoftLink):
                    out[where] = {"soft": link.path}
                    continue
                node = group[name]
                attrs = {k: _plain(v, root) for k, v in node.attrs.items()}
                if isinstance(node, h5py.Group):
                    out[where] = {"group": True, "attrs": attrs}
                    visit(node, where)
                    continue
                data = node[()]
                if node.dtype.kind in "OSU" or isinstance(data, (bytes, str)):
                    value = _plain(data if not isinstance(data, np.ndarray) else data, root)
                else:
                    value = (np.asarray(data).dtype.str, np.shape(data),
                             np.asarray(data).tobytes())
                out[where] = {"dtype": node.dtype.str, "shape": node.shape, "chunks": node.chunks,
                              "maxshape": node.maxshape, "filters": sorted(node._filters.items()),
                              "fillvalue": _plain(node.fillvalue, root), "attrs": attrs,
                              "value": value}

        visit(f, "")
    return out


def describe(root):
    """``{relative path: description}`` of every file of a corpus."""
    root = Path(root).resolve()
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir() or path.name in ("_log.txt", "_made_with.txt") or path.suffix == ".py":
            continue
        if path.suffix == ".npz":
            with np.load(path) as z:
                out[rel] = {k: (z[k].dtype.str, z[k].shape, z[k].tobytes()) for k in z.files}
        elif path.suffix in (".txt", ".json", ".toml", ".py"):
            text = path.read_text()
            if path.name.endswith(".status.json"):
                out[rel] = _neutral_text(text, root)
            else:
                out[rel] = _neutral_text(_drop_seconds(text), root)
        elif path.suffix == ".npy":
            a = np.load(path)
            out[rel] = (a.dtype.str, a.shape, a.tobytes())
        else:
            try:
                out[rel] = describe_hdf5(path, root)
            except OSError:
                out[rel] = ("bytes", path.read_bytes())
    return out


def _drop_seconds(text):
    """Run times printed by the commands ('... in 1.3 s', '(200 frames, 0.8 s)') are volatile."""
    import re

    text = re.sub(r"\d+(\.\d+)? s\b", "<t> s", text)
    return re.sub(r"\d+ frames/s", "<r> frames/s", text)


def compare(a, b):
    da, db = describe(a), describe(b)
    problems = []
    for rel in sorted(set(da) | set(db)):
        if rel not in da or rel not in db:
            problems.append(f"{rel}: only in {'second' if rel not in da else 'first'} corpus")
            continue
        x, y = da[rel], db[rel]
        if isinstance(x, dict) and isinstance(y, dict) and x.keys() != y.keys():
            only = sorted(set(x) ^ set(y))
            problems.append(f"{rel}: objects differ: {only[:10]}")
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) & set(y)):
                if x[key] != y[key]:
                    problems.append(f"{rel}: {key} differs")
        elif x != y:
            problems.append(f"{rel}: content differs")
    return problems


def main(argv):
    if len(argv) == 2 and argv[0] == "make":
        make(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        problems = compare(argv[1], argv[2])
        for p in problems:
            print(p)
        n = len(describe(argv[1]))
        print(f"{len(problems)} difference(s) over {n} files" if problems else
              f"corpora equal: {n} files")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
