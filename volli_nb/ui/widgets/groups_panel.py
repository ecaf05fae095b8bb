"""The groups panel: each group's current version, its members and admins, and per member
the delivery of the recent messages, updating live.

The tables are plain data (the shell prints them too); :class:`GroupsPanel` draws them for
the group picked in its dropdown, with the record hash every message of this version is
bound to.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from volli_nb.core.eventlog import clip
from volli_nb.ui.widgets.cells import CSS, Cell, Names, Table
from volli_nb.ui.widgets.models import MARKS
from volli_nb.ui.widgets.panels import Panel

GROUP_COLUMNS = ("group", "version", "record", "members", "admins", "you")
GROUP_NOTES = {
    "version": "the membership record's version: each change signs the next one",
    "record": "the record's hash: every message sent under this version names it",
    "admins": "who may change the membership",
    "you": "member, admin, or removed (no key for later messages)",
}
MEMBER_COLUMNS = ("member", "admin", "connected")
RECENT = 8


def groups_table(store: Any) -> Table:
    """Every group this profile holds, as its current version says."""
    names = Names(store)
    rows = []
    for g in store.groups():
        you = "admin" if g.is_admin else "member" if g.is_member else "removed"
        rows.append(
            {
                "group": Cell(g.group_id, (g.name, g.group_id[:12]), hover=g.group_id, sub=True),
                "name": g.name,
                "version": g.version,
                "record": Cell(g.record_hash[:8], hover=g.record_hash, mono=True),
                "members": ", ".join(names.name(m) for m in g.members),
                "admins": ", ".join(names.name(m) for m in g.admins),
                "you": you,
            }
        )
    return Table(
        list(GROUP_COLUMNS),
        rows,
        title="Groups",
        notes=GROUP_NOTES,
        empty="none yet: create_group(name, [peer ids]), or be added by an admin",
    )


def members_table(store: Any, group_id: str) -> Table:
    """One group's members: admin or not, connected now or not (the mesh is lazy)."""
    info = store.group(group_id)
    names = Names(store)
    rows = [
        {
            "member": names.cell(m) if m != store.peer_id else Cell(m, ("me",), hover=m),
            "admin": "admin" if m in info.admins else "",
            "connected": "(me)"
            if m == store.peer_id
            else "yes"
            if store.network_store.is_connected(m)
            else "not now",
        }
        for m in info.members
    ]
    title = f"{info.name}: version {info.version}, record {info.record_hash[:16]}…"
    return Table(list(MEMBER_COLUMNS), rows, title=title, empty="no members")


def delivery_table(store: Any, group_id: str, limit: int = RECENT) -> Table:
    """The last messages of a group; for ours, one column per member: ✓ delivered,
    … pending (offline: waiting in the outbox), ! stuck, blank: not a recipient."""
    names = Names(store)
    info = store.group(group_id)
    messages = store.history(group_id, limit=limit)
    others = [m for m in info.members if m != store.peer_id]
    columns = ["time", "from", "message", *(names.name(m) for m in others)]
    rows = []
    for m in messages:
        row: dict[str, Any] = {
            "time": m.time,
            "from": "me" if m.direction == "out" else names.name(m.sender),
            "message": clip(m.text, 40),
        }
        if m.direction == "out":
            status = store.delivery_status(m.message_id)
            for member in others:
                row[names.name(member)] = MARKS.get(status.get(member, ""), "")
        rows.append(row)
    return Table(
        columns,
        rows,
        title="Recent messages, delivery per member",
        empty="no messages yet: send_message(group_id, text)",
    )


class GroupsPanel(Panel):
    """Groups: the list, and for the picked one its members and per-member delivery."""

    def __init__(self, store: Any) -> None:
        self.group = w.Dropdown(description="group")
        super().__init__(store)
        self.group.observe(lambda _c: self.refresh(), names="value")
        self.widget = w.VBox([self.group, self.view])

    def _options(self) -> list[tuple[str, str]]:
        return [(f"{g.name} ({g.group_id[:12]})", g.group_id) for g in self.store.groups()]

    def render(self) -> str:
        parts = [CSS, groups_table(self.store).to_html()]
        picked = getattr(getattr(self, "group", None), "value", None)
        options = self._options()
        if not picked and options:
            picked = options[0][1]
        if picked:
            parts += [
                members_table(self.store, picked).to_html(),
                delivery_table(self.store, picked).to_html(),
            ]
        return "".join(parts)

    def refresh(self) -> None:
        if hasattr(self, "group"):
            options = self._options()
            if list(self.group.options) != options:
                current = self.group.value
                self.group.options = options
                ids = [v for _, v in options]
                self.group.value = current if current in ids else (ids[0] if ids else None)
        self.view.value = self._last = self.render()


__all__ = ["GroupsPanel", "delivery_table", "groups_table", "members_table"]
