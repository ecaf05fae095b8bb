"""Live panels for notebooks: peers, ICE candidates, pending queue, chat, event log."""

from .models import Table, candidates_table, chat_lines, events_table, peers_table, queue_table
from .panels import (
    ChatPanel,
    Dashboard,
    EventLogPanel,
    IcePanel,
    Panel,
    PeersPanel,
    QueuePanel,
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
    "events_table",
    "peers_table",
    "queue_table",
]
