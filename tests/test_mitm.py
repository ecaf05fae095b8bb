"""Issue 12, item 1: a man in the middle on the signaling path cannot talk the binding around.

Two real peers, and a relaying attacker (tests/mitm.py) that ends DTLS on both sides and
forwards data-channel frames, with the ``ſha-256`` disguise that fooled the SDP-based
binding.  Both victims must refuse with ``ChannelBindingFailed``, whether the SDP
travels in pasted pairing codes or through a lying ``volli-signal``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mitm import DtlsMitm
from netutil import open_store
from test_network import arun

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core import pairing_code as pairing
from volli_nb.net.events import NetworkEvent, PeerOffline, PeerOnline
from volli_nb.net.signaling.server import SignalingServer

pytestmark = pytest.mark.network
BINDING_WAIT = 20.0  # ICE + DTLS twice over loopback, then the HELLOs; verify_timeout is 10 s


def first_outcome(store: MessagesStore, peer_id: str) -> asyncio.Future[str]:
    """ "online", or the reason the first connection to ``peer_id`` ended."""
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_event(event: NetworkEvent) -> None:
        if done.done() or getattr(event, "peer_id", None) != peer_id:
            return
        if isinstance(event, PeerOnline):
            done.set_result("online")
        elif isinstance(event, PeerOffline):
            done.set_result(event.reason)

    store.network_store.on_event(on_event)
    return done


def test_a_dtls_relay_on_the_pairing_code_path_fails_the_binding_on_both_sides(
    tmp_path: Path,
) -> None:
    """Attack: whoever carries the codes swaps in its own SDP and relays the frames."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        mitm = DtlsMitm()
        outcomes = [first_outcome(alice, bob.peer_id), first_outcome(bob, alice.peer_id)]
        try:
            offer = pairing.decode_code(await alice.create_pairing_code())
            forged_sdp = await mitm.intercept_offer(offer.sdp)
            forged_offer = pairing.encode_code(
                "offer", forged_sdp, offer.identity, offer.name, offer.ref
            )
            answer = pairing.decode_code(await bob.accept_pairing_code(forged_offer))
            forged_answer = pairing.encode_code(
                "answer",
                await mitm.intercept_answer(answer.sdp),
                answer.identity,
                answer.name,
                answer.ref,
            )
            await alice.complete_pairing(forged_answer)
            reasons = await asyncio.wait_for(asyncio.gather(*outcomes), BINDING_WAIT)
            assert mitm.relayed >= 2  # both HELLOs went through the attacker
            for reason in reasons:
                assert reason.startswith("ChannelBindingFailed"), reasons
            assert not alice.network_store.is_connected(bob.peer_id)
            assert not bob.network_store.is_connected(alice.peer_id)
        finally:
            await asyncio.gather(alice.close(), bob.close(), mitm.close())

    arun(main)


class LyingSignalServer(SignalingServer):
    """A ``volli-signal`` that rewrites every relayed offer and answer with an attacker's."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mitms: dict[tuple[str, str], DtlsMitm] = {}
        self.retired: list[DtlsMitm] = []

    async def _dispatch(self, client: Any, frame: dict[str, Any]) -> None:
        data = frame.get("data")
        if frame.get("type") == "signal" and isinstance(data, dict):
            frame = {**frame, "data": await self._lie(client.peer_id, frame["to"], data)}
        await super()._dispatch(client, frame)

    async def _lie(self, sender: str, to: str, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("kind") == "offer":
            if (sender, to) in self.mitms:
                self.retired.append(self.mitms[(sender, to)])
            mitm = self.mitms[(sender, to)] = DtlsMitm()
            return {**data, "sdp": await mitm.intercept_offer(str(data["sdp"]))}
        if data.get("kind") == "answer" and (to, sender) in self.mitms:
            mitm = self.mitms[(to, sender)]
            return {**data, "sdp": await mitm.intercept_answer(str(data["sdp"]))}
        return data

    async def close(self) -> None:
        for mitm in [*self.mitms.values(), *self.retired]:
            await mitm.close()
        await super().close()


def test_a_lying_signaling_server_relaying_dtls_fails_the_binding_on_both_sides(
    tmp_path: Path,
) -> None:
    """Attack: ``volli-signal`` itself answers each side with its own peer connection."""

    async def main() -> None:
        async with LyingSignalServer(port=0) as server:
            alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
            outcomes = [first_outcome(alice, bob.peer_id), first_outcome(bob, alice.peer_id)]
            try:
                await alice.join("lab", server.url)
                await bob.join("lab", server.url)
                reasons = await asyncio.wait_for(asyncio.gather(*outcomes), BINDING_WAIT)
                assert sum(m.relayed for m in [*server.mitms.values(), *server.retired]) >= 2
                for reason in reasons:
                    assert reason.startswith("ChannelBindingFailed"), reasons
                assert not alice.network_store.is_connected(bob.peer_id)
                assert not bob.network_store.is_connected(alice.peer_id)
            finally:
                await asyncio.gather(alice.close(), bob.close())

    arun(main)
