"""Signaling frames: strict JSON objects with a ``type``; pure parsing and the challenge.

Client → server: ``register`` (answer to the challenge), ``join``, ``leave``,
``list``, ``signal`` (to a peer), ``ping``.  Server → client: ``challenge``,
``registered``, ``joined``, ``presence``, ``members``, ``signal`` (from a
peer), ``queued``, ``turn`` (TURN credentials), ``pong``, ``error``.  Error
frames carry a stable ``code``, a sentence saying what to do, and the
request they refuse.

Both directions are parsed strictly and only typed errors come out
(:class:`SignalingError` for a client's frame, :class:`MalformedFrame` for the
server's), whatever the bytes: a frame is refused, a socket is never closed by an
untyped error (issue 26, item 4).
"""

from __future__ import annotations

import json
import re
from typing import Any

from volli_nb.base.errors import MalformedFrame, PeerError, TransportClosed
from volli_nb.core.claimed_name import MAX_NAME_BYTES, claimed_name
from volli_nb.core.crypto.identity import Identity, PublicIdentity, verify
from volli_nb.core.encoding import b64decode, canonical_json, strict_loads

CHALLENGE_DOMAIN = b"volli-signal-v1"
MAX_FRAME_BYTES = 64 * 1024
MAX_ROOM_NAME = 64
MAX_SIGNAL_BYTES = 48 * 1024
MAX_SERVER_FRAME_BYTES = 1024 * 1024  # what the client's websocket accepts at all
PEER_ID = re.compile(r"[a-z2-7]{16}")  # 80 bits of base32, as identity.peer_id_for makes

CLIENT_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "register": {"type": str, "identity": dict, "signature": str},
    "join": {"type": str, "room": str},
    "leave": {"type": str, "room": str},
    "list": {"type": str, "room": str},
    "signal": {"type": str, "to": str, "data": dict},
    "ping": {"type": str},
}
OPTIONAL_FIELDS: dict[str, dict[str, type]] = {
    "register": {"name": str},  # the name the client shows in its rooms (a claim)
}


class SignalingError(PeerError):
    """A client frame we refuse; ``code`` goes into the error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ServerBusy(TransportClosed):
    """The server refused to admit us for now: too many connections are registering (a
    class connecting at once behind one address); try again shortly."""


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


def presence_entry(identity: PublicIdentity, register: dict[str, Any]) -> dict[str, Any]:
    """What a room's members see of a registered client: its identity, and the name it
    gave (a claim, checked by :func:`parse_client_frame`), if any."""
    entry = identity.to_json()
    if "name" in register:
        entry["name"] = register["name"]
    return entry


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
    fields, optional = CLIENT_TYPES[kind], OPTIONAL_FIELDS.get(kind, {})
    present = {**fields, **{k: t for k, t in optional.items() if k in frame}}
    if set(frame) != set(present) or any(
        not isinstance(frame[k], t) or isinstance(frame[k], bool) for k, t in present.items()
    ):
        also = f" (and optionally {sorted(optional)})" if optional else ""
        raise SignalingError(
            "malformed", f"{kind!r} frames have exactly the fields {sorted(fields)}{also}"
        )
    if "name" in frame and claimed_name(frame["name"]) != frame["name"]:
        raise SignalingError(
            "bad-name",
            f"a name is 1 to {MAX_NAME_BYTES} bytes of printable UTF-8, without spaces around",
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


SERVER_FIELDS: dict[str, type] = {
    "type": str,
    "room": str,
    "to": str,
    "from": str,
    "request": str,
    "code": str,
    "message": str,
    "event": str,
    "peer_id": str,
    "server": str,
    "nonce": str,
    "members": list,
    "peer": dict,
    "data": dict,
    "urls": list,
}
"""Fields of server frames that are type-checked wherever they appear (others pass)."""


def parse_server_frame(data: str | bytes) -> dict[str, Any]:
    """Strictly parse one frame from the server: a JSON object with a string ``type``,
    each known field of its type; :class:`MalformedFrame` otherwise."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    what = "frame from the signaling server"
    frame = strict_loads(raw, max_size=MAX_SERVER_FRAME_BYTES, what=what, error=MalformedFrame)
    for name, kind in SERVER_FIELDS.items():
        if (name == "type" or name in frame) and not isinstance(frame.get(name), kind):
            raise MalformedFrame(f"{what}: field {name!r} is not a {_JSON_NAMES[kind]}")
    return frame


_JSON_NAMES: dict[type, str] = {str: "string", list: "list", dict: "object"}


def parse_challenge(frame: dict[str, Any]) -> tuple[bytes, str]:
    """The nonce and server id of a ``challenge`` frame (see :func:`parse_server_frame`)."""
    nonce, server = frame.get("nonce"), frame.get("server")
    if frame["type"] == "error" and frame.get("code") == "busy":
        raise ServerBusy(f"the signaling server is busy: {frame.get('message')}")
    if frame["type"] != "challenge" or not isinstance(nonce, str) or not isinstance(server, str):
        raise MalformedFrame(f"expected the server's challenge, got a {frame['type']!r} frame")
    if re.fullmatch(r"[0-9a-f]{64}", nonce) is None or not 0 < len(server) <= 64:
        raise MalformedFrame("the server's challenge holds no 32-byte hex nonce or no server id")
    return bytes.fromhex(nonce), server


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
