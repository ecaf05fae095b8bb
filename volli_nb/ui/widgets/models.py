"""What each panel shows, computed from the store's public API: plain rows, no widgets.

Panels render these rows; tests and the shell read them without a browser.  ``now`` is
passed in so countdowns are deterministic under a virtual clock.  Peer ids show as
contact names where a name is known (the short id beside it, the full id on hover).
"""

from __future__ import annotations

import time
from typing import Any

from volli_nb.base.errors import VolliError
from volli_nb.core.body import decode_body
from volli_nb.core.eventlog import clip
from volli_nb.core.groups.record import is_group_id
from volli_nb.core.shown_text import shown
from volli_nb.core.store.message_queue import Status
from volli_nb.ui.widgets.cells import Cell, Names, Table, human_size, plural
from volli_nb.ui.widgets.ratchet_model import session_cell

__all__ = [
    "Table",
    "candidates_table",
    "chat_lines",
    "conversation_label",
    "events_table",
    "peers_table",
    "queue_table",
    "relay_title",
]

Row = dict[str, Any]


def _ago(now: float, then: float | None) -> str:
    return "—" if then is None else f"{max(0.0, now - then):.1f} s ago"


def _skew(net: Any, skew: float | None) -> str:
    """Their clock against ours; a warning sign past the threshold both sides warn at."""
    if skew is None:
        return "—"
    warn = " ⚠" if abs(skew) > net.config.clock_skew_warn else ""
    return f"{0.0 if abs(skew) < 0.05 else skew:+.1f} s{warn}"  # never "-0.0 s"


def _link_summary(net: Any, peer_id: str) -> Cell:
    """The ACK wait now, the stall estimate, and how much bundling saved."""
    quality, session = net.link_quality(peer_id), net.session_stats(peer_id)
    if quality is None or session is None:
        return Cell("—")
    wait, stalls = f"ACK wait {quality.ack_timeout():.0f} s", f"stalls {quality.loss:.0%}"
    shared = f"{plural(session.bundles_out, 'bundle')}, {plural(session.acks_in, 'ACK')}"
    text = f"{wait} · {stalls} · {plural(session.messages_out, 'msg')} in {shared}"
    return Cell(text, (wait, stalls, shared), sub=True)


def _pair(selected: Any) -> Cell:
    if not selected:
        return Cell("—")
    here, there = (f"{c.type} {c.endpoint}" for c in selected)
    return Cell(f"{here} ↔ {there}", (here, f"↔ {there}"), mono=True)


def _rtt(rtt: float | None, skew: str, seen: str) -> Cell:
    """The round trip, the clock difference and when we last heard (all about timing)."""
    text = "—" if rtt is None else f"{rtt * 1000:.1f} ms"
    return Cell(text, (text, f"clock {skew}", f"seen {seen}"), sub="⚠" not in skew)


def _traffic(stats: Any) -> Cell:
    inbound = f"in {plural(stats.messages_in, 'msg')}, {human_size(stats.bytes_in)}"
    outbound = f"out {plural(stats.messages_out, 'msg')}, {human_size(stats.bytes_out)}"
    return Cell(f"{inbound}; {outbound}", (inbound, outbound))


PEER_NOTES = {
    "peer": "the contact's name over the short peer id (hover: the full id)",
    "connection": "RTCPeerConnection.connectionState, and the ICE state under it",
    "selected pair": "the ICE candidate pair in use: ours ↔ theirs",
    "rtt": "round trip of our heartbeat pings; under it, their clock minus ours "
    "(⚠: far enough apart that messages are refused), and when we last heard from them",
    "link": "how long we wait for an ACK now, the stall estimate, and how many bundles "
    "and signed ACKs carried the messages we sent",
    "traffic": "messages and bytes received and sent on this connection",
    "session": "the channel's Double Ratchet session, started by a handshake that verified "
    "the channel binding (both DTLS certificates signed): its id and age, the DH ratchet "
    "steps so far, the skipped message keys held",
}


