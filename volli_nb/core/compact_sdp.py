"""A data-channel session description cut to what the other side needs to rebuild it.

aiortc's offer or answer for one data channel is ~1 KB of SDP, but the other side only
needs the ICE credentials, the sha-256 DTLS fingerprint, the DTLS role, the candidates and
the SCTP port and size limit; everything else is the same in every such SDP.  So a pairing
code carries these (~60 bytes plus 7–23 per candidate) and :func:`rebuild` writes the SDP
aiortc accepts.  The other fingerprints (sha-384, sha-512) are dropped: DTLS checks the
certificate against the sha-256 one, and channel binding signs the certificates the
handshake used anyway.  Candidates lose their related address (only the ICE panel showed
it) and their foundation (rebuilt per candidate; it only groups checks).  Pure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from volli_nb.base.errors import RefusedDescription, UsageError
from volli_nb.core import sdp as sdp_text
from volli_nb.core.crypto.wire import Reader, uvarint
from volli_nb.core.sdp import CandidateInfo

SETUPS = ("actpass", "active", "passive")
TYPES = ("host", "srflx", "prflx", "relay")
TYPE_PREFERENCE = {"host": 126, "prflx": 110, "srflx": 100, "relay": 0}  # RFC 8445 5.1.2.2
MAX_CANDIDATES = 16
_ICE_CHARS = re.compile(r"^[A-Za-z0-9+/]{4,256}$")  # RFC 8839 ice-char
_IPV6, _TCP, _PRIORITY = 0x04, 0x08, 0x10  # candidate flag bits above the 2-bit type
_SCTP = 0x80  # role byte: SCTP port and size follow (they are not aiortc's)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SCTP_PORT, MAX_MESSAGE_SIZE = 5000, 262144  # what aiortc 1.16 offers


@dataclass(frozen=True)
class SdpEssentials:
    ufrag: str
    pwd: str
    fingerprint: bytes  # sha-256 of the DTLS certificate
    setup: str  # actpass (offer), active or passive (answer)
    candidates: tuple[CandidateInfo, ...]
    sctp_port: int = SCTP_PORT
    max_message_size: int = MAX_MESSAGE_SIZE


def default_priority(kind: str, component: int = 1) -> int:
    """RFC 8445's recommended priority with the top local preference (what aioice uses)."""
    return (TYPE_PREFERENCE[kind] << 24) + (65535 << 8) + (256 - component)


def _attribute(sdp: str, name: str) -> str:
    found = re.findall(rf"^a={name}:(\S+)\s*$", sdp, re.M)
    if len(found) != 1:
        raise UsageError(f"cannot shorten this SDP: expected one a={name} line, found {len(found)}")
    return str(found[0])


def essentials(sdp: str) -> SdpEssentials:
    """What the other side needs from our data-channel ``sdp`` (UsageError if it is not one)."""
    if len(re.findall(r"^m=", sdp, re.M)) != 1 or "m=application " not in sdp:
        raise UsageError("cannot shorten this SDP: expected exactly one data-channel section")
    fingerprint = sdp_text.fingerprint(sdp)
    if fingerprint is None:
        raise UsageError("cannot shorten this SDP: it has no sha-256 DTLS fingerprint")
    setup = _attribute(sdp, "setup")
    if setup not in SETUPS:
        raise UsageError(f"cannot shorten this SDP: unknown DTLS setup {setup!r}")
    size = re.findall(r"^a=max-message-size:(\d+)\s*$", sdp, re.M)
    candidates = tuple(c for c in sdp_text.candidates(sdp) if c.component == 1)
    return SdpEssentials(
        ufrag=_attribute(sdp, "ice-ufrag"),
        pwd=_attribute(sdp, "ice-pwd"),
        fingerprint=bytes.fromhex(fingerprint.replace(":", "")),
        setup=setup,
        candidates=candidates[:MAX_CANDIDATES],
        sctp_port=int(_attribute(sdp, "sctp-port")),
        max_message_size=int(size[0]) if size else 65536,  # RFC 8841: none means 64 KiB
    )


def rebuild(e: SdpEssentials, session_id: int) -> str:
    """The SDP aiortc accepts for ``e`` (``session_id`` fills the o= line)."""
    default = e.candidates[0] if e.candidates else None
    family = "IP6" if default and ":" in default.address else "IP4"
    fingerprint = ":".join(f"{b:02X}" for b in e.fingerprint)
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic:WMS *",
        f"m=application {default.port if default else 9} UDP/DTLS/SCTP webrtc-datachannel",
        f"c=IN {family} {default.address if default else '0.0.0.0'}",
        "a=mid:0",
        f"a=sctp-port:{e.sctp_port}",
        f"a=max-message-size:{e.max_message_size}",
        *(
            f"a=candidate:{i + 1} 1 {c.protocol} {c.priority} {c.address} {c.port} typ {c.type}"
            for i, c in enumerate(e.candidates)
        ),
        "a=end-of-candidates",
        f"a=ice-ufrag:{e.ufrag}",
        f"a=ice-pwd:{e.pwd}",
        f"a=fingerprint:sha-256 {fingerprint}",
        f"a=setup:{e.setup}",
    ]
    return "\r\n".join(lines) + "\r\n"


