"""What we read out of session descriptions: ICE candidates and DTLS fingerprints.

aiortc does not trickle ICE: every candidate sits in the SDP, so the ICE panel
parses them from the local and remote descriptions.  Pure string handling.

Fingerprint lines are read ASCII-only with exact algorithm names: a hash name that
only *case-folds* to ``sha-256`` under Unicode rules (``ſha-256``) is not sha-256, just
as aiortc, which verifies the certificate, does not take it for one.  Channel binding
never trusts these lines: it signs the digests of the certificates the DTLS handshake
actually used (:func:`volli_nb.net.aiortc_compat.certificate_digests`), formatted by
:func:`format_fingerprint` the way SDP writes them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from volli_nb.base.errors import MalformedFrame, RefusedDescription

MIN_MESSAGE_SIZE = 16 * 1024  # what a peer must take: aiortc takes 256 KiB, browsers more
MAX_REMOTE_CANDIDATES = 64  # aiortc gathers a host and a srflx one per local address, and
# relays: a host with many addresses (bridges, VPNs) may need more than 32
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # "this host": Linux sends it to itself


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

    def __str__(self) -> str:
        """``host 127.0.0.1:50343``: what a pair of candidates is drawn with."""
        return f"{self.type} {self.endpoint}"

    def __repr__(self) -> str:
        related = ""
        if self.related_address:
            related = f" from {self.related_address}:{self.related_port}"
        return f"CandidateInfo({self.type} {self.protocol} {self.endpoint}{related})"


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
    """Every candidate line, split into lines as aiortc splits them (``str.splitlines``,
    also at NEL and the Unicode line separators): no line hides from us that aiortc uses."""
    if not sdp:
        return []
    return [parse_candidate(line) for line in sdp.splitlines() if line.startswith("a=candidate:")]


def candidate_problem(candidate: CandidateInfo) -> str | None:
    """Why we will not send ICE checks to ``candidate``, or None.  An offer or answer comes
    from a pairing code or a room member, and aioice checks every candidate in it: a
    hostname would be looked up (mDNS: multicast), and multicast, broadcast, unspecified
    (this host) or port-0 addresses are never a peer's.  Loopback and private are fine."""
    try:
        address = ipaddress.ip_address(candidate.address)
    except ValueError:
        return f"{candidate.address!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    v4_odd = isinstance(address, ipaddress.IPv4Address) and (
        address.is_reserved or address in _THIS_NETWORK  # 240/4 holds the broadcast address
    )
    if address.is_multicast or address.is_unspecified or v4_odd:
        return f"{address} is not a unicast address a peer can have"
    if not 0 < candidate.port < 65536:
        return f"port {candidate.port} is not a UDP or TCP port"
    return None


def message_size_problem(size: int) -> str | None:
    """Why we will not send to a peer that takes messages of at most ``size`` bytes, or
    None (0: any size, RFC 8841).  Below a chunk header no frame can leave at all (the
    link failed with an untyped error inside aiortc), and a few bytes a message would cut
    every frame we send that peer into thousands of chunks, each sent and counted."""
    if size < 0 or 0 < size < MIN_MESSAGE_SIZE:
        return f"it takes messages of at most {size} bytes, and a channel needs {MIN_MESSAGE_SIZE}"
    return None


def check_remote(sdp: str) -> None:
    """Refuse a remote offer or answer whose candidates we will not check, or whose
    message size we will not send in (:class:`RefusedDescription`), before aiortc has it."""
    for line in sdp.splitlines():  # aiortc reads each such line (the last one counts)
        if line.startswith("a=max-message-size:"):
            try:
                size = int(line.partition(":")[2])
            except ValueError:
                raise RefusedDescription(f"the peer's description has a bad {line!r}") from None
            if (problem := message_size_problem(size)) is not None:
                raise RefusedDescription(f"the peer's description was refused: {problem}")
    found = candidates(sdp)
    if len(found) > MAX_REMOTE_CANDIDATES:
        raise RefusedDescription(
            f"the peer's description names {len(found)} ICE candidates, more than the "
            f"{MAX_REMOTE_CANDIDATES} a peer gathers; it was refused"
        )
    for candidate in found:
        if (problem := candidate_problem(candidate)) is not None:
            raise RefusedDescription(f"the peer's description was refused: candidate {problem}")


_FINGERPRINT_LINE = re.compile(
    r"^a=fingerprint:([A-Za-z0-9-]+) ((?:[0-9A-Fa-f]{2}:)*[0-9A-Fa-f]{2})[ \t]*\r?$",
    re.M | re.ASCII,
)


def fingerprints(sdp: str | None) -> list[tuple[str, str]]:
    """Every well-formed ``a=fingerprint:`` line as (lower-case algorithm, upper-case hex).

    Only ASCII lines count: RFC 8122's hash names are ASCII tokens, compared without
    case as ABNF literals are (which is what aiortc does), and nothing else is folded."""
    if not sdp:
        return []
    return [
        (m.group(1).lower(), m.group(2).upper())
        for m in _FINGERPRINT_LINE.finditer(sdp)
        if m.group(0).isascii()
    ]


def fingerprint(sdp: str | None, algorithm: str = "sha-256") -> str | None:
    """The DTLS certificate fingerprint for ``algorithm``, upper-case hex with colons.

    None if there is none, or if the SDP names two different ones for that algorithm."""
    values = {value for name, value in fingerprints(sdp) if name == algorithm}
    return values.pop() if len(values) == 1 else None


def format_fingerprint(digest: bytes) -> str:
    """A certificate digest as SDP writes it: ``AB:CD:…`` (upper-case hex, colons)."""
    return ":".join(f"{byte:02X}" for byte in digest)