def peers_table(store: Any, now: float) -> Table:
    """Peers and their states: the seed's first debug command, as a table."""
    net = store.network_store
    names = Names(store)
    endpoint = net.get_sync_endpoint()
    present = set(store.room_session.online) if store.room_session is not None else set()
    warnings = _peer_warnings(store)
    rows: list[Row] = []
    for peer_id, pc in net.peers.items():
        row = _connected_row(net, peer_id, pc, now, verified=endpoint.get(peer_id, {}))
        row["session"] = session_cell(store.sessions.summary(peer_id), row["verified"] == "yes")
        rows.append(
            {
                "peer": names.cell(peer_id),
                "name": names.by_id.get(peer_id, ""),
                **row,
                "presence": "online" if peer_id in present else "",
                "warning": warnings.get(peer_id, ""),
            }
        )
    for peer_id in sorted((names.contacts | present | set(warnings)) - set(net.peers)):
        rows.append(
            {
                **dict.fromkeys(PEER_COLUMNS, "—"),
                "peer": names.cell(peer_id),
                "name": names.by_id.get(peer_id, ""),
                "connection": "offline",
                "ice": "—",
                "presence": "online" if peer_id in present else "",
                "warning": warnings.get(peer_id, ""),
            }
        )
    columns = list(PEER_COLUMNS)
    if store.room_session is not None:
        columns.append("presence")
    if any(row["warning"] for row in rows):
        columns.append("warning")
    flagged = frozenset(i for i, row in enumerate(rows) if row["warning"])
    return Table(
        columns,
        rows,
        highlight=flagged,
        title=_peers_title(store),
        notes=PEER_NOTES,
        wrap=frozenset({"warning"}),
        empty="none yet: pair with someone (a pairing code, or a room)",
    )


def _peer_warnings(store: Any) -> dict[str, str]:
    """Why a peer's row is flagged: name clashes, key changes, a failed pairing."""
    warnings: dict[str, str] = dict(store.contact_book.warnings)
    for peer_id, error in store.network_store.pairing_errors.items():  # on either side
        cause = f"pairing failed: {type(error).__name__}: {error}"
        warnings[peer_id] = f"{warnings[peer_id]}; {cause}" if peer_id in warnings else cause
    return warnings


def _connected_row(net: Any, peer_id: str, pc: Any, now: float, *, verified: Any) -> Row:
    """The columns a peer with a connection has: its state, path, timing and traffic."""
    stats = net.stats(peer_id)
    return {
        "verified": "yes" if verified.get("verified") else "no",
        "connection": Cell(
            pc.connectionState, (pc.connectionState, f"ICE {pc.iceConnectionState}"), sub=True
        ),
        "ice": pc.iceConnectionState,
        "selected pair": _pair(net.candidates(peer_id).selected),
        "rtt": _rtt(stats.rtt, _skew(net, stats.clock_skew), _ago(now, stats.last_seen)),
        "clock": _skew(net, stats.clock_skew),
        "link": _link_summary(net, peer_id),
        "traffic": _traffic(stats),
        "last seen": _ago(now, stats.last_seen),
    }


def _peers_title(store: Any) -> str:
    """The signaling connection's state, when rooms are in use: reconnecting shows why."""
    session = store.room_session
    if session is None:
        return "Peers"
    return f"Peers · signaling {session.status.describe(time.monotonic())}"


PEER_COLUMNS = (
    "peer",
    "connection",
    "selected pair",
    "rtt",
    "link",
    "traffic",
    "session",
)
# ``peers()`` in the shell: one short line a peer (the full id, to copy; no link details).
SHELL_PEER_COLUMNS = ("name", "peer", "verified", "connection", "ice", "rtt", "last seen")
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
    names = Names(store)
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
                    "peer": names.cell(peer_id),
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
    return Table(
        list(CANDIDATE_COLUMNS),
        rows,
        frozenset(highlight),
        title=relay_title(net),
        empty="none: no connection yet (candidates are read from each connection's SDP)",
    )


QUEUE_COLUMNS = ("row", "message", "to", "status", "attempts", "next retry", "last error")
QUEUE_NOTES = {
    "row": "the outbox row id: what retry now and discard take",
    "message": "the text, and the message id's first 8 hex digits",
    "attempts": "failed attempts so far (the schedule waits 1, 5, 15 and 60 s between them)",
    "next retry": "when the retry loop tries again, on the store's clock",
}


