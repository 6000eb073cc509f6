"""Files move both ways between ptyprep and the real lixtools/py4xs (run in their own venv).

(a) lixtools' ``h5xs_scan`` reads a file ptyprep made (and re-processes its raw data with
the detectors ptyprep recorded); (b) lixtools makes a file from the same raw scans and
ptyprep opens it, maps it, summarises and draws it without touching what lixtools wrote.
The venv comes from :mod:`lixtools_env`; every test skips, with the reason, without it.
"""

import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest
import saxs_fixtures as F
from lixtools_env import lixtools_python, run_lixtools

from ptyprep.saxs import ScanAnalysis, demo
from ptyprep.saxs import inspect as I
from ptyprep.saxs import plot as P
from ptyprep.saxs.qgrid import make_qgrid, phi_centres

QGRID = make_qgrid(*F.QSEGS)
ROI = [0.03, 0.1, -180, 180]
MAPS = ["transmission", "int_saxs"]
SAMPLES = ["spec_A", "spec_B"]
DET_NAMES, SHAPE = {"_SAXS": "pil1M_image", "_WAXS2": "pilW2_image"}, [36, 24, 28]

COMMON = r'''
import json, re, sys
import numpy as np
import lixtools
from py4xs.data2d import MatrixWithCoords
from py4xs.detector_config import DetectorConfig
from py4xs.local import ExpPara
from py4xs.slnxs import Data1d


def pack(v):
    """One proc_data entry as JSON: MatrixWithCoords or Data1d (or lists of them), ndarray."""
    items = v if isinstance(v, list) else [v]
    n = len(v) if isinstance(v, list) else None
    if isinstance(items[0], MatrixWithCoords):
        m = items[0]
        return {"type": "MatrixWithCoords", "n": n, "d": [x.d for x in items], "xc": m.xc,
                "yc": m.yc, "xc_label": str(m.xc_label), "yc_label": str(m.yc_label)}
    if isinstance(items[0], Data1d):
        return {"type": "Data1d", "n": n, "data": [x.data for x in items], "qgrid": items[0].qgrid}
    return {"type": "ndarray", "value": np.asarray(v)}


def proc(dt):
    return {sn: {dk: {sk: pack(v) for sk, v in dd.items()} for dk, dd in d.items()}
            for sn, d in dt.proc_data.items()}


def detectors(geometry):
    """py4xs DetectorConfigs of straight-on detectors: {ext, shape, dist, centre, pixel, wl}."""
    dets = []
    for g in geometry:
        (h, w), (row, col) = g["shape"], g["centre"]
        ep = ExpPara(w, h)
        ep.wavelength, ep.bm_ctr_x, ep.bm_ctr_y = g["wl"], col, row
        ep.ratioDw = g["dist"] / (w * g["pixel"])
        ep.det_orient = ep.det_tilt = ep.det_phi = ep.sample_normal = 0.0
        ep.flip, ep.grazing_incident, ep.incident_angle = 0, False, 0.2
        ep.fix_azimuthal_angles = False   # py4xs' True shifts phi by 360 deg here (gap test)
        ep.init_coordinates()
        dets.append(DetectorConfig(extension=g["ext"], exp_para=ep, fix_scale=1.0))
    return dets


def lixtools_get_roi():
    """lixtools' own get_roi, from lixtools/plant_tomo.py (a module that does not compile)."""
    src = open(lixtools.__path__[0] + "/plant_tomo.py").read()
    ns = {"np": np}
    exec(re.search(r"^def get_roi\(.*?(?=^\S)", src, re.S | re.M).group(0), ns)
    return ns["get_roi"]
'''
READ = COMMON + r'''
from lixtools.hdf import h5xs_scan
dt = h5xs_scan(sys.argv[1], load_raw_data=False, Nphi=int(sys.argv[2]))
dt.load_data()
dets = [{"extension": d.extension, "ImageWidth": d.ImageWidth, "ImageHeight": d.ImageHeight,
         "fix_scale": d.fix_scale, "Q": d.exp_para.Q, "Phi": d.exp_para.Phi,
         "masked": getattr(getattr(d.exp_para, "mask", None), "map", np.ones(1)).sum()}
        for d in dt.detectors]
emit({"pre_proc": dt.pre_proc, "qgrid": dt.qgrid, "samples": dt.samples, "detectors": dets,
      "attrs": dt.attrs, "proc": proc(dt)})
'''
REPROCESS = COMMON + r'''
from lixtools.hdf import h5xs_scan
dt = h5xs_scan(sys.argv[1], load_raw_data=True, Nphi=int(sys.argv[2]), read_only=True)
dt.process(N=1, debug=False)
emit(proc(dt))
'''
MAKE_MAPS = COMMON + r'''
from lixtools.hdf import h5xs_scan
dt = h5xs_scan(sys.argv[1], load_raw_data=False, Nphi=int(sys.argv[2]))
dt.load_data()
dt.make_map_from_attr(sname="overall", attr_names=sys.argv[3:], correct_for_transsmission=False)
emit({sn: {k: pack(v) for k, v in d.get("maps", {}).items()} for sn, d in dt.proc_data.items()})
'''
PROCESS = COMMON + r'''
from lixtools.hdf import h5xs_scan
geo, qgrid, roi = (json.loads(a) for a in sys.argv[3:6])
dt = h5xs_scan(sys.argv[1], [detectors(geo), np.array(qgrid)], Nphi=int(sys.argv[2]), pre_proc="2D")
dt.import_raw_data(sys.argv[6:], force_synch=0)     # the monitors share the detectors' clock
dt.process(N=1, debug=False)
dt.save_data()
for sn in dt.samples:
    dt.extract_attr(sn, "int_saxs", lixtools_get_roi(), "qphi", "merged", qphirange=roi)
dt.save_data(save_data_keys=["attrs"])
dt.make_map_from_attr(sname="overall", attr_names=["transmission", "int_saxs"],
                      correct_for_transsmission=False)
emit({"samples": dt.samples})
'''
RAW = COMMON + r'''
from py4xs.hdf import h5xs
geometry, qgrid = json.loads(sys.argv[1]), np.array(json.loads(sys.argv[2]))
out = {}
for fn in sys.argv[3:]:
    dh = h5xs(fn, [detectors(geometry), qgrid], read_only=True)
    for sn in dh.samples:
        hdr = dh.header(sn)
        r = out[sn] = {"det_name": dh.det_name, "shape": dh.dshape("pil1M_image", sn=sn)}
        try:
            dh.get_mon(sn=sn, trigger=hdr["motors"][1], exp=hdr["pilatus"]["exposure_time"],
                       force_synch=0)
            r.update({k: dh.d0s[sn][k] for k in ("incident", "transmitted", "transmission")})
        except Exception as exc:
            r["get_mon_error"] = f"{type(exc).__name__}: {exc}"
emit(out)
'''


