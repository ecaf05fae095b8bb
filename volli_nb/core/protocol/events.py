"""What a session tells the app: its events, and the counters behind the panels.

Apart from the session itself so its parts (:mod:`.outgoing`, :mod:`.reliability`) and
the app can name them without importing the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.protocol.refusal import RefusalCode


@dataclass(frozen=True)
class PeerVerified:
    """The peer's HELLO proved its pinned key signed both DTLS fingerprints."""

    peer: PublicIdentity


@dataclass(frozen=True)
class MessageReceived:
    """A new message: open and store it, then call ``accept`` (or ``reject``)."""

    message_id: bytes
    envelope: bytes


@dataclass(frozen=True)
class Acked:
    """A signed ACK covered these in-flight messages; ``rtt`` is the sample it gave."""

    message_ids: tuple[bytes, ...]
    rtt: float | None


@dataclass(frozen=True)
class Pong:
    rtt: float


@dataclass(frozen=True)
class PeerClosed:
    reason: str


@dataclass(frozen=True)
class DeliveryTimeout:
    """No ACK within ``ack_timeout``: hand the message back to the persistent queue."""

    message_id: bytes


@dataclass(frozen=True)
class Refused:
    """The peer signed that it did not store these messages, with why and its clock: hand
    them back to the persistent queue, which waits for the cause to change."""

    message_ids: tuple[bytes, ...]
    code: RefusalCode
    clock_ms: int


@dataclass(frozen=True)
class PeerClock:
    """A PING on the verified channel carried the peer's wall clock (ms since the epoch)."""

    clock_ms: int


Event = (
    PeerVerified
    | MessageReceived
    | Acked
    | Pong
    | PeerClosed
    | DeliveryTimeout
    | Refused
    | PeerClock
)


@dataclass
class SessionStats:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0  # MessageReceived events
    messages_out: int = 0  # send_message calls
    duplicates_in: int = 0  # MESSAGE frames that produced no event
    acks_in: int = 0
    acks_out: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    bundles_in: int = 0  # BUNDLE frames received
    bundles_out: int = 0
    srtt: float | None = None
    rttvar: float | None = None
    rto: float = 1.0
