"""``ptyprep validate`` on a procdata recipe: checks geometry, masks and raw data; writes nothing."""

import pytest

from ptyprep.cli import main
from ptyprep.saxs import demo


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("saxs_validate")
    demo.write_demo_data(out)
    (out / "saxs_demo.toml").write_text(demo.RECIPE)
    return out


def run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_validate_describes_the_chain(capsys, demo_folder):
    before = sorted(p.name for p in demo_folder.iterdir())
    code, out, err = run(capsys, "validate", demo_folder / "saxs_demo.toml")
    assert code == 0, err
    assert "recipe OK: 2 scan(s), 2 detector(s)" in out
    assert "fibres_scanA: frames pil1M_image 147, pilW2_image 147" in out
    assert "tomograms" in out
    assert sorted(p.name for p in demo_folder.iterdir()) == before


def test_validate_reports_a_missing_poni(capsys, demo_folder):
    (demo_folder / "bad.toml").write_text(demo.RECIPE.replace("saxs.poni", "nope.poni"))
    code, _, err = run(capsys, "validate", demo_folder / "bad.toml")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ptyprep: error: ") and "nope.poni" in err
