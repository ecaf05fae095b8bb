"""Joining a signaling room: presence, automatic pairing, and re-pairing after failures.

Of two peers, the one with the smaller peer id makes the offer, so the two
never offer at once.  Identities seen in a room are pinned on first sight
(trust on first use); a later key change for the same id is refused, and the
channel binding still proves each connection's identity.  When a connection
fails while the peer is still present, the offering side re-pairs with
backoff, and the outbox flushes as soon as the channel is back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from volli_nb.base.errors import KeyMismatch, VolliError
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import IceServer
from volli_nb.net.events import NetworkEvent, PeerOffline, PeerOnline
from volli_nb.net.network_store import NetworkStore
from volli_nb.net.signaling.client import SignalingClient
from volli_nb.net.signaling.turn import TurnCredentials
from volli_nb.net.tls import TlsTrust


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
        add_contact: Callable[[PublicIdentity], str],
        wait_connected: Callable[[str, float], Awaitable[None]],
        auto_pair: bool = True,
        pair_timeout: float = 20.0,
        ssl: TlsTrust = None,
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
        )
        self._turn_server: IceServer | None = None  # the one the server handed us
        self._shown_turn: tuple[str, ...] = ()  # its URLs as last shown (when not pinned)
        self._ca = ssl
        self._backoff: dict[str, float] = {}
        self._pairing: dict[str, asyncio.Task[None]] = {}
        self._remove = network.on_event(self._on_network_event)

    @property
    def online(self) -> set[str]:
        """Peer ids present in any of our rooms."""
        return set().union(*self.presence.values()) if self.presence else set()

    async def start(self) -> RoomSession:
        await self.client.connect()
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
        self._remove()
        tasks = [t for t in self._pairing.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()

    def should_offer(self, peer_id: str) -> bool:
        return self.identity.peer_id < peer_id

    # --- presence -------------------------------------------------------------------

    def _seen(self, room: str, identity_json: Any) -> str | None:
        try:
            identity = PublicIdentity.from_json(identity_json)
            if identity.peer_id == self.identity.peer_id:
                return None
            self._add_contact(identity)
        except KeyMismatch as exc:
            self.log.add("error", f"presence with a changed key refused: {exc}")
            return None
        except VolliError as exc:
            self.log.add("error", f"bad presence entry: {exc}")
            return None
        self.presence[room].add(identity.peer_id)
        self.log.add("signaling", f"present in {room!r}", peer_id=identity.peer_id)
        if self.auto_pair and self.should_offer(identity.peer_id):
            self._schedule_pair(identity.peer_id, delay=0.0)
        return identity.peer_id

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
                self.presence[room].discard(str(frame.get("peer_id")))
                self.log.add("signaling", f"left {room!r}", peer_id=frame.get("peer_id"))
            elif frame.get("event") == "sync":  # the server re-registered us: the truth now
                self.presence[room] = set()
                for member in frame.get("members") or []:
                    self._seen(room, member)
        elif kind == "signal":
            asyncio.get_running_loop().create_task(
                self._on_signal(str(frame.get("from")), frame.get("data") or {})
            )
        elif kind == "error":
            self.log.add("error", f"signaling: {frame.get('code')}: {frame.get('message')}")
        elif kind == "reconnected":
            self.log.add("signaling", "reconnected to the signaling server")

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

    def _schedule_pair(self, peer_id: str, delay: float) -> None:
        running = self._pairing.get(peer_id)
        if running is not None and not running.done():
            return
        self._pairing[peer_id] = asyncio.get_running_loop().create_task(self._pair(peer_id, delay))

    async def pair(self, peer_id: str) -> None:
        """Offer a connection to a present peer now (for ``auto_pair=False``)."""
        await self._pair(peer_id, 0.0)

    async def _pair(self, peer_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        net = self.network
        if net.is_connected(peer_id) or peer_id not in self.online:
            return
        try:
            offer = await net.connect_to_peer(peer_id)
            await self.client.signal(peer_id, {"kind": "offer", "sdp": offer.sdp})
            self.log.add("signaling", "sent offer via server", peer_id=peer_id)
            await self._wait_connected(peer_id, self.pair_timeout)
            self._backoff.pop(peer_id, None)
        except (VolliError, TimeoutError) as exc:
            self.log.add("signaling", f"pairing attempt failed: {exc}", peer_id=peer_id)
            self._retry_later(peer_id)

    def _retry_later(self, peer_id: str) -> None:
        if peer_id not in self.online or not self.should_offer(peer_id):
            return
        delay = min(self._backoff.get(peer_id, 0.25) * 2, 10.0)
        self._backoff[peer_id] = delay
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: self._schedule_pair(peer_id, delay))

    async def _on_signal(self, sender: str, data: dict[str, Any]) -> None:
        net = self.network
        try:
            if data.get("kind") == "offer":
                answer = await net.connect_to_peer(sender, str(data.get("sdp")))
                await self.client.signal(sender, {"kind": "answer", "sdp": answer.sdp})
            elif data.get("kind") == "answer":
                await net.accept_answer(sender, str(data.get("sdp")))
        except VolliError as exc:
            self.log.add("error", f"signal from {sender} refused: {exc}")

    def _on_network_event(self, event: NetworkEvent) -> None:
        if isinstance(event, PeerOffline) and event.peer_id in self.online:
            self._retry_later(event.peer_id)
        elif isinstance(event, PeerOnline):
            self._backoff.pop(event.peer_id, None)
