"""Simulated scattering tomography of an oriented-fibre phantom, in the LiX raw layout.

:func:`write_demo_data` writes two partial scans (angles 0–90° and 90–180°) of one
specimen seen by a SAXS and a WAXS detector, with ``.poni`` files and masks;
:data:`RECIPE` runs the chain on them (integration, ``int_saxs``/``int_waxs``/``hop``,
maps stitched into ``overall``, tomograms; ``ptyprep demo --kind saxs``).  The
helpers :func:`write_poni`, :func:`write_lix_file` and :func:`simulate_scan` also
make the test data.
"""

import json
from pathlib import Path

import numpy as np

from ..layout import lix_raw as R

WAVELENGTH_M = 1.0e-10
PIXEL_M = 172e-6
#: name: (shape, distance_m, beam centre (row, col) in pixels, dataset)
DETECTORS = {
    "saxs": ((100, 120), 0.5, (50.3, 60.2), "pil1M_image"),
    "waxs": ((100, 120), 0.12, (50.0, -40.0), "pilW2_image"),
}
SLOW, FAST = "ss_rot", "ss_x"
MONITOR_STREAM = "em_monitors"


def write_poni(path, shape, distance_m, center_rc, pixel_m=PIXEL_M, wavelength_m=WAVELENGTH_M):
    """Write a pyFAI (version 2) ``.poni`` for a flat, untilted detector.

    ``center_rc`` is the direct-beam position (row, col) in pixel-centre indices.
    """
    text = ("# pyFAI calibration written by ptyprep.saxs.demo\nponi_version: 2\nDetector: Detector\n"
            f"Detector_config: {json.dumps({'pixel1': pixel_m, 'pixel2': pixel_m, 'max_shape': list(shape)})}\n"
            f"Distance: {distance_m!r}\nPoni1: {(center_rc[0] + 0.5) * pixel_m!r}\n"
            f"Poni2: {(center_rc[1] + 0.5) * pixel_m!r}\nRot1: 0.0\nRot2: 0.0\nRot3: 0.0\n"
            f"Wavelength: {wavelength_m!r}\n")
    Path(path).write_text(text)
    return Path(path)


def pixel_q_phi(shape, distance_m, center_rc, pixel_m=PIXEL_M, wavelength_m=WAVELENGTH_M):
    """q (1/Å) and φ (degrees, 0 = +column, +90 = −row) of every pixel centre, each ``(H, W)``."""
    rows, cols = np.indices(shape, dtype=np.float64)
    dy, dx = (rows - center_rc[0]) * pixel_m, (cols - center_rc[1]) * pixel_m
    two_theta = np.arctan2(np.hypot(dx, dy), distance_m)
    q = 4 * np.pi * np.sin(two_theta / 2) / (wavelength_m * 1e10)
    return q, np.degrees(np.arctan2(-dy, dx))


def phantom(n=21):
    """Attenuation ``mu``, oriented-fibre density ``fib`` and isotropic density ``iso``, each (n, n)."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    r = n / 21.0
    mu = 0.03 * (xx ** 2 + yy ** 2 <= (8 * r) ** 2)
    fib = 1.0 * ((xx - 3 * r) ** 2 + (yy + 2 * r) ** 2 <= (3.2 * r) ** 2)
    iso = 1.0 * ((xx + 3 * r) ** 2 + (yy - 3 * r) ** 2 <= (3.2 * r) ** 2)
    return mu + 0.02 * fib, fib, iso


def sinograms(angles_deg, n=21):
    """Line integrals ``(n_angles, n)`` of the phantom's mu, fib and iso (skimage ``radon``)."""
    from skimage.transform import radon

    return [radon(img, theta=angles_deg, circle=True).T for img in phantom(n)]


