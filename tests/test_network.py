"""Real aiortc peers in one process: pairing, delivery, binding, limits, shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from netutil import open_store, pair
from session_pairs import stranger_frame

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import (
    ChannelBindingFailed,
    MalformedFrame,
    OversizedInput,
    UnknownPeer,
    UsageError,
)
from volli_nb.core import sdp
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.protocol import frames
from volli_nb.net import aiortc_compat
from volli_nb.net.events import PeerOffline
from volli_nb.net.link import Link

pytestmark = pytest.mark.network
T = TypeVar("T")


def arun(factory: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await factory()

    return asyncio.run(bounded())


async def two_stores(tmp: Path, **config: Any) -> tuple[MessagesStore, MessagesStore]:
    alice, bob = open_store(tmp, "alice", **config), open_store(tmp, "bob", **config)
    await pair(alice, bob)
    return alice, bob


def test_pair_and_exchange_both_ways(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = await two_stores(tmp_path)
        got: list[str] = []
        bob.on_message(lambda m: got.append(m.text))
        sent = await alice.send_message(bob.peer_id, "hello bob")
        await alice.wait_delivered(sent.message_id)
        back = await bob.send_message(alice.peer_id, "hello alice")
        await bob.wait_delivered(back.message_id)
        assert got == ["hello bob"]
        assert [m.text for m in bob.history(alice.peer_id)] == ["hello bob", "hello alice"]
        assert [(m.text, m.status) for m in alice.history(bob.peer_id)] == [
            ("hello bob", "delivered"),
            ("hello alice", "received"),
        ]
        view = alice.network_store.candidates(bob.peer_id)
        assert view.selected is not None and view.local and view.remote
        assert alice.network_store.stats(bob.peer_id).messages_out >= 1
        assert alice.network_store.is_online
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_default_configuration_has_no_ice_servers_and_only_host_candidates(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = open_store(tmp_path, "solo", loopback=False)
        assert store.network_store.config.ice_servers == []
        code = await store.create_pairing_code()
        offer = next(iter(store.network_store.peers.values())).localDescription.sdp
        assert "stun" not in offer.lower() and "turn" not in offer.lower()
        assert {c.type for c in sdp.candidates(offer)} <= {"host"}
        assert code.startswith("volli2.")
        await store.close()

    arun(main)


def test_ten_megabyte_message_arrives_intact(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = await two_stores(tmp_path)
        text = "".join(chr(0x41 + (i * 7919) % 26) for i in range(10_000_000))
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        bob.on_message(lambda m: done.set_result(m.text))
        sent = await alice.send_message(bob.peer_id, text)
        assert await asyncio.wait_for(done, 60) == text
        await alice.wait_delivered(sent.message_id, timeout=30)
        await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=120)


def test_disconnect_is_bounded_and_leaves_no_tasks(tmp_path: Path) -> None:
    """``disconnect()`` returns within the configured ``close_timeout`` (each
    ``pc.close()`` is bounded by it, and links close concurrently), plus half a second for
    the goodbye frame and task cancellation on a loaded machine."""

    async def main() -> None:
        alice, bob = await two_stores(tmp_path)
        before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
        bound = alice.network_store.config.close_timeout + 0.5
        start = time.monotonic()
        await alice.network_store.disconnect()
        assert time.monotonic() - start <= bound
        assert alice.network_store.peers == {}
        await asyncio.sleep(0.05)
        link_tasks = [
            t for t in asyncio.all_tasks() if t in before and not t.done() and "_run" in repr(t)
        ]
        alice_tasks = [t for t in link_tasks if "alice" in repr(t)]
        assert alice_tasks == []
        await asyncio.gather(alice.close(), bob.close())
        leftover = [
            t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
        ]
        ours = [t for t in leftover if "volli_nb" in repr(t.get_coro())]
        assert ours == [], ours

    arun(main)


class LyingLink(Link):
    """Signs a peer certificate other than the one DTLS used, as a MITM'd path would."""

    def channel_certificates(self) -> tuple[bytes, bytes] | None:
        found = super().channel_certificates()
        return None if found is None else (found[0], bytes(32))


