"""Frames recorded at a data channel, read back as an observer inside the channel would:
whole frames, hellos, bundles, and the key uses.

Recorded by a peer process (``--record PATH``, then :meth:`Recording.read`) or, in one
kernel, by a tap on a store's frame trace (:meth:`Recording.tap`): what a thief who sat
inside DTLS would hold.  The forward-secrecy tests and notebook 06 read the same."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.crypto.envelope_wire import ParsedBundle
from volli_nb.core.protocol import frames
from volli_nb.core.protocol.chunks import Reassembler


@dataclass
class Recording:
    """Whole frames per direction, chunks joined, in the order they crossed."""

    frames: list[tuple[str, bytes]] = field(default_factory=list)  # (direction, frame)
    _joiners: dict[str, Reassembler] = field(default_factory=lambda: defaultdict(Reassembler))

    @classmethod
    def tap(cls, store: MessagesStore) -> Recording:
        """Record every frame ``store``'s channels carry from now on, as they cross."""
        rec = cls()
        store.network_store.trace.taps.append(
            lambda direction, _peer, frame: rec.add(direction, frame, rec._joiners[direction])
        )
        return rec

    @classmethod
    def read(cls, path: Path) -> Recording:
        rec = cls()
        for line in path.read_text().splitlines():
            item = json.loads(line)
            rec.add(item["dir"], bytes.fromhex(item["frame"]), rec._joiners[item["dir"]])
        return rec

    def add(self, direction: str, data: bytes, joiner: Reassembler) -> None:
        if len(data) > 1 and data[1] == frames.CHUNK:
            chunk = frames.decode_frame(data)
            assert isinstance(chunk, frames.ChunkFrame)
            whole = joiner.add(chunk)
            if whole is None:
                return
            data = whole
        self.frames.append((direction, data))

    def bundles(self, direction: str | None = None) -> list[tuple[bytes, ParsedBundle]]:
        """(session tag, bundle) of every BUNDLE frame (in one direction, if given)."""
        return [(tag, bundle) for d, tag, bundle in self._bundles() if direction in (None, d)]

    def crossed(self) -> list[tuple[str, ParsedBundle]]:
        """(direction, bundle) of every BUNDLE frame, both ways, in the order they crossed."""
        return [(d, bundle) for d, _tag, bundle in self._bundles()]

    def _bundles(self) -> list[tuple[str, bytes, ParsedBundle]]:
        out = []
        for d, data in self.frames:
            if data[1] == frames.BUNDLE:
                frame = frames.decode_frame(data)
                assert isinstance(frame, frames.BundleFrame)
                out.append((d, frame.tag, frame.bundle))
        return out

    def hellos(self) -> list[tuple[str, bytes]]:
        return [(d, data[2:]) for d, data in self.frames if data[1] == frames.HELLO]


def key_reuse(bundles: list[tuple[bytes, ParsedBundle]]) -> list[tuple[bytes, bytes, int]]:
    """Message keys used for two different ciphertexts: a message key is named by its
    session, the sender's ratchet key and the message number; one used twice for
    different bytes is a nonce reuse.  (A resend of the very same bytes is not.)"""
    seen: dict[tuple[bytes, bytes, int], bytes] = {}
    reused = []
    for tag, bundle in bundles:
        for parsed in bundle.envelopes:
            for wrap in parsed.envelope.recipients.values():
                key = (tag, wrap.header.dh, wrap.header.n)
                if seen.setdefault(key, wrap.encrypted_key) != wrap.encrypted_key:
                    reused.append(key)
    return reused


__all__ = ["Recording", "key_reuse"]
