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

Requests are ``{"id": n, "op": ..., ...}`` (the ops are :mod:`~volli_nb.lab.peer_ops`'s);
each gets ``{"id": n, ...}`` or ``{"id": n, "error": ...}``.  Unsolicited lines are
``{"event": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from volli_nb.base.errors import VolliError
from volli_nb.core.netconfig import IceServer, NetworkConfig
from volli_nb.core.store.database import KDF_MIN, KDF_MODERATE, KdfCost
from volli_nb.core.store.keyring import PASSPHRASE_ENV
from volli_nb.lab.peer_ops import Operations, Quiet

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


def _report(store: MessagesStore) -> None:
    """Unsolicited event lines: messages received, ACKs, and network events."""

    def on_message(m: Any) -> None:
        if not Quiet.on:
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
        if not Quiet.on:
            _emit({"event": "delivered", "message_id": mid.hex(), "to": peer})

    store.on_message(on_message)
    store.on_delivered(on_delivered)

    def on_net(event: Any) -> None:
        _emit({"event": type(event).__name__, "peer_id": getattr(event, "peer_id", None)})

    store.network_store.on_event(on_net)


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
    ops = Operations(store).table()
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
