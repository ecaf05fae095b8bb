"""Every aiortc/aioice patch and internal access, here or (SCTP's) in :mod:`.aiortc_sctp`.

What lives here, and why:

- **Reading internals** aiortc does not expose: the nominated ICE pair and how far the
  checks got (aioice's check list, :func:`ice_checks`), the remote's SCTP maximum message
  size, and the certificates the DTLS handshake used (:func:`certificate_digests`, what
  channel binding signs), with safe fallbacks.
- **Converting** our pure :class:`~volli_nb.core.netconfig.NetworkConfig` into aiortc's
  ``RTCConfiguration``.
- **SCTP** (:mod:`volli_nb.net.aiortc_sctp`): INIT retransmissions with tag 0, a liveness
  stamp on every packet, flow control, and a bound on what a peer's data may hold here.
- **"This machine only" ICE**: aioice never offers loopback when it gathers host
  candidates, so two peers on one machine pair over its interface addresses, and a machine
  (or namespace) with only loopback cannot pair at all.  aiortc has no hook for this;
  aioice's module-level ``get_host_addresses`` decides.  We wrap that function once; the
  wrapper answers ``["127.0.0.1"]`` only while :data:`LOOPBACK_ONLY` is set in the current
  context, so other connections in the process gather as usual.  aiortc gathers inside
  ``RTCPeerConnection.setLocalDescription``, in the caller's task, so setting the context
  variable around that call scopes it.  Checked against aioice 0.13
  (``tests/test_loopback.py`` fails if it changes).
- **A certificate trust per TURN server**: aiortc hands aioice ``ssl=True`` for ``turns:``,
  so aioice verifies against Python's default context, and a server whose CA the system
  does not know yields no candidate.  We wrap ``aioice.turn.create_turn_endpoint`` (which
  aioice's gathering looks up at call time) once; while :data:`TURN_TLS` holds a context
  for the server's address in the current context, that context replaces ``True``.
  Gathering runs in the task that calls ``setLocalDescription`` (and tasks it starts,
  which copy the context), so :func:`turn_tls` around it scopes the trust to that
  connection (``tests/test_turn_tls.py``).

- **Consent that a busy loop does not revoke** (aioice 0.13): every ~5 s aioice sends one
  STUN check with no retransmission and gives it 0.5 s; six misses in a row close ICE, and
  with it the connection.  A loop busy with a large transfer (or a peer's loop, or a deep
  socket queue ahead of the answer) misses all six within 30 s, and the association
  closes mid-transfer while both sides sit idle: the bench's aiortc baseline once waited
  8 minutes that way.  Checks now retransmit (0.5 + 1 + 2 s), and consent expires 30 s
  after the last answer (RFC 7675 §5.1), as before for a peer that is really gone.

The patches apply once, at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from cryptography.hazmat.primitives.serialization import Encoding

from volli_nb.base.errors import UsageError
from volli_nb.core.netconfig import IceServer, NetworkConfig
from volli_nb.core.protocol.frames import DEFAULT_MAX_MESSAGE_SIZE
from volli_nb.core.sdp import CandidateInfo, check_remote
from volli_nb.net import aiortc_sctp

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


@dataclass(frozen=True)
class IceChecks:
    """How far ICE got: what tells "never tried a pair" from "tried, and none worked"."""

    remote: int  # remote candidates known
    pairs: int  # candidate pairs formed with them
    tried: int  # pairs whose connectivity check started (in progress, succeeded or failed)


_TRIED = {
    aioice.ice.CandidatePair.State.IN_PROGRESS,
    aioice.ice.CandidatePair.State.SUCCEEDED,
    aioice.ice.CandidatePair.State.FAILED,
}


def ice_checks(pc: RTCPeerConnection) -> IceChecks | None:
    """aioice's check list for the data channel's transport; None when there is no
    transport yet (or aiortc's layout changed)."""
    try:
        sctp: Any = pc.sctp
        connection = sctp.transport.transport._connection
        pairs = list(connection._check_list)
        remote = len(connection.remote_candidates)
    except AttributeError:
        return None
    tried = sum(1 for p in pairs if p.task is not None or p.state in _TRIED)
    return IceChecks(remote=remote, pairs=len(pairs), tried=tried)


def remote_max_message_size(pc: RTCPeerConnection) -> int:
    try:
        sctp: Any = pc.sctp
        size = int(sctp._remote_max_message_size)
    except (AttributeError, TypeError, ValueError):
        size = DEFAULT_MAX_MESSAGE_SIZE
    return size or DEFAULT_MAX_MESSAGE_SIZE


def certificate_digests(pc: RTCPeerConnection) -> tuple[bytes, bytes] | None:
    """SHA-256 of the DER certificates this connection's DTLS handshake used: (ours, the
    one the peer presented).  None until the handshake completed.

    These, not fingerprints read from SDP text, are what a binding must sign: aiortc
    checks the peer's certificate against *some* SDP fingerprint line, and whoever
    carried the SDP chose those lines.  Read from the DTLS session itself (pyOpenSSL's
    ``get_certificate`` / ``get_peer_certificate``), behind aiortc's private ``_ssl``."""
    try:
        sctp: Any = pc.sctp
        dtls = sctp.transport
        if dtls.state != "connected":
            return None
        session = dtls._ssl
        local = session.get_certificate(as_cryptography=True)
        remote = session.get_peer_certificate(as_cryptography=True)
    except AttributeError:
        return None
    if local is None or remote is None:
        return None
    return (
        hashlib.sha256(local.public_bytes(Encoding.DER)).digest(),
        hashlib.sha256(remote.public_bytes(Encoding.DER)).digest(),
    )


def as_description(value: SDP, kind: str) -> RTCSessionDescription:
    """The peer's offer or answer, checked before aiortc has it (``check_remote``)."""
    if isinstance(value, dict):
        value = RTCSessionDescription(sdp=value["sdp"], type=value.get("type", kind))
    elif isinstance(value, str):
        value = RTCSessionDescription(sdp=value, type=kind)
    if not isinstance(value, RTCSessionDescription) or not isinstance(value.sdp, str):
        raise UsageError(f"expected an SDP {kind} (string or RTCSessionDescription)")
    check_remote(value.sdp)
    return value


def rtc_configuration(
    config: NetworkConfig, servers: list[IceServer] | None = None
) -> RTCConfiguration:
    """aiortc's configuration for ours, with ``servers`` (the preflight's choice) instead of
    ``config.ice_servers`` if given (aiortc still uses only its first STUN and TURN)."""
    chosen = config.ice_servers if servers is None else servers
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in chosen
        ],
        iceTransportPolicy=(
            RTCIceTransportPolicy.RELAY if config.relay_only else RTCIceTransportPolicy.ALL
        ),
    )


