"""Issue 29: signaling that always comes back, a room view that is always right, and a
pairing failure that reaches whoever waits, typed.  Faults come from the fault balancer
(:mod:`volli_nb.lab.chaos`) between the clients and a real ``volli-signal``."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from coturn import coturn
from netutil import open_store
from test_network import arun
from test_signal_redis import View
from test_signaling import until

from volli_nb.app.messages_store import MessagesStore
from volli_nb.app.rooms import PresenceChange
from volli_nb.base.errors import TransportClosed, TurnAuthFailed, VolliError
from volli_nb.core.crypto.identity import Identity
from volli_nb.lab.chaos import Fault, FaultBalancer
from volli_nb.lab.redis_engine import free_tcp_port
from volli_nb.net.signaling import reconnect as rc
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.turn import TurnIssuer
from volli_nb.ui.widgets.models import peers_table

pytestmark = pytest.mark.network
CLIENT_LOG = "volli_nb.net.signaling.client"


def test_every_failure_of_the_path_is_retried_and_each_kind_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, CLIENT_LOG)

    async def main() -> None:
        async with (
            SignalingServer(port=0) as server,
            FaultBalancer([("127.0.0.1", server.port)]) as cable,
        ):
            view = View()
            statuses: list[rc.SignalingStatus] = []
            client = SignalingClient(
                Identity.generate(), cable.url, view, on_status=statuses.append
            )
            await client.connect()
            await client.join("lab")
            for fault, words in (
                (Fault.ACCEPT_CLOSE, "closed during the handshake"),
                (Fault.HTTP_502, "HTTP 502"),
            ):
                cable.set_fault(fault, cut=True)
                tries = client.status.tries
                await until(lambda w=words, t=tries: w in str(client.status.failure), 10)
                await until(lambda t=tries: client.status.tries >= t + 3, 15)  # tries on
                assert client.status.state == rc.RECONNECTING
            assert "HTTP 502" in peers_title(client)
            with pytest.raises(VolliError) as caught:  # a typed error, never websockets'
                await SignalingClient(Identity.generate(), cable.url, View()).connect()
            assert isinstance(caught.value, TransportClosed)
            assert "HTTP 502" in str(caught.value)
            cable.heal()
            await until(lambda: client.status.state == rc.CONNECTED, 10)
            await until(lambda: any(f.get("reason") == "rejoined" for f in view.frames))
            assert client.rooms == {"lab"}
            warnings = [
                r.getMessage()
                for r in caplog.records
                if r.name == CLIENT_LOG and r.levelno == logging.WARNING
            ]
            # One line per kind in this outage (the drop, the closes, the 502s), however
            # many tries it took, each saying what comes next.
            assert len(warnings) == 3, warnings
            assert all("retrying" in w for w in warnings)
            assert sum(s.state == rc.RECONNECTING for s in statuses) > len(warnings)
            # A black hole on a live connection: held, not lost; nothing to reconnect.
            before = client.reconnects
            cable.set_fault(Fault.BLACKHOLE)
            await asyncio.sleep(1.0)
            cable.heal()
            await client.join("other")  # the held connection works on
            assert client.reconnects == before
            refused = f"ws://127.0.0.1:{free_tcp_port()}"
            with pytest.raises(TransportClosed, match="connection refused"):
                await SignalingClient(Identity.generate(), refused, View()).connect()
            await client.close()
            assert client.status.state == rc.CLOSED

    arun(main)


def peers_title(client: SignalingClient) -> str:
    return client.status.describe(time.monotonic())


def test_a_store_joining_through_a_502_gets_a_typed_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with FaultBalancer([("127.0.0.1", free_tcp_port())]) as proxy:
            proxy.set_fault(Fault.HTTP_502)
            store = open_store(tmp_path, "alice")
            with pytest.raises(TransportClosed, match="HTTP 502"):
                await store.join("lab", proxy.url)
            assert store.room_session is None
            await store.close()

    arun(main)


def _ordered(tmp_path: Path, names: list[str]) -> list[MessagesStore]:
    """Stores named in peer-id order: the first one makes the offer to every other."""
    stores = [open_store(tmp_path, f"s{i}") for i in range(len(names))]
    stores.sort(key=lambda s: s.peer_id)
    for store, name in zip(stores, names, strict=True):
        store.name = name
    return stores


def test_after_a_reconnect_the_room_is_rebuilt_and_the_newcomer_paired(tmp_path: Path) -> None:
    """The issue's case: bob joins while alice (who must make the offer, her id being the
    smallest) is cut off; the answer to her re-join is the whole list, so she learns bob
    arrived and carol left, as events, and offers to bob."""

    async def main() -> None:
        alice, bob, carol, dave = _ordered(tmp_path, ["alice", "bob", "carol", "dave"])
        async with (
            SignalingServer(port=0) as server,
            FaultBalancer([("127.0.0.1", server.port)]) as cable,
        ):
            await alice.join("lab", cable.url)
            changes: list[PresenceChange] = []
            assert alice.room_session is not None
            alice.room_session.on_presence(changes.append)
            await carol.join("lab", server.url)
            await dave.join("lab", server.url)
            await until(lambda: alice.room_session.presence["lab"] == {carol.peer_id, dave.peer_id})
            cable.set_fault(Fault.ACCEPT_CLOSE, cut=True)
            await until(lambda: alice.room_session.status.state == rc.RECONNECTING)
            await until(lambda: alice.room_session.status.tries >= 2)
            assert "signaling reconnecting" in peers_table(alice, time.time()).title
            assert carol.room_session is not None
            await carol.room_session.leave("lab")
            await bob.join("lab", server.url)  # alice cannot hear this
            cable.heal()
            await until(lambda: alice.room_session.presence["lab"] == {bob.peer_id, dave.peer_id})
            resynced = {(c.peer_id, c.present) for c in changes if c.resync}
            assert resynced == {(bob.peer_id, True), (carol.peer_id, False)}
            await asyncio.gather(
                alice.wait_connected(bob.peer_id, 20), bob.wait_connected(alice.peer_id, 20)
            )
            assert alice.log.entries(text="rebuilt from the server's list (rejoined)")
            downs = [e.message for e in alice.log if e.data.get("kind") == "signaling.down"]
            assert 1 <= len(downs) == len(set(downs)), downs  # each kind once, not each try
            assert [e.data.get("kind") for e in alice.log].count("signaling.up") == 1
            await asyncio.gather(*(s.close() for s in (alice, bob, carol, dave)))

    arun(main, timeout=90)


SECRET = "the-right-secret"


def test_a_turn_failure_reaches_both_sides_typed(tmp_path: Path) -> None:
    """The server hands out credentials made with the wrong secret; relay only.  The
    offering side's preflight fails with TurnAuthFailed; the answering side never gets an
    offer.  Both sides' wait_connected raise TurnAuthFailed as soon as it is known, not a
    timeout saying "pair first", and the peers panel shows the cause."""

    async def main() -> None:
        with coturn(tmp_path, auth_secret=SECRET) as turn:
            issuer = TurnIssuer("not-the-secret", (turn.url,), ttl=600)
            async with SignalingServer(port=0, turn=issuer) as server:
                offerer, answerer = _ordered(tmp_path, ["offerer", "answerer"])
                for store in (offerer, answerer):
                    store.network_store.set_configuration(relay_only=True)
                    await store.join("lab", server.url)
                waits: list[Any] = await asyncio.gather(
                    offerer.wait_connected(answerer.peer_id, 15),
                    answerer.wait_connected(offerer.peer_id, 15),
                    return_exceptions=True,
                )
                for error in waits:
                    assert isinstance(error, TurnAuthFailed), repr(error)
                assert "could not pair on its side" in str(waits[1])
                for store, other in ((offerer, answerer), (answerer, offerer)):
                    rows = peers_table(store, time.time()).rows
                    (row,) = [r for r in rows if r["peer"] == other.peer_id]
                    assert "TurnAuthFailed" in row["warning"]
                await asyncio.gather(offerer.close(), answerer.close())

    arun(main, timeout=90)
