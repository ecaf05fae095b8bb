"""What NetworkStore reports: per-peer counters, incoming envelopes and peer events.

Pure data, so panels and tests can build them without a network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from volli_nb.core.protocol.refusal import RefusalCode
from volli_nb.core.sdp import CandidateInfo


@dataclass
class PeerStats:
    """Counters per peer; aiortc's getStats() has nothing for data channels."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rtt: float | None = None
    last_seen: float | None = None
    connected_at: float | None = None
    clock_skew: float | None = None  # their clock minus ours, s (from their latest PING)


@dataclass(frozen=True)
class IncomingEnvelope:
    peer_id: str
    message_id: bytes
    envelope: bytes


@dataclass(frozen=True)
class PeerOnline:
    peer_id: str


@dataclass(frozen=True)
class PeerOffline:
    peer_id: str
    reason: str
    in_flight: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Delivered:
    peer_id: str
    message_ids: tuple[bytes, ...]
    rtt: float | None = None


@dataclass(frozen=True)
class Undelivered:
    """No ACK will come for it on this session.  ``failed`` False: nothing failed, the
    session was re-keyed under it (seal it again now, no attempt counted)."""

    peer_id: str
    message_id: bytes
    reason: str
    failed: bool = True


@dataclass(frozen=True)
class DeliveryRefused:
    """The peer signed that it did not store these, and why (``clock_ms``: its clock)."""

    peer_id: str
    message_ids: tuple[bytes, ...]
    code: RefusalCode
    clock_ms: int


@dataclass(frozen=True)
class ClockSkew:
    """The clocks started to disagree past the threshold, agree again, or were read for
    the first time on a new connection; ``skew`` is their clock minus ours (seconds)."""

    peer_id: str
    skew: float
    within: bool
    first: bool


NetworkEvent = PeerOnline | PeerOffline | Delivered | Undelivered | DeliveryRefused | ClockSkew


@dataclass(frozen=True)
class CandidateView:
    local: list[CandidateInfo]
    remote: list[CandidateInfo]
    selected: tuple[CandidateInfo, CandidateInfo] | None

    def __repr__(self) -> str:
        pair = f"{self.selected[0]} ↔ {self.selected[1]}" if self.selected else "none yet"
        counts = f"{len(self.local)} local, {len(self.remote)} remote"
        return f"CandidateView({counts}, selected: {pair})"

    def _repr_html_(self) -> str:
        """The candidates as a table, the selected pair marked (what webrtc-internals shows)."""
        chosen = set(self.selected or ())
        rows = "".join(
            f"<tr><td>{side}</td><td>{c.type}</td><td>{c.protocol}</td>"
            f"<td>{html.escape(c.endpoint)}</td><td>{c.priority}</td>"
            f"<td>{'✔' if c in chosen else ''}</td></tr>"
            for side, group in (("local", self.local), ("remote", self.remote))
            for c in group
        )
        head = "".join(f"<th>{c}</th>" for c in ("side", "type", "protocol", "address", "priority"))
        return (
            f"<table><thead><tr>{head}<th>selected</th></tr></thead><tbody>{rows}</tbody></table>"
        )
