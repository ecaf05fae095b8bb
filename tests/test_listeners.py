"""The one add-handler / return-remover / call-and-log helper the stores and the log share."""

from __future__ import annotations

import logging

import pytest

from volli_nb.base.listeners import Listeners
from volli_nb.core.eventlog import EventLog


def test_handlers_run_in_order_and_a_failing_one_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[str] = []
    listeners = Listeners[[str]]("test handler", logging.getLogger("volli-test"))

    def broken(_text: str) -> None:
        raise RuntimeError("boom")

    listeners.add(lambda t: got.append("first " + t))
    listeners.add(broken)
    listeners.add(lambda t: got.append("last " + t))
    with caplog.at_level(logging.ERROR, logger="volli-test"):
        listeners.emit("x")
    assert got == ["first x", "last x"]
    assert [r.getMessage() for r in caplog.records] == ["test handler failed"]


def test_the_remover_is_idempotent_and_a_handler_may_remove_itself_while_called() -> None:
    got: list[int] = []
    listeners = Listeners[[int]]("h", logging.getLogger("volli-test"))
    removers = []

    def once(n: int) -> None:
        got.append(n)
        removers[0]()

    removers.append(listeners.add(once))
    listeners.add(lambda n: got.append(-n))
    listeners.emit(1)
    listeners.emit(2)
    removers[0]()  # again: nothing happens
    assert got == [1, -1, -2] and len(listeners) == 1


def test_handlers_may_take_several_arguments() -> None:
    got: list[tuple[bytes, str]] = []
    listeners = Listeners[[bytes, str]]("on_delivered handler", logging.getLogger("volli-test"))
    listeners.add(lambda mid, peer: got.append((mid, peer)))
    listeners.emit(b"id", "peer")
    assert got == [(b"id", "peer")]


def test_the_event_log_keeps_logging_past_a_broken_listener() -> None:
    log = EventLog()
    seen: list[str] = []
    log.subscribe(lambda _e: 1 / 0)
    remove = log.subscribe(lambda e: seen.append(e.message))
    log.add("queue", "one")
    remove()
    log.add("queue", "two")
    assert seen == ["one"] and [e.message for e in log] == ["one", "two"]