PREVIEW_MAX = 64 * 1024  # larger bodies are not inflated once a second for a preview


def _preview(payload: bytes, message_id: bytes) -> Cell:
    try:
        if not payload:
            text = "(erased)"
        elif len(payload) > PREVIEW_MAX:
            text = f"({human_size(len(payload))} of text)"
        else:
            text = repr(clip(decode_body(payload), 28))
    except VolliError:
        text = "(unreadable)"
    short = message_id.hex()[:8]
    return Cell(short, (text, short), sub=True, hover=message_id.hex())


def queue_table(store: Any, now: float) -> Table:
    """``get_pending()`` as console.table would show it, with a live countdown."""
    names = Names(store)
    rows: list[Row] = []
    for q in store.message_queue.get_pending():
        if q.status == Status.STUCK:
            countdown = "stuck: retry by hand"
        elif q.status == Status.HELD:
            countdown = "held until its cause clears"
        elif q.next_attempt_at is None:
            countdown = "—"
        else:
            countdown = f"in {max(0.0, q.next_attempt_at - now):.1f} s"
        to = names.cell(q.recipient)
        rows.append(
            {
                "row": q.id,
                "id": q.id,
                "message": _preview(q.payload, q.message_id),
                "to": Cell(to, to.lines, hover=f"{q.recipient} in {q.conversation_id}", sub=True),
                "recipient": q.recipient,
                "to name": names.label(q.recipient),
                "status": str(q.status),
                "attempts": q.attempts,
                "next retry": countdown,
                "last error": q.last_error or "",
            }
        )
    storage = getattr(getattr(store, "storage", None), "state", "ok")
    note = "" if storage == "ok" else f" (this profile's storage is {storage})"
    return Table(
        list(QUEUE_COLUMNS),
        rows,
        title="Pending queue" + note,
        notes=QUEUE_NOTES,
        wrap=frozenset({"last error"}),
        empty="none: nothing waits (every message was acknowledged)",
    )


MARKS = {
    "delivered": "✓",
    "pending": "…",
    "held": "…!",
    "stuck": "!",
    "received": "",
    "mixed": "…",
    "unknown": "?",
}  # unknown: its outbox row is gone and the pruner did not say delivered


def chat_lines(store: Any, conversation: str, *, times: bool = False) -> list[str]:
    """``me: hello ✓`` / ``bob: hi``: a conversation as lines, names where known."""
    names = Names(store)
    lines = []
    for m in store.history(conversation):
        who = "me" if m.direction == "out" else names.name(m.sender)
        mark = MARKS.get(m.status, m.status)
        when = f"{m.time} " if times else ""
        lines.append(f"{when}{who}: {shown(m.text[:500])} {mark}".rstrip())
    return lines


def conversation_label(store: Any, conversation: Any, names: Names | None = None) -> str:
    """``bob (fboimzj2)`` for a direct conversation; a group's title, or its members."""
    if is_group_id(conversation.id):  # its members change by version: see the groups panel
        return f"{conversation.title or conversation.id} (group)"
    names = names or Names(store)
    others = [m for m in conversation.members if m != store.peer_id] or list(conversation.members)
    if len(others) > 1 and conversation.title:
        return str(conversation.title)
    return ", ".join(names.label(m) for m in others)


EVENT_COLUMNS = ("time", "since start", "category", "peer", "message")


def events_table(
    log: Any,
    *,
    category: str | None = None,
    text: str = "",
    limit: int = 200,
    names: Names | None = None,
) -> Table:
    """Newest first, with wall-clock time (ms) and time since the first event."""
    entries = log.entries(category=category or None, text=text)[-limit:]
    rows = [
        {
            "time": e.wall_clock,
            "since start": e.since_start,
            "category": e.category,
            "peer": names.cell(e.peer_id, compact=True) if names else (e.peer_id or ""),
            "message": e.message,
        }
        for e in reversed(entries)
    ]
    return Table(
        list(EVENT_COLUMNS),
        rows,
        title="Event log (newest first)",
        wrap=frozenset({"message"}),
        empty="no events yet" if not (category or text) else "no event matches the filter",
        max_height=420,
    )


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
