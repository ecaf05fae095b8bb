"""Time-limited TURN credentials in coturn's ``use-auth-secret`` scheme (TURN REST API).

The username is ``<expiry unix time>:<peer id>`` and the password is
base64(HMAC-SHA1(secret, username)); coturn, started with
``use-auth-secret`` and ``static-auth-secret=<secret>``, recomputes it and
refuses it after the expiry.  ``volli-signal`` knows the secret, clients
never do, and a leaked credential dies by itself.  Pure: time is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from volli_nb.base.errors import MalformedFrame, UsageError
from volli_nb.core.netconfig import parse_ice_url


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
        try:
            urls = tuple(str(u) for u in frame["urls"])
            creds = cls(
                urls,
                str(frame["username"]),
                str(frame["credential"]),
                float(frame["expires"]),
                float(frame["ttl"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedFrame(f"unreadable TURN credentials from the server: {exc!r}") from None
        if not urls or not all(u.startswith(("turn:", "turns:")) for u in urls):
            raise MalformedFrame(f"the server's TURN URLs are not turn:/turns: URLs: {urls}")
        return creds

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
