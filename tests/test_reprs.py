"""What a person sees when a value is printed: short, with clock times and short ids,
never a bytes literal or an epoch float (a notebook, the shell and a script print these)."""

from __future__ import annotations

import re

from volli_nb.app.chat import ChatMessage
from volli_nb.base.clock import VirtualClock
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.eventlog import EventLog, clip, wall_clock
from volli_nb.core.sdp import parse_candidate
from volli_nb.core.store.contacts import Contact
from volli_nb.core.store.history import Conversation
from volli_nb.core.store.outbox_rows import QueuedMessage, Status
from volli_nb.net.events import CandidateView

# Float seconds or integer milliseconds (an ICE priority is a 10-digit int, not a time).
EPOCH = re.compile(r"\b1[6-9]\d{8}\.\d+\b|\b1[6-9]\d{11}\b")
BYTES = re.compile(r"(?<![\w'\"])b['\"]")
NOW = 1_800_000_000.25


def readable(text: str, limit: int = 200) -> str:
    assert not EPOCH.search(text), f"an epoch in {text!r}"
    assert not BYTES.search(text), f"a bytes literal in {text!r}"
    assert len(text) < limit, f"{len(text)} characters: {text!r}"
    return text


def test_a_chat_message_reads_as_a_line() -> None:
    ms = int(NOW * 1000)
    m = ChatMessage(
        b"\x23\x27\xa3T" * 4, "dm-a-b", "rlin5kunfxterf72", "in", "hi\nthere", ms, "received"
    )
    text = readable(repr(m))
    assert text == f"<ChatMessage 2327a354 in from rlin5kun {m.time} 'hi there' received>"
    assert str(m) == f"{wall_clock(NOW)[:8]} rlin5kun: hi\nthere"
    assert readable(repr([m, m])).count("ChatMessage") == 2  # a history list stays short
    named = ChatMessage(*vars(m).values())
    object.__setattr__(named, "sender_name", "bob")
    assert (
        repr(named) == f"<ChatMessage 2327a354 in from bob (rlin5kun) {m.time} 'hi there' received>"
    )
    assert str(named).endswith(" bob: hi\nthere") and named == m  # the name is not compared
    long = ChatMessage(m.message_id, "c", "me", "out", "x" * 500, int(NOW * 1000), "pending")
    assert "…" in readable(repr(long)) and "out" in repr(long)


def test_candidates_and_the_candidate_view() -> None:
    host = parse_candidate("candidate:16572de626 1 udp 2130706431 127.0.0.1 35579 typ host")
    srflx = parse_candidate(
        "candidate:2 1 udp 1694498815 203.0.113.5 4000 typ srflx raddr 10.0.0.2 rport 5000"
    )
    assert readable(repr(host)) == "CandidateInfo(host udp 127.0.0.1:35579)"
    assert repr(srflx) == "CandidateInfo(srflx udp 203.0.113.5:4000 from 10.0.0.2:5000)"
    assert str(host) == "host 127.0.0.1:35579"
    view = CandidateView([host], [srflx], (host, srflx))
    assert readable(repr(view)) == (
        "CandidateView(1 local, 1 remote, selected: host 127.0.0.1:35579 ↔ srflx 203.0.113.5:4000)"
    )
    assert "none yet" in repr(CandidateView([], [], None))
    table = readable(view._repr_html_().replace("</tr>", "</tr>\n"), 1000).splitlines()
    assert len(table) == 4 and "127.0.0.1:35579" in table[1] and "✔" in table[2]


def test_a_queue_row_an_event_and_a_peer() -> None:
    row = QueuedMessage(
        7, bytes(range(16)), "dm-x", "kq4vxce5dq7im7si", Status.PENDING, 1, NOW + 1,
        "peer offline", NOW, NOW, 1, b"payload",
    )  # fmt: skip
    text = readable(repr(row))
    assert text == (
        f"<QueuedMessage row 7: 00010203 → kq4vxce5, pending, 1 failed attempt, "
        f"next attempt {wall_clock(NOW + 1)}, last error: peer offline>"
    )
    log = EventLog(clock=VirtualClock(NOW))
    entry = log.add("queue", "queued 00010203", peer_id="p1", clock=NOW, due_at=NOW + 1)
    assert readable(repr(entry)) == f"<LogEntry {entry.format()}>" and str(entry) == entry.format()
    assert readable(repr(log)) == "<EventLog: 1 entries; .tail(n) prints the last n>"
    assert f"<td>{entry.wall_clock}</td>" in log._repr_html_()
    assert "the last 1 of 1 entries" in log._repr_html_()

    public = Identity.generate().public
    assert readable(repr(public)).startswith(f"PublicIdentity({public.peer_id}: identity key ")
    contact = Contact(
        public.peer_id, public.identity_key, public.device_key, public.device_signature,
        "bob", False, NOW, NOW + 5,
    )  # fmt: skip
    assert readable(repr(contact)) == (
        f"<Contact bob {public.peer_id}, not verified, last seen {wall_clock(NOW + 5)}>"
    )
    conversation = Conversation("dm-a-b", None, ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"), NOW)
    assert readable(repr(conversation)) == "<Conversation dm-a-b: aaaaaaaa, bbbbbbbb>"


def test_clip_keeps_one_line() -> None:
    assert clip("a\n b\tc", 10) == "a b c"
    assert clip("x" * 12, 10) == "x" * 9 + "…"
