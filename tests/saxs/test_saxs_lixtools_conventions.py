"""``conventions="lixtools"`` against lixtools itself: its numbers where it is right, and where not.

Uses the lixtools environment of ``test_saxs_lixtools_interop`` (skipped, with the reason,
when it cannot be built).  lixtools processes the fixture scans with its own code; ptyprep
processes the same raw files with ``conventions="lixtools"``; the q-φ maps agree bin for
bin, except where lixtools' q bins are wrong: the two-segment grid's gap point becomes a
one-bin segment as wide as the gap, stored after the others (py4xs
``get_bin_ranges_from_grid``).  py4xs' ``fix_azimuthal_angles`` moves pixels past 180°,
out of lixtools' histogram; ptyprep keeps them.
"""

import json

import h5py
import numpy as np
import pytest
import saxs_fixtures as F
from lixtools_env import run_lixtools
from test_saxs_lixtools_interop import (COMMON, QGRID, geometry, lix_file,  # noqa: F401
                                        lix_python)

from ptyprep.saxs import ScanAnalysis
from ptyprep.saxs.qgrid import phi_edges, q_bin_bounds

BINS = COMMON + r'''
from py4xs.utils import get_bin_ranges_from_grid
emit(get_bin_ranges_from_grid(np.array(json.loads(sys.argv[1]))))
'''
PHI = COMMON + r'''
geo = json.loads(sys.argv[1])
dets = detectors(geo)
out = []
for d in dets:
    d.exp_para.fix_azimuthal_angles = True
    d.exp_para.min_phi = None
    d.exp_para.init_coordinates()
    out.append({"Phi": np.degrees(d.exp_para.Phi), "Q": d.exp_para.Q})
emit(out)
'''


@pytest.fixture(scope="module")
def ptyprep_lix(lix_file, tmp_path_factory):
    """ptyprep, lixtools' conventions, on the raw files lixtools processed."""
    folder = lix_file["fn"].parent
    files = sorted(str(p) for p in folder.glob("lix_*.h5") if p.name != "lix_an.h5")
    _, _, dets = F.make_scans(tmp_path_factory.mktemp("dets"))
    fn = tmp_path_factory.mktemp("conv") / "an.h5"
    an = ScanAnalysis(fn, dets, QGRID, F.NPHI, conventions="lixtools")
    an.import_raw_data(files)
    an.process(chunk_frames=9)
    return fn, dets


def test_lixtools_conventions_reproduce_lixtools_qphi_where_it_is_right(lix_file, ptyprep_lix):
    fn, _ = ptyprep_lix
    gap = int(np.flatnonzero(np.diff(QGRID) > 0.2)[0])          # 0.12, last centre before the gap
    with h5py.File(lix_file["fn"], "r") as lx, h5py.File(fn, "r") as pt:
        for sn in ("spec_A", "spec_B"):
            mine = pt[f"{sn}/qphi/merged/d"][()].astype(np.float64)
            theirs = lx[f"{sn}/qphi/merged/d"][()]
            assert theirs.shape == mine.shape == (36, F.NPHI, QGRID.size)
            # lixtools' columns: first segment but its last point, second segment, then the gap bin
            np.testing.assert_allclose(mine[..., :gap], theirs[..., :gap], rtol=2e-6, atol=0)
            np.testing.assert_allclose(mine[..., gap + 1:], theirs[..., gap:-1], rtol=2e-6, atol=0)
            assert np.isfinite(mine[..., :gap]).mean() > 0.5          # the comparison has data
            # lixtools' gap bin spans [-0.02, 0.26] 1/Å: not ptyprep's [0.115, 0.125] bin
            assert not np.allclose(mine[..., gap], theirs[..., -1], equal_nan=True)


def test_lixtools_gap_point_becomes_a_one_bin_segment(lix_file):
    bins = run_lixtools(BINS, json.dumps(QGRID.tolist()), cwd=lix_file["fn"].parent)
    ranges = sorted((round(lo, 6), round(hi, 6), n) for (lo, hi), n in bins)
    assert (-0.02, 0.26, 1) in ranges                        # one bin as wide as the gap
    lo, hi = q_bin_bounds(QGRID)                             # ptyprep: every bin in its segment
    gap = int(np.flatnonzero(np.diff(QGRID) > 0.2)[0])
    np.testing.assert_allclose([lo[gap], hi[gap]], [0.115, 0.125])
    assert hi[gap] < lo[gap + 1]
    np.testing.assert_allclose(hi - lo, np.where(QGRID < 0.2, 0.01, 0.1))


def test_pixels_py4xs_moves_past_180_are_kept(lix_file, ptyprep_lix):
    fn, dets = ptyprep_lix
    found = run_lixtools(PHI, geometry(dets), cwd=lix_file["fn"].parent)
    moved = np.asarray(found[0]["Phi"]) > 180.0              # the SAXS detector
    assert moved.sum() > 0                                   # out of lixtools' [-180, 180] bins
    ai, shape = dets[0].ai, dets[0].shape
    q = ai.center_array(shape, unit="q_A^-1")[moved]
    phi = -np.degrees(ai.center_array(shape, unit="chi_rad"))[moved]     # ptyprep's φ
    edges, (lo, hi) = phi_edges(F.NPHI), q_bin_bounds(QGRID)
    rows = np.clip(np.searchsorted(edges, phi, side="right") - 1, 0, F.NPHI - 1)
    cols = np.searchsorted(lo, q, side="right") - 1
    inside = (cols >= 0) & (q <= hi[np.maximum(cols, 0)])
    assert inside.sum() > 0
    with h5py.File(fn, "r") as f:
        frame = f["spec_A/qphi/merged/d"][0]
    assert np.isfinite(frame[rows[inside], cols[inside]]).all()   # ptyprep counted them


def test_ptyprep_view_reads_a_file_lixtools_wrote(lix_file):
    """The viewer's readers on lixtools' layout: maps without axis datasets, qphi without
    ``@frames_done``; a click reads that frame."""
    from ptyprep.view.files import file_kind
    from ptyprep.view.procdata_reader import ProcdataReader

    fn = lix_file["fn"]
    assert file_kind(fn) == "procdata"
    reader = ProcdataReader(fn)
    assert list(reader.samples()) == ["spec_A", "spec_B"]
    images = reader.images("overall")
    assert sorted(i.name for i in images) == ["int_saxs", "transmission"]
    with h5py.File(fn, "r") as f:
        xc = f["overall/maps"].attrs["xc"]
        frame = reader.frame("spec_B", 5)
        np.testing.assert_array_equal(frame.qphi, f["spec_B/qphi/merged/d"][5])
    image = next(i for i in images if i.name == "int_saxs")
    np.testing.assert_allclose(image.x, xc)
