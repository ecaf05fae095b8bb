"""Where this process shows things: a Jupyter kernel, a terminal, or nowhere.

Progress bars must fit where they run (a notebook widget, a terminal line, nothing in a
script whose output goes to a file or a test's capture), and both surfaces (``ui``) and
lab tools need the same answer, so it lives here.  It looks at loaded modules and file
descriptors only; it imports nothing.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Literal, TextIO

Target = Literal["notebook", "terminal"]
PROGRESS_ENV = "VOLLI_PROGRESS"  # "off" silences every bar; "terminal" forces one


def in_jupyter_kernel() -> bool:
    """True inside an IPython kernel (a notebook), False in a terminal IPython or Python."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_target(stream: TextIO | None = None) -> Target | None:
    """``notebook`` in a kernel, ``terminal`` if ``stream`` (stderr) is a terminal, else
    None: no bar for scripts, pipes, CI logs and tests.  ``$VOLLI_PROGRESS`` overrides."""
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("off", "0", "no", "none"):
        return None
    if forced == "terminal":
        return "terminal"
    if in_jupyter_kernel():
        return "notebook"
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        tty = False
    return "terminal" if tty and os.environ.get("TERM") != "dumb" else None


def plain(doc: str) -> str:
    """A docstring as ``--help`` prints it: reST markup (double backticks, roles such as
    :class:`~a.B`) read as plain text, not shown raw to someone at a terminal."""
    doc = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", doc)
    return doc.replace("``", "")
