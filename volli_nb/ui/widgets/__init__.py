"""Live panels for notebooks: peers, ICE candidates, pending queue, chat, event log."""

from volli_nb.ui.widgets.models import (
    Table,
    candidates_table,
    chat_lines,
    events_table,
    peers_table,
    queue_table,
)
from volli_nb.ui.widgets.panels import (
    ChatPanel,
    Dashboard,
    EventLogPanel,
    IcePanel,
    Panel,
    PeersPanel,
    QueuePanel,
    dashboard,
)

__all__ = [
    "ChatPanel",
    "Dashboard",
    "EventLogPanel",
    "IcePanel",
    "Panel",
    "PeersPanel",
    "QueuePanel",
    "Table",
    "candidates_table",
    "chat_lines",
    "dashboard",
    "events_table",
    "peers_table",
    "queue_table",
]
