"""q-φ integration of a stack with StackIntegrator vs pyFAI's integrate2d_ng per frame.

Synthetic Eiger 1M-sized detector (1065 × 1030, 75 µm), and Eiger 4M (2167 × 2070) unless
``--no-4m``; bbox splitting, solid angle and polarisation on. Prints ms per frame and the
ratio pyFAI / ours for pyFAI's csr and csc engines, plus the largest relative difference
to pyFAI (csr) on covered bins. Times are per frame averaged over a stack on both sides
(ours: ``--frames`` at once; pyFAI: ``PYFAI_FRAMES`` calls of one frame), in rounds that time
each once, best round of each (``benchmarks/run.py`` keeps every round and reports
medians). "ours" is the
compiled multi-frame kernel when numba is installed; "scipy" is the same StackIntegrator on
scipy's per-frame path (the fallback without numba), timed in the same rounds. One thread
(NUMBA_NUM_THREADS=1; the kernel itself is serial).

    python benchmarks/bench_integrate.py [--frames 32] [--repeat 3] [--no-4m] [--json-out FILE]
"""

import argparse
import os

import _common as C  # noqa: I001  (pins threads before numpy)
import numpy as np

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

DETECTORS = {"eiger1m": (1065, 1030), "eiger4m": (2167, 2070)}
BINS = ((100, 36), (500, 180))
QMAX = 0.4
PYFAI_FRAMES = 4    # frames pyFAI integrates (one call each) per timed round


def geometry(shape):
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    det = Detector(pixel1=75e-6, pixel2=75e-6, max_shape=shape)
    ai = AzimuthalIntegrator(dist=0.5 * shape[0] / 1065, poni1=0.49 * shape[0] * 75e-6,
                             poni2=0.485 * shape[1] * 75e-6, detector=det, wavelength=1e-10)
    valid = np.ones(shape, dtype=bool)
    valid[:, shape[1] // 2 - 2:shape[1] // 2 + 5] = False      # a module gap
    return ai, valid


def scipy_path(fn):
    """``fn`` run as without numba: BinMatrix takes scipy's per-frame product."""
    from ptyprep.fast import kernels

    def call():
        saved, kernels.numba = kernels.numba, None
        try:
            return fn()
        finally:
            kernels.numba = saved
    return call


def measure(name, frames_n=32, repeat=3, bins=BINS):
    """Per-frame times of ours and pyFAI's csr/csc for each (nq, nphi) on detector ``name``."""
    from ptyprep.saxs.integrate import StackIntegrator
    from ptyprep.saxs.qgrid import make_qgrid

    shape = DETECTORS[name]
    ai, valid = geometry(shape)
    frames = C.noise_frames(frames_n, shape)
    rows = []
    for nq, nphi in bins:
        step = QMAX / nq
        qgrid = make_qgrid((step / 2, QMAX - step / 2, step))
        integ = StackIntegrator(ai, qgrid, nphi, valid=valid, split="bbox", polarization_factor=0.99)
        integ.qphi(frames)          # warm-up: builds the plan, compiles or loads the kernel
        res = integ.qphi(frames[:1])[0]
        calls = {"ours": lambda: integ.qphi(frames), "scipy": scipy_path(lambda: integ.qphi(frames))}
        scipy_res = calls["scipy"]()
        k = min(PYFAI_FRAMES, frames_n)
        for algo in ("csr", "csc"):
            def one(frame, algo=algo):
                return ai.integrate2d_ng(frame, nq, nphi, unit="q_A^-1",
                                         method=("bbox", algo, "cython"), radial_range=(0, QMAX),
                                         azimuth_range=(-180, 180), mask=~valid,
                                         polarization_factor=0.99)
            ref = one(frames[0])                                  # builds pyFAI's engine
            if algo == "csr":
                pyfai = ref.intensity[::-1]
            calls[algo] = lambda one=one: [one(f) for f in frames[:k]]
        # per frame, averaged over a stack on both sides; rounds of all four, best of each
        # (benchmarks/run.py records every round and reports medians)
        best = C.best_of_interleaved(calls, repeat)
        per = {"ours": frames_n, "scipy": frames_n, "csr": k, "csc": k}
        ms = {c: best[c] / per[c] * 1e3 for c in per}
        cov = integ.coverage
        maxrel = float(np.max(np.abs(res[cov] / pyfai[cov] - 1)))
        scipy_maxrel = float(np.max(np.abs(integ.qphi(frames)[:, cov] / scipy_res[:, cov] - 1)))
        rows.append({"detector": name, "bins": f"{nq}x{nphi}", "ours_ms": ms["ours"],
                     "scipy_ms": ms["scipy"], "csr_ms": ms["csr"], "csc_ms": ms["csc"],
                     "vs_csr": ms["csr"] / ms["ours"], "vs_csc": ms["csc"] / ms["ours"],
                     "vs_best": min(ms["csr"], ms["csc"]) / ms["ours"],
                     "scipy_vs_csr": ms["csr"] / ms["scipy"], "scipy_vs_csc": ms["csc"] / ms["scipy"],
                     "maxrel": maxrel, "maxrel_vs_scipy_path": scipy_maxrel})
    return rows


def run(frames=32, repeat=3, with_4m=True):
    rows = measure("eiger1m", frames, repeat)
    if with_4m:
        rows += measure("eiger4m", frames, max(2, repeat - 1))
    one_m = [r for r in rows if r["detector"] == "eiger1m"]
    out = {"rows": rows,
           "integrate_vs_pyfai_csr": min(r["vs_csr"] for r in one_m),
           "integrate_vs_pyfai_best": min(r["vs_best"] for r in one_m),
           "integrate_maxrel_vs_pyfai": max(r["maxrel"] for r in rows)}
    big = [r for r in one_m if r["bins"] == "500x180"]
    if big:
        out["integrate_ms_per_frame_eiger1m_500x180"] = big[0]["ours_ms"]
    four = [r for r in rows if r["detector"] == "eiger4m"]
    if four:
        out["integrate_4m_vs_pyfai_csr"] = min(r["vs_csr"] for r in four)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-4m", action="store_true", help="skip the Eiger 4M detector")
    parser.add_argument("--json-out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    out = run(args.frames, args.repeat, not args.no_4m)
    if args.json_out:
        C.emit(out, args.json_out)
        return
    print("bins q×φ, bbox, solid angle + polarisation 0.99, uint32 frames, ms per frame")
    print("(best of interleaved rounds; scipy = the same integrator on the path without numba)")
    print(f"{'detector':>9} {'bins':>8} {'ours':>7} {'scipy':>7} {'csr':>7} {'csc':>7} {'×csr':>6} "
          f"{'×csc':>6} {'scipy×csr':>9} {'scipy×csc':>9} {'maxrel':>9}")
    for r in out["rows"]:
        print(f"{r['detector']:>9} {r['bins']:>8} {r['ours_ms']:7.2f} {r['scipy_ms']:7.2f} "
              f"{r['csr_ms']:7.2f} {r['csc_ms']:7.2f} {r['vs_csr']:6.1f} {r['vs_csc']:6.1f} "
              f"{r['scipy_vs_csr']:9.1f} {r['scipy_vs_csc']:9.1f} {r['maxrel']:9.2e}")


if __name__ == "__main__":
    main()