def test_tampered_channel_binding_closes_with_typed_error(tmp_path: Path) -> None:
    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob = open_store(tmp_path, "bob")
        bob.network_store.link_class = LyingLink  # bob's next connections lie
        code = await alice.create_pairing_code()
        answer = await bob.accept_pairing_code(code)
        await alice.complete_pairing(answer)
        offline: asyncio.Future[PeerOffline] = asyncio.get_running_loop().create_future()
        alice.network_store.on_event(
            lambda e: isinstance(e, PeerOffline) and not offline.done() and offline.set_result(e)
        )
        event = await asyncio.wait_for(offline, 15)
        assert "ChannelBindingFailed" in event.reason
        assert any("ChannelBindingFailed" in e.message for e in alice.log.entries(category="error"))
        assert not alice.network_store.is_connected(bob.peer_id)
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_frames_from_unknown_keys_and_garbage_are_rejected_and_nothing_stored(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        alice, bob = await two_stores(tmp_path)
        channel = alice.network_store.data_channels[bob.peer_id]
        # A bundle sealed and signed by a key bob never pinned, on alice's channel.
        session = alice.network_store._links[bob.peer_id].session
        assert session is not None and session.session_id is not None
        tag = session.session_id[:8]
        channel.send(stranger_frame(Identity.generate(), bob.identity, tag, "forged"))
        channel.send(b"\x01\xff garbage")
        channel.send(b"")
        await asyncio.sleep(1.0)
        errors = " ".join(e.message for e in bob.log.entries(category="error"))
        assert "UnknownPeer" in errors
        assert "MalformedFrame" in errors
        assert bob.history(alice.peer_id) == []
        # The connection survives garbage: a real message still goes through.
        sent = await alice.send_message(bob.peer_id, "still here")
        await alice.wait_delivered(sent.message_id)
        assert [m.text for m in bob.history(alice.peer_id)] == ["still here"]
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


@pytest.mark.clean_link("2 MB in a 60 s budget")
def test_oversized_message_is_refused_with_a_typed_error_and_nothing_stored(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        alice = open_store(tmp_path, "alice")
        bob = open_store(tmp_path, "bob", max_frame_bytes=1024 * 1024)
        await pair(alice, bob)
        await alice.send_message(bob.peer_id, "x" * 2_000_000, compress=False)
        ok = await alice.send_message(bob.peer_id, "small")
        await alice.wait_delivered(ok.message_id)
        errors = " ".join(e.message for e in bob.log.entries(category="error"))
        assert "OversizedInput" in errors
        assert [m.text for m in bob.history(alice.peer_id)] == ["small"]
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_protocol_errors_are_the_typed_ones() -> None:
    # The classes the live test above looks for in the log.
    assert issubclass(MalformedFrame, Exception) and issubclass(OversizedInput, Exception)
    assert issubclass(UnknownPeer, Exception) and issubclass(ChannelBindingFailed, Exception)
    assert frames.PROTOCOL_VERSION == 3


def test_unknown_peer_cannot_answer(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(tmp_path, "solo")
        with pytest.raises(UnknownPeer):
            await store.network_store.connect_to_peer("nobodynobodynobo", "v=0\r\n")
        await store.close()

    arun(main)


@pytest.mark.parametrize(
    "section",
    [
        "a=sctp-port:abc\r\n",  # aiortc: ValueError
        "m=application x UDP/DTLS/SCTP webrtc-datachannel\r\n",  # aiortc: AssertionError
    ],
)
def test_an_offer_aiortc_cannot_parse_is_refused_typed_and_leaves_no_link(
    tmp_path: Path, section: str
) -> None:
    """A hostile room member's offer used to escape as aiortc's own error and leave a
    half-built connection registered for that peer."""
    head = "v=0\r\no=- 1 1 IN IP4 0\r\ns=-\r\nt=0 0\r\n"
    if not section.startswith("m="):
        section = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n" + (
            section
        )
    mallory = Identity.generate()

    async def main() -> None:
        store = open_store(tmp_path, "solo")
        store.add_contact(mallory.public, name="mallory")
        with pytest.raises(UsageError, match="the offer cannot be answered"):
            await store.network_store.connect_to_peer(mallory.peer_id, head + section)
        assert mallory.peer_id not in store.network_store.peers
        await store.close()

    arun(main)


def test_offers_from_one_peer_at_once_leave_one_connection_not_orphans(tmp_path: Path) -> None:
    """A room member's offers are each answered in a task of their own.  Each answer
    closed the link it found, then awaited, then registered its own over whatever another
    answer had registered meanwhile: 8 offers at once left 7 peer connections running,
    held by no one (their sockets too), not even closed by ``close()``."""
    made: list[Link] = []

    class Counted(Link):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    async def main() -> None:
        alice, mallory = open_store(tmp_path, "alice"), open_store(tmp_path, "mallory")
        alice.add_contact(mallory.identity.public, name="mallory")
        mallory.add_contact(alice.identity.public, name="alice")
        offer = (await mallory.network_store.connect_to_peer(alice.peer_id)).sdp
        alice.network_store.link_class = Counted
        net = alice.network_store
        await asyncio.gather(
            *(net.connect_to_peer(mallory.peer_id, offer) for _ in range(8)),
            return_exceptions=True,  # the replaced ones fail: their connection was closed
        )
        assert len(made) == 8
        running = [link for link in made if link.pc.connectionState != "closed"]
        assert running == [net._links[mallory.peer_id]]
        await asyncio.gather(alice.close(), mallory.close())
        assert all(link.pc.connectionState == "closed" for link in made)

    arun(main)


def test_set_configuration_warns_that_aiortc_uses_one_stun_and_one_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    from volli_nb.core.netconfig import IceServer

    store = open_store(tmp_path, "cfg")
    net = store.network_store
    config = net.set_configuration(
        [
            IceServer("stun:127.0.0.1:3478"),
            {
                "urls": ["stun:127.0.0.1:3479", "turn:127.0.0.1:3478"],
                "username": "u",
                "credential": "p",
            },
            IceServer("turns:127.0.0.1:5349", "u", "p"),
        ],
        relay_only=True,
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("first STUN" in w and "127.0.0.1:3479" in w for w in warnings)
    assert any("first TURN URL is UDP" in w for w in warnings)  # relay-only, UDP first
    assert any("preflight hands aiortc the best" in e.message for e in net.log.entries())
    rtc_config = aiortc_compat.rtc_configuration(config)
    assert rtc_config.iceTransportPolicy == RTCIceTransportPolicy.RELAY
    assert rtc_config.iceServers[1].username == "u"
    assert any("only the first" in e.message for e in net.log.entries(category="ice"))
    config.preflight = False  # without the preflight, aiortc's own rule is all there is
    caplog.clear()
    net.set_configuration(relay_only=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("first TURN" in w and "turns:127.0.0.1:5349" in w for w in warnings)
    store.database.close()


def test_sync_endpoint_and_handler_removal(tmp_path: Path) -> None:
    async def main() -> None:
        alice, bob = await two_stores(tmp_path)
        endpoint = alice.network_store.get_sync_endpoint()
        assert endpoint[bob.peer_id]["reachable"] is True
        assert endpoint[bob.peer_id]["channel"] == "volli"
        assert endpoint[bob.peer_id]["verified"] is True
        calls: list[bytes] = []
        remove = bob.network_store.on_message(lambda m: calls.append(m.message_id))
        first = await alice.send_message(bob.peer_id, "one")
        await alice.wait_delivered(first.message_id)
        remove()
        second = await alice.send_message(bob.peer_id, "two")
        await alice.wait_delivered(second.message_id)
        assert calls == [first.message_id]
        await alice.network_store.disconnect(bob.peer_id)
        assert bob.peer_id not in alice.network_store.get_sync_endpoint()
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_a_blocked_event_loop_is_not_a_dead_peer(tmp_path: Path) -> None:
    """A notebook cell that computes for seconds blocks the loop both peers share; that
    silence is not the peer's, so the link survives it (the limits below are the config's)."""
    dead_after, interval = 1.0, 0.25

    async def main() -> None:
        config = {"dead_after": dead_after, "heartbeat_interval": interval}
        alice, bob = open_store(tmp_path, "alice", **config), open_store(tmp_path, "bob", **config)
        offline: list[object] = []
        try:
            await pair(alice, bob)
            for store in (alice, bob):
                store.network_store.on_event(
                    lambda e: offline.append(e) if isinstance(e, PeerOffline) else None
                )
            time.sleep(2 * (dead_after + interval))  # blocks the loop, as a busy cell would
            sent = await alice.send_message(bob.peer_id, "still here")
            await alice.wait_delivered(sent.message_id, timeout=10)
            # Past the grace a stalled loop gets (one limit) and two more heartbeats:
            await asyncio.sleep(dead_after + 2 * interval)
            assert offline == [] and alice.network_store.is_connected(bob.peer_id)
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main)
