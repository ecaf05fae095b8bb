"""ICE configuration: STUN/TURN servers, relay-only policy, and our timing knobs.

The defaults contact no server at all, so pairing inside one machine needs
none and no test ever reaches a public STUN server.  aiortc uses only the
first STUN and the first TURN server it is given; NetworkStore warns when
more are configured.  Pure data: ``net.aiortc_compat.rtc_configuration`` converts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from volli_nb.core.protocol.frames import DEFAULT_MAX_MESSAGE_SIZE, MAX_FRAME_BYTES


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as in the seed's ``iceServers`` entries."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None

    def url_list(self) -> list[str]:
        return [self.urls] if isinstance(self.urls, str) else list(self.urls)


@dataclass
class NetworkConfig:
    """Defaults contact no server at all: pairing inside one machine needs none."""

    ice_servers: list[IceServer] = field(default_factory=list)
    relay_only: bool = False
    loopback_only: bool = False
    heartbeat_interval: float = 0.5
    dead_after: float = 2.5  # + one heartbeat interval: a dead peer is noticed within 3 s
    verify_timeout: float = 10.0
    close_timeout: float = 2.0
    max_chunk: int = DEFAULT_MAX_MESSAGE_SIZE
    max_frame_bytes: int = MAX_FRAME_BYTES  # a reassembled frame; holds a 12 MiB message
    buffer_high: int = 1024 * 1024
    buffer_low: int = 256 * 1024
    ack_timeout: float | None = 60.0  # the ceiling when adaptive_ack is on
    adaptive_ack: bool = True  # ACK deadlines follow measured RTT, loss and backlog
    bundle: bool = True  # small messages share frames and ACKs
    burst_bytes: int = 256 * 1024  # message bytes sent before control frames get a turn
    clock_skew_warn: float = 30.0  # seconds of clock skew that are warned about, both sides
