"""The ratchet picture: its content from session summaries (ratchet_model.py), its drawing
(ratchet_svg.py), the DH step in the sequence diagram, and the live panel over real
stores (ratchet.py)."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

import pytest
from netutil import open_store, pair
from test_network import arun

from volli_nb.core.crypto.session_view import RECEIVE, SEND
from volli_nb.core.eventlog import EventLog
from volli_nb.lab.channel_pair import ChannelPair
from volli_nb.ui.widgets import RatchetPanel, ratchet_view
from volli_nb.ui.widgets.ratchet_model import NEXT, ratchet_picture
from volli_nb.ui.widgets.ratchet_svg import render_html
from volli_nb.ui.widgets.sequence_model import SequenceModel
from volli_nb.ui.widgets.sequence_steps import NETWORK
from volli_nb.ui.widgets.sequence_svg import render_svg


def states(row) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    return [(b.n, b.state) for b in row.boxes]


def conversation() -> tuple[ChannelPair, str, str]:
    """alice sends three, bob answers, alice sends three more of which the last arrives first."""
    pair_ = ChannelPair(random=random.Random(1).randbytes)
    a, b = pair_.names
    for i in range(3):
        pair_.deliver(pair_.send(a, f"a{i}"))
    pair_.deliver(pair_.send(b, "b0"))
    late = [pair_.send(a, f"c{i}") for i in range(3)]
    pair_.deliver(late[2])
    pair_.deliver(late[0])
    return pair_, a, b


def test_each_chain_is_a_row_of_keys_used_held_and_next() -> None:
    pair_, _a, b = conversation()
    picture = ratchet_picture(pair_.summary(b), me="bob", peer="alice")
    rows = {(r.direction, r.chain): r for r in picture.rows}
    summary = pair_.summary(b)
    current = rows[(RECEIVE, summary.receiving_chain)]
    assert current.current and states(current) == [
        (0, "used_held"),
        (1, "held"),
        (2, "used"),
        (3, NEXT),
    ]
    assert "expires in 1 h 00 min" in current.boxes[1].note
    first = next(r for r in picture.rows if r.direction == RECEIVE)
    assert not first.current and states(first) == [(0, "used"), (1, "used"), (2, "used")]
    assert rows[(SEND, summary.sending_chain)].boxes[-1].state == NEXT
    assert picture.counts == {"sent": 1, "received": 5, "steps": summary.dh_steps, "held": 1}
    assert picture.stats[-1] == "1 skipped key held"
    # a row's DH step: the one that started it, in order
    assert [r.step for r in picture.rows] == sorted(r.step for r in picture.rows)


def test_expiry_is_drawn_and_long_chains_and_old_chains_are_counted_not_drawn() -> None:
    pair_, a, b = conversation()
    pair_.advance(3600)
    row = next(
        r for r in ratchet_picture(pair_.summary(b)).rows if r.current and r.direction == RECEIVE
    )
    assert (1, "expired") in states(row)
    for _ in range(20):
        pair_.deliver(pair_.send(b, "more"))
    mine = ratchet_picture(pair_.summary(b), max_keys=5)
    sending = next(r for r in mine.rows if r.current and r.direction == SEND)
    assert sending.hidden == 16 and [s for _, s in states(sending)] == ["used"] * 4 + [NEXT]
    for i in range(8):  # direction changes: new chains each time
        pair_.deliver(pair_.send((a, b)[i % 2], "turn"))
    many = ratchet_picture(pair_.summary(a), max_chains=4)
    assert len(many.rows) == 4 and many.earlier > 0


def test_the_drawing_names_public_keys_counts_and_every_key_state() -> None:
    pair_, _a, b = conversation()
    pair_.advance(3600)
    view = ratchet_view(pair_.summary(b), me="bob", peer="alice <x>")
    page = view._repr_html_()
    assert 'data-sent="1"' in page and 'data-received="5"' in page and 'data-held="0"' in page
    for state in ("used", "used_held", "expired", "next"):
        assert f'class="k k-{state}"' in page
    assert "alice &lt;x&gt;" in page and "<x>" not in page  # names are escaped
    assert "message key 1: held as a skipped key for a message not" not in page  # expired
    text = repr(view)
    assert text.splitlines()[0] == "bob ⇄ alice <x>: the Double Ratchet (bob is the " + (
        "initiator)" if pair_.keys[b].initiator else "responder)"
    )
    assert re.search(r"← receiving [0-9a-f]{8}  DH step \d +0✓ 1✕ 2✓ →3", text)
    fresh = ChannelPair(random=random.Random(1).randbytes)
    held = fresh.send(fresh.names[0], "x")
    fresh.deliver(fresh.send(fresh.names[0], "y"))
    assert held and "59m" not in render_html(ratchet_picture(fresh.summary(fresh.names[1])))
    assert ">1h00<" in render_html(ratchet_picture(fresh.summary(fresh.names[1])))


def test_a_dh_step_is_marked_in_the_sequence_diagram() -> None:
    log = EventLog()
    entry = log.add(
        "dtls",
        "DH ratchet step 2 (session 0a1b2c3d): …",
        peer_id="bobpeerid0000000",
        kind="session.dh_step",
        session="0a1b2c3d",
        step=2,
        chain="91bc00aa",
    )
    model = SequenceModel()
    (arrow,) = model.add(entry)
    assert (arrow.source, arrow.target, arrow.style, arrow.tone) == (
        NETWORK,
        "bobpeerid0000000",
        "note",
        "key",
    )
    assert arrow.label == "⟳ DH ratchet step 2: {peer}'s new key 91bc00aa"
    assert ("DH ratchet step", "2") in arrow.details
    assert "bob&#x27;s new key 91bc00aa" in render_svg(model, lambda _p: "bob")


@pytest.mark.network
def test_the_panel_and_the_peers_table_follow_a_live_session(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        panel = RatchetPanel(alice, bob.peer_id)
        assert "no session with" in panel.view.value
        await pair(alice, bob)
        panel.refresh()
        before = panel.view.value
        assert 'data-sent="0"' in before and "alice ⇄ bob" in before
        for sender, receiver in ((alice, bob), (bob, alice), (alice, bob)):
            sent = await sender.send_message(receiver.peer_id, "turn")
            await sender.wait_delivered(sent.message_id)
        panel.refresh()
        summary = alice.sessions.summary(bob.peer_id)
        assert summary is not None and (summary.sent, summary.received) == (2, 1)
        assert 'data-sent="2"' in panel.view.value and 'data-received="1"' in panel.view.value
        steps = [e for e in alice.log.entries() if e.data.get("kind") == "session.dh_step"]
        assert len(steps) == summary.dh_steps - (0 if summary.initiator else 1) >= 1
        from volli_nb.ui.widgets import peers_table

        (row,) = peers_table(alice, alice.clock()).rows
        assert re.fullmatch(rf"{summary.session} · \d+ s", row["session"].lines[0])
        assert row["session"].lines[1:] == (
            f"{summary.dh_steps} DH step" + ("" if summary.dh_steps == 1 else "s"),
            "0 skipped held",
        )
        snapshot = panel.snapshot()
        await alice.network_store.disconnect(bob.peer_id)
        await asyncio.sleep(0)
        panel.refresh()
        assert "no session with bob" in panel.view.value
        assert snapshot is not None and "sent 2" in repr(snapshot)  # the frozen copy stays
        panel.close()
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_the_compromise_timeline_marks_the_theft_the_reads_and_the_healing() -> None:
    from volli_nb.ui.widgets.timeline import Beat, CompromiseTimeline

    beats = [Beat("alice", "a0", False, True), Beat("bob", "b1", True, True)]
    beats += [Beat("alice", "a2", True, True), Beat("bob", "b3", False, True)]
    timeline = CompromiseTimeline(beats, names=("alice", "bob"), victim="bob", copied_at=1)
    assert timeline.healed_at == 3 and timeline.read_after == ["b1", "a2"]
    lines = repr(timeline).splitlines()
    assert lines[1] == "── the thief copies bob's live ratchet state ──"
    assert lines[4] == "── healed: the thief reads no more ──"
    assert lines[2].split() == [
        "bob",
        "→",
        "alice",
        "b1",
        "READ",
        "by",
        "the",
        "thief",
        "(new",
        "ratchet",
        "key)",
    ]
    page = timeline._repr_html_()
    assert page.count('class="beat read"') == 2 and page.count('class="beat closed"') == 2
    assert "thief copies bob&#x27;s state" in page and ">healed<" in page
    assert "after the theft the thief read: b1, a2" in page
