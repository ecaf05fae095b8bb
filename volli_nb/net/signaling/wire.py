"""Signaling frames: strict JSON objects with a ``type``; pure parsing and the challenge.

Client → server: ``register`` (answer to the challenge), ``join``, ``leave``,
``list``, ``signal`` (to a peer), ``ping``.  Server → client: ``challenge``,
``registered``, ``joined``, ``presence``, ``members``, ``signal`` (from a
peer), ``queued``, ``turn`` (TURN credentials), ``pong``, ``error``.  Error
frames carry a stable ``code``, a sentence saying what to do, and the
request they refuse.
"""

from __future__ import annotations

import json
import re
from typing import Any

from volli_nb.base.errors import MalformedFrame, PeerError
from volli_nb.core.crypto.identity import Identity, PublicIdentity, verify
from volli_nb.core.encoding import b64decode, canonical_json, strict_loads

CHALLENGE_DOMAIN = b"volli-signal-v1"
MAX_FRAME_BYTES = 64 * 1024
MAX_ROOM_NAME = 64
MAX_SIGNAL_BYTES = 48 * 1024
PEER_ID = re.compile(r"[a-z2-7]{16}")  # 80 bits of base32, as identity.peer_id_for makes

CLIENT_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "register": {"type": str, "identity": dict, "signature": str},
    "join": {"type": str, "room": str},
    "leave": {"type": str, "room": str},
    "list": {"type": str, "room": str},
    "signal": {"type": str, "to": str, "data": dict},
    "ping": {"type": str},
}


class SignalingError(PeerError):
    """A client frame we refuse; ``code`` goes into the error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def challenge_payload(nonce: bytes, server_id: str) -> bytes:
    return canonical_json({"nonce": nonce.hex(), "server": server_id})


def sign_challenge(identity: Identity, nonce: bytes, server_id: str) -> str:
    from volli_nb.core.encoding import b64encode

    return b64encode(identity.sign(CHALLENGE_DOMAIN, challenge_payload(nonce, server_id)))


def verify_registration(frame: dict[str, Any], nonce: bytes, server_id: str) -> PublicIdentity:
    """The identity in a ``register`` frame, if its key signed our challenge."""
    identity = PublicIdentity.from_json(frame["identity"], error=MalformedFrame)
    signature = b64decode(frame["signature"], length=64, what="signature", error=MalformedFrame)
    verify(identity.identity_key, CHALLENGE_DOMAIN, challenge_payload(nonce, server_id), signature)
    return identity


def parse_client_frame(data: str | bytes) -> dict[str, Any]:
    """Strictly parse one client frame; raise :class:`SignalingError` with a code."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_FRAME_BYTES:
        raise SignalingError(
            "too-large", f"frame of {len(raw)} bytes exceeds {MAX_FRAME_BYTES}; send less"
        )
    try:
        frame = strict_loads(raw, max_size=MAX_FRAME_BYTES, what="frame", error=MalformedFrame)
    except PeerError as exc:
        raise SignalingError("malformed", str(exc)) from None
    kind = frame.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise SignalingError("unknown-type", f"unknown frame type {kind!r}")
    fields = CLIENT_TYPES[kind]
    if set(frame) != set(fields) or any(
        not isinstance(frame[k], t) or isinstance(frame[k], bool) for k, t in fields.items()
    ):
        raise SignalingError(
            "malformed", f"{kind!r} frames have exactly the fields {sorted(fields)}"
        )
    room = frame.get("room")
    if isinstance(room, str) and not (0 < len(room) <= MAX_ROOM_NAME and room.isprintable()):
        raise SignalingError("bad-room", f"room names are 1 to {MAX_ROOM_NAME} printable chars")
    if kind == "signal":
        if PEER_ID.fullmatch(frame["to"]) is None:
            raise SignalingError(
                "bad-peer-id", "'to' must be a peer id: 16 characters of lowercase base32"
            )
        if len(canonical_json(frame["data"])) > MAX_SIGNAL_BYTES:
            raise SignalingError("too-large", f"signal data over {MAX_SIGNAL_BYTES} bytes")
    return frame


def encode(frame: dict[str, Any]) -> str:
    """Compact ASCII JSON: what a frame is sent, queued and counted as (caps are in bytes)."""
    return json.dumps(frame, separators=(",", ":"))  # ASCII: characters are bytes


def error_frame(code: str, message: str, **about: str) -> dict[str, Any]:
    """``about`` names the refused request (``request``, ``room``, ``to``), so a client
    can fail the call that is waiting for a reply instead of timing out."""
    return {"type": "error", "code": code, "message": message, **about}


def presence_frame(event: dict[str, Any]) -> dict[str, Any]:
    """The frame members see for a backend's presence event (join carries the identity)."""
    frame = {"type": "presence", "room": event["room"], "event": event["k"]}
    if event["k"] == "join":
        frame["peer"] = event["peer"]
    else:
        frame["peer_id"] = event["peer_id"]
    return frame
