"""ICE configuration: STUN/TURN servers, relay-only policy, and our timing knobs.

The defaults contact no server at all, so pairing inside one machine needs
none and no test ever reaches a public STUN server.  aiortc uses only the
first STUN and the first TURN URL that passes its (case-sensitive) filters and
drops the rest silently, so URLs are normalised here (lower-case scheme and
transport, explicit port and transport) and refused when aiortc could not use
them; with several TURN URLs the preflight (``net/turn_preflight.py``) picks the
one aiortc gets.  Pure data: ``net.aiortc_compat.rtc_configuration`` converts it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from volli_nb.base.errors import UsageError
from volli_nb.core.protocol.frames import DEFAULT_MAX_MESSAGE_SIZE, MAX_FRAME_BYTES

if TYPE_CHECKING:
    import ssl

DEFAULT_PORTS = {"stun": 3478, "stuns": 5349, "turn": 3478, "turns": 5349}
_URL = re.compile(
    r"(?P<scheme>[A-Za-z]+):(?P<host>[^?:/\[\]]+)(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?P<transport>[A-Za-z]+))?"
)


@dataclass(frozen=True)
class IceUrl:
    """One parsed STUN/TURN URL."""

    scheme: str  # stun, stuns, turn or turns
    host: str
    port: int
    transport: str | None  # udp or tcp for TURN; None for STUN

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    @property
    def tls(self) -> bool:
        return self.scheme in ("stuns", "turns")

    def __str__(self) -> str:
        tail = f"?transport={self.transport}" if self.transport else ""
        return f"{self.scheme}:{self.host}:{self.port}{tail}"


def parse_ice_url(url: str) -> IceUrl:
    """Parse and normalise ``url``; :class:`UsageError` for what aiortc would drop."""
    match = _URL.fullmatch(url.strip()) if isinstance(url, str) else None
    if match is None:
        raise UsageError(
            f"not a STUN/TURN URL: {url!r}; write e.g. 'turns:turn.example.org:443?transport=tcp'"
            " (IPv6 literals are not supported by aiortc: use a host name)"
        )
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise UsageError(f"unknown scheme {scheme!r} in {url!r}: use stun:, turn: or turns:")
    port = int(match["port"]) if match["port"] else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UsageError(f"port {port} out of range in {url!r}")
    transport = match["transport"].lower() if match["transport"] else None
    if scheme.startswith("stun"):
        if transport is not None:
            raise UsageError(f"a STUN URL takes no transport: {url!r}")
        return IceUrl(scheme, match["host"], port, None)
    transport = transport or ("tcp" if scheme == "turns" else "udp")
    if transport not in ("udp", "tcp"):
        raise UsageError(f"TURN transport is udp or tcp, not {transport!r}, in {url!r}")
    if scheme == "turns" and transport == "udp":
        raise UsageError(
            f"{url!r} asks for TURN over DTLS, which aiortc does not support: use "
            f"turns:{match['host']}:{port}?transport=tcp (TLS) instead"
        )
    return IceUrl(scheme, match["host"], port, transport)


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as in the seed's ``iceServers`` entries.

    URLs are normalised on creation.  ``ca`` verifies a ``turns:`` server's certificate:
    a CA file (PEM) or an ``ssl.SSLContext``; None means the system's CAs.  It applies to
    this server only, never to the process."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None
    ca: str | Path | ssl.SSLContext | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        given = [self.urls] if isinstance(self.urls, str) else list(self.urls)
        if not given:
            raise UsageError("an ICE server needs at least one URL")
        normal = [str(parse_ice_url(u)) for u in given]
        object.__setattr__(self, "urls", normal[0] if isinstance(self.urls, str) else normal)
        if self.ca is not None and not any(u.startswith(("turns:", "stuns:")) for u in normal):
            raise UsageError(f"a CA was given for {normal} but none is a turns: (TLS) URL")

    def url_list(self) -> list[str]:
        return [self.urls] if isinstance(self.urls, str) else list(self.urls)

    def parsed(self) -> list[IceUrl]:
        return [parse_ice_url(u) for u in self.url_list()]

    def only(self, url: str) -> IceServer:
        """This server with one of its URLs (what aiortc is handed after the preflight)."""
        tls = parse_ice_url(url).tls
        return IceServer([url], self.username, self.credential, self.ca if tls else None)

    def only_stun(self) -> IceServer | None:
        """This server's STUN URLs alone (None if it has none)."""
        stun = [str(u) for u in self.parsed() if not u.is_turn]
        return IceServer(stun, self.username, self.credential) if stun else None