def geometry(dets):
    """The fixture detectors as the lixtools scripts' JSON (wavelength in Å)."""
    return json.dumps([{"ext": d.name, "shape": list(F.SPECS[k][0]), "dist": F.SPECS[k][1],
                        "centre": list(F.SPECS[k][2]), "pixel": F.PIXEL,
                        "wl": demo.WAVELENGTH_M * 1e10} for d, k in zip(dets, F.SPECS)])


def listing(path):
    """``{name: description}`` of every group and dataset: attributes and data checksums."""
    def attrs(obj):
        return {k: f"ndarray {v.dtype.str} {v.shape} {v.tolist()!r}" if isinstance(v, np.ndarray)
                else f"{type(v).__name__} {v!r}" for k, v in obj.attrs.items()}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arr = obj[()]
            raw = repr(np.asarray(arr).tolist()).encode() if obj.dtype.kind == "O" else \
                np.ascontiguousarray(arr).tobytes()
            out[name] = ("dataset", obj.dtype.str, obj.shape, hashlib.sha256(raw).hexdigest(),
                         attrs(obj))
        else:
            out[name] = ("group", attrs(obj))

    with h5py.File(path, "r") as f:
        out = {"/": ("group", attrs(f))}
        f.visititems(visit)
    return out


def same(a, b):
    """Exact equality, NaN equal to NaN, shapes checked."""
    np.testing.assert_array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def unchanged_except(before, after, computed):
    """Entries of ``before`` whose name has none of ``computed`` in it, as they are ``after``."""
    keep = [k for k in before if not any(c in k for c in computed)]
    assert {k: after.get(k) for k in keep} == {k: before[k] for k in keep}


