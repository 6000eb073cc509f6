"""Every tutorial runs as written: the marked code blocks of README.md and docs/, and every
recipe in experiments/ (after the command of its ``# inputs:`` line).

A block is marked to run by an HTML comment on the line before its fence:

* ``<!-- run -->`` before a ``bash`` or ``python`` block: run it;
* ``<!-- run: file NAME -->`` before any block: write its text to ``NAME``;
* ``<!-- run: needs MODULE[,MODULE] -->`` before a ``bash`` or ``python`` block: run it when
  those modules are installed (another code's reader from the ``interop`` extra, which CI
  installs), else leave it out.

The marked blocks of one document run in order as one bash script (``set -e``; a ``cd``
carries on; python blocks through ``python -``), in a fresh folder that holds links to the
checkout's ``tests/`` and ``experiments/`` (as a checkout's root would), with this venv's
``python`` and ``ptyprep`` first on PATH.  Set-up lines (``pip install``, ``module load``)
and cluster launch lines are in blocks that are not marked.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"^<!-- run(?::\s*(?:file\s+(?P<file>\S+)|needs\s+(?P<needs>\S+)))?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")


def marked_blocks(text):
    """``[(kind, language or file name, code)]`` of the marked blocks of a Markdown ``text``;
    kind is ``"run"`` or ``"file"``."""
    lines, blocks, k = text.splitlines(), [], 0
    while k < len(lines):
        mark = MARK.match(lines[k])
        if mark and k + 1 < len(lines) and FENCE.match(lines[k + 1]):
            lang = FENCE.match(lines[k + 1])["lang"]
            end = next(j for j in range(k + 2, len(lines)) if lines[j].startswith("```"))
            code = "\n".join(lines[k + 2:end]) + "\n"
            if mark["file"]:
                blocks.append(("file", mark["file"], code))
            elif mark["needs"] and not all(importlib.util.find_spec(m) for m in
                                           mark["needs"].split(",")):
                pass                     # another code's reader, not installed here
            else:
                assert lang in ("bash", "python"), f"a marked block must be bash or python: {lang}"
                blocks.append(("run", lang, code))
            k = end
        k += 1
    return blocks


def script_of(blocks):
    """One bash script running ``blocks`` in order."""
    parts = ["set -euo pipefail"]
    for kind, what, code in blocks:
        if kind == "file":
            parts.append(f"mkdir -p \"$(dirname '{what}')\"\ncat > '{what}' <<'PTYPREP_EOF'\n"
                         f"{code}PTYPREP_EOF")
        elif what == "python":
            parts.append(f"python - <<'PTYPREP_EOF'\n{code}PTYPREP_EOF")
        else:
            parts.append(code)
    parts.append("wait")          # background jobs of a block (an acquisition) end too
    return "\n".join(parts) + "\n"


def tutorial_env():
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    env.setdefault("MPLBACKEND", "Agg")
    return env


def test_marked_blocks_are_found():
    text = "<!-- run -->\n```bash\necho hi\n```\n```bash\nnot run\n```\n" \
           "<!-- run: file a/r.toml -->\n```toml\nx = 1\n```\n" \
           "<!-- run: needs numpy,h5py -->\n```python\nimport numpy\n```\n" \
           "<!-- run: needs no_such_module_here -->\n```python\nimport it\n```\n"
    assert marked_blocks(text) == [("run", "bash", "echo hi\n"), ("file", "a/r.toml", "x = 1\n"),
                                   ("run", "python", "import numpy\n")]


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if marked_blocks(d.read_text())],
                         ids=lambda d: d.name)
def test_the_tutorial_runs_as_written(document, tmp_path):
    script = script_of(marked_blocks(document.read_text()))
    (tmp_path / "tutorial.sh").write_text(script)
    for folder in ("tests", "experiments"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    done = subprocess.run(["bash", "tutorial.sh"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env=tutorial_env())
    assert done.returncode == 0, f"{document.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "ptyprep: error" not in done.stderr and "Traceback" not in done.stderr


def test_readme_has_runnable_tutorials():
    kinds = marked_blocks((ROOT / "README.md").read_text())
    assert sum(kind == "run" for kind, _, _ in kinds) >= 4
    assert any(kind == "file" and what.endswith(".toml") for kind, what, _ in kinds)


# -- experiments/ ---------------------------------------------------------------------------------
RECIPES = sorted((ROOT / "experiments").glob("*.toml"))


def inputs_command(recipe):
    """The command of the recipe's ``# inputs: <command>`` line, or None."""
    for line in recipe.read_text().splitlines():
        if line.startswith("# inputs:"):
            return line.split(":", 1)[1].strip()
    return None


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_every_experiment_recipe_runs_as_shipped(recipe, tmp_path):
    # the recipes see the real data as ../../shared/data: keep that shape around a copy
    shared = ROOT.parent / "shared"
    text = recipe.read_text()
    if "shared/data" in text and not (shared / "data").is_dir():
        pytest.skip(f"{recipe.name} reads the real beamline data, absent at {shared / 'data'}")
    copy = tmp_path / "project" / "experiments"
    shutil.copytree(ROOT / "experiments", copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    if shared.is_dir():
        (tmp_path / "shared").symlink_to(shared)
    env = tutorial_env()
    command = inputs_command(recipe)
    if command:
        made = subprocess.run(command, shell=True, cwd=copy, capture_output=True, text=True,
                              timeout=600, env=env)
        assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, "-m", "ptyprep", "-q", "run", recipe.name,
                           "--set", "output.overwrite=true"], cwd=copy, capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.split()[1])
    assert written.is_file() and written.stat().st_size > 0
