"""Why a pairing failed, told to the peer and heard from it, so both sides' waiters
raise the same typed cause instead of a bare timeout.

A failure is told once per distinct cause (a retry that fails the same way says
nothing new); what a peer tells us is only a claim: its type is looked up in
:data:`TOLD_TYPES` (anything else arrives as :class:`TransportClosed`) and its text is
cut short and stripped of what the terminal would act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from volli_nb.base import errors
from volli_nb.base.errors import TransportClosed, VolliError
from volli_nb.core.eventlog import EventLog
from volli_nb.core.shown_text import shown
from volli_nb.net.network_store import NetworkStore

TOLD_TYPES = {  # the error types a peer may tell us about; others arrive as TransportClosed
    cls.__name__: cls
    for cls in (
        errors.TurnError,
        errors.TurnAuthFailed,
        errors.TurnCredentialsExpired,
        errors.TurnCertificateError,
        errors.TurnRefused,
        errors.TurnTimeout,
        errors.ChannelBindingFailed,
        errors.UnknownPeer,
        errors.KeyMismatch,
        TransportClosed,
    )
}


class PairingFailures:
    """Tells a peer why our pairing step failed, and hears why its own did."""

    def __init__(
        self,
        network: NetworkStore,
        log: EventLog,
        signal: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.network, self.log, self._signal = network, log, signal
        self._told: dict[str, str] = {}  # peer → the last failure we told it about

    async def failed(self, peer_id: str, error: VolliError) -> None:
        """A pairing step failed here: whoever waits on ``peer_id`` hears it, typed, on this
        side (the network records it) and on the peer's (told once per distinct cause)."""
        self.network.pairing_failed(peer_id, error)
        told = f"{type(error).__name__}: {error}"
        if self._told.get(peer_id) == told:
            return
        self._told[peer_id] = told
        data = {"kind": "failed", "error": type(error).__name__, "message": str(error)[:500]}
        try:
            await self._signal(peer_id, data)
        except VolliError:
            self._told.pop(peer_id, None)  # not told: tell it next time

    def heard(self, sender: str, data: dict[str, Any]) -> None:
        """The peer's pairing step failed: its cause, typed, for our waiters too."""
        name, text = shown(str(data.get("error", ""))[:80]), str(data.get("message", ""))
        words = "".join(c for c in text[:500] if c.isprintable())
        cls = TOLD_TYPES.get(name, TransportClosed)
        error = cls(f"{sender} could not pair on its side: {name}: {words}")
        if not self.network.is_connected(sender):  # a late word changes nothing that works
            self.network.pairing_failed(sender, error)
        self.log.add("error", f"pairing failed on the peer's side: {name}: {words}", peer_id=sender)

    def forget(self, peer_id: str) -> None:
        """Connected: the next failure is news again."""
        self._told.pop(peer_id, None)


__all__ = ["TOLD_TYPES", "PairingFailures"]