@pytest.fixture(scope="module", autouse=True)
def lix_python():
    return lixtools_python()      # skips the module, with the reason, when it cannot be built


# ------------------------------------------------------------------ (a) lixtools reads ptyprep
@pytest.fixture(scope="module")
def ptyprep_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ptyprep_made")
    files, truths, dets = F.make_scans(folder)
    fn = folder / "an.h5"
    an = ScanAnalysis(fn, dets, QGRID, F.NPHI)
    assert an.import_raw_data(files) == SAMPLES
    an.process(chunk_frames=7)
    an.extract_attr(None, "int_saxs", "get_roi", qphirange=ROI)
    an.make_map_from_attr(MAPS, save_overall=True)
    an.calc_tomo_from_map(["int_saxs"])
    return {"fn": fn, "folder": folder, "files": files, "dets": dets, "truths": truths}


@pytest.fixture(scope="module")
def lix_read(ptyprep_file):
    """What lixtools' ``h5xs_scan(fn, load_raw_data=False)`` + ``load_data()`` give."""
    before = listing(ptyprep_file["fn"])
    read = run_lixtools(READ, ptyprep_file["fn"], F.NPHI, cwd=ptyprep_file["folder"])
    return {**read, "before": before}


def test_lixtools_open_modifies_nothing(ptyprep_file, lix_read):
    assert listing(ptyprep_file["fn"]) == lix_read["before"]


def test_lixtools_reads_root_and_detectors(ptyprep_file, lix_read):
    read = lix_read
    assert read["pre_proc"] == "2D" and read["samples"] == SAMPLES
    same(read["qgrid"], QGRID)
    got = [(d["extension"], d["ImageWidth"], d["ImageHeight"], d["fix_scale"], d["masked"])
           for d in read["detectors"]]
    assert got == [(d.name, d.shape[1], d.shape[0], d.scale, 0) for d in ptyprep_file["dets"]]
    for d, (shape, dist, cen, _) in zip(read["detectors"], F.SPECS.values()):
        q, phi = demo.pixel_q_phi(shape, dist, cen, F.PIXEL)   # py4xs' geometry is ptyprep's
        np.testing.assert_allclose(d["Q"], q, rtol=1e-9)
        # φ in [-180, 180]: lixtools bins φ over that range only, so py4xs' fix_azimuthal_angles
        # (on, it adds 360° to part of these small detectors) would drop those pixels
        np.testing.assert_allclose(d["Phi"], phi, rtol=0, atol=1e-9)


def test_lixtools_reads_header_and_scan(ptyprep_file, lix_read):
    read = lix_read
    with h5py.File(ptyprep_file["fn"], "r") as f:
        for sn in SAMPLES:
            assert read["attrs"][sn]["header"] == json.loads(f[sn].attrs["header"])
            assert read["attrs"][sn]["scan"] == json.loads(f[sn].attrs["scan"])


def test_lixtools_reads_qphi_maps(ptyprep_file, lix_read):
    proc = lix_read["proc"]
    with h5py.File(ptyprep_file["fn"], "r") as f:
        for sn in SAMPLES:
            m = proc[sn]["qphi"]["merged"]
            assert (m["type"], m["n"], m["xc_label"], m["yc_label"]) == \
                ("MatrixWithCoords", 36, "q", "phi")
            same(m["d"], f[f"{sn}/qphi/merged/d"][()])
            same(m["xc"], QGRID)
            same(m["yc"], phi_centres(F.NPHI))


def test_lixtools_reads_iq(ptyprep_file, lix_read):
    proc = lix_read["proc"]
    with h5py.File(ptyprep_file["fn"], "r") as f:
        for sn in SAMPLES:
            iq = proc[sn]["Iq"]["merged"]
            same(iq["value"] if iq["type"] == "ndarray" else iq["data"], f[f"{sn}/Iq/merged"][()])


