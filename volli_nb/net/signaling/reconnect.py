"""How a signaling client names a failure of its path, waits, and says where it stands.

Every failure between the client and ``volli-signal`` is worth another try: a refused
TCP connection (the process is restarting), a handshake a balancer accepted and closed
(its backend just died), an HTTP 502 from a proxy, a TLS error, a timeout.  None of them
ends the client; each gets a short *class* (``refused``, ``closed``, ``http-502``, …) so
an outage is logged once per class, not once per try, and words for a person.  The
waits double from ``BASE`` up to a cap, each drawn between half and all of it (jitter,
from an injected ``random``), so clients cut off together do not return in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from volli_nb.base.errors import TransportClosed
from volli_nb.net.signaling.wire import ServerBusy

BASE = 0.2  # seconds before the first try after a drop
MAX_BACKOFF = 2.0  # the cap: the path working again is noticed within about this long
CLOSE_REPLACED = 4000  # the server's code: a newer connection took this id (no retry)

CONNECTING, CONNECTED, RECONNECTING, REPLACED, CLOSED = (
    "connecting",
    "connected",
    "reconnecting",
    "replaced",
    "closed",
)


def backoff(tries: int, random: Callable[[], float], cap: float = MAX_BACKOFF) -> float:
    """The wait before try ``tries + 1`` of an outage: doubling, capped, jittered."""
    return min(cap, BASE * 2.0 ** min(tries, 30)) * (0.5 + 0.5 * random())


async def until_admitted(open_: Callable[[], Awaitable[None]], random: Callable[[], float]) -> None:
    """``open_`` until the server admits it: "busy" (too many connections registering,
    a whole class at once behind one address) is worth another try soon; the caller
    bounds the whole try."""
    tries = 0
    while True:
        try:
            return await open_()
        except ServerBusy:
            await asyncio.sleep(backoff(tries, random))
            tries += 1


def classify(exc: BaseException) -> tuple[str, str]:
    """A failure's class (one log line per class and outage) and its words."""
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        return f"http-{code}", (
            f"the server answered HTTP {code} instead of a WebSocket "
            "(a proxy in front of a stopped server?)"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "untrusted", f"its certificate is not trusted ({exc.verify_message or exc})"
    if isinstance(exc, ssl.SSLError):
        return "tls", f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused (is volli-signal running?)"
    if isinstance(exc, TimeoutError):
        return "timeout", "no answer in time (a network black hole, or an overloaded server?)"
    if isinstance(exc, InvalidMessage | ConnectionClosed | EOFError):
        return "closed", (
            "the connection was closed during the handshake (a balancer whose backend is gone?)"
        )
    if isinstance(exc, InvalidURI):
        return "bad-url", f"the URL is not a WebSocket URL ({exc})"
    if isinstance(exc, InvalidHandshake):
        return "handshake", f"the WebSocket handshake failed ({exc})"
    if isinstance(exc, OSError):
        return "network", f"network error ({exc.strerror or exc})"
    if isinstance(exc, TransportClosed):
        return "refused-registration", str(exc)
    if isinstance(exc, ValueError):
        return "protocol", f"the server sent something that is not a signaling frame ({exc})"
    return "error", f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class SignalingStatus:
    """Where a client stands: ``state``, and while not connected, why and when next."""

    state: str
    url: str
    failure: str | None = None  # the latest failure's words
    tries: int = 0  # failed tries in this outage
    next_try: float | None = None  # monotonic time of the next try
    since: float = 0.0  # monotonic time this state (or outage) began

    def describe(self, now: float) -> str:
        """One line for a panel: ``reconnecting (HTTP 502 …), try 3 in 1.2 s``."""
        if self.state == RECONNECTING:
            why = f" ({self.failure})" if self.failure else ""
            wait = "" if self.next_try is None else f" in {max(0.0, self.next_try - now):.1f} s"
            down = f", down {max(0.0, now - self.since):.0f} s"
            return f"reconnecting to {self.url}{why}: try {self.tries + 1}{wait}{down}"
        if self.state == REPLACED:
            return f"replaced at {self.url}: this id connected again elsewhere; not retrying"
        return f"{self.state} ({self.url})"


async def abandon(ws: ClientConnection) -> None:
    """Close a try that failed halfway (bounded: the path may be dead)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 1)


def close_words(ws: ClientConnection) -> str:
    """How a connection that was up ended, for the outage's first log line."""
    code = ws.close_code
    if code is None or code == 1006:
        return "no close frame: the server or the path died"
    return f"closed with code {code}{': ' + ws.close_reason if ws.close_reason else ''}"


__all__ = [
    "CLOSED",
    "CONNECTED",
    "CONNECTING",
    "MAX_BACKOFF",
    "RECONNECTING",
    "REPLACED",
    "SignalingStatus",
    "abandon",
    "backoff",
    "classify",
    "close_words",
]
