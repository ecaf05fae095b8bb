"""SDP parsing for the ICE panel and channel binding; the event log."""

from __future__ import annotations

import json

import pytest

from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import MalformedFrame
from volli_nb.core.eventlog import EventLog
from volli_nb.core.sdp import candidates, fingerprint, parse_candidate

SDP = (
    "v=0\r\n"
    "a=candidate:abc 1 udp 2130706431 10.0.0.1 5000 typ host\r\n"
    "a=candidate:def 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 10.0.0.1 rport 5000\r\n"
    "a=candidate:ghi 1 udp 16777215 198.51.100.2 7000 typ relay raddr 0.0.0.0 rport 0\r\n"
    "a=fingerprint:sha-256 ab:cd:EF\r\n"
)


def test_candidates_are_parsed_with_types_and_related_addresses() -> None:
    found = candidates(SDP)
    assert [(c.type, c.endpoint) for c in found] == [
        ("host", "10.0.0.1:5000"),
        ("srflx", "203.0.113.7:6000"),
        ("relay", "198.51.100.2:7000"),
    ]
    assert found[1].related_address == "10.0.0.1" and found[1].related_port == 5000
    assert found[0].priority == 2130706431 and found[0].protocol == "udp"


def test_fingerprint_is_normalised_and_missing_is_none() -> None:
    assert fingerprint(SDP) == "AB:CD:EF"
    assert fingerprint("v=0\r\n") is None and fingerprint(None) is None


@pytest.mark.parametrize("line", ["candidate:x", "candidate:a 1 udp p 1.2.3.4 5 typ host", ""])
def test_bad_candidate_lines_raise_typed_errors(line: str) -> None:
    with pytest.raises(MalformedFrame):
        parse_candidate(line)


def test_event_log_filters_subscribes_and_dumps_json() -> None:
    clock = VirtualClock(100.0)
    log = EventLog(clock=clock, maxlen=3)
    seen: list[str] = []
    remove = log.subscribe(lambda e: seen.append(e.message))
    log.add("ice", "gathering", peer_id="p1")
    clock.advance(1)
    log.add("message", "sent abc", peer_id="p2", size=3)
    remove()
    log.add("error", "bad frame")
    log.add("ice", "checking")
    assert seen == ["gathering", "sent abc"]
    assert len(log) == 3  # bounded
    assert [e.message for e in log.entries(category="ice")] == ["checking"]
    assert [e.message for e in log.entries(text="SENT")] == ["sent abc"]
    dumped = json.loads(log.to_json())
    assert dumped[0]["data"] == {"size": 3} and dumped[0]["time"] == 101.0
