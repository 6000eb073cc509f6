"""Tiny LiX-layout scans for the SAXS tests (imported by the test modules, not collected)."""

from pathlib import Path

import numpy as np

from ptyprep.saxs import demo

PIXEL = 0.5e-3
#: kind: (shape, distance_m, centre (row, col), dataset)
SPECS = {"saxs": ((24, 28), 0.5, (11.3, 13.6), "pil1M_image"),
         "waxs": ((24, 28), 0.02, (12.0, -8.0), "pilW2_image")}
ANGLES = np.arange(7) * 30.0           # 0..180
N_TRANS = 9
QSEGS = [(0.02, 0.12, 0.01), (0.4, 1.6, 0.1)]
NPHI = 12


def make_scans(folder, noise=False):
    """Two partial snaking scans (angles 0–90 and 90–180) in two raw files.

    Returns ``(files, truths, detectors)``; scan B's monitors are in their own stream.
    """
    from ptyprep.saxs import Detector

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dets = []
    for kind, (shape, dist, cen, ds) in SPECS.items():
        poni = demo.write_poni(folder / f"{kind}.poni", shape, dist, cen, pixel_m=PIXEL)
        dets.append(Detector(dataset=ds, poni=poni))
    files, truths = [], {}
    for name, rows in (("A", slice(0, 4)), ("B", slice(3, 7))):
        truth = demo.simulate_scan(ANGLES[rows], n_trans=N_TRANS, center=0.5, step=0.1,
                                   noise=noise, seed=rows.start)
        frames = {spec[3]: demo.detector_frames(truth, k, spec=spec, pixel_m=PIXEL)
                  for k, spec in SPECS.items()}
        sn = f"spec_{name}"
        files.append(demo.write_lix_file(folder / f"scan{name}.h5",
                                         {sn: {"truth": truth, "frames": frames}},
                                         monitors_stream=("spec_B",)))
        truths[sn] = truth
    return [str(f) for f in files], truths, dets


def truth_map(values, truth):
    """Put per-frame truth values on the (n_slow, n_fast) grid using the recorded order."""
    out = np.full(truth["shape"], np.nan)
    rows, cols = truth["order"].T
    out[rows, cols] = values
    return out


def run_procdata(recipe, comm=None):
    """``ptyprep.run`` of a procdata recipe; the output's Path."""
    import ptyprep

    return Path(ptyprep.run(recipe, comm)["path"])
