"""[saxs] recipe parsing, run_procdata, the demo, plot/inspect, and serial vs mpiexec -n 2."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import saxs_fixtures as F

from ptyprep.errors import OutputError, RecipeError
from ptyprep.recipe import load_recipe
from ptyprep.saxs.recipe import parse_saxs_section
from saxs_fixtures import run_procdata
from ptyprep.layout.files import partial_name

RECIPE = """
[source]
name = "nsls2-lix"
path = ["scanA.h5", "scanB.h5"]
[output]
format = "procdata"
dfile = "{dfile}"
chunk_frames = 5
[saxs]
qgrid = [[0.02, 0.12, 0.01], [0.4, 1.6, 0.1]]
nphi = 12
detectors = [{{dataset = "pil1M_image", poni = "saxs.poni"}},
             {{dataset = "pilW2_image", poni = "waxs.poni"}}]
attrs = [{{name = "int_saxs", func = "get_roi", kwargs = {{qphirange = [0.03, 0.1, -180, 180]}}}},
         {{name = "hop", func = "hop", kwargs = {{xrange = [0.03, 0.1]}}}}]
maps = ["transmission", "absorption", "int_saxs", "hop"]
tomo = ["absorption"]
"""


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe")
    F.make_scans(folder)
    return folder


def write_recipe(folder, dfile, extra=""):
    path = folder / f"{Path(dfile).stem}.toml"
    path.write_text(RECIPE.format(dfile=dfile) + extra)
    return path


def test_parse_saxs_section():
    sec = parse_saxs_section({"detectors": [{"dataset": "a", "poni": "a.poni"}],
                              "qgrid": [[0.01, 0.1, 0.01]], "maps": "absorption"})
    assert sec.nphi == 60 and sec.maps == ("absorption",)
    assert sec.to_dict()["qgrid"] == [[0.01, 0.1, 0.01]]
    with pytest.raises(RecipeError, match="valid keys: detectors, qgrid"):
        parse_saxs_section({"detectors": [], "qgrid": [], "nphii": 3})
    with pytest.raises(RecipeError, match="integer >= 2"):
        parse_saxs_section({"detectors": [{"dataset": "a", "poni": "p"}],
                            "qgrid": [[0.01, 0.1, 0.01]], "nphi": 1.5})
    assert parse_saxs_section({"detectors": [{"dataset": "a", "poni": "p"}],
                               "qgrid": [[0.01, 0.1, 0.01]], "nphi": 35}).nphi == 35
    with pytest.raises(RecipeError, match=r"saxs.detectors\[0\].mask"):
        parse_saxs_section({"detectors": [{"dataset": "a", "poni": "p", "mask": "m"}],
                            "qgrid": [[0.01, 0.1, 0.01]]})
    with pytest.raises(RecipeError, match="func"):
        parse_saxs_section({"detectors": [{"dataset": "a", "poni": "p"}],
                            "qgrid": [[0.01, 0.1, 0.01]], "attrs": [{"name": "x", "func": "sum"}]})


def test_run_procdata_and_overwrite(raw):
    recipe = load_recipe(write_recipe(raw, "out/run_an.h5"))
    out = run_procdata(recipe)
    assert out == raw / "out" / "run_an.h5" and out.exists()
    assert not partial_name(out).exists()
    with h5py.File(out, "r") as f:
        assert f["overall/maps/hop/d"].shape == (7, F.N_TRANS)
        assert f["overall/tomo/absorption/d"].ndim == 2
    stamp = out.stat().st_mtime_ns
    with pytest.raises(OutputError, match="overwrite"):
        run_procdata(recipe)
    assert out.stat().st_mtime_ns == stamp


def test_failed_run_leaves_no_file(raw, monkeypatch):
    # a step after the integration fails (the maps): the temporary file goes too
    from ptyprep.saxs import products

    def failing(*args, **kwargs):
        raise RuntimeError("maps failed (nonexistent)")

    monkeypatch.setattr(products, "build_maps", failing)
    recipe = load_recipe(write_recipe(raw, "fail_an.h5", "tomo_center = 0.5\n"))
    with pytest.raises(Exception, match="nonexistent"):
        run_procdata(recipe)
    assert not (raw / "fail_an.h5").exists() and not partial_name(raw / "fail_an.h5").exists()


def test_demo_plot_inspect(tmp_path):
    from ptyprep.demo import run_saxs_demo as run_demo
    from ptyprep.saxs.inspect import is_procdata, summarize

    res = run_demo(tmp_path)
    assert is_procdata(res["procdata"]) and not is_procdata(res["raw"][0])
    assert len(res["pngs"]) >= 3 and all(Path(p).stat().st_size > 1000 for p in res["pngs"])
    s = summarize(res["procdata"])
    assert s["samples"]["fibres_scanA"]["frames"] == 147
    assert set(s["samples"]["overall"]["tomo"]) == {"absorption", "int_saxs", "int_waxs"}
    with h5py.File(res["procdata"], "r") as f:
        assert abs(f["overall/tomo/absorption"].attrs["rot_cen"] - 1.2) < 0.02


SCRIPT = """
import sys
import ptyprep
ptyprep.run(ptyprep.load_recipe(sys.argv[1]))
"""


@pytest.mark.mpi
def test_serial_equals_mpi(raw, run_mpi):
    serial = run_procdata(load_recipe(write_recipe(raw, "serial_an.h5")))
    script = raw / "run_pipe.py"
    script.write_text(SCRIPT)
    proc = run_mpi(2, [script, write_recipe(raw, "mpi_an.h5")], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(serial, "r") as a, h5py.File(raw / "mpi_an.h5", "r") as b:
        for sn in ("spec_A", "spec_B"):
            np.testing.assert_array_equal(a[f"{sn}/qphi/merged/d"][()], b[f"{sn}/qphi/merged/d"][()])
            np.testing.assert_array_equal(a[f"{sn}/Iq/merged"][()], b[f"{sn}/Iq/merged"][()])
            np.testing.assert_array_equal(a[f"{sn}/attrs/hop"][()], b[f"{sn}/attrs/hop"][()])
        for key in ("maps/int_saxs", "maps/absorption", "maps/hop", "tomo/absorption"):
            np.testing.assert_array_equal(a[f"overall/{key}/d"][()], b[f"overall/{key}/d"][()])