def test_lixtools_reads_attrs_maps_tomo(ptyprep_file, lix_read):
    proc = lix_read["proc"]
    with h5py.File(ptyprep_file["fn"], "r") as f:
        for sn in SAMPLES:
            assert sorted(proc[sn]["attrs"]) == sorted(f[f"{sn}/attrs"])
            for name, v in proc[sn]["attrs"].items():
                assert v["type"] == "ndarray"
                same(v["value"], f[f"{sn}/attrs/{name}"][()])
        for sn, key in [(s, "maps") for s in SAMPLES + ["overall"]] + [("overall", "tomo")]:
            g = f[f"{sn}/{key}"]
            assert sorted(proc[sn][key]) == sorted(g)
            for name, m in proc[sn][key].items():
                assert (m["type"], m["n"], m["xc_label"], m["yc_label"]) == \
                    ("MatrixWithCoords", None, g.attrs["xc_label"], g.attrs["yc_label"])
                same(m["d"], [g[f"{name}/d"][()]])
                same(m["xc"], g.attrs["xc"])
                same(m["yc"], g.attrs["yc"])


def test_lixtools_maps_from_ptyprep_attrs(ptyprep_file, tmp_path):
    fn = tmp_path / "copy.h5"
    shutil.copy(ptyprep_file["fn"], fn)
    maps = run_lixtools(MAKE_MAPS, fn, F.NPHI, *MAPS, cwd=tmp_path)
    with h5py.File(ptyprep_file["fn"], "r") as f:
        for sn in SAMPLES + ["overall"]:
            for name in MAPS:
                m = maps[sn][name]
                np.testing.assert_allclose(np.asarray(m["d"][0], float),
                                           f[f"{sn}/maps/{name}/d"][()], rtol=1e-12)
                same(m["xc"], f[f"{sn}/maps"].attrs["xc"])
                same(m["yc"], f[f"{sn}/maps"].attrs["yc"])


def test_lixtools_reprocesses_with_ptyprep_detectors(ptyprep_file, lix_file, tmp_path):
    fn = tmp_path / "copy.h5"
    shutil.copy(ptyprep_file["fn"], fn)
    proc = run_lixtools(REPROCESS, fn, F.NPHI, cwd=tmp_path)
    with h5py.File(lix_file["fn"], "r") as f:         # lixtools with hand-made detectors
        for sn in SAMPLES:
            np.testing.assert_allclose(np.asarray(proc[sn]["qphi"]["merged"]["d"], float),
                                       f[f"{sn}/qphi/merged/d"][()], rtol=1e-9)


def test_py4xs_reads_demo_raw_files(ptyprep_file):
    raw = run_lixtools(RAW, geometry(ptyprep_file["dets"]), json.dumps(QGRID.tolist()),
                       *ptyprep_file["files"], cwd=ptyprep_file["folder"])
    assert sorted(raw) == SAMPLES
    for sn, r in raw.items():
        got = [r.get(k) for k in ("det_name", "shape", "get_mon_error")]
        assert got == [DET_NAMES, SHAPE, None]
        for k in ("incident", "transmitted"):
            np.testing.assert_allclose(r[k], ptyprep_file["truths"][sn][k], rtol=1e-12)


# ------------------------------------------------------------------ (b) ptyprep reads lixtools
def with_detector_timestamps(files, folder):
    """Copies of ``files`` with ``primary/timestamps/<detector>`` (= ``primary/time``) added.

    py4xs' ``get_mon`` times a monitor stream of its own by those; ``demo.write_lix_file``
    records none (see ``test_py4xs_reads_demo_raw_files``).  Nothing else changes.
    """
    out = []
    for fn in files:
        copy = folder / f"lix_{len(out)}.h5"
        shutil.copy(fn, copy)
        with h5py.File(copy, "a") as f:
            for sn in f:
                prim = f[f"{sn}/primary"]
                for ds in prim["data"]:
                    if ds.endswith("_image") and ds not in prim["timestamps"]:
                        prim["timestamps"][ds] = prim["time"][()]
        out.append(str(copy))
    return out


