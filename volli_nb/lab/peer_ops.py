"""What the parent may ask of a peer process (:mod:`~volli_nb.lab.peer_process`).

Each op is a method of :class:`Operations` answering with a JSON-able dict: pairing,
sending, history and the outbox, groups, TURN, the link's counters, the benchmark's
counters, and the lab ops the security tests use (``snapshot``, ``replay``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from volli_nb.core.netconfig import IceServer

if TYPE_CHECKING:  # imported when a peer starts: the parent side stays light
    from volli_nb.app.group_info import GroupInfo
    from volli_nb.app.messages_store import MessagesStore


class Quiet:
    """While a benchmark measures, messages and ACKs are not reported: a JSON line per
    message, written here and read by the parent, would count as the peer's own cost."""

    on = False


class Operations:
    """What the parent may ask for; each answers with a JSON-able dict."""

    def __init__(self, store: MessagesStore) -> None:
        from volli_nb.lab.bench.measure import Counters

        self.store = store
        self.counters = Counters(store.database)

    def table(self) -> dict[str, Callable[..., Any]]:
        store = self.store
        return {
            "info": self.info,
            "link": self.link,
            "join": self.join,
            "create_code": lambda: _wrap(store.create_pairing_code(), "code"),
            "accept_code": lambda code: _wrap(store.accept_pairing_code(code), "code"),
            "complete": lambda code: _wrap(store.complete_pairing(code), "peer_id"),
            "wait_connected": self.wait_connected,
            "send": self.send,
            "send_many": self.send_many,
            "history": self.history,
            "pending": self.pending,
            "sync": lambda: _wrap(store.sync_messages(), "report", str),
            "preflight": self.preflight,
            "turn": self.turn,
            "conversation": self.conversation,
            "measure": self.measure,
            "snapshot": self.snapshot,
            "retry_stuck": self.retry_stuck,
            "contacts": lambda: _done({"peer_ids": [c.peer_id for c in store.contacts]}),
            "create_group": self.create_group,
            "group_change": self.group_change,
            "group": lambda group_id: _done(_group(store.group(group_id))),
            "wait_delivered": self.wait_delivered,
            "replay": self.replay,
        }

    async def create_group(self, name: str, members: list[str]) -> dict[str, Any]:
        return _group(await self.store.create_group(name, members))

    async def group_change(self, change: str, group_id: str, peer_id: str = "") -> dict[str, Any]:
        """``add``, ``remove``, ``admin`` (a member) or ``leave``."""
        store = self.store
        if change == "leave":
            return _group(await store.leave_group(group_id))
        how = {"add": store.add_member, "remove": store.remove_member, "admin": store.set_admin}
        return _group(await how[change](group_id, peer_id))

    async def wait_delivered(
        self, message_id: str, to: list[str] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Until ``to`` (default: every recipient) acknowledged; then, or at ``timeout``
        (``late``), where each recipient stands."""
        mid, store = bytes.fromhex(message_id), self.store
        changed = asyncio.Event()
        remove = store.on_delivered(lambda m, _peer: changed.set() if m == mid else None)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    status = store.delivery_status(mid)
                    wanted = set(status) if to is None else set(to)
                    if wanted and all(status.get(p) == "delivered" for p in wanted):
                        return {"status": status}
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            return {"status": store.delivery_status(mid), "late": True}
        finally:
            remove()

    async def replay(self, peer_id: str, frames: list[str]) -> dict[str, Any]:
        """Hand recorded BUNDLE frames to this store's receiver, as if they arrived on its
        live channel with ``peer_id`` (a lab op for the security tests): what it stored,
        and what it refused, by error type."""
        from volli_nb.core.protocol.events import FrameReceived
        from volli_nb.core.protocol.frames import BundleFrame, decode_frame

        keys = self.store.sessions.get(peer_id)
        if keys is None:
            return {"stored": [], "refused": [], "session": None}
        stored, refused = [], []
        for data in frames:
            frame = decode_frame(bytes.fromhex(data))
            if isinstance(frame, BundleFrame):
                verdict = self.store.receiver.frame(
                    peer_id, FrameReceived(keys.session_id, frame.bundle)
                )
                stored += [mid.hex() for mid in verdict.stored]
                refused += [[mid.hex(), type(error).__name__] for mid, error in verdict.refused]
        return {"stored": stored, "refused": refused, "session": keys.session_id.hex()}

    async def retry_stuck(self) -> dict[str, Any]:
        """The manual intervention: every stuck row is due again now."""
        return {"released": self.store.message_queue.retry_all_stuck()}

    async def measure(self, start: bool) -> dict[str, Any]:
        """Benchmark counters (CPU, SQL statements): on at ``start``, read and off after;
        messages and ACKs are not reported meanwhile (:class:`Quiet`)."""
        Quiet.on = start
        if start:
            self.counters.start()
            return {}
        return self.counters.stop()

    async def conversation(self, conversation_id: str, members: list[str]) -> dict[str, Any]:
        """Hold a group conversation, as each member must until groups exist: a received
        message creates only its sender's and receiver's conversation."""
        found = self.store.database.ensure_conversation(conversation_id, members)
        return {"members": list(found.members)}

    async def send_many(self, to: str, n: int, prefix: str = "msg") -> dict[str, Any]:
        ids = []
        for i in range(n):
            m = await self.store.send_message(to, f"{prefix} {i}")
            ids.append(m.message_id.hex())
        return {"message_ids": ids}

    async def history(self, peer: str) -> dict[str, Any]:
        return {
            "messages": [
                {
                    "message_id": m.message_id.hex(),
                    "text": m.text,
                    "direction": m.direction,
                    "status": m.status,
                    "sender": m.sender,
                }
                for m in self.store.history(peer)
            ]
        }

    async def pending(self) -> dict[str, Any]:
        return {
            "rows": [
                {
                    "id": r.id,
                    "message_id": r.message_id.hex(),
                    "recipient": r.recipient,
                    "status": str(r.status),
                    "attempts": r.attempts,
                    "next_attempt_at": r.next_attempt_at,
                    "last_error": r.last_error,
                }
                for r in self.store.message_queue.get_pending()
            ]
        }

    async def send(self, to: str, text: str) -> dict[str, Any]:
        return {"message_id": (await self.store.send_message(to, text)).message_id.hex()}

    async def wait_connected(self, peer_id: str, timeout: float = 15.0) -> dict[str, Any]:
        await self.store.wait_connected(peer_id, timeout)
        net = self.store.network_store
        pair = net.candidates(peer_id).selected
        chosen = net.turn.report.chosen if net.turn.report is not None else None
        return {
            "selected": [pair[0].type, pair[1].type] if pair else None,
            "turn": chosen.url_list()[0] if chosen is not None else None,
            "turn_username": chosen.username if chosen is not None else None,
        }

    async def join(
        self, room: str, url: str, ssl: str | None = None, auto_pair: bool = True
    ) -> dict[str, Any]:
        return {"present": await self.store.join(room, url, ssl=ssl, auto_pair=auto_pair)}

    async def preflight(self, servers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The TURN preflight: of the store's configuration, or of ``servers`` given here
        (``{"urls", "username", "credential", "ca"}``, what the test wants checked)."""
        from volli_nb.net.turn_preflight import preflight

        net = self.store.network_store
        if servers is None:
            report = await net.preflight()
        else:
            given = [IceServer(**s) for s in servers]
            report = await preflight(given, timeout=net.config.preflight_timeout)
        if report is None:
            return {"chosen": None, "checks": [], "failure": "no TURN server configured"}
        failure = report.failure() if report.chosen is None else None
        return {
            "chosen": report.chosen.url_list()[0] if report.chosen is not None else None,
            "checks": [
                {"url": c.url, "relay": c.relay, "note": c.note, "error": _named(c.error)}
                for c in report.checks
            ],
            "failure": _named(failure),
        }

    async def turn(self) -> dict[str, Any]:
        """The TURN credentials the signaling server handed us last."""
        room = self.store.room_session
        creds = room.client.turn if room is not None else None
        if creds is None:
            return {"username": None, "expires": None}
        return {"username": creds.username, "expires": creds.expires}

    async def link(self, peer_id: str) -> dict[str, Any]:
        """The link's last ping RTT and the session's counters (for volli-nb netsim)."""
        net = self.store.network_store
        stats, session = net.stats(peer_id), net.session_stats(peer_id)
        return {
            "rtt": stats.rtt,
            "timeouts": session.timeouts if session else 0,
            "bundles_out": session.bundles_out if session else 0,
            "acks_in": session.acks_in if session else 0,
        }

    async def info(self) -> dict[str, Any]:
        return {"peer_id": self.store.peer_id, "name": self.store.name, "pid": os.getpid()}

    async def snapshot(self, peer_id: str) -> dict[str, Any]:
        """The live session with ``peer_id``: its id and its ratchet state, encoded (what a
        thief of this process's memory holds; a lab op for the post-compromise test)."""
        from volli_nb.core.crypto.ratchet_state import encode_state

        keys = self.store.sessions.get(peer_id)
        if keys is None:
            return {"session": None, "state": None}
        return {"session": keys.session_id.hex(), "state": encode_state(keys.state).hex()}


def _group(info: GroupInfo) -> dict[str, Any]:
    return {
        "group_id": info.group_id,
        "version": info.version,
        "record_hash": info.record_hash,
        "members": list(info.members),
        "admins": list(info.admins),
        "is_member": info.is_member,
    }


async def _done(result: dict[str, Any]) -> dict[str, Any]:
    return result


def _named(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


async def _wrap(coro: Any, key: str, convert: Callable[[Any], Any] = lambda v: v) -> dict[str, Any]:
    return {key: convert(await coro)}


__all__ = ["Operations", "Quiet"]
