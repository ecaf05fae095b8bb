"""Build a fresh environment the way repo2docker does from binder/, and run every notebook in it.

repo2docker installs binder/requirements.txt, then runs binder/postBuild from the repository
root.  CI has no package index inside its network namespace, so `.ci/run` downloads the
wheels first into `.ci/wheelhouse` (`pip download -r binder/requirements.txt`: pip resolves
the file there, as Binder's pip would); this test then installs from there only.

Time (docs/testing.md): the wheels go in with uv rather than pip (the same pinned files
from the same wheelhouse, a third of the time), postBuild runs as it is (pip, editable), and
the notebooks run two at a time, the longest first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import require
from packaging.specifiers import SpecifierSet

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / ".ci" / "wheelhouse"


def test_binder_environment_runs_every_notebook(tmp_path: Path) -> None:
    require(WHEELHOUSE.is_dir(), "needs .ci/wheelhouse (`.ci/run` downloads it before the tests)")
    venv = tmp_path / "binder-venv"
    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
    }
    env.pop("PYTHONPATH", None)

    def run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done

    uv = Path(sys.executable).with_name("uv")  # installed with the suite (requirements/lock.txt)
    run(sys.executable, "-m", "venv", str(venv))
    run(
        *(str(uv), "pip", "install", "-q", "--python", str(venv / "bin" / "python")),
        *("--no-index", "--find-links", str(WHEELHOUSE), "-r", "binder/requirements.txt"),
    )
    run("bash", "binder/postBuild")
    check = run(
        str(venv / "bin" / "python"),
        "-c",
        "import volli_nb, sys; print(volli_nb.__file__, sys.prefix)",
    )
    assert str(venv) in check.stdout
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)

    def execute(notebook: Path) -> str:
        jupyter = str(venv / "bin" / "jupyter")
        run(jupyter, "execute", "--inplace", "--timeout=60", str(notebook), cwd=work)
        return notebook.read_text()

    # Each kernel is its own process with its own scratch profiles and ports.  Two at a time
    # (two cores), the later, longer notebooks first (05 alone is half of the total).
    notebooks = sorted(work.glob("*.ipynb"), reverse=True)
    with ThreadPoolExecutor(max_workers=2) as lanes:
        executed = dict(zip(notebooks, lanes.map(execute, notebooks), strict=True))
    assert len(executed) == len(list((ROOT / "notebooks").glob("*.ipynb")))
    for notebook, text in executed.items():
        assert '"output_type": "error"' not in text, notebook.name


def test_binder_runs_the_python_the_package_needs() -> None:
    """repo2docker builds Python 3.10 unless binder/runtime.txt names another, and volli_nb
    needs 3.11 or later: the Binder badge's build stopped at postBuild's install.  The
    runtime is the one binder/requirements.txt is compiled for."""
    runtime = ROOT / "binder" / "runtime.txt"
    assert runtime.is_file(), "binder/runtime.txt is missing: repo2docker would build Python 3.10"
    found = re.fullmatch(r"python-(3\.\d+)", runtime.read_text().strip())
    assert found, runtime.read_text()
    needs = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert found.group(1) in SpecifierSet(needs), (found.group(1), needs)
    compiled = (ROOT / "binder" / "requirements.txt").read_text()
    assert f"--python-version {found.group(1)} " in compiled
