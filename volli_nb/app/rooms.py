"""Joining a signaling room: presence, automatic pairing, and re-pairing after failures.

Of two peers, the one with the smaller peer id makes the offer, so the two
never offer at once.  Identities seen in a room are pinned on first sight
(trust on first use); a later key change for the same id is refused, and the
channel binding still proves each connection's identity.  When a connection
fails while the peer is still present, the offering side re-pairs with
backoff, and the outbox flushes as soon as the channel is back.

The view of a room is rebuilt from every whole member list the server sends (the
answer to a re-join after a reconnect, or its sync after an engine restart), and each
difference is a :class:`PresenceChange` (``on_presence``) and an event-log line; every
member present and not connected is offered a connection at once.  A pairing step that
fails in the background is recorded on the network (``wait_connected`` raises it, typed)
and told to the peer, whose waiters get it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from volli_nb.app.pairing_failures import PairingFailures
from volli_nb.base.errors import KeyMismatch, VolliError
from volli_nb.base.listeners import Listeners
from volli_nb.core.claimed_name import claimed_name
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import IceServer
from volli_nb.net.events import NetworkEvent, PeerOffline, PeerOnline
from volli_nb.net.network_store import NetworkStore
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.reconnect import CONNECTED, RECONNECTING, REPLACED, SignalingStatus
from volli_nb.net.signaling.turn import TurnCredentials
from volli_nb.net.tls import TlsTrust

logger = logging.getLogger(__name__)
MAX_RETRY = 10.0  # seconds between pairing attempts at most


@dataclass(frozen=True)
class PresenceChange:
    """``peer_id`` came into ``room`` (``present``) or left it; ``resync``: learned from a
    whole member list (a join or leave missed while we were away)."""

    room: str
    peer_id: str
    present: bool
    resync: bool = False


class RoomSession:
    """One profile's presence in signaling rooms on one server.

    It is given only what it uses: our identity (to sign in), the network (to connect),
    the event log, ``add_contact`` (to pin who is present) and ``wait_connected``.
    """

    def __init__(
        self,
        identity: Identity,
        network: NetworkStore,
        log: EventLog,
        url: str,
        *,
        add_contact: Callable[[PublicIdentity, str | None], str],
        wait_connected: Callable[[str, float], Awaitable[None]],
        auto_pair: bool = True,
        pair_timeout: float = 20.0,
        ssl: TlsTrust = None,
        name: str | None = None,
    ) -> None:
        self.identity, self.network, self.log = identity, network, log
        self.url = url
        self._add_contact, self._wait_connected = add_contact, wait_connected
        self.auto_pair = auto_pair
        self.pair_timeout = pair_timeout
        self.presence: dict[str, set[str]] = defaultdict(set)
        self.client = SignalingClient(
            identity,
            url,
            self._on_frame,
            ssl=ssl,
            on_turn=self._use_turn,
            turn_hosts=network.config.trusted_turn_hosts(),
            on_status=self._on_status,
            name=name,
        )
        self._turn_server: IceServer | None = None  # the one the server handed us
        self._shown_turn: tuple[str, ...] = ()  # its URLs as last shown (when not pinned)
        self._ca = ssl
        self._backoff: dict[str, float] = {}
        self._pairing: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}  # pairing retries, by peer
        self._failures = PairingFailures(network, log, self.client.signal)
        self._presence = Listeners[[PresenceChange]]("presence handler", logger)
        self._said: set[str] = set()  # the failures of this outage, logged once each
        self._wants: set[asyncio.Task[None]] = set()  # asking the smaller id to offer
        self._signals: set[asyncio.Task[None]] = set()  # offers, answers, words being handled
        self._closed = False  # from close() on, a signal read is dropped, never acted on
        self._remove = network.on_event(self._on_network_event)

    @property
    def online(self) -> set[str]:
        """Peer ids present in any of our rooms."""
        return set().union(*self.presence.values()) if self.presence else set()

    @property
    def status(self) -> SignalingStatus:
        """The signaling connection's state (``connected``, ``reconnecting``, …)."""
        return self.client.status

    def on_presence(self, handler: Callable[[PresenceChange], None]) -> Callable[[], None]:
        """Call ``handler`` for each arrival and departure in our rooms; returns the remover."""
        return self._presence.add(handler)

    async def start(self) -> RoomSession:
        try:
            await self.client.connect()
        except BaseException:
            self._remove()  # a session that never started leaves no handler behind
            raise
        return self

    async def join(self, room: str) -> list[str]:
        members = await self.client.join(room)  # _on_frame pinned them as the reply came
        self.log.add("signaling", f"joined room {room!r} ({len(members)} present)")
        present = self.presence[room]
        ids = [m.get("peer_id") for m in members if isinstance(m, dict)]
        return [pid for pid in ids if pid in present]

    async def leave(self, room: str) -> None:
        await self.client.leave(room)
        self.presence.pop(room, None)

    async def close(self) -> None:
        """Stop everything this session started: an offer handled after this would make a
        connection that nobody closes (the store disconnects its links once, right after)."""
        self._closed = True
        self._remove()
        for timer in self._timers.values():
            timer.cancel()
        running = [*self._pairing.values(), *self._wants, *self._signals]
        tasks = [t for t in running if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()

    def should_offer(self, peer_id: str) -> bool:
        return self.identity.peer_id < peer_id

    # --- presence -------------------------------------------------------------------

    def _seen(self, room: str, identity_json: Any, *, resync: bool = False) -> str | None:
        """A member: its identity, and the name it gives itself (sanitised, a claim)."""
        entry = dict(identity_json) if isinstance(identity_json, dict) else identity_json
        name = claimed_name(entry.pop("name", None)) if isinstance(entry, dict) else None
        try:
            identity = PublicIdentity.from_json(entry)
            if identity.peer_id == self.identity.peer_id:
                return None
            self._add_contact(identity, name)
        except KeyMismatch as exc:
            self.log.add("error", f"presence with a changed key refused: {exc}")
            return None
        except VolliError as exc:
            self.log.add("error", f"bad presence entry: {exc}")
            return None
        peer_id = identity.peer_id
        if peer_id not in self.presence[room]:
            self.presence[room].add(peer_id)
            self.log.add("signaling", f"present in {room!r}", peer_id=peer_id)
            self._presence.emit(PresenceChange(room, peer_id, True, resync))
        if self.auto_pair and self.should_offer(peer_id):
            self._schedule_pair(peer_id)
        return peer_id

    def _left(self, room: str, peer_id: str, *, resync: bool = False) -> None:
        if peer_id in self.presence[room]:
            self.presence[room].discard(peer_id)
            self.log.add("signaling", f"left {room!r}", peer_id=peer_id)
            self._presence.emit(PresenceChange(room, peer_id, False, resync))

    def _resync(self, room: str, members: list[Any], why: str) -> None:
        """A whole member list: every difference from our view is an event."""
        before = set(self.presence[room])
        now = {pid for m in members if (pid := self._seen(room, m, resync=True))}
        for gone in before - now:
            self._left(room, gone, resync=True)
        added, left = len(now - before), len(before - now)
        self.log.add(
            "signaling",
            f"room {room!r} rebuilt from the server's list ({why}): {len(now)} present, "
            f"{added} arrived and {left} left while we could not hear",
            kind="presence.resync",
            room=room,
        )

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "joined":
            # Pinned here, in the order frames arrive, not when join() resumes: a member's
            # offer read right after the reply may be handled first, and must find them known.
            room = str(frame.get("room"))
            for member in frame.get("members") or []:
                self._seen(room, member)
            return
        if kind == "presence":
            room = str(frame.get("room"))
            if frame.get("event") == "join":
                self._seen(room, frame.get("peer"))
            elif frame.get("event") == "leave":
                self._left(room, str(frame.get("peer_id")))
            elif frame.get("event") == "sync":  # after our reconnect, or the server's restart
                members = frame.get("members")
                why = str(frame.get("reason") or "the server re-registered us")
                self._resync(room, members if isinstance(members, list) else [], why)
        elif kind == "signal" and not self._closed:
            data = frame.get("data") or {}
            task = asyncio.get_running_loop().create_task(
                self._on_signal(str(frame.get("from")), data)
            )
            self._signals.add(task)
            task.add_done_callback(self._signals.discard)
        elif kind == "error":
            self.log.add("error", f"signaling: {frame.get('code')}: {frame.get('message')}")
        elif kind == "reconnected":
            self.log.add("signaling", "reconnected to the signaling server")

    def _on_status(self, status: SignalingStatus) -> None:
        """Into the event log: each outage once, each kind of failure in it once, its end."""
        if status.state == RECONNECTING and status.failure is not None:
            if status.failure in self._said:
                return
            first = not self._said
            self._said.add(status.failure)
            self.log.add(
                "error" if first else "signaling",
                f"signaling: {status.failure}; reconnecting by itself",
                kind="signaling.down",
            )
        elif status.state == CONNECTED and self._said:
            self._said.clear()
            self.log.add("signaling", "signaling works again", kind="signaling.up")
        elif status.state == REPLACED:
            self.log.add("error", f"signaling {status.describe(status.since)}")

    def _use_turn(self, creds: TurnCredentials) -> None:
        """The server's TURN credentials replace the previous ones it gave (only those)."""
        net = self.network
        tls = any(u.startswith("turns:") for u in creds.urls)
        try:  # the CA that verifies the signaling server verifies its TURN server too
            mine = IceServer(
                list(creds.urls), creds.username, creds.credential, self._ca if tls else None
            )
        except VolliError as exc:
            self.log.add("error", f"unusable TURN server from the signaling server: {exc}")
            return
        if self.client.turn_hosts is None and creds.urls != self._shown_turn:
            self._shown_turn = creds.urls  # nothing to check them against: shown first
            self.log.add(
                "ice",
                f"warning: the signaling server hands out TURN at {', '.join(creds.urls)}, "
                "a host you did not configure: relayed traffic (addresses, timing, sizes) "
                "goes through it; to allow only yours, NetworkConfig(turn_hosts=[...])",
                kind="turn.unpinned",
            )
        kept = [s for s in net.config.ice_servers if s is not self._turn_server]
        net.set_configuration(ice_servers=[*kept, mine])
        self._turn_server = mine
        self.log.add("ice", f"TURN credentials from the server, valid {creds.ttl:g} s")

    # --- pairing ----------------------------------------------------------------------

    def _schedule_pair(self, peer_id: str) -> None:
        """Offer now (a retry waiting for its time is brought forward)."""
        timer = self._timers.pop(peer_id, None)
        if timer is not None:
            timer.cancel()
        running = self._pairing.get(peer_id)
        if self._closed or (running is not None and not running.done()):
            return
        self._pairing[peer_id] = asyncio.get_running_loop().create_task(self._pair(peer_id))

    async def pair(self, peer_id: str) -> None:
        """Offer a connection to a present peer now (for ``auto_pair=False``)."""
        await self._pair(peer_id)

    def request_pair(self, peer_id: str) -> None:
        """Connect to a present peer soon, whichever side asks (a group's lazy mesh): the
        smaller id offers, so the other sends it a ``want`` signal instead of an offer,
        and two offers never cross."""
        if self._closed or self.network.is_connected(peer_id) or peer_id not in self.online:
            return
        if self.should_offer(peer_id):
            self._schedule_pair(peer_id)
            return
        task = asyncio.get_running_loop().create_task(self._want(peer_id))
        self._wants.add(task)
        task.add_done_callback(self._wants.discard)

    async def _want(self, peer_id: str) -> None:
        try:
            await self.client.signal(peer_id, {"kind": "want"})
        except VolliError as exc:
            self.log.add("signaling", f"could not ask for a connection: {exc}", peer_id=peer_id)

    async def _pair(self, peer_id: str) -> None:
        net = self.network
        if net.is_connected(peer_id) or peer_id not in self.online:
            return
        try:
            try:
                offer = await net.connect_to_peer(peer_id)
            except VolliError as exc:  # TURN, ICE: a cause both sides' waiters must hear
                await self._failures.failed(peer_id, exc)
                raise
            await self.client.signal(peer_id, {"kind": "offer", "sdp": offer.sdp})
            self.log.add("signaling", "sent offer via server", peer_id=peer_id)
            await self._wait_connected(peer_id, self.pair_timeout)
            self._backoff.pop(peer_id, None)
        except (VolliError, TimeoutError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            self.log.add("signaling", f"pairing attempt failed: {why}", peer_id=peer_id)
            self._retry_later(peer_id)

    def _retry_later(self, peer_id: str) -> None:
        if peer_id not in self.online or not self.should_offer(peer_id):
            return
        delay = min(self._backoff.get(peer_id, 0.25) * 2, MAX_RETRY)
        self._backoff[peer_id] = delay
        old = self._timers.pop(peer_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[peer_id] = loop.call_later(delay, self._schedule_pair, peer_id)

    async def _on_signal(self, sender: str, data: dict[str, Any]) -> None:
        net = self.network
        try:
            if data.get("kind") == "offer":
                answer = await net.connect_to_peer(sender, str(data.get("sdp")))
                await self.client.signal(sender, {"kind": "answer", "sdp": answer.sdp})
            elif data.get("kind") == "answer":
                await net.accept_answer(sender, str(data.get("sdp")))
            elif data.get("kind") == "failed":
                self._failures.heard(sender, data)
            elif data.get("kind") == "want" and self.should_offer(sender) and sender in self.online:
                self._schedule_pair(sender)  # returns at once if connected or pairing
        except VolliError as exc:
            self.log.add("error", f"signal from {sender} refused: {type(exc).__name__}: {exc}")
            if data.get("kind") == "offer":
                await self._failures.failed(sender, exc)

    def _on_network_event(self, event: NetworkEvent) -> None:
        if isinstance(event, PeerOffline) and event.peer_id in self.online:
            self._retry_later(event.peer_id)
        elif isinstance(event, PeerOnline):
            self._backoff.pop(event.peer_id, None)
            self._failures.forget(event.peer_id)
