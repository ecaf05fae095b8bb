"""Time-limited TURN credentials in coturn's ``use-auth-secret`` scheme (TURN REST API).

The username is ``<expiry unix time>:<peer id>`` and the password is
base64(HMAC-SHA1(secret, username)); coturn, started with
``use-auth-secret`` and ``static-auth-secret=<secret>``, recomputes it and
refuses it after the expiry.  ``volli-signal`` knows the secret, clients
never do, and a leaked credential dies by itself.  Pure: time is passed in.

A client does not take the server's word for *where* TURN is (issue 26, item 6):
:func:`vet_turn_urls` keeps only URLs whose host the user configured (or the signaling
server's own host); with nothing configured, it refuses an address literal inside a
private, loopback or link-local network the signaling server is not in itself (a lying
server would have aiortc probe the user's own network), and the room session shows
every other host before it is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from volli_nb.base.errors import MalformedFrame, UsageError
from volli_nb.core.netconfig import parse_ice_url


class UntrustedTurnServer(MalformedFrame):
    """The signaling server handed out TURN URLs none of which the client may use."""


@dataclass(frozen=True)
class TurnCredentials:
    urls: tuple[str, ...]
    username: str
    credential: str
    expires: float  # unix time after which coturn refuses them
    ttl: float

    def to_frame(self) -> dict[str, Any]:
        return {
            "type": "turn",
            "urls": list(self.urls),
            "username": self.username,
            "credential": self.credential,
            "expires": self.expires,
            "ttl": self.ttl,
        }

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> TurnCredentials:
        urls, username, credential = (
            frame.get("urls"),
            frame.get("username"),
            frame.get("credential"),
        )
        expires, ttl = frame.get("expires"), frame.get("ttl")
        if not (
            isinstance(urls, list)
            and all(isinstance(u, str) for u in urls)
            and isinstance(username, str)
            and isinstance(credential, str)
            and _finite(expires)
            and _finite(ttl)
        ):
            raise MalformedFrame(
                "unreadable TURN credentials from the server: urls is a list of strings, "
                "username and credential strings, expires and ttl finite numbers"
            )
        if not urls or not all(u.startswith(("turn:", "turns:")) for u in urls):
            raise MalformedFrame(f"the server's TURN URLs are not turn:/turns: URLs: {urls}")
        return cls(tuple(urls), username, credential, float(expires), float(ttl))

    def remaining(self, now: float) -> float:
        return self.expires - now


@dataclass(frozen=True)
class TurnIssuer:
    """What ``volli-signal --turn-secret S --turn-url U [--turn-url U2] --turn-ttl T`` hands out."""

    secret: str
    urls: tuple[str, ...]
    ttl: float = 3600.0

    def __post_init__(self) -> None:
        if not self.secret:
            raise UsageError("--turn-secret is empty; use coturn's static-auth-secret")
        if not self.urls:
            raise UsageError("give at least one --turn-url, e.g. turns:turn.example.org:443")
        parsed = [parse_ice_url(u) for u in self.urls]  # normalised, as clients will use them
        bad = [str(u) for u in parsed if not u.is_turn]
        if bad:
            raise UsageError(f"TURN URLs start with turn: or turns:, not {bad}")
        object.__setattr__(self, "urls", tuple(str(u) for u in parsed))
        if self.ttl < 2:
            raise UsageError("--turn-ttl must be at least 2 seconds (coturn counts whole seconds)")

    def issue(self, peer_id: str, now: float) -> TurnCredentials:
        expires = int(now + self.ttl)
        username = f"{expires}:{peer_id}"
        digest = hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()
        credential = base64.b64encode(digest).decode("ascii")
        return TurnCredentials(self.urls, username, credential, float(expires), self.ttl)

    def refresh_after(self) -> float:
        """Hand out new credentials at half their life, so a slow client is never left
        with expired ones."""
        return self.ttl / 2


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _scope(host: str) -> str:
    """Where an address literal points: loopback, link-local, private, special, public;
    a host name is "name" (it may resolve anywhere: such a host is shown, not refused)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "name"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "special"
    return "private" if address.is_private else "public"


def vet_turn_urls(
    creds: TurnCredentials, signaling_url: str, allowed: Collection[str] | None
) -> TurnCredentials:
    """``creds`` with only the TURN URLs the client may use, or :class:`UntrustedTurnServer`.

    ``allowed``: the TURN hosts the user configured (None: none).  The signaling
    server's own host is always allowed.  With ``allowed``, every other host is
    refused; without, only an address literal in a private, loopback, link-local or
    special network that the signaling server's host is not in itself."""
    own = (urlsplit(signaling_url).hostname or "").lower()
    pinned = {h.lower() for h in allowed} if allowed is not None else None
    kept, refused = [], []
    for url in creds.urls:
        try:
            host = parse_ice_url(url).host.lower()
        except UsageError:
            refused.append(url)
            continue
        if host == own or (host in pinned if pinned is not None else _plausible(host, own)):
            kept.append(url)
        else:
            refused.append(url)
    if not kept:
        how = (
            "add its host to NetworkConfig(turn_hosts=...) if you trust it"
            if pinned is not None
            else "it points into a network the signaling server is not in"
        )
        raise UntrustedTurnServer(
            f"the signaling server at {signaling_url} handed out TURN URLs the client "
            f"may not use: {refused} ({how}); no TURN server from it is used"
        )
    return replace(creds, urls=tuple(kept)) if refused else creds


def _plausible(host: str, own: str) -> bool:
    scope = _scope(host)
    return scope in ("name", "public") or scope == _scope(own)
