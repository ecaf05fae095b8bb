"""The sequence diagram's model, from a recorded event sequence (no network, no widgets):
arrow order, labels, details, the cap; and its SVG, HTML and mermaid forms.

``data/sequence-alice.json`` is alice's event log from a real run (``EventLog.to_json``):
pairing with bob, one message online, bob's reply, bob offline, retries at 1, 5, 15 and
60 s on a virtual clock, stuck, re-pairing, a manual retry, delivered.
``tests/test_sequence_live.py`` checks that a live store still logs what this expects."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from volli_nb.base.clock import VirtualClock
from volli_nb.core.eventlog import EventLog, LogEntry, load_entries
from volli_nb.ui.widgets.sequence_model import Arrow, SequenceModel, label_for
from volli_nb.ui.widgets.sequence_steps import LIFELINES, NETWORK, QUEUE, STORE, UI
from volli_nb.ui.widgets.sequence_svg import render_html, render_svg

DATA = Path(__file__).parent / "data"


def recorded(name: str = "alice") -> list[LogEntry]:
    return load_entries((DATA / f"sequence-{name}.json").read_text())


def bob_of(entries: list[LogEntry]) -> str:
    return next(e.peer_id for e in entries if e.category == "dtls" and e.peer_id)


def find(arrows: list[Arrow], pattern: str, start: int = 0) -> int:
    """Index of the first arrow at or after ``start`` whose label matches ``pattern``."""
    for i in range(start, len(arrows)):
        if re.search(pattern, arrows[i].label):
            return i
    raise AssertionError(f"no arrow {pattern!r} after #{start}: {[a.label for a in arrows]}")


def in_order(arrows: list[Arrow], *steps: tuple[str, str, str]) -> list[int]:
    """Each (source, target, label pattern) occurs, in this order; returns the indexes."""
    found, at = [], 0
    for source, target, pattern in steps:
        at = find(arrows, pattern, at)
        assert (arrows[at].source, arrows[at].target) == (source, target), (pattern, arrows[at])
        found.append(at)
        at += 1
    return found


def test_the_online_path_reads_like_the_seeds_first_diagram() -> None:
    entries = recorded()
    bob = bob_of(entries)
    model = SequenceModel()
    model.extend(entries)
    arrows = list(model.arrows)
    in_order(
        arrows,
        (STORE, NETWORK, r"^create offer \(1 ICE cand\.\)"),
        (STORE, UI, r"^pairing code"),
        (STORE, NETWORK, r"^apply answer from \{peer\}"),
        (NETWORK, bob, r"^ICE \+ DTLS connected"),
        (NETWORK, bob, r"^HELLO: handshake \+ channel binding"),
        (bob, NETWORK, r"^HELLO: handshake \+ channel binding"),
        (NETWORK, STORE, r"online \(handshake verified, session "),
        (UI, STORE, r"^send_message\(…\) → [0-9a-f]{8}$"),
        (STORE, QUEUE, r"^enqueue [0-9a-f]{8} \(persisted\)"),
        (STORE, STORE, r"^encrypt for \{peer\} \(1\.\d KB\)"),
        (STORE, NETWORK, r"^send [0-9a-f]{8}$"),
        (NETWORK, bob, r"^MESSAGE [0-9a-f]{8} \(1\.\d KB\)"),
        (bob, NETWORK, r"^signed ACK \(187 B\)"),
        (NETWORK, STORE, r"^ACK signature ok: [0-9a-f]{8}"),
        (STORE, UI, r"^✓ delivered [0-9a-f]{8}"),
    )
    send = arrows[find(arrows, r"^send_message")]
    message = arrows[find(arrows, r"^MESSAGE")]
    delivered = arrows[find(arrows, r"^✓ delivered")]
    mid = send.label[-8:]
    assert message.label.startswith(f"MESSAGE {mid}") and delivered.label.endswith(mid)
    assert send.style == "call" and delivered.style == "reply" and delivered.tone == "ok"
    assert arrows[find(arrows, r"^signed ACK")].style == "reply"  # dashed, as in the seed
    names = {bob: "bob"}.get
    assert label_for(arrows[find(arrows, r"^encrypt")], lambda p: names(p) or p).startswith(
        "encrypt for bob"
    )
    details = dict(message.details)
    assert details["messages"] == next(
        e.data["message_ids"][0] for e in entries if e.data.get("frame") == "MESSAGE"
    )
    assert details["size"].endswith("KB") and details["peer"] == bob
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} \(\+\d+\.\d{3} s\)", details["time"])
    assert details["after previous"].endswith(" ms")
    ack = dict(arrows[find(arrows, r"^ACK signature ok")].details)
    assert ack["round trip"].endswith(" ms")


def test_the_receive_path_reads_like_the_seeds_second_diagram() -> None:
    entries = recorded("bob")
    model = SequenceModel()
    model.extend(entries)
    alice = bob_of(entries)  # from bob's side, the verified peer is alice
    in_order(
        list(model.arrows),
        (alice, NETWORK, r"^MESSAGE [0-9a-f]{8}"),
        (NETWORK, STORE, r"^on_message [0-9a-f]{8}"),
        (STORE, STORE, r"^verify, decrypt, store"),
        (STORE, UI, r"^update conversation"),
        (NETWORK, alice, r"^signed ACK for [0-9a-f]{8} "),  # it leaves after the commit
    )


def test_the_offline_path_retries_at_1_5_15_60_then_stuck_then_manual_retry() -> None:
    entries = recorded()
    model = SequenceModel()
    model.extend(entries)
    arrows = list(model.arrows)
    offline = find(arrows, r"offline — disconnected locally")
    steps = in_order(
        arrows[offline:],
        (QUEUE, QUEUE, r"^messages wait in the outbox"),
        (UI, STORE, r"^send_message"),
        (STORE, QUEUE, r"^enqueue"),
        (QUEUE, QUEUE, r"^{peer}: retry in 1 s \(attempt 1 failed: peer offline\)"),
        (QUEUE, QUEUE, r"^{peer}: retry in 5 s \(attempt 2 failed: peer offline\)"),
        (QUEUE, QUEUE, r"^{peer}: retry in 15 s \(attempt 3 failed: peer offline\)"),
        (QUEUE, QUEUE, r"^{peer}: retry in 60 s \(attempt 4 failed: peer offline\)"),
        (QUEUE, UI, r"^stuck [0-9a-f]{8} to \{peer\}: retry by hand"),
        (UI, QUEUE, r"^manual retry all stuck: 1 row"),
        (STORE, NETWORK, r"^send [0-9a-f]{8}, attempt 6$"),
        (STORE, UI, r"^✓ delivered"),
    )
    retries = [arrows[offline + i] for i in steps[3:7]]
    # The virtual clock: each retry's details say when, on the store's clock.
    clocks = [dict(a.details)["store clock"] for a in retries]
    due = [dict(a.details)["next attempt"] for a in retries]
    assert clocks == ["+0 s", "+1 s", "+6 s", "+21 s"]
    assert due == ["+1 s", "+6 s", "+21 s", "+81 s"]
    assert [dict(a.details)["retry wait"] for a in retries] == ["1 s", "5 s", "15 s", "60 s"]
    stuck = arrows[offline + steps[7]]
    assert stuck.tone == "bad" and dict(stuck.details)["failed attempts"] == "5"
    assert arrows[offline].source == NETWORK and arrows[offline].target == STORE
    # The time column follows the store's virtual clock: the retries 1, 5, 15, 60 s apart
    # as their labels say (the log's own clock saw them a millisecond apart).
    first = retries[0].shown_since
    assert [round(a.shown_since - first) for a in [*retries, stuck]] == [0, 1, 6, 21, 81]
    assert retries[-1].since - retries[0].since < 1  # real time
    assert dict(stuck.details)["virtual clock"] == "+81 s ahead of real time"
    assert arrows[0].shown_since == arrows[0].since  # before any jump, real time


def test_state_chatter_draws_nothing_and_numbers_count_every_arrow() -> None:
    entries = recorded()
    model = SequenceModel()
    chatter = [e for e in entries if e.message.startswith(("gathering state", "signaling state"))]
    assert chatter and all(model.add(e) == [] for e in chatter)
    model.extend(entries)
    numbers = [a.number for a in model.arrows]
    assert numbers == list(range(1, len(numbers) + 1)) and model.total == len(numbers)
    assert model.lifelines() == [*LIFELINES, bob_of(entries)]


def test_the_cap_keeps_the_newest_arrows_and_counts_the_rest() -> None:
    entries = recorded()
    full = SequenceModel()
    full.extend(entries)
    capped = SequenceModel(cap=10)
    capped.extend(entries)
    assert len(capped.arrows) == 10 and capped.dropped == full.total - 10
    assert [a.label for a in capped.arrows] == [a.label for a in list(full.arrows)[-10:]]
    assert capped.arrows[0].number == full.total - 9  # numbers still count from the start
    assert f"{capped.dropped} earlier arrows not shown" in capped.to_mermaid()
    assert f"… {capped.dropped} earlier arrow(s) not shown" in render_svg(capped)
    assert 'data-dropped="' + str(capped.dropped) + '"' in render_html(capped)
    capped.clear()
    assert (capped.total, capped.dropped, list(capped.arrows)) == (0, 0, [])
    with pytest.raises(ValueError):
        SequenceModel(cap=0)


def test_svg_has_hover_titles_click_pins_and_escapes_text() -> None:
    log = EventLog(clock=VirtualClock(1_800_000_000.0))
    log.add("error", 'rejected frame: <script>alert("x")</script>', peer_id="p" * 16)
    model = SequenceModel()
    model.extend([*recorded(), *log])
    svg = render_svg(model, uid="t")
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.count('tabindex="0"') == len(model.arrows)  # every arrow can be clicked
    assert svg.count("<title>") == len(model.arrows) + len(model.lifelines())
    for arrow in model.arrows:  # each arrow pins its own details box on focus
        assert f".t:has(.a{arrow.number}:focus) .t{arrow.number}{{display:inline}}" in svg
        assert f'class="tip t{arrow.number}"' in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    html = render_html(model, uid="t2")
    assert "flex-direction:column-reverse" in html  # the box opens at the newest arrow
    assert html.count("<svg") == 2  # the header stays, the arrows scroll
    # Pinned details sit under the scroll box, as HTML, where scrolling cannot hide them.
    box_end = html.index('<div class="volli-seq-details">')
    assert 'class="tip t' not in html[:box_end]
    assert html.count('<div class="tip t') == len(model.arrows)
    assert "div.t2:has(.a1:focus) div.t1{display:block}" in html


def test_labels_are_whole_and_stay_inside_the_drawing() -> None:
    """A label may run past its arrow's ends (each arrow has its own row), so none is cut
    with "…"; each stays between the time column and the right edge."""
    entries = recorded()
    bob = bob_of(entries)
    model = SequenceModel()
    model.extend(entries)
    long = "MESSAGE 940a1ada (4.2 MB in 65 chunks)"
    model.add(
        LogEntry(
            entries[-1].time,
            "frame",
            bob,
            f"sent {long}",
            {"kind": "frame.message", "direction": "out", "frame": "MESSAGE"},
            entries[-1].since,
        )
    )
    svg = render_svg(model, {bob: "bob"}.get, uid="w")  # type: ignore[arg-type]
    assert "…" not in re.sub(r"<title>.*?</title>", "", svg, flags=re.S).replace("(…)", "")
    assert f">{long}<" in svg
    width = float(re.search(r'width="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    for x, anchor, text in re.findall(
        r'<text x="([\d.]+)" y="[\d.]+"( text-anchor="middle")?[^>]*>([^<]+)</text>', svg
    ):
        half = len(text) * 6.6 / 2 if anchor else 0
        left = float(x) - half
        right = float(x) + (half if anchor else len(text) * 6.6)
        assert left >= 0 and right <= width + 0.5, (text, left, right, width)


def test_mermaid_text_is_a_sequence_diagram_with_aliases_and_no_breaking_characters() -> None:
    entries = recorded()
    bob = bob_of(entries)
    log = EventLog()
    log.add("error", "odd; text #1")
    model = SequenceModel()
    model.extend([*entries, *log])
    text = model.to_mermaid({bob: "bob"}.get)  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[:6] == [
        "sequenceDiagram",
        "    participant UI",
        "    participant Store",
        "    participant Queue",
        "    participant Network",
        "    participant P4 as bob",
    ]
    assert "    P4-->>Network: signed ACK (187 B)" in lines
    assert "    Queue->>Queue: bob: retry in 60 s (attempt 4 failed: peer offline)" in lines
    assert "    Note over Network,P4: ICE + DTLS connected" in lines
    assert lines[-1] == "    Note over Network: ⚠ odd, text no. 1"


@pytest.fixture
def utc() -> Iterator[None]:
    import os

    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_event_times_read_as_wall_clock_and_time_since_the_first(utc: None) -> None:
    clock = VirtualClock(1_800_000_000.25)
    log = EventLog(clock=clock, maxlen=2)
    log.add("ice", "first")
    clock.advance(1.5)
    log.add("queue", "second", peer_id="p1")
    clock.advance(120.004)
    third = log.add("message", "third")
    assert third.wall_clock == "08:02:01.754" and third.since_start == "+2:01.504"
    assert log.entries()[0].format() == "08:00:01.750    +1.500 s queue      [p1] second"
    assert log.tail(1) == third.format() and EventLog().tail() == "(no events yet)"
    assert log.started == 1_800_000_000.25  # the origin stays when "first" falls off
    dumped = load_entries(log.to_json())
    assert [e.time for e in dumped] == [1_800_000_001.75, 1_800_000_121.754]  # exact floats
    assert '"wall_clock": "08:02:01.754"' in log.to_json()
