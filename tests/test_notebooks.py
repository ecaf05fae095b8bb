"""The tutorial notebooks: stored without outputs, linked correctly, and they run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_stored_without_outputs_and_match_their_source() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from build_notebooks import build

    built = build()
    assert sorted(built) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
        assert path.read_text() == built[path.name], f"{path.name}: run tools/build_notebooks.py"


def test_relative_links_point_at_existing_notebooks() -> None:
    for path in NOTEBOOKS:
        for link in re.findall(r"\]\(([^)#]+\.ipynb)\)", path.read_text()):
            assert (path.parent / link).exists(), f"{path.name} links to missing {link}"


EXPECT = {
    "00-start-here.ipynb": ["status: {", "'delivered'}", "hello from the first notebook"],
    "01-key-exchange.ipynb": [
        "opens it: b'meet at noon'",
        "cannot: NotARecipient",
        "BadSignature",
        "replay                   → ReplayError",
    ],
    "02-message-flow.ipynb": [
        "failed attempts 1  next retry in 1 s",
        "failed attempts 2  next retry in 5 s",
        "failed attempts 3  next retry in 15 s",
        "failed attempts 4  next retry in 60 s",
        "stuck    failed attempts 5",
        "is back: 1 message(s) that went stuck while it was away are due again",
        "bob got: ['hello, online path', 'are you there?']",
        # the diagram's snapshot: the offline path, arrow by arrow
        "retry in 1 s (attempt 1 failed: peer offline)",
        "retry in 60 s (attempt 4 failed: peer offline)",
        "retry by hand",
        "is back: 1 stuck → due again",
        "3 MB: {",
    ],
    "03-pairing-two-kernels.ipynb": ["['hi from kernel A', 'hi from kernel B']", "'delivered'"],
    "04-debugging.ipynb": ["'state': 'connected'", "selected: (", "SyncReport(", "'pending'"],
    "05-network-conditions.ipynb": [
        "every message delivered exactly once: True",
        "A→B MESSAGE",
        "median",
        "200 messages in",
        "exactly once, in order: True",
        "flush 500 pending",
    ],
}


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = ""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text += output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            text += str(output.get("data", {}).get("text/html", ""))
    for expected in EXPECT[path.name]:
        assert expected in text, f"{path.name}: {expected!r} not in output"
