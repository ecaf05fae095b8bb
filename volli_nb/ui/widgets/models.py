"""What each panel shows, computed from the store's public API: plain rows, no widgets.

Panels render these rows; tests check them without a browser.  ``now`` is
passed in so countdowns are deterministic under a virtual clock.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from volli_nb.core.store.message_queue import Status

Row = dict[str, Any]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[Row]
    highlight: frozenset[int] = frozenset()  # row indexes shown highlighted
    title: str = ""

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for i, row in enumerate(self.rows):
            style = ' class="volli-selected" style="font-weight:bold;background:#fff3c4"'
            cells = "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in self.columns)
            body.append(f"<tr{style if i in self.highlight else ''}>{cells}</tr>")
        empty = f'<tr><td colspan="{len(self.columns)}"><i>none</i></td></tr>'
        title = f"<h4>{html.escape(self.title)}</h4>" if self.title else ""
        return (
            f'{title}<table class="volli-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body) or empty}</tbody></table>"
        )


def _ago(now: float, then: float | None) -> str:
    return "—" if then is None else f"{max(0.0, now - then):.1f} s ago"


def _skew(net: Any, skew: float | None) -> str:
    """Their clock against ours; a warning sign past the threshold both sides warn at."""
    if skew is None:
        return "—"
    warn = " ⚠" if abs(skew) > net.config.clock_skew_warn else ""
    return f"{skew:+.1f} s{warn}"


def _link_summary(net: Any, peer_id: str) -> str:
    """Stall estimate, current ACK wait and how much bundling saved, in one cell."""
    quality, session = net.link_quality(peer_id), net.session_stats(peer_id)
    if quality is None or session is None:
        return "—"
    return (
        f"stalls {quality.loss:.0%} · ACK wait {quality.ack_timeout():.0f} s · "
        f"{session.messages_out} msgs in {session.bundles_out} bundles · {session.acks_in} ACKs"
    )


def peers_table(store: Any, now: float) -> Table:
    """Peers and their states: the seed's first debug command, as a table."""
    net = store.network_store
    endpoint = net.get_sync_endpoint()
    present = set(store.room_session.online) if store.room_session is not None else set()
    names = {c.peer_id: c.name for c in store.contacts}
    warnings: dict[str, str] = dict(store.contact_book.warnings)  # name clashes, key changes
    for peer_id, error in net.pairing_errors.items():  # why pairing failed, on either side
        cause = f"pairing failed: {type(error).__name__}: {error}"
        warnings[peer_id] = f"{warnings[peer_id]}; {cause}" if peer_id in warnings else cause
    rows: list[Row] = []
    for peer_id, pc in net.peers.items():
        stats = net.stats(peer_id)
        pair = net.candidates(peer_id).selected
        rows.append(
            {
                "peer": peer_id,
                "name": names.get(peer_id) or "",
                "verified": "yes" if endpoint.get(peer_id, {}).get("verified") else "no",
                "connection": pc.connectionState,
                "ice": pc.iceConnectionState,
                "selected pair": (
                    f"{pair[0].type} {pair[0].endpoint} ↔ {pair[1].type} {pair[1].endpoint}"
                    if pair
                    else "—"
                ),
                "rtt": "—" if stats.rtt is None else f"{stats.rtt * 1000:.1f} ms",
                "clock": _skew(net, stats.clock_skew),
                "link": _link_summary(net, peer_id),
                "msgs in/out": f"{stats.messages_in}/{stats.messages_out}",
                "bytes in/out": f"{stats.bytes_in}/{stats.bytes_out}",
                "last seen": _ago(now, stats.last_seen),
                "presence": "online" if peer_id in present else "",
                "warning": warnings.get(peer_id, ""),
            }
        )
    for peer_id in sorted((set(names) | present | set(warnings)) - set(net.peers)):
        rows.append(
            {
                "peer": peer_id,
                "name": names.get(peer_id) or "",
                "verified": "—",
                "connection": "offline",
                "ice": "—",
                "selected pair": "—",
                "rtt": "—",
                "clock": "—",
                "link": "—",
                "msgs in/out": "—",
                "bytes in/out": "—",
                "last seen": "—",
                "presence": "online" if peer_id in present else "",
                "warning": warnings.get(peer_id, ""),
            }
        )
    flagged = frozenset(i for i, row in enumerate(rows) if row["warning"])
    return Table(list(PEER_COLUMNS), rows, highlight=flagged, title=_peers_title(store))


def _peers_title(store: Any) -> str:
    """The signaling connection's state, when rooms are in use: reconnecting shows why."""
    session = store.room_session
    if session is None:
        return "Peers"
    return f"Peers · signaling {session.status.describe(time.monotonic())}"


