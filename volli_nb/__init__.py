"""volli_nb: the Volli peer-to-peer messenger stack, for notebooks and a live shell.

The names a notebook user needs come from here::

    from volli_nb import MessagesStore, NetworkConfig, IceServer, ChatMessage, Identity, VolliError

This module stays light: importing it loads no asyncio, aiortc, ipywidgets or ptpython.
Each name is imported on first use (``__getattr__``); type checkers and IDEs read the
``TYPE_CHECKING`` imports below, and ``dir(volli_nb)`` lists every name for completion.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from volli_nb.app.chat import ChatMessage, SyncReport
    from volli_nb.app.messages_store import MessagesStore
    from volli_nb.base.errors import VolliError
    from volli_nb.core.crypto.identity import Identity, PublicIdentity
    from volli_nb.core.netconfig import IceServer, NetworkConfig
    from volli_nb.core.store.database import Database
    from volli_nb.core.store.message_queue import PersistentMessageQueue
    from volli_nb.net.network_store import NetworkStore
    from volli_nb.ui.progress import show_progress
    from volli_nb.ui.widgets import SequencePanel, dashboard

__version__ = "0.1.0"

_LAZY = {
    "ChatMessage": "volli_nb.app.chat",
    "Database": "volli_nb.core.store.database",
    "IceServer": "volli_nb.core.netconfig",
    "Identity": "volli_nb.core.crypto.identity",
    "MessagesStore": "volli_nb.app.messages_store",
    "NetworkConfig": "volli_nb.core.netconfig",
    "NetworkStore": "volli_nb.net.network_store",
    "PersistentMessageQueue": "volli_nb.core.store.message_queue",
    "PublicIdentity": "volli_nb.core.crypto.identity",
    "SequencePanel": "volli_nb.ui.widgets",
    "SyncReport": "volli_nb.app.chat",
    "VolliError": "volli_nb.base.errors",
    "dashboard": "volli_nb.ui.widgets",
    "show_progress": "volli_nb.ui.progress",
}

__all__ = [
    "ChatMessage",
    "Database",
    "IceServer",
    "Identity",
    "MessagesStore",
    "NetworkConfig",
    "NetworkStore",
    "PersistentMessageQueue",
    "PublicIdentity",
    "SequencePanel",
    "SyncReport",
    "VolliError",
    "dashboard",
    "show_progress",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'volli_nb' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext volli_nb``: registers the ``%volli`` magics, and shows a volli error a
    cell raises as one line (``%tb``: the full traceback; see :mod:`volli_nb.ui.cell_errors`
    for why an import alone does not)."""
    import_module("volli_nb.ui.magics").load_ipython_extension(ipython)
    import_module("volli_nb.ui.cell_errors").install(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext volli_nb``: IPython's full tracebacks for volli errors again."""
    import_module("volli_nb.ui.cell_errors").uninstall(ipython)
