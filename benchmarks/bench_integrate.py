"""q-φ integration of a stack with StackIntegrator vs pyFAI's integrate2d_ng per frame.

Synthetic Eiger 1M-sized detector (1065 × 1030, 75 µm), bbox splitting, solid angle and
polarisation on. Prints ms per frame and the ratio pyFAI / ours for pyFAI's csr and csc engines,
plus the largest relative difference to pyFAI (csr) on covered bins.

    python benchmarks/bench_integrate.py [--frames 32] [--repeat 3]
"""

import argparse
import time

import numpy as np
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ptyprep.integrate import StackIntegrator, make_qgrid

SHAPE = (1065, 1030)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    det = Detector(pixel1=75e-6, pixel2=75e-6, max_shape=SHAPE)
    ai = AzimuthalIntegrator(dist=0.5, poni1=520 * 75e-6, poni2=500 * 75e-6, detector=det,
                             wavelength=1e-10)
    rng = np.random.default_rng(0)
    frames = rng.poisson(50, (args.frames, *SHAPE)).astype(np.uint32)
    valid = np.ones(SHAPE, dtype=bool)
    valid[:, 513:520] = False                       # a module gap
    qmax = 0.4
    print(f"Eiger 1M {SHAPE}, {args.frames} frames uint32, bbox, solid angle + polarisation 0.99")
    print(f"{'bins q×φ':>10} {'ours ms':>8} {'csr ms':>8} {'csc ms':>8} {'×csr':>6} {'×csc':>6} {'maxrel':>9}")
    for nq, nphi in ((100, 36), (500, 180)):
        step = qmax / nq
        qgrid = make_qgrid((step / 2, qmax - step / 2, step))
        integ = StackIntegrator(ai, qgrid, nphi, valid=valid, split="bbox", polarization_factor=0.99)
        ours = best_of(lambda: integ.qphi(frames), args.repeat) / args.frames
        res = integ.qphi(frames[:1])[0]
        ref_ms = {}
        for algo in ("csr", "csc"):
            def call(algo=algo):
                return ai.integrate2d_ng(frames[0], nq, nphi, unit="q_A^-1",
                                         method=("bbox", algo, "cython"), radial_range=(0, qmax),
                                         azimuth_range=(-180, 180), mask=~valid,
                                         polarization_factor=0.99)
            ref = call()                             # builds pyFAI's engine
            ref_ms[algo] = best_of(call, args.repeat)
            if algo == "csr":
                pyfai = ref.intensity[::-1]
        cov = integ.coverage
        maxrel = float(np.max(np.abs(res[cov] / pyfai[cov] - 1)))
        print(f"{nq:>5}×{nphi:<4} {ours * 1e3:8.2f} {ref_ms['csr'] * 1e3:8.2f} {ref_ms['csc'] * 1e3:8.2f} "
              f"{ref_ms['csr'] / ours:6.1f} {ref_ms['csc'] / ours:6.1f} {maxrel:9.2e}")


if __name__ == "__main__":
    main()