PEER_COLUMNS = (
    "peer",
    "name",
    "verified",
    "connection",
    "ice",
    "selected pair",
    "rtt",
    "clock",
    "link",
    "msgs in/out",
    "bytes in/out",
    "last seen",
    "presence",
    "warning",
)
CANDIDATE_COLUMNS = (
    "peer",
    "side",
    "foundation",
    "component",
    "protocol",
    "address",
    "port",
    "type",
    "priority",
    "selected",
)


def candidates_table(store: Any) -> Table:
    """ICE candidates per peer, the selected pair first and highlighted."""
    net = store.network_store
    rows: list[Row] = []
    highlight: set[int] = set()
    for peer_id in net.peers:
        view = net.candidates(peer_id)
        chosen = (
            {
                ("local", view.selected[0].address, view.selected[0].port),
                ("remote", view.selected[1].address, view.selected[1].port),
            }
            if view.selected
            else set()
        )
        entries = [("local", c) for c in view.local] + [("remote", c) for c in view.remote]
        entries.sort(key=lambda e: (e[0], e[1].address, e[1].port) not in chosen)
        for side, c in entries:
            selected = (side, c.address, c.port) in chosen
            if selected:
                highlight.add(len(rows))
            rows.append(
                {
                    "peer": peer_id,
                    "side": side,
                    "foundation": c.foundation[:12],
                    "component": c.component,
                    "protocol": c.protocol,
                    "address": c.address,
                    "port": c.port,
                    "type": c.type,
                    "priority": c.priority,
                    "selected": "✔" if selected else "",
                }
            )
    return Table(list(CANDIDATE_COLUMNS), rows, frozenset(highlight), title=relay_title(net))


QUEUE_COLUMNS = (
    "id",
    "message",
    "recipient",
    "conversation",
    "status",
    "attempts",
    "next retry",
    "last error",
)


def queue_table(store: Any, now: float) -> Table:
    """``get_pending()`` as console.table would show it, with a live countdown."""
    rows: list[Row] = []
    for q in store.message_queue.get_pending():
        if q.status == Status.STUCK:
            countdown = "stuck: retry by hand"
        elif q.status == Status.HELD:
            countdown = "held: waits for the cause (see last error)"
        elif q.next_attempt_at is None:
            countdown = "—"
        else:
            countdown = f"in {max(0.0, q.next_attempt_at - now):.1f} s"
        rows.append(
            {
                "id": q.id,
                "message": q.message_id.hex()[:8],
                "recipient": q.recipient,
                "conversation": q.conversation_id,
                "status": str(q.status),
                "attempts": q.attempts,
                "next retry": countdown,
                "last error": q.last_error or "",
            }
        )
    storage = getattr(getattr(store, "storage", None), "state", "ok")
    note = "" if storage == "ok" else f" (this profile's storage is {storage})"
    return Table(list(QUEUE_COLUMNS), rows, title="Pending queue" + note)


MARKS = {
    "delivered": "✓",
    "pending": "…",
    "held": "…!",
    "stuck": "!",
    "received": "",
    "mixed": "…",
    "unknown": "?",
}  # unknown: its outbox row is gone and the pruner did not say delivered


def chat_lines(store: Any, conversation: str) -> list[str]:
    lines = []
    for m in store.history(conversation):
        who = "me" if m.direction == "out" else m.sender[:8]
        mark = MARKS.get(m.status, m.status)
        lines.append(f"{who}: {m.text[:500]} {mark}".rstrip())
    return lines


EVENT_COLUMNS = ("time", "since start", "category", "peer", "message")


def events_table(
    log: Any, *, category: str | None = None, text: str = "", limit: int = 200
) -> Table:
    """Newest first, with wall-clock time (ms) and time since the first event."""
    entries = log.entries(category=category or None, text=text)[-limit:]
    rows = [
        {
            "time": e.wall_clock,
            "since start": e.since_start,
            "category": e.category,
            "peer": e.peer_id or "",
            "message": e.message,
        }
        for e in reversed(entries)
    ]
    return Table(list(EVENT_COLUMNS), rows, title="Event log")


def relay_title(net: Any) -> str:
    """The ICE panel's headline: our relay candidate, or why there is none (the preflight's
    answer, which aiortc itself never gives)."""
    for peer_id in net.peers:
        relay = next((c for c in net.candidates(peer_id).local if c.type == "relay"), None)
        if relay is not None:
            return f"ICE candidates · relay {relay.endpoint}"
    report = net.turn_report
    if report is None:
        has_turn = any(u.startswith("turn") for s in net.config.ice_servers for u in s.url_list())
        why = "TURN not checked yet" if has_turn else "no TURN server configured"
        return f"ICE candidates · no relay candidate ({why})"
    chosen = report.chosen_check
    if chosen is None:
        return f"ICE candidates · no relay candidate: {report.failure()}"
    return f"ICE candidates · relay ready via {chosen.url} ({chosen.relay})"
