"""``RatchetPanel(store, peer)``: one side's Double Ratchet with ``peer``, turning live.

It reads only the session's :class:`~volli_nb.core.crypto.session_view.SessionSummary`
(``store.sessions.summary(peer)``: counters, short public keys, what happened to each
message key; never a key), builds the picture's content (:mod:`.ratchet_model`) and draws
it (:mod:`.ratchet_svg`), about once a second and soon after each event-log entry, like
the other panels.  ``snapshot()`` freezes it for an export; :func:`ratchet_view` draws
any summary, e.g. a :class:`~volli_nb.lab.channel_pair.ChannelPair`'s.
"""

from __future__ import annotations

from typing import Any

from volli_nb.core.crypto.session_view import SEND, SessionSummary
from volli_nb.ui.widgets.cells import CSS, Names
from volli_nb.ui.widgets.panels import Panel
from volli_nb.ui.widgets.ratchet_model import NEXT, RatchetPicture, ratchet_picture
from volli_nb.ui.widgets.ratchet_svg import new_uid, render_html

_MARKS = {"used": "✓", "used_held": "✓", "held": "⏳", "expired": "✕", "evicted": "✕"}


class RatchetView:
    """A frozen ratchet picture: HTML in Jupyter, lines of text elsewhere."""

    def __init__(self, picture: RatchetPicture, peer: str = "the peer") -> None:
        self.picture, self.peer = picture, peer

    def _repr_html_(self) -> str:
        return render_html(self.picture, peer=self.peer)

    def __repr__(self) -> str:
        p = self.picture
        lines = [p.title, " · ".join(p.stats)]
        if p.earlier:
            lines.append(f"({p.earlier} earlier chains not shown)")
        for row in p.rows:
            arrow = "→ sending  " if row.direction == SEND else "← receiving"
            keys = [f"→{b.n}" if b.state == NEXT else f"{b.n}{_MARKS[b.state]}" for b in row.boxes]
            more = [f"+{row.hidden} used"] if row.hidden else []
            shown = " ".join(more + keys) or "no message on this chain"
            lines.append(f"{arrow} {row.chain}  {row.started_by:14} {shown}")
        return "\n".join(lines)


def ratchet_view(summary: SessionSummary, *, me: str = "me", peer: str = "the peer") -> RatchetView:
    """The picture of ``summary`` (one side of one session), frozen."""
    return RatchetView(ratchet_picture(summary, me=me, peer=peer), peer)


class RatchetPanel(Panel):
    """``store``'s ratchet with ``peer`` (a peer id), live; empty while there is no session
    (sessions live only as long as their data channel)."""

    def __init__(self, store: Any, peer: str) -> None:
        self.peer = peer
        self.uid = new_uid()
        super().__init__(store)

    def view_now(self) -> RatchetView | None:
        summary = self.store.sessions.summary(self.peer)
        if summary is None:
            return None
        peer = Names(self.store).name(self.peer)
        return ratchet_view(summary, me=self.store.name, peer=peer)

    def render(self) -> str:
        view = self.view_now()
        if view is None:
            name = Names(self.store).name(self.peer)
            return CSS + (
                f"<p class='volli-empty'>no session with {name} now: a session lives only "
                "while its data channel is open</p>"
            )
        return render_html(view.picture, peer=view.peer, uid=self.uid)

    def snapshot(self) -> RatchetView | None:
        """The picture as it is now, frozen (None without a session)."""
        return self.view_now()


__all__ = ["RatchetPanel", "RatchetView", "ratchet_view"]