def simulate_scan(angles_deg, n_trans=21, center=1.2, step=0.1, incident=1e5, t_air=0.2,
                  jitter=3e-4, noise=False, seed=0):
    """Per-frame truth of a snaking raster: slow = rotation (deg), fast = translation (mm).

    Returns
    -------
    dict of (N,) arrays in acquisition order: ``slow``, ``fast``, ``mu_l``, ``fib_l``, ``iso_l``,
    ``incident``, ``transmitted``; plus ``shape`` [n_slow, n_fast] and ``order`` (N, 2) (row, col).
    """
    rng = np.random.default_rng(seed)
    mu, fib, iso = sinograms(np.asarray(angles_deg, float), n_trans)
    n_slow = len(angles_deg)
    rows = np.repeat(np.arange(n_slow), n_trans)
    cols = np.tile(np.arange(n_trans), n_slow)
    cols = np.where(rows % 2 == 1, n_trans - 1 - cols, cols)
    trans = center + step * (np.arange(n_trans) - n_trans // 2)
    i0 = incident * (1 + 0.05 * np.sin(np.arange(len(rows)) / 7.0))
    out = {"slow": np.asarray(angles_deg, float)[rows] + rng.uniform(-jitter, jitter, len(rows)),
           "fast": trans[cols] + rng.uniform(-jitter, jitter, len(rows)),
           "mu_l": mu[rows, cols], "fib_l": fib[rows, cols], "iso_l": iso[rows, cols],
           "incident": i0, "order": np.stack([rows, cols], 1), "shape": [n_slow, n_trans]}
    out["transmitted"] = i0 * t_air * np.exp(-out["mu_l"])
    if noise:
        out["transmitted"] = rng.poisson(out["transmitted"]).astype(float)
    return out


def detector_frames(truth, kind, noise=False, seed=0, spec=None, pixel_m=PIXEL_M):
    """Frames ``(N, H, W)`` float32 of one detector for the scan ``truth``.

    SAXS: isotropic q⁻² decay plus an equatorial streak (fibres along the rotation
    axis → intensity ∝ cos²φ); WAXS: a ring at q = 1.0 1/Å, anisotropic for fibres.
    ``spec`` = (shape, distance_m, centre, dataset) overrides ``DETECTORS[kind]``.
    """
    shape, dist, cen, _ = DETECTORS[kind] if spec is None else spec
    q, phi = pixel_q_phi(shape, dist, cen, pixel_m)
    c2 = np.cos(np.radians(phi)) ** 2
    if kind == "saxs":
        iso_pat = 1e-3 / (q ** 2 + 1e-4)
        fib_pat = iso_pat * 2.0 * c2
        air = 0.2 * iso_pat
    else:
        ring = np.exp(-0.5 * ((q - 1.0) / 0.05) ** 2)
        iso_pat, fib_pat, air = 50 * ring, 100 * ring * c2, 1.0 + 0 * q
    att = truth["transmitted"] / truth["incident"] / 0.2 * truth["incident"] / 1e5
    frames = (att[:, None, None] * (truth["iso_l"][:, None, None] * iso_pat
                                    + truth["fib_l"][:, None, None] * fib_pat + air))
    if noise:
        frames = np.random.default_rng(seed).poisson(frames * 20) / 20.0
    return frames.astype(np.float32)


def write_lix_file(path, scans, monitors_stream=()):
    """Write scans in the LiX raw layout (:mod:`ptyprep.layout.lix_raw`).

    Parameters
    ----------
    scans : dict
        ``{sn: {"truth": simulate_scan(...), "frames": {dataset: (N, H, W)}}}``.
    monitors_stream : iterable of str
        Samples whose monitors go to their own stream ``em_monitors`` with
        their own time base (5 samples per exposure) instead of ``primary``.
    """
    import h5py

    exposure = 0.5
    with h5py.File(path, "w") as f:
        for sn, scan in scans.items():
            t = scan["truth"]
            n = len(t["slow"])
            start = {R.START_SHAPE: t["shape"], R.START_MOTORS: [SLOW, FAST],
                     R.START_PLAN: R.RASTER, R.START_DETECTOR: {R.START_EXPOSURE: exposure},
                     "uid": f"demo-{sn}", "beamline_id": "LIX", "time": 1.7e9, "sample_name": sn}
            g = f.create_group(sn)
            g.attrs[R.ATTR_START] = json.dumps(start)
            prim = g.create_group(R.PRIMARY)
            data = prim.create_group(R.DATA)
            times = 1.7e9 + np.arange(n) * (exposure + 0.1)
            prim[R.TIME] = times
            for ds, frames in scan["frames"].items():
                data.create_dataset(ds, data=frames, chunks=(1,) + frames.shape[1:])
            data[SLOW], data[FAST] = t["slow"], t["fast"]
            ts = prim.create_group(R.TIMESTAMPS)
            for k in (SLOW, FAST, *scan["frames"]):       # detectors too: py4xs times them
                ts[k] = times
            fields = {R.INCIDENT: t["incident"], R.TRANSMITTED: t["transmitted"]}
            if sn in monitors_stream:
                st = g.create_group(MONITOR_STREAM)
                frac = np.linspace(0, 1, 5)
                st[R.TIME] = (times[:, None] + frac * exposure).ravel()
                for k, v in fields.items():
                    st.require_group(R.DATA)[k] = np.repeat(v, len(frac))
            else:
                for k, v in fields.items():
                    data[k] = v
    return Path(path)


def write_demo_data(out_dir, noise=True):
    """Raw files, poni files and masks of the demo; returns a dict of paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"raw": [], "poni": {}, "valid": {}}
    for kind, (shape, dist, cen, _) in DETECTORS.items():
        paths["poni"][kind] = write_poni(out / f"{kind}.poni", shape, dist, cen)
        valid = np.ones(shape, dtype=bool)
        valid[:, 40:43] = False          # a module gap
        np.save(out / f"{kind}_valid.npy", valid)
        paths["valid"][kind] = out / f"{kind}_valid.npy"
    angles = np.arange(13) * 15.0
    for name, rows in (("scanA", slice(0, 7)), ("scanB", slice(6, 13))):
        truth = simulate_scan(angles[rows], noise=noise, seed=rows.start)
        frames = {DETECTORS[k][3]: detector_frames(truth, k, noise, seed=rows.start) for k in DETECTORS}
        raw = write_lix_file(out / f"{name}.h5", {f"fibres_{name}": {"truth": truth, "frames": frames}},
                             monitors_stream=("fibres_scanB",))
        paths["raw"].append(raw)
    return paths


RECIPE = """\
# scattering tomography of an oriented-fibre phantom (ptyprep demo --kind saxs)
[source]
name = "nsls2-lix"
path = ["scanA.h5", "scanB.h5"]

[output]
format = "procdata"
dfile = "demo_an.h5"
chunk_frames = 32
overwrite = true

[saxs]
qgrid = [[0.01, 0.15, 0.005], [0.4, 1.4, 0.02]]
nphi = 36
detectors = [
  {dataset = "pil1M_image", poni = "saxs.poni", valid = "saxs_valid.npy"},
  {dataset = "pilW2_image", poni = "waxs.poni", valid = "waxs_valid.npy"},
]
attrs = [
  {name = "int_saxs", func = "get_roi", kwargs = {qphirange = [0.02, 0.1, -180, 180]}},
  {name = "int_waxs", func = "iq_mean", data_key = "Iq", kwargs = {qrange = [0.9, 1.1]}},
  {name = "hop", func = "hop", kwargs = {xrange = [0.02, 0.1]}},
]
maps = ["transmission", "absorption", "int_saxs", "int_waxs", "hop"]
save_overall = true
tomo = ["absorption", "int_saxs", "int_waxs"]
tomo_algorithm = "fbp"
"""


def write_lix_example(folder):
    """The inputs ``experiments/lix_example.toml`` names, simulated, under ``folder``:
    ``raw/sampleA_part1.h5`` and ``raw/sampleA_part2.h5`` (the demo's two partial scans)
    and ``calib/saxs.poni``, ``calib/waxs2.poni`` with their ``*_valid.npy`` masks.

    Returns the list of files written.
    """
    folder = Path(folder)
    demo = write_demo_data(folder / "calib")
    (folder / "raw").mkdir(parents=True, exist_ok=True)
    written = []
    for raw, name in zip(demo["raw"], ("sampleA_part1.h5", "sampleA_part2.h5")):
        written.append(Path(raw).replace(folder / "raw" / name))
    for kind, calib in (("saxs", "saxs"), ("waxs", "waxs2")):
        written.append(Path(demo["poni"][kind]).replace(folder / "calib" / f"{calib}.poni"))
        written.append(Path(demo["valid"][kind]).replace(folder / "calib" /
                                                         f"{calib}_valid.npy"))
    return written


def main(argv=None):
    """``python -m ptyprep.saxs.demo lix-example [FOLDER]``: write the example's inputs."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m ptyprep.saxs.demo",
                                description="Write simulated scanning-SAXS inputs.")
    p.add_argument("what", choices=["lix-example"],
                   help="lix-example: the raw files and calibrations that "
                        "experiments/lix_example.toml names (raw/, calib/)")
    p.add_argument("folder", nargs="?", default=".", help="where (default: here)")
    args = p.parse_args(argv)
    for path in write_lix_example(args.folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
