"""``dashboard(messagesStore)``: every panel of one store in tabs, updating live."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from volli_nb.ui.widgets.cells import CSS
from volli_nb.ui.widgets.groups_panel import GroupsPanel
from volli_nb.ui.widgets.panels import (
    ChatPanel,
    EventLogPanel,
    IcePanel,
    Panel,
    PeersPanel,
    QueuePanel,
    _display_live,
)
from volli_nb.ui.widgets.sequence import SequencePanel


class Dashboard:
    """All panels in tabs: ``dashboard(messagesStore)``."""

    def __init__(self, store: Any) -> None:
        self.panels: dict[str, Panel] = {
            "Peers": PeersPanel(store),
            "ICE": IcePanel(store),
            "Queue": QueuePanel(store),
            "Chat": ChatPanel(store),
            "Groups": GroupsPanel(store),
            "Events": EventLogPanel(store),
            "Sequence": SequencePanel(store),
        }
        self.widget = w.Tab(children=[p.widget for p in self.panels.values()])
        for i, title in enumerate(self.panels):
            self.widget.set_title(i, title)

    def start(self) -> Dashboard:
        for panel in self.panels.values():
            panel.start()
        return self

    def refresh(self) -> None:
        for panel in self.panels.values():
            panel.refresh()

    def close(self) -> None:
        for panel in self.panels.values():
            panel.close()

    def _repr_html_(self) -> str:
        return "".join(p._repr_html_() for p in self.panels.values())

    def _ipython_display_(self) -> None:
        self.start()
        _display_live(self.widget, CSS + self._repr_html_())


def dashboard(store: Any) -> Dashboard:
    """All panels (peers, ICE, queue, chat, groups, event log, sequence diagram) of ``store`` in
    tabs, updating live."""
    return Dashboard(store)
