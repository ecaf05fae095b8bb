"""Signaling parts without sockets: TURN credentials, frame checks, TLS options, queues."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import pytest
from sample_sdp import SDP

from volli_nb.base.errors import MalformedFrame, UsageError
from volli_nb.core.claimed_name import MAX_NAME_BYTES, claimed_name
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.pairing_code import decode_code, encode_code
from volli_nb.net.signaling.admission import MAX_PENDING_PER_HOST, MAX_STRIKES, Admission, Verdict
from volli_nb.net.signaling.backend import Limits
from volli_nb.net.signaling.cli import build, parser, tls_context
from volli_nb.net.signaling.memory import MemoryBackend
from volli_nb.net.signaling.turn import (
    TurnCredentials,
    TurnIssuer,
    UntrustedTurnServer,
    vet_turn_urls,
)
from volli_nb.net.signaling.wire import SignalingError, parse_client_frame
from volli_nb.net.tls import client_tls


@pytest.mark.parametrize(
    ("secret", "urls", "ttl", "says"),
    [
        ("", ("turn:h:3478",), 60, "secret"),
        ("s", (), 60, "turn-url"),
        ("s", ("stun:h:3478",), 60, "turn: or turns:"),
        ("s", ("turn:h:3478",), 1, "at least 2"),
    ],
)
def test_turn_issuer_refuses_a_configuration_coturn_could_not_use(
    secret: str, urls: tuple[str, ...], ttl: float, says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        TurnIssuer(secret, urls, ttl)


def test_turn_credentials_name_their_expiry_and_survive_the_wire() -> None:
    issuer = TurnIssuer("s3cret", ("turns:turn.example.org:443?transport=tcp",), ttl=600)
    creds = issuer.issue("abcdefghijklmnop", now=1_000.7)
    assert creds.username == "1600:abcdefghijklmnop" and creds.expires == 1600
    assert creds.remaining(1_500.0) == 100
    assert TurnCredentials.from_frame(json.loads(json.dumps(creds.to_frame()))) == creds
    assert issuer.refresh_after() == 300
    wire = creds.to_frame()
    for broken in ({}, {**wire, "urls": ["http://x"]}, {**wire, "ttl": "x"}):
        with pytest.raises(MalformedFrame):
            TurnCredentials.from_frame(broken)


def test_signal_to_must_be_a_peer_id() -> None:
    good = Identity.generate().peer_id
    frame = {"type": "signal", "to": good, "data": {}}
    assert parse_client_frame(json.dumps(frame))["to"] == good
    for bad in ("", good.upper(), good + "a", good[:-1] + "1", good[:-1] + "é"):
        with pytest.raises(SignalingError) as refused:
            parse_client_frame(json.dumps({**frame, "to": bad}))
        assert refused.value.code == "bad-peer-id"


def test_a_register_frame_may_carry_a_showable_name_and_nothing_else() -> None:
    frame = {"type": "register", "identity": {}, "signature": "x"}
    assert "name" not in parse_client_frame(json.dumps(frame))
    assert parse_client_frame(json.dumps({**frame, "name": "Ada L."}))["name"] == "Ada L."
    for bad, code in [
        ("\x1b[2Jbob", "bad-name"),  # a terminal escape
        ("bob\u202e", "bad-name"),  # a bidi override
        (" bob", "bad-name"),
        ("", "bad-name"),
        ("b" * 65, "bad-name"),
        (7, "malformed"),
    ]:
        with pytest.raises(SignalingError) as refused:
            parse_client_frame(json.dumps({**frame, "name": bad}))
        assert refused.value.code == code, bad
    with pytest.raises(SignalingError, match="optionally"):
        parse_client_frame(json.dumps({**frame, "nick": "bob"}))


def test_a_claimed_name_keeps_only_what_is_harmless_to_show() -> None:
    assert claimed_name("  Ada  ") == "Ada"
    assert claimed_name("\x1b[2Jbob\u202e\n") == "[2Jbob"
    assert claimed_name("\u200b \t") is None and claimed_name(None) is None
    assert claimed_name(b"bob") is None
    long = claimed_name("é" * 40)  # 80 bytes of UTF-8: cut at a character, not a byte
    assert long == "é" * 32 and len(long.encode()) == MAX_NAME_BYTES
    code = encode_code("offer", SDP, Identity.generate().public, name="\x1b]0;pwned\x07eve")
    assert decode_code(code).name == "]0;pwnedeve"


def test_tls_options_are_checked_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a wss:// URL"):
        client_tls("ws://127.0.0.1:8765", "ca.pem")
    with pytest.raises(UsageError, match="cannot read the CA file"):
        client_tls("wss://127.0.0.1:8765", tmp_path / "missing.pem")
    context = ssl.create_default_context()
    assert client_tls("wss://h:1", context) is context
    assert client_tls("ws://h:1", None) is None
    with pytest.raises(UsageError, match="needs --certfile"):
        tls_context(None, "key.pem")
    with pytest.raises(UsageError, match="cannot load"):
        tls_context(str(tmp_path / "missing.pem"), None)


async def away_roommates(backend: MemoryBackend, sender: str, *away: str) -> None:
    """``sender`` stays in room ``r``; the others were in it too and left (went away)."""
    for peer in (sender, *away):
        await backend.claim(peer, f"conn-{peer}", {"peer_id": peer})
        await backend.join("r", peer)
    for peer in away:
        await backend.release(peer, f"conn-{peer}")


def test_queued_signals_expire_by_the_injected_clock_and_free_their_bytes() -> None:
    now = [0.0]
    backend = MemoryBackend(Limits(queue_ttl=30, max_queue=2), clock=lambda: now[0])
    to, sender = Identity.generate().peer_id, Identity.generate().peer_id

    async def main() -> None:
        await away_roommates(backend, sender, to)
        for n in range(3):  # the third pushes the first out: at most two per receiver
            assert not await backend.relay(sender, to, {"type": "signal", "n": n})
        counts = await backend.counts()
        assert counts.queued == 2 and backend._sender_bytes[sender] == counts.queued_bytes
        now[0] = 29.9
        assert (await backend.counts()).queued == 2
        now[0] = 30.1  # the first two were queued at 0: both expired now
        assert await backend.counts() == type(counts)(1, 1, 0, 0)  # the sender, in its room
        assert backend._sender_bytes == {}

    asyncio.run(main())


CREDS = TurnCredentials((), "1:x", "c", 1.0, 1.0)


@pytest.mark.parametrize(
    ("signaling", "urls", "allowed", "kept"),
    [  # (issue 26, item 6)
        ("wss://signal.example.org", ["turns:turn.example.org:443"], None, 1),  # shown
        ("wss://signal.example.org", ["turn:127.0.0.1:6379"], None, 0),  # into the user's
        ("wss://signal.example.org", ["turn:10.0.0.5:3478", "turn:[fe80::1]:3478"], None, 0),
        ("wss://signal.example.org", ["turn:169.254.169.254:80"], None, 0),  # metadata
        ("wss://9.9.9.9", ["turn:9.9.9.10:3478", "turn:192.168.1.1:3478"], None, 1),
        ("ws://10.0.0.2:8765", ["turn:10.0.0.3:3478"], None, 1),  # a private deployment
        ("ws://127.0.0.1:8765", ["turn:127.0.0.1:3478"], None, 1),  # a lab on this machine
        ("wss://s.example.org", ["turns:t.example.org:443", "turns:x.example:443"],
         ["T.example.org"], 1),
        ("wss://s.example.org", ["turns:s.example.org:443"], [], 1),  # its own host
        ("wss://s.example.org", ["turns:x.example:443"], [], 0),
    ],
)  # fmt: skip
def test_turn_urls_from_a_signaling_server_are_vetted(
    signaling: str, urls: list[str], allowed: list[str] | None, kept: int
) -> None:
    creds = TurnCredentials.from_frame({**CREDS.to_frame(), "urls": urls})
    if not kept:
        with pytest.raises(UntrustedTurnServer, match="may not use"):
            vet_turn_urls(creds, signaling, allowed)
        return
    assert len(vet_turn_urls(creds, signaling, allowed).urls) == kept


@pytest.mark.parametrize(
    "bad",
    [{"expires": float("nan")}, {"ttl": "60"}, {"ttl": True}, {"urls": "turn:h"},
     {"username": 5}, {"urls": [1]}, {"expires": 1e999}],
)  # fmt: skip
def test_unreadable_turn_credentials_are_malformed(bad: dict[str, object]) -> None:
    with pytest.raises(MalformedFrame):
        TurnCredentials.from_frame({**CREDS.to_frame(), "urls": ["turn:h:1"], **bad})


def test_connections_waiting_to_register_are_capped_in_all_and_per_address() -> None:
    admission = Admission(rate=1, burst=1, max_pending=3, max_pending_per_host=2)
    assert admission.enter("10.0.0.1") is None and admission.enter("10.0.0.1") is None
    assert "your address" in (admission.enter("10.0.0.1") or "")  # a third from one NAT
    assert admission.enter("10.0.0.2") is None
    assert "3 connections" in (admission.enter("10.0.0.3") or "")  # all slots taken
    admission.leave("10.0.0.1")
    assert admission.enter("10.0.0.3") is None and admission.pending() == 3


def test_rate_strikes_close_a_connection_only_within_one_window() -> None:
    """Refused frames count for ``STRIKE_WINDOW`` seconds, not for the connection's life:
    a client that overran a little every few minutes is never closed; a flood is."""
    now = [0.0]
    admission = Admission(rate=1, burst=1, clock=lambda: now[0])
    budget = admission.budget()
    for _ in range(10):  # a long lesson: 60 refused frames every two minutes
        now[0] += 120.0
        verdicts = [admission.frame(budget) for _ in range(61)]
        assert verdicts[0] is Verdict.ALLOW and set(verdicts[1:]) == {Verdict.REFUSE}
    flood = [admission.frame(budget) for _ in range(MAX_STRIKES)]
    assert flood[-1] is Verdict.CLOSE and Verdict.ALLOW not in flood


def test_the_admission_caps_are_flags_for_a_server_behind_a_proxy() -> None:
    """Behind a reverse proxy every client has the proxy's address: its cap is a flag."""
    server = build(parser().parse_args(["--max-pending-per-host", "400", "--max-pending", "900"]))
    assert (server.admission.max_pending_per_host, server.admission.max_pending) == (400, 900)
    assert build(parser().parse_args([])).admission.max_pending_per_host == MAX_PENDING_PER_HOST
