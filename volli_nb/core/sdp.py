"""What we read out of session descriptions: ICE candidates and DTLS fingerprints.

aiortc does not trickle ICE: every candidate sits in the SDP, so the ICE panel
parses them from the local and remote descriptions.  Channel binding signs
the sha-256 DTLS fingerprints found here.  Pure string handling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from volli_nb.base.errors import MalformedFrame


@dataclass(frozen=True)
class CandidateInfo:
    """One ICE candidate, with the columns of webrtc-internals' candidate grid."""

    foundation: str
    component: int
    protocol: str
    priority: int
    address: str
    port: int
    type: str  # host, srflx, prflx or relay
    related_address: str | None = None
    related_port: int | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


def parse_candidate(line: str) -> CandidateInfo:
    """Parse ``candidate:...`` (with or without the ``a=`` prefix)."""
    text = line.strip()
    text = text.removeprefix("a=").removeprefix("candidate:")
    bits = text.split()
    try:
        if len(bits) < 8 or bits[6] != "typ":
            raise ValueError("missing 'typ'")
        extra = dict(zip(bits[8::2], bits[9::2], strict=False))
        return CandidateInfo(
            foundation=bits[0],
            component=int(bits[1]),
            protocol=bits[2].lower(),
            priority=int(bits[3]),
            address=bits[4],
            port=int(bits[5]),
            type=bits[7],
            related_address=extra.get("raddr"),
            related_port=int(extra["rport"]) if "rport" in extra else None,
        )
    except (ValueError, IndexError) as exc:
        raise MalformedFrame(f"not an ICE candidate line ({exc}): {line!r}") from None


def candidates(sdp: str | None) -> list[CandidateInfo]:
    if not sdp:
        return []
    return [parse_candidate(m) for m in re.findall(r"^a=(candidate:.*?)\s*$", sdp, re.M)]


def fingerprint(sdp: str | None, algorithm: str = "sha-256") -> str | None:
    """The DTLS certificate fingerprint for ``algorithm``, upper-case hex with colons."""
    if not sdp:
        return None
    pattern = rf"^a=fingerprint:{re.escape(algorithm)}\s+([0-9A-Fa-f:]+)\s*$"
    match = re.search(pattern, sdp, re.M | re.I)
    return match.group(1).upper() if match else None
