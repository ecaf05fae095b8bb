"""A peer in its own OS process, driven by JSON lines on stdin and reporting on stdout.

The demo, the two-process tests and the benchmark all need a second real
peer that can be killed with SIGKILL and restarted on its own database; this
is that peer; :class:`~volli_nb.lab.peer_handle.PeerProcess` is the parent's handle on it.

For crash and security tests: ``--record PATH`` appends every data-channel frame, as it
crossed, to a file (JSON lines: direction, peer, hex), what an observer inside the
channel would have recorded; ``--standby`` imports everything and waits for one line on
stdin before opening the profile, so a crash loop restarts a peer in a fraction of a
second (``PeerProcess.prepare``); ``VOLLI_FAULTS`` arms fault points
(:mod:`volli_nb.base.faults`); the ``snapshot`` op hands out a live session's ratchet
state, as an attacker who copied the process memory would hold it.

Requests are ``{"id": n, "op": ..., ...}``; each gets ``{"id": n, ...}`` or
``{"id": n, "error": ...}``.  Unsolicited lines are ``{"event": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from volli_nb.base.errors import VolliError
from volli_nb.core.netconfig import IceServer, NetworkConfig
from volli_nb.core.store.database import KDF_MIN, KDF_MODERATE, KdfCost
from volli_nb.core.store.keyring import PASSPHRASE_ENV
from volli_nb.lab.peer_group_ops import GroupOperations

if TYPE_CHECKING:  # imported when a peer starts: the parent side stays light
    from volli_nb.app.messages_store import MessagesStore

KDFS: dict[str, KdfCost] = {"min": KDF_MIN, "moderate": KDF_MODERATE}

EVENT_TEXT = 4096  # characters of a received text echoed in its event line


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _open(args: argparse.Namespace) -> MessagesStore:
    from volli_nb.app.messages_store import MessagesStore

    return MessagesStore.open(
        args.db,
        os.environ.get(PASSPHRASE_ENV, "demo passphrase"),
        name=args.name,
        kdf=KDFS[args.kdf],
        config=NetworkConfig(
            loopback_only=args.loopback,
            ice_servers=[_ice_server(spec) for spec in args.ice_server],
            relay_only=args.relay_only,
        ),
    )


class _Quiet:
    """While a benchmark measures, messages and ACKs are not reported: a JSON line per
    message, written here and read by the parent, would count as the peer's own cost."""

    on = False


def _report(store: MessagesStore) -> None:
    """Unsolicited event lines: messages received, ACKs, and network events."""

    def on_message(m: Any) -> None:
        if not _Quiet.on:
            _emit(
                {
                    "event": "received",
                    "message_id": m.message_id.hex(),
                    "text": m.text[:EVENT_TEXT],  # an 8 MB text would overflow the parent
                    "length": len(m.text),
                    "from": m.sender,
                    "conversation": m.conversation_id,
                }
            )

    def on_delivered(mid: bytes, peer: str) -> None:
        if not _Quiet.on:
            _emit({"event": "delivered", "message_id": mid.hex(), "to": peer})

    store.on_message(on_message)
    store.on_delivered(on_delivered)

    def on_net(event: Any) -> None:
        _emit({"event": type(event).__name__, "peer_id": getattr(event, "peer_id", None)})

    store.network_store.on_event(on_net)


class _Operations:
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
            "replay": self.replay,
            **GroupOperations(store).table(),
        }

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
        messages and ACKs are not reported meanwhile (:class:`_Quiet`)."""
        _Quiet.on = start
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


def _record(store: MessagesStore, path: str) -> None:
    """Append every frame to ``path`` as it crosses (flushed per line: a SIGKILL loses none
    that left or arrived)."""
    out = open(path, "a", encoding="ascii")  # noqa: SIM115 (open for the process's life)

    def tap(direction: str, peer_id: str, frame: bytes) -> None:
        out.write(json.dumps({"dir": direction, "peer": peer_id, "frame": frame.hex()}) + "\n")
        out.flush()

    store.network_store.trace.taps.append(tap)


async def _serve(args: argparse.Namespace) -> None:
    reader = asyncio.StreamReader(limit=1 << 22)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    if args.standby:  # imported and warm: the profile opens on the first line
        from volli_nb.app import messages_store  # noqa: F401 (the import is the warm-up)

        _emit({"event": "standby", "pid": os.getpid()})
        await reader.readline()
    store = _open(args)
    store.start()
    _report(store)
    if args.record:
        _record(store, args.record)
    ops = _Operations(store).table()
    _emit({"event": "ready", "peer_id": store.peer_id, "pid": os.getpid()})
    try:
        while line := await reader.readline():
            request = json.loads(line)
            rid, op = request.pop("id", None), request.pop("op", "")
            if op == "quit":
                _emit({"id": rid})
                break
            try:
                result = await ops[op](**request)
                _emit({"id": rid, **result})
            except (VolliError, KeyError, TypeError, TimeoutError) as exc:
                _emit({"id": rid, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await store.close()


async def _done(result: dict[str, Any]) -> dict[str, Any]:
    return result


def _named(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


async def _wrap(coro: Any, key: str, convert: Callable[[Any], Any] = lambda v: v) -> dict[str, Any]:
    return {key: convert(await coro)}


def _ice_server(spec: str) -> IceServer:
    """``URL`` or ``URL,USER,CREDENTIAL``."""
    url, *creds = spec.split(",")
    return IceServer(url, *(creds[:2] if len(creds) >= 2 else []))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m volli_nb.lab.peer_process")
    parser.add_argument("--db", required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--kdf", choices=sorted(KDFS), default="min")
    parser.add_argument("--no-loopback", dest="loopback", action="store_false")
    parser.add_argument("--ice-server", action="append", default=[], help="URL[,USER,PASS]")
    parser.add_argument("--relay-only", action="store_true")
    parser.add_argument("--record", default=None, help="append every frame to this file")
    parser.add_argument("--standby", action="store_true", help="open on the first stdin line")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
