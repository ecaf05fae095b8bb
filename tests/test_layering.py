"""The pure core never loads asyncio, aiortc, ipywidgets or ptpython."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "volli_nb",
    "volli_nb.errors",
    "volli_nb.clock",
    "volli_nb.encoding",
    "volli_nb.identity",
    "volli_nb.crypto",
    "volli_nb.envelope",
    "volli_nb.storage",
    "volli_nb.queue",
    "volli_nb.protocol",
    "volli_nb.sim",
    "volli_nb.pairing",
    "volli_nb.frames",
    "volli_nb.netquality",
    "volli_nb.body",
]
FORBIDDEN = ["asyncio", "aiortc", "aioice", "ipywidgets", "ptpython", "IPython"]


def test_core_modules_load_no_io_libraries() -> None:
    script = (
        "import importlib, sys\n"
        f"for name in {CORE!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"core modules imported I/O libraries: {out}"


def test_the_check_itself_would_catch_an_io_import() -> None:
    script = "import sys, volli_nb.netns, asyncio; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "True"