def _pack_ice(text: str, field: str) -> bytes:
    """ICE characters are the base64 alphabet: 6 bits each (22 characters in 17 bytes)."""
    if not _ICE_CHARS.match(text):
        raise UsageError(f"cannot shorten this SDP: {field} {text!r} is not ICE characters")
    value = 0
    for char in text:
        value = (value << 6) | _ALPHABET.index(char)
    return uvarint(len(text)) + value.to_bytes((6 * len(text) + 7) // 8, "big")


def _unpack_ice(reader: Reader, field: str) -> str:
    length = reader.uvarint(f"{field} length", 4, 256)
    value = int.from_bytes(reader.take((6 * length + 7) // 8, field), "big")
    if value >> (6 * length):
        raise reader.fail(f"{field} has stray bits")
    return "".join(_ALPHABET[(value >> (6 * i)) & 63] for i in reversed(range(length)))


def pack(e: SdpEssentials) -> bytes:
    """The binary layout: role (and SCTP port and size unless aiortc's), ICE credentials,
    fingerprint, candidates."""
    defaults = (e.sctp_port, e.max_message_size) == (SCTP_PORT, MAX_MESSAGE_SIZE)
    out = bytearray([SETUPS.index(e.setup) | (0 if defaults else _SCTP)])
    if not defaults:
        out += uvarint(e.sctp_port) + uvarint(e.max_message_size)
    out += _pack_ice(e.ufrag, "ufrag") + _pack_ice(e.pwd, "pwd")
    out += e.fingerprint
    out += bytes([len(e.candidates)])
    for c in e.candidates:
        out += _pack_candidate(c)
    return bytes(out)


def _pack_candidate(c: CandidateInfo) -> bytes:
    if c.type not in TYPES or c.protocol not in ("udp", "tcp"):
        raise UsageError(f"cannot shorten this SDP: unsupported candidate {c}")
    try:
        address = ipaddress.ip_address(c.address)
    except ValueError:
        raise UsageError(f"cannot shorten this SDP: {c.address!r} is not an IP address") from None
    flags = TYPES.index(c.type)
    flags |= _IPV6 if address.version == 6 else 0
    flags |= _TCP if c.protocol == "tcp" else 0
    explicit = c.priority != default_priority(c.type)
    flags |= _PRIORITY if explicit else 0
    tail = c.priority.to_bytes(4, "big") if explicit else b""
    return bytes([flags]) + address.packed + c.port.to_bytes(2, "big") + tail


def unpack(reader: Reader) -> SdpEssentials:
    """Read :func:`pack`'s layout; every defect raises the reader's error."""
    first = reader.byte("DTLS role")
    setup = first & ~_SCTP
    if setup >= len(SETUPS):
        raise reader.fail(f"unknown DTLS role {setup}")
    sctp_port, size = SCTP_PORT, MAX_MESSAGE_SIZE
    if first & _SCTP:
        sctp_port = reader.uvarint("SCTP port", 1, 65535)
        size = reader.uvarint("max message size", 0, 2**32)
        if (problem := sdp_text.message_size_problem(size)) is not None:
            raise RefusedDescription(problem)
    ufrag, pwd = _unpack_ice(reader, "ufrag"), _unpack_ice(reader, "pwd")
    fingerprint = reader.take(32, "fingerprint")
    count = reader.byte("candidate count")
    if count > MAX_CANDIDATES:
        raise reader.fail(f"{count} candidates (at most {MAX_CANDIDATES})")
    found = tuple(_unpack_candidate(reader, i) for i in range(count))
    return SdpEssentials(ufrag, pwd, fingerprint, SETUPS[setup], found, sctp_port, size)


def _unpack_candidate(reader: Reader, index: int) -> CandidateInfo:
    flags = reader.byte("candidate flags")
    if flags & ~(0x03 | _IPV6 | _TCP | _PRIORITY):
        raise reader.fail(f"unknown candidate flags {flags:#x}")
    raw = reader.take(16 if flags & _IPV6 else 4, "candidate address")
    port = int.from_bytes(reader.take(2, "candidate port"), "big")
    kind = TYPES[flags & 0x03]
    explicit = flags & _PRIORITY
    priority = int.from_bytes(reader.take(4, "priority"), "big") if explicit else None
    candidate = CandidateInfo(
        foundation=str(index + 1),
        component=1,
        protocol="tcp" if flags & _TCP else "udp",
        priority=default_priority(kind) if priority is None else priority,
        address=str(ipaddress.ip_address(raw)),
        port=port,
        type=kind,
    )
    if (problem := sdp_text.candidate_problem(candidate)) is not None:
        raise RefusedDescription(f"candidate {index + 1}: {problem}")
    return candidate


__all__ = ["SdpEssentials", "default_priority", "essentials", "pack", "rebuild", "unpack"]
