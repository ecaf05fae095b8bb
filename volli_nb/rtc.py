"""Adapters over aiortc/aioice internals, kept in one place so an upgrade breaks one file.

aiortc exposes neither the nominated ICE pair nor the remote's SCTP maximum
message size; both are read here, with safe fallbacks.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from .errors import UsageError
from .sdp import CandidateInfo

SDP = RTCSessionDescription | str | dict[str, str]


def selected_pair(pc: RTCPeerConnection) -> tuple[CandidateInfo, CandidateInfo] | None:
    """The nominated ICE pair, read from aioice (the one place we touch its internals)."""
    try:
        sctp: Any = pc.sctp
        connection = sctp.transport.transport._connection
        pair = connection._nominated.get(1)
    except AttributeError:
        return None
    if pair is None:
        return None

    def info(c: Any) -> CandidateInfo:
        return CandidateInfo(
            foundation=c.foundation,
            component=c.component,
            protocol=c.transport.lower(),
            priority=c.priority,
            address=c.host,
            port=c.port,
            type=c.type,
            related_address=c.related_address,
            related_port=c.related_port,
        )

    return info(pair.local_candidate), info(pair.remote_candidate)


def remote_max_message_size(pc: RTCPeerConnection) -> int:
    try:
        sctp: Any = pc.sctp
        size = int(sctp._remote_max_message_size)
    except (AttributeError, TypeError, ValueError):
        size = 65536
    return size or 65536


def as_description(value: SDP, kind: str) -> RTCSessionDescription:
    if isinstance(value, RTCSessionDescription):
        return value
    if isinstance(value, dict):
        return RTCSessionDescription(sdp=value["sdp"], type=value.get("type", kind))
    if isinstance(value, str):
        return RTCSessionDescription(sdp=value, type=kind)
    raise UsageError(f"expected an SDP {kind} (string or RTCSessionDescription)")
