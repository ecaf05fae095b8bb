"""What each event-log entry draws in the sequence diagram: the rules, entry → steps.

A step is an arrow before it is numbered and timed: from one lifeline to another, a
label, a style.  :func:`steps_for` holds the story's vocabulary (a call into the store,
a frame on the wire, an ACK, a retry timer, a stuck message, a peer going offline, the
session's handshake and DH ratchet steps), so
the model (:mod:`.sequence_model`) only keeps, numbers and describes arrows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from volli_nb.core.eventlog import LogEntry

UI, STORE, QUEUE, NETWORK = "UI", "Store", "Queue", "Network"
LIFELINES = (UI, STORE, QUEUE, NETWORK)
PEER = "peer"  # stands for the entry's peer lifeline in the rules below
NAME = "{peer}"  # stands for the peer's name in a label, filled in when drawn
MAX_IDS_SHOWN = 4


@dataclass(frozen=True)
class Step:
    source: str
    target: str
    label: str
    style: str = "call"
    tone: str = ""


def _short(value: Any) -> str:
    return str(value)[:8]


def ids_text(data: dict[str, Any], *, full: bool = False) -> str:
    ids = data.get("message_ids") or ([data["message_id"]] if "message_id" in data else [])
    count = int(data.get("count") or len(ids))
    shown = ", ".join(str(i) if full else _short(i) for i in ids[:MAX_IDS_SHOWN])
    return shown + (f" … ({count} in all)" if count > MAX_IDS_SHOWN else "")


def size_text(n: Any) -> str:
    n = float(n)
    if n < 1000:
        return f"{n:.0f} B"
    return f"{n / 1000:.1f} KB" if n < 1_000_000 else f"{n / 1_000_000:.2f} MB"


def _tail(message: str, prefix: str) -> str:
    return message[len(prefix) :] if message.startswith(prefix) else message


def _frame_steps(entry: LogEntry) -> list[Step]:
    data, out = entry.data, entry.data.get("direction") == "out"
    label = _tail(entry.message, "sent " if out else "received ")
    kind = entry.data.get("frame", "")
    if kind == "HELLO":
        label = label.replace("HELLO", "HELLO: handshake + channel binding", 1)
    if kind == "ACK":  # every ACK is signed; "ACK for 1 <id>" reads as "ACK for <id>"
        label = "signed " + label.replace("ACK for 1 ", "ACK for ", 1)
    style = "reply" if kind == "ACK" else "call"
    tone = "bad" if kind == "BYE" else "wire"
    if kind == "BYE" and data.get("reason"):
        label = f"BYE: {data['reason']}"
    return [
        Step(NETWORK, PEER, label, style, tone) if out else Step(PEER, NETWORK, label, style, tone)
    ]


def _kind_steps(entry: LogEntry) -> list[Step] | None:
    """Entries that carry a ``kind``: what the app, the queue and the trace report."""
    data = entry.data
    kind = data.get("kind")
    mid = _short(data.get("message_id", ""))
    if isinstance(kind, str) and kind.startswith("group."):
        return _group_steps(entry)
    if kind == "message.queued" and data.get("group"):  # one row per member: the fan-out
        members = len(data.get("recipients") or ())
        return [
            Step(UI, STORE, f"send_message(group) → {mid}"),
            Step(STORE, QUEUE, f"enqueue {mid} ×{members}, bound to v{data.get('version')}",
                 tone="queue"),
        ]  # fmt: skip
    if kind == "message.queued":
        return [
            Step(UI, STORE, f"send_message(…) → {mid}"),
            Step(STORE, QUEUE, f"enqueue {mid} (persisted)", tone="queue"),
        ]
    if kind == "message.sent":
        attempt = int(data.get("attempt", 1))
        again = f", attempt {attempt}" if attempt > 1 else ""
        return [
            Step(STORE, STORE, f"encrypt for {NAME} ({size_text(data.get('bytes', 0))})"),
            Step(STORE, NETWORK, f"send {mid}{again}"),
        ]
    if kind == "message.delivered":
        return [Step(STORE, UI, f"✓ delivered {mid}", "reply", "ok")]
    if kind == "message.received":
        return [
            Step(NETWORK, STORE, f"on_message {mid}"),
            Step(STORE, STORE, "verify, decrypt, store"),
            Step(STORE, UI, "update conversation", "reply", "ok"),
        ]
    if kind == "ack.verified":  # the seed's "Delivered": the ACK's signature checked
        return [Step(NETWORK, STORE, f"ACK signature ok: {ids_text(data)}", "reply", "ok")]
    if kind == "queue.retry":
        why = f"attempt {data.get('attempts', '?')} failed: {data.get('reason', '?')}"
        label = f"{NAME}: retry in {data['wait']:g} s ({why})"
        return [Step(QUEUE, QUEUE, label, tone="queue")]
    if kind == "queue.stuck":
        return [Step(QUEUE, UI, f"stuck {mid} to {NAME}: retry by hand", "reply", "bad")]
    if kind == "queue.manual":
        return [Step(UI, QUEUE, f"manual {entry.message}", tone="queue")]
    if kind == "session.rekeyed":
        return [Step(NETWORK, PEER, f"re-keyed: new session {data.get('session', '?')}", "note")]
    if kind == "session.dh_step":  # a new ratchet key from the peer: new chains both ways
        step, chain = data.get("step", "?"), data.get("chain", "?")
        label = f"⟳ DH ratchet step {step}: {NAME}'s new key {chain}"
        return [Step(NETWORK, PEER, label, "note", "key")]
    if kind == "queue.returned":  # the peer's return releases what went stuck while away
        count = data.get("count", "?")
        return [Step(NETWORK, QUEUE, f"{NAME} is back: {count} stuck → due again", tone="queue")]
    if isinstance(kind, str) and kind.startswith("frame."):
        return _frame_steps(entry)
    return None


def _group_steps(entry: LogEntry) -> list[Step]:
    """A group's story: a membership change, the fan-out (one body, a key wrap per member
    attempted now), a message held for its record, its release, a lost concurrent change."""
    data, kind = entry.data, entry.data.get("kind")
    if kind == "group.changed":
        return [Step(STORE, STORE, f"record v{data.get('version')}: {entry.message}", "note")]
    if kind == "group.fanout":
        now, waiting = len(data.get("now") or ()), len(data.get("waiting") or ())
        label = f"seal {_short(data.get('message_id'))} once: 1 body, {now} key wrap(s)"
        steps = [Step(STORE, STORE, label)]
        if waiting:
            steps.append(Step(STORE, QUEUE, f"{waiting} member(s) offline: wait", tone="queue"))
        return steps
    if kind == "group.held":
        return [Step(NETWORK, STORE, f"held {_short(data.get('message_id'))}: record not held",
                     "reply", "queue")]  # fmt: skip
    if kind == "group.fetch":
        return [Step(STORE, NETWORK, f"fetch the record from {NAME}")]
    if kind == "group.released":
        return [Step(STORE, UI, f"released {ids_text(data)} in order", "reply", "ok")]
    if kind in ("group.conflict", "group.removed", "group.refused"):
        return [Step(STORE, UI, entry.message, "note", "bad")]
    return []


# (category, message prefix) → steps, for entries that carry no ``kind``.
_TEXT_RULES: list[tuple[str, str, Callable[[LogEntry], list[Step]]]] = [
    (
        "signaling",
        "created offer",
        lambda e: [
            Step(STORE, NETWORK, f"create offer ({e.data.get('candidates', '?')} ICE cand.)")
        ],
    ),
    (
        "signaling",
        "created answer",
        lambda e: [
            Step(STORE, NETWORK, f"create answer ({e.data.get('candidates', '?')} ICE cand.)")
        ],
    ),
    (
        "signaling",
        "pairing code created",
        lambda e: [Step(STORE, UI, "pairing code (offer + identity)", "reply")],
    ),
    (
        "signaling",
        "accepted offer from",
        lambda e: [
            Step(STORE, UI, f"answer code (accepted {_tail(e.message, 'accepted ')})", "reply")
        ],
    ),
    (
        "signaling",
        "applied remote answer",
        lambda e: [Step(STORE, NETWORK, f"apply answer from {NAME}")],
    ),
    (
        "connection",
        "connection state connected",
        lambda e: [Step(NETWORK, PEER, "ICE + DTLS connected", "note")],
    ),
    (
        "connection",
        "connection state failed",
        lambda e: [Step(NETWORK, PEER, "connection failed", "note", "bad")],
    ),
    (
        "connection",
        "peer offline",
        lambda e: [
            Step(NETWORK, STORE, _tail(e.message, "peer ").replace(":", " —", 1), "reply", "bad")
        ],
    ),
    ("ice", "selected pair", lambda e: [Step(NETWORK, PEER, e.message, "note")]),
    ("channel", "data channel open", lambda e: [Step(NETWORK, PEER, "data channel open", "note")]),
    (
        "channel",
        "peer said bye",
        lambda e: [Step(NETWORK, PEER, e.message, "note", "bad")],
    ),
    (
        "dtls",
        "channel binding verified",
        lambda e: [
            Step(
                NETWORK,
                STORE,
                f"{NAME} online (handshake verified, session {e.data.get('session', '?')})",
                "reply",
                "ok",
            )
        ],
    ),
    ("queue", "flushed", lambda e: [Step(QUEUE, STORE, e.message + " (peer back)", tone="queue")]),
    (
        "queue",
        "",  # "<peer> offline: messages wait in the outbox"
        lambda e: (
            [Step(QUEUE, QUEUE, "messages wait in the outbox", "note", "queue")]
            if "messages wait in the outbox" in e.message
            else []
        ),
    ),
    ("error", "", lambda e: [Step(NETWORK, NETWORK, f"⚠ {e.message}", "note", "bad")]),
]


def steps_for(entry: LogEntry) -> list[Step]:
    """The arrows one log entry draws (none for state chatter)."""
    steps = _kind_steps(entry)
    if steps is not None:
        return steps
    for category, prefix, make in _TEXT_RULES:
        if entry.category == category and entry.message.startswith(prefix):
            return make(entry)
    return []


__all__ = [
    "LIFELINES",
    "NAME",
    "NETWORK",
    "PEER",
    "QUEUE",
    "STORE",
    "UI",
    "Step",
    "ids_text",
    "size_text",
    "steps_for",
]
