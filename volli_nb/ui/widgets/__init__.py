"""Live panels for notebooks: peers, ICE candidates, pending queue, chat, groups, event log,
the sequence diagram, and a session's Double Ratchet."""

from volli_nb.ui.widgets.dashboard import Dashboard, dashboard
from volli_nb.ui.widgets.groups_panel import GroupsPanel
from volli_nb.ui.widgets.layout import beside
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
    EventLogPanel,
    IcePanel,
    Panel,
    PeersPanel,
    QueuePanel,
)
from volli_nb.ui.widgets.ratchet import RatchetPanel, RatchetView, ratchet_view
from volli_nb.ui.widgets.sequence import SequenceDiagram, SequencePanel
from volli_nb.ui.widgets.sequence_model import Arrow, SequenceModel

__all__ = [
    "Arrow",
    "ChatPanel",
    "Dashboard",
    "EventLogPanel",
    "GroupsPanel",
    "IcePanel",
    "Panel",
    "PeersPanel",
    "QueuePanel",
    "RatchetPanel",
    "RatchetView",
    "SequenceDiagram",
    "SequenceModel",
    "SequencePanel",
    "Table",
    "beside",
    "candidates_table",
    "chat_lines",
    "dashboard",
    "events_table",
    "peers_table",
    "queue_table",
    "ratchet_view",
]