# --- patches applied at import ---


def apply() -> None:
    """The SCTP patches (:func:`aiortc_sctp.apply`) and consent freshness (idempotent)."""
    aiortc_sctp.apply()
    connection: Any = aioice.ice.Connection
    connection.query_consent = _query_consent


CONSENT_EXPIRY = 30.0  # seconds after the last answer (RFC 7675 section 5.1)
CONSENT_RETRANSMISSIONS = 2  # a check waits 0.5 + 1 + 2 s for its answer


async def _query_consent(self: Any) -> None:
    """aioice's consent freshness (RFC 7675), with retransmitted checks and an expiry
    counted from the last answer instead of six single 0.5 s tries in a row."""
    assert self.remote_password is not None
    answered = time.monotonic()
    while True:
        await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
        for pair in self._nominated.values():
            request = self.build_request(pair, nominate=False)
            key = self.remote_password.encode("utf8")
            with contextlib.suppress(aioice.stun.TransactionError):
                await pair.protocol.request(
                    request, pair.remote_addr, integrity_key=key,
                    retransmissions=CONSENT_RETRANSMISSIONS,
                )  # fmt: skip
                answered = time.monotonic()
        if time.monotonic() - answered >= CONSENT_EXPIRY:
            self._query_consent_task = None
            await self.close()
            return


# --- loopback-only ICE ---

LOOPBACK_ONLY: ContextVar[bool] = ContextVar("volli_loopback_only", default=False)
_ADDRESSES = ["127.0.0.1"]
_original: Any = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if LOOPBACK_ONLY.get():
        return list(_ADDRESSES) if use_ipv4 else []
    result: list[str] = _original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return result


def install() -> None:
    """Wrap aioice's address lookup once per process (idempotent)."""
    global _original
    if _original is None:
        _original = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def loopback_only(enabled: bool = True) -> Iterator[None]:
    """Within this block, ICE gathering in this task offers only 127.0.0.1."""
    install()
    token = LOOPBACK_ONLY.set(enabled)
    try:
        yield
    finally:
        LOOPBACK_ONLY.reset(token)


# --- a certificate trust per TURN server ---

TurnContexts = dict[tuple[str, int], ssl.SSLContext]
TURN_TLS: ContextVar[TurnContexts | None] = ContextVar("volli_turn_tls", default=None)
_original_turn_endpoint: Any = None


async def _create_turn_endpoint(*args: Any, **kwargs: Any) -> Any:
    contexts = TURN_TLS.get()
    address = kwargs.get("server_addr", args[1] if len(args) > 1 else None)
    if contexts and kwargs.get("ssl") is True and address is not None:
        kwargs["ssl"] = contexts.get((address[0], int(address[1])), True)
    return await _original_turn_endpoint(*args, **kwargs)


def install_turn_tls() -> None:
    """Wrap aioice's TURN endpoint factory once per process (idempotent)."""
    global _original_turn_endpoint
    if _original_turn_endpoint is None:
        _original_turn_endpoint = aioice.turn.create_turn_endpoint
        aioice.turn.create_turn_endpoint = _create_turn_endpoint


@contextlib.contextmanager
def turn_tls(contexts: TurnContexts) -> Iterator[None]:
    """Within this block, TLS to these TURN servers (host, port) uses these contexts."""
    install_turn_tls()
    token = TURN_TLS.set(dict(contexts) if contexts else None)
    try:
        yield
    finally:
        TURN_TLS.reset(token)


apply()