def turn_urls(servers: Sequence[IceServer]) -> list[tuple[IceServer, IceUrl]]:
    """Every TURN URL in order, with the server (credentials, CA) it belongs to."""
    return [(s, u) for s in servers for u in s.parsed() if u.is_turn]


def udp_first_warning(servers: Sequence[IceServer], relay_only: bool) -> str | None:
    """Why relay-only with a UDP TURN URL first is fragile, or None."""
    turns = turn_urls(servers)
    if not relay_only or not turns or turns[0][1].transport != "udp":
        return None
    first = turns[0][1]
    return (
        f"relay-only, and the first TURN URL is UDP ({first}): where only TCP 443 leaves "
        f"(Binder, many firewalls) it times out; list turns:{first.host}:443?transport=tcp "
        "first (without the preflight aiortc uses only the first TURN URL)"
    )


@dataclass
class NetworkConfig:
    """Defaults contact no server at all: pairing inside one machine needs none."""

    ice_servers: list[IceServer] = field(default_factory=list)
    relay_only: bool = False
    loopback_only: bool = False
    preflight: bool = True  # check TURN servers before gathering and hand aiortc the best
    preflight_timeout: float = 5.0  # aiortc gives up gathering after 5 s too
    preflight_ttl: float = 60.0  # a preflight's answer is reused this long
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
    turn_hosts: tuple[str, ...] | None = None  # TURN hosts a signaling server may hand out

    def trusted_turn_hosts(self) -> frozenset[str] | None:
        """The TURN hosts the user configured (``turn_hosts`` and the hosts of configured
        TURN servers), which a signaling server's TURN URLs are checked against; None if
        there are none (its URLs are then shown before use, see ``net/signaling/turn``)."""
        hosts = {u.host for _, u in turn_urls(self.ice_servers)} | set(self.turn_hosts or ())
        return frozenset(hosts) if hosts or self.turn_hosts is not None else None

    @classmethod
    def relay_via(
        cls,
        turn_url: str | Sequence[str],
        username: str,
        credential: str,
        ca: str | Path | ssl.SSLContext | None = None,
        **options: Any,
    ) -> NetworkConfig:
        """Relay-only through one TURN server: the notebook one-liner for pairing across
        machines, e.g. ``NetworkConfig.relay_via("turns:turn.example.org:443", user, pw)``.

        Several URLs of the same server (TLS and TCP on 443, say) are tried by the
        preflight, which keeps the fastest that works."""
        urls = [turn_url] if isinstance(turn_url, str) else list(turn_url)
        server = IceServer(urls, username, credential, ca)
        if not all(u.is_turn for u in server.parsed()):
            raise UsageError(f"relay_via needs turn: or turns: URLs, not {urls}")
        return cls(ice_servers=[server], relay_only=True, **options)


def server_notes(config: NetworkConfig) -> list[tuple[str, str | None]]:
    """What a user should know about the configured servers: (event-log line, warning for
    the Python log or None).  aiortc silently ignores every STUN URL but the first, and
    every TURN URL but the first unless the preflight picks."""
    notes: list[tuple[str, str | None]] = []
    warning = udp_first_warning(config.ice_servers, config.relay_only)
    if warning is not None:
        notes.append((warning, warning))
    urls = [u for s in config.ice_servers for u in s.url_list()]
    for scheme in ("stun", "turn"):
        same = [u for u in urls if u.split(":", 1)[0] in (scheme, scheme + "s")]
        if len(same) < 2:
            continue
        if scheme == "turn" and config.preflight:
            notes.append((f"{len(same)} TURN URLs: the preflight hands aiortc the best", None))
        else:
            ignored = ", ".join(same[1:])
            notes.append(
                (
                    f"only the first {scheme.upper()} server is used: {same[0]}",
                    f"aiortc uses only the first {scheme.upper()} server ({same[0]}); "
                    f"ignoring {ignored}",
                )
            )
    return notes
