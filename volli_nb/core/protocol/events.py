"""What a session tells the app: its events, and the counters behind the panels.

Apart from the session itself so its parts (:mod:`.outgoing`, :mod:`.reliability`) and
the app can name them without importing the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from volli_nb.base.errors import VolliError
from volli_nb.core.crypto.envelope_wire import ParsedBundle
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.protocol.refusal import RefusalCode


@dataclass(frozen=True)
class PeerVerified:
    """The handshake finished: the peer's pinned key signed both DTLS certificate digests
    in use, and ``handshake`` holds the new session (its id and first ratchet state)."""

    peer: PublicIdentity
    handshake: HandshakeResult


@dataclass(frozen=True)
class Rekeyed:
    """A fresh handshake on the open channel replaced the session; ``resend`` were sealed
    under the old one and not acknowledged: seal them again under the new one."""

    handshake: HandshakeResult
    resend: tuple[bytes, ...]


@dataclass(frozen=True)
class FrameReceived:
    """One received frame's signed bundle, parsed (its ids read): open it, store what
    opens, then answer once with :meth:`Session.settle`."""

    session_id: bytes
    bundle: ParsedBundle

    @property
    def message_ids(self) -> tuple[bytes, ...]:
        return tuple(e.envelope.message_id for e in self.bundle.envelopes)


@dataclass(frozen=True)
class Verdict:
    """The app's one answer to a :class:`FrameReceived`: ``stored`` ids are acknowledged
    (stored now, or confirmed duplicates stored before); ``refused`` are not, each with
    its error (a signed REFUSE goes out for those a sender can act on)."""

    stored: tuple[bytes, ...] = ()
    refused: tuple[tuple[bytes, VolliError], ...] = ()


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
    | Rekeyed
    | FrameReceived
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
    messages_in: int = 0  # envelopes in received frames
    messages_out: int = 0  # envelopes queued to send
    stale_frames_in: int = 0  # frames sealed under a session that was replaced
    acks_in: int = 0
    acks_out: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    bundles_in: int = 0  # BUNDLE frames received
    bundles_out: int = 0
    rekeys: int = 0  # handshakes after the first on this channel
    srtt: float | None = None
    rttvar: float | None = None
    rto: float = 1.0
