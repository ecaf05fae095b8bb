"""The ``volli-signal`` command line: one process, or one of several on Redis/Valkey."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl

from volli_nb.base.errors import UsageError, VolliError
from volli_nb.net.signaling.admission import (
    BURST,
    MAX_PENDING,
    MAX_PENDING_PER_HOST,
    RATE,
    Admission,
)
from volli_nb.net.signaling.backend import Limits, SignalingBackend
from volli_nb.net.signaling.memory import MemoryBackend
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.turn import TurnIssuer

TURN_SECRET_ENV = "VOLLI_TURN_SECRET"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="volli-signal", description="WebSocket signaling: rooms, presence, relay"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--redis", metavar="URL", help="share state with other processes on this engine")
    p.add_argument("--redis-prefix", default="volli:", help="key prefix on the engine")
    p.add_argument(
        "--presence-ttl",
        type=float,
        default=Limits.presence_ttl,
        help="seconds after which a silent process's clients leave their rooms",
    )
    for flag, default in (
        ("--max-room-size", Limits.max_room_size),
        ("--max-rooms-per-peer", Limits.max_rooms_per_peer),
        ("--max-queued-bytes-per-sender", Limits.max_queued_bytes_per_sender),
        ("--max-queued-bytes", Limits.max_queued_bytes),
        ("--max-queue-per-pair", Limits.max_queue_per_pair),
        ("--max-pending", MAX_PENDING),  # connections registering at once
        ("--max-pending-per-host", MAX_PENDING_PER_HOST),  # … from one address (behind
    ):  # a reverse proxy every client has the proxy's: raise it, or bound it there)
        p.add_argument(flag, type=int, default=default, help=f"default {default}")
    p.add_argument("--certfile", help="PEM certificate chain: serve wss:// instead of ws://")
    p.add_argument("--keyfile", help="PEM private key of --certfile")
    p.add_argument("--turn-secret", help=f"coturn's static-auth-secret (or ${TURN_SECRET_ENV})")
    p.add_argument(
        "--turn-url",
        action="append",
        default=[],
        help="TURN URL handed to clients, e.g. turns:turn.example.org:443 (repeatable)",
    )
    p.add_argument("--turn-ttl", type=float, default=3600.0,
                   help="seconds TURN credentials stay valid")  # fmt: skip
    return p


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if certfile is None and keyfile is None:
        return None
    if certfile is None:
        raise UsageError("--keyfile needs --certfile (the certificate chain it belongs to)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load {certfile} / {keyfile}: {exc}") from None
    return context


def build(args: argparse.Namespace) -> SignalingServer:
    limits = Limits(
        presence_ttl=args.presence_ttl,
        max_room_size=args.max_room_size,
        max_rooms_per_peer=args.max_rooms_per_peer,
        max_queued_bytes_per_sender=args.max_queued_bytes_per_sender,
        max_queued_bytes=args.max_queued_bytes,
        max_queue_per_pair=args.max_queue_per_pair,
    )
    backend: SignalingBackend = MemoryBackend(limits=limits)
    if args.redis:
        from volli_nb.net.signaling.redis_backend import RedisBackend

        backend = RedisBackend(args.redis, limits=limits, prefix=args.redis_prefix)
    secret = args.turn_secret or os.environ.get(TURN_SECRET_ENV)
    turn = None
    if secret or args.turn_url:
        turn = TurnIssuer(secret or "", tuple(args.turn_url), args.turn_ttl)
    return SignalingServer(
        host=args.host,
        port=args.port,
        backend=backend,
        ssl_context=tls_context(args.certfile, args.keyfile),
        turn=turn,
        admission=Admission(
            rate=RATE,
            burst=BURST,
            max_pending=args.max_pending,
            max_pending_per_host=args.max_pending_per_host,
        ),
    )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        server = build(args)
    except VolliError as exc:
        raise SystemExit(f"volli-signal: {exc}") from None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await server.start()
        except VolliError as exc:
            raise SystemExit(f"volli-signal: {exc}") from None
        engine = f" on {args.redis}" if args.redis else ""
        print(f"volli-signal listening on {server.url}{engine}", flush=True)
        try:
            await stop.wait()
        finally:  # SIGTERM: say goodbye, so every room hears its members leave now
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
