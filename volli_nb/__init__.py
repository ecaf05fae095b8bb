"""volli_nb: the Volli peer-to-peer messenger stack, for notebooks and a live shell.

This module stays light: importing it loads no asyncio, aiortc, ipywidgets or
ptpython.  The I/O classes are re-exported lazily, on first attribute access.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "NetworkStore": "volli_nb.network",
    "MessagesStore": "volli_nb.messages",
    "Identity": "volli_nb.identity",
    "PublicIdentity": "volli_nb.identity",
    "Database": "volli_nb.storage",
    "PersistentMessageQueue": "volli_nb.queue",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'volli_nb' has no attribute {name!r}")
    return getattr(import_module(module), name)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext volli_nb``: registers the ``%volli`` magics."""
    import_module("volli_nb.magics").load_ipython_extension(ipython)
