"""volli_nb: the Volli peer-to-peer messenger stack, for notebooks and a live shell.

This module stays light: importing it loads no asyncio, aiortc, ipywidgets or
ptpython.  The I/O classes are re-exported lazily, on first attribute access.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "NetworkStore": "volli_nb.net.network_store",
    "MessagesStore": "volli_nb.app.messages_store",
    "Identity": "volli_nb.core.crypto.identity",
    "PublicIdentity": "volli_nb.core.crypto.identity",
    "Database": "volli_nb.core.store.database",
    "PersistentMessageQueue": "volli_nb.core.store.message_queue",
    "dashboard": "volli_nb.ui.widgets",
    "SequencePanel": "volli_nb.ui.widgets",
    "show_progress": "volli_nb.ui.progress",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'volli_nb' has no attribute {name!r}")
    return getattr(import_module(module), name)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext volli_nb``: registers the ``%volli`` magics."""
    import_module("volli_nb.ui.magics").load_ipython_extension(ipython)
