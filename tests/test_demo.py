"""The README's first command: `volli-nb demo` runs two processes and ends with "demo ok"."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.network


def test_demo_runs_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "volli_nb.ui.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "demo ok" in out
    assert "signed ACK" in out and "failed attempts 2" in out and "(flushed)" in out
    assert "bob's history (5)" in out
    # It ends by saying where to go next, with commands that exist in a fresh clone.
    assert "next:" in out and "jupyter lab notebooks/00-start-here.ipynb" in out
    assert "volli-shell" in out.split("next:")[1]


@pytest.mark.parametrize("command", [[], ["netsim"], ["chaos"]])
def test_help_reads_as_plain_text(command: list[str]) -> None:
    """--help printed the docstrings' reST as it is: ``volli-nb``: …, :class:`~volli_nb…`."""
    result = subprocess.run(
        [sys.executable, "-m", "volli_nb.ui.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: volli-nb")
    assert "``" not in result.stdout and ":class:" not in result.stdout, result.stdout