@pytest.fixture(scope="module")
def lix_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lixtools_made")
    files, truths, dets = F.make_scans(folder / "raw")
    files = with_detector_timestamps(files, folder)
    fn = folder / "lix_an.h5"
    done = run_lixtools(PROCESS, fn, F.NPHI, geometry(dets), json.dumps(QGRID.tolist()),
                        json.dumps(ROI), *files, cwd=folder)
    assert done["samples"] == SAMPLES
    return {"fn": fn, "truths": truths, "listing": listing(fn)}


@pytest.fixture
def lix_copy(lix_file, tmp_path):
    fn = tmp_path / "lix_an.h5"
    shutil.copy(lix_file["fn"], fn)
    return fn


def test_ptyprep_open_changes_nothing(lix_file, lix_copy):
    an = ScanAnalysis(lix_copy)
    assert (an.nphi, an.samples) == (F.NPHI, SAMPLES)
    same(an.qgrid, QGRID)
    assert listing(lix_copy) == lix_file["listing"]


def test_ptyprep_maps_of_lixtools_attrs(lix_file, lix_copy):
    ScanAnalysis(lix_copy).make_map_from_attr(MAPS, save_overall=True)
    with h5py.File(lix_file["fn"], "r") as old, h5py.File(lix_copy, "r") as f:
        for sn in SAMPLES:
            for name in MAPS:
                same(f[f"{sn}/maps/{name}/d"][()],
                     F.truth_map(old[f"{sn}/attrs/{name}"][()], lix_file["truths"][sn]))
        for name in MAPS:        # ptyprep stitches the partial scans as lixtools merges them
            np.testing.assert_allclose(f[f"overall/maps/{name}/d"][()],
                                       old[f"overall/maps/{name}/d"][()], rtol=1e-12)
    unchanged_except(lix_file["listing"], listing(lix_copy), ["maps"])
    read = run_lixtools(READ, lix_copy, F.NPHI, cwd=lix_copy.parent)     # lixtools still reads it
    with h5py.File(lix_copy, "r") as f:
        for sn in SAMPLES + ["overall"]:
            for name in MAPS:
                same(read["proc"][sn]["maps"][name]["d"], [f[f"{sn}/maps/{name}/d"][()]])


def test_ptyprep_get_roi_equals_lixtools(lix_file, lix_copy):
    ScanAnalysis(lix_copy).extract_attr(None, "int_saxs_ptyprep", "get_roi", qphirange=ROI)
    with h5py.File(lix_copy, "r") as f:
        for sn in SAMPLES:
            np.testing.assert_allclose(f[f"{sn}/attrs/int_saxs_ptyprep"][()],
                                       f[f"{sn}/attrs/int_saxs"][()], rtol=1e-12)
    unchanged_except(lix_file["listing"], listing(lix_copy), ["int_saxs_ptyprep"])


def test_summarize_lixtools_file(lix_copy):
    s = I.summarize(lix_copy)
    assert (s["nphi"], s["nq"], sorted(s["samples"])) == (F.NPHI, 24, ["overall"] + SAMPLES)
    for sn in SAMPLES:
        info = s["samples"][sn]
        assert {k: info.get(k) for k in ("frames", "frames_processed", "shape", "snake", "motors")}\
            == {"frames": 36, "frames_processed": 36, "shape": [4, 9], "snake": True,
                "motors": ["ss_rot", "ss_x"]}
        assert info["data_keys"] == {"attrs": ["incident", "int_saxs", "transmission",
                                               "transmitted"], "qphi": ["merged"]}
    assert s["samples"]["overall"]["maps"] == {name: [7, F.N_TRANS] for name in MAPS}


def test_plot_lixtools_file(lix_file, lix_copy):
    written = P.plot_procdata(lix_copy, lix_copy.parent / "pic.png")
    assert sorted(p.name for p in written) == ["pic_overall_maps.png", "pic_spec_A_qphi.png",
                                               "pic_spec_B_qphi.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert listing(lix_copy) == lix_file["listing"]
