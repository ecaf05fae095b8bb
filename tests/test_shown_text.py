"""Strings from others on our screens: shown, never acting (from a review of the surfaces).

A peer controls its messages' text and its goodbye reason, a signaling server its error
frames, a room member the error it says our pairing hit; each reaches the event log, the
shell's lines or a progress bar.  On a terminal an escape sequence clears the screen, a
backspace writes over the sender's name and a newline forges a line; in a notebook the
first text of a tqdm bar was put into its HTML as is.
"""

from __future__ import annotations

from typing import Any

import ipywidgets
import pytest

from volli_nb.core.eventlog import EventLog, clip
from volli_nb.core.progress import ProgressFeed
from volli_nb.core.shown_text import shown
from volli_nb.ui.progress import ProgressBars, outcome_line
from volli_nb.ui.shell_helpers import incoming_line
from volli_nb.ui.widgets import models

HOSTILE = "bye\x1b[2J\x1b]0;pwned\x07\b\b\r\u202eevil\n12:00 alice: wire me money"


def acts(text: str) -> bool:
    """Whether ``text`` holds a character a terminal would act on."""
    return any(not c.isprintable() for c in text)


def test_what_would_act_on_a_terminal_is_shown_escaped() -> None:
    assert shown("hello, wörld ✓ 你好") == "hello, wörld ✓ 你好"
    assert shown("a\x1b[31mb") == "a\\x1b[31mb"
    assert shown("line\nnext\r\t\b") == "line⏎next␍ \\x08"
    assert shown("\u202eevil\u200b") == "\\u202eevil\\u200b"
    assert not acts(shown(HOSTILE))


def test_a_huge_text_is_clipped_from_its_head_only() -> None:
    text = "x" * (12 * 2**20)
    assert clip(text, 40) == "x" * 39 + "…"
    assert clip(HOSTILE, 200).startswith("bye\\x1b[2J") and not acts(clip(HOSTILE, 200))


def test_an_event_line_quoting_a_peer_cannot_forge_another_line() -> None:
    log = EventLog()
    log.add("connection", f"closed by the peer: {HOSTILE}", peer_id="mallory")
    (line,) = [entry.format() for entry in log.entries()]
    assert not acts(line) and "⏎12:00 alice" in line


def test_a_message_cannot_write_over_its_senders_name_in_the_shell() -> None:
    class Message:
        sender, time, text = "m" * 16, "12:00", "\b" * 9 + "alice: hi (it's me)"

    line = incoming_line(Store("m" * 16, "mallory"), Message())
    assert line.startswith("← 12:00 mallory: \\x08") and "\b" not in line


def test_a_message_with_a_newline_stays_one_line_of_history() -> None:
    class Message:
        direction, sender, status, time = "in", "m" * 16, "received", "12:00"
        text = "hi\n12:01 alice: wire me 500€"

    store = Store("m" * 16, "mallory", [Message()])
    assert models.chat_lines(store, "c") == ["mallory: hi⏎12:01 alice: wire me 500€"]


def test_a_progress_outcome_quoting_a_peer_is_shown_escaped() -> None:
    feed = ProgressFeed()
    key = f"receive:{'ab' * 16}:{'p' * 16}"
    feed.start(key, "abababab ← pppppppp", total=10, unit="B", stage="receiving")
    update = feed.finish(key, f"incomplete: {HOSTILE}", failed=True)
    assert update is not None and not acts(outcome_line(update))


def test_a_notebook_bar_never_puts_a_name_into_its_html_unescaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tqdm.notebook

    values: list[str] = []

    class Recorded(ipywidgets.HTML):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.observe(lambda change: values.append(change["new"]), names="value")

    monkeypatch.setattr(tqdm.notebook, "HTML", Recorded)
    feed = ProgressFeed()
    ProgressBars(feed, "notebook", names=lambda _peer: "<img src=x onerror=alert(1)>")
    peer = "p" * 16
    feed.start(f"receive:{'ab' * 16}:{peer}", f"abababab ← {peer[:8]}", total=None, unit="B")
    assert values and all("<img" not in v for v in values)
    assert any("&lt;img" in v for v in values)


class Store:
    """What ``Names`` and ``chat_lines`` read of a store: one named contact, a history."""

    def __init__(self, peer: str, name: str, history: list[Any] | None = None) -> None:
        contact = type("Contact", (), {"peer_id": peer, "name": name})
        self.peer_id, self.contacts, self._history = "me", [contact], history or []

    def history(self, _conversation: str) -> list[Any]:
        return self._history
