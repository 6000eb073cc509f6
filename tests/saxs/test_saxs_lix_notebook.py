"""The lixtools notebook, with one changed import, on LiX-layout scans made here.

The code below is the scanning-data example of lixtools' documentation, call for call
and keyword for keyword; only its import line names ``ptyprep.saxs.lix``.  It runs on two
partial snaking scans (SAXS + WAXS detectors, beam monitors, scan B's monitors in their
own stream) serially and under ``mpiexec -n 2``, and the maps are checked against the
scans' known truth.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import saxs_fixtures as F

from ptyprep.saxs import attrs as A
from ptyprep.saxs.qgrid import make_qgrid, phi_centres

HERE = Path(__file__).resolve().parent

NOTEBOOK = '''
from ptyprep.saxs.lix import h5xs_scan, get_roi, hop

rn = "time_series1"
dt = h5xs_scan(f"{rn}_an.h5", [de.detectors, qgrid], Nphi=61, pre_proc="2D",
               replace_path={"legacy": "proposals"})

for fn in sorted(glob.glob(f"{rn}-*.h5")):
    dt.import_raw_data(fn, force_uniform_steps=True, prec=0.001, debug=True)

dt.process(N=8, debug=True)

for sn in dt.samples:
    dt.extract_attr(sn, "int_saxs", get_roi, "qphi", "merged",
                    qphirange=[0.02, 0.05, -180, 180])
    dt.extract_attr(sn, "hop", hop, "qphi", "merged", xrange=[0.04, 0.06])

dt.make_map_from_attr(save_overall=False,
                      attr_names=["transmitted", "absorption", "int_saxs", "hop"],
                      correct_for_transsmission=False)
'''

#: what a lixtools session has defined before the example: ``de`` (its detectors) and ``qgrid``
PREAMBLE = '''
import glob, json, logging, sys, types
logging.basicConfig(level=logging.INFO)      # ptyprep reports through logging
sys.path.insert(0, {tests!r})
import numpy as np
import saxs_fixtures as F
from ptyprep.saxs import Detector
from ptyprep.saxs.qgrid import make_qgrid

def detector_config(cfg):
    """A py4xs DetectorConfig look-alike (attributes, not a dict) from its pack_dict()."""
    exp = types.SimpleNamespace(**{{k: v for k, v in cfg["exp_para"].items() if k != "mask"}},
                                mask=None, ImageWidth=cfg["ImageWidth"],
                                ImageHeight=cfg["ImageHeight"])
    return types.SimpleNamespace(extension=cfg["extension"], fix_scale=cfg["fix_scale"],
                                 exp_para=exp)

de = types.SimpleNamespace(detectors=[detector_config(c) for c in json.load(open("de.json"))])
qgrid = make_qgrid(*F.QSEGS)
'''


def _stage(folder):
    """Raw files ``time_series1-*.h5`` and the py4xs descriptions of their detectors."""
    files, truths, dets = F.make_scans(folder / "raw")
    for i, f in enumerate(files):
        os.replace(f, folder / f"time_series1-{i}.h5")
    (folder / "de.json").write_text(json.dumps([d.to_py4xs() for d in dets]))
    return truths


def _script(folder):
    path = folder / "notebook.py"
    path.write_text(PREAMBLE.format(tests=str(HERE)) + NOTEBOOK)
    return path


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    truths = _stage(folder)
    subprocess.run([sys.executable, str(_script(folder))], cwd=folder, check=True,
                   capture_output=True, text=True, timeout=300)
    return folder, truths


def _maps(fn):
    with h5py.File(fn, "r") as f:
        return {sn: {k: f[f"{sn}/maps/{k}/d"][()] for k in f[f"{sn}/maps"]}
                for sn in ("spec_A", "spec_B")}


def test_the_notebook_makes_the_maps_of_the_known_scans(serial):
    folder, truths = serial
    maps = _maps(folder / "time_series1_an.h5")
    with h5py.File(folder / "time_series1_an.h5", "r") as f:
        assert int(f.attrs["Nphi"]) == 61 and f.attrs["pre_proc"] == "2D"
        assert "overall" not in f                       # save_overall=False
    for sn, t in truths.items():
        m = maps[sn]
        assert sorted(m) == ["absorption", "hop", "int_saxs", "transmission", "transmitted"]
        np.testing.assert_allclose(m["transmitted"], F.truth_map(t["transmitted"], t), rtol=1e-12)
        # empty-beam points have T = 0.2 exactly: T_ref = 0.2 and absorption = the line integral
        np.testing.assert_allclose(m["absorption"], F.truth_map(t["mu_l"], t), atol=1e-9)
        # the frames are att·(iso·P_iso + fib·P_fib + P_air) and get_roi is linear in them
        att = F.truth_map(t["transmitted"] / 0.2 / 1e5, t)
        iso, fib = F.truth_map(t["iso_l"], t), F.truth_map(t["fib_l"], t)
        design = np.stack([att * iso, att * fib, att], -1).reshape(-1, 3)
        coef, *_ = np.linalg.lstsq(design, m["int_saxs"].ravel(), rcond=None)
        np.testing.assert_allclose(design @ coef, m["int_saxs"].ravel(), rtol=2e-6)
        assert coef[0] > 0 and coef[1] > 0
        # isotropic points: hop 0; fibres (intensity ∝ 1 + 2cos²φ): positive, more with more fibre
        assert np.abs(m["hop"][fib == 0]).max() < 0.01
        assert m["hop"][fib > 2].min() > 0.1
        assert m["hop"].max() < 0.5


def test_lixtools_hop_and_ptyprep_hop_lix_agree_on_the_maps(serial):
    """lixtools' φ0 (peak + window) and ptyprep's (iterated mean) meet on a symmetric pattern."""
    folder, _ = serial
    qgrid = make_qgrid(*F.QSEGS)
    with h5py.File(folder / "time_series1_an.h5", "r") as f:
        cube = f["spec_A/qphi/merged/d"][()]
        stored = f["spec_A/attrs/hop"][()]
    mine = A.hop(cube, [0.04, 0.06], q=qgrid, phi=phi_centres(61), definition="lix")
    np.testing.assert_allclose(stored, mine, atol=1e-3)     # two φ0 estimates, same physics


def test_the_notebook_under_mpiexec_gives_the_serial_file(serial, tmp_path, run_mpi):
    folder, _ = serial
    _stage(tmp_path)
    run = run_mpi(2, [_script(tmp_path)], cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "process(N=8): the frames are shared by the 2 MPI ranks" in run.stderr
    one, two = _maps(folder / "time_series1_an.h5"), _maps(tmp_path / "time_series1_an.h5")
    for sn in one:
        for k in one[sn]:
            np.testing.assert_array_equal(two[sn][k], one[sn][k])
    with h5py.File(folder / "time_series1_an.h5", "r") as a, \
            h5py.File(tmp_path / "time_series1_an.h5", "r") as b:
        np.testing.assert_array_equal(a["spec_B/qphi/merged/d"][()], b["spec_B/qphi/merged/d"][()])


def test_proc_data_is_filled_and_reads_one_frame_at_a_time(serial):
    from ptyprep.saxs.lix import MatrixWithCoords, h5xs_scan

    folder, _ = serial
    os.chdir(folder)
    dt = h5xs_scan("time_series1_an.h5")          # reopened: detectors and q grid from the file
    assert dt.Nphi == 61 and dt.samples == ["spec_A", "spec_B"]
    dt.load_data()
    qphi = dt.proc_data["spec_B"]["qphi"]["merged"]
    assert len(qphi) == 36 and isinstance(qphi[3], MatrixWithCoords)
    with h5py.File("time_series1_an.h5", "r") as f:
        np.testing.assert_array_equal(qphi[3].d, f["spec_B/qphi/merged/d"][3])
        np.testing.assert_array_equal(dt.proc_data["spec_B"]["attrs"]["hop"], f["spec_B/attrs/hop"][()])
    np.testing.assert_allclose(qphi[-1].yc, phi_centres(61))
    assert (qphi[0].xc_label, qphi[0].yc_label) == ("q", "phi")
    m = dt.proc_data["spec_A"]["maps"]["int_saxs"]
    assert (m.xc_label, m.yc_label) == ("ss_x", "ss_rot") and m.d.shape == (4, F.N_TRANS)
    assert dt.attrs["spec_A"]["scan"]["snaking"] is True
    assert dt.attrs["spec_A"]["scan"]["shape"] == [4, F.N_TRANS]
