"""``volli-shell``: a ptpython prompt with a live ``messagesStore``, on the peer's own loop.

ptpython is embedded with ``return_asyncio_coroutine=True``, so the prompt and
the peer share one asyncio loop: top-level ``await`` works, and the retry loop
and heartbeats keep running while the prompt waits.  Ctrl-D closes every
connection (bounded) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import WrongPassphrase
from .messages import MessagesStore
from .netconfig import NetworkConfig
from .peer_process import PASSPHRASE_ENV
from .storage import KDF_MIN, KDF_MODERATE
from .widgets.models import Table, peers_table, queue_table

BANNER = """\
volli-shell — {name} ({peer_id})  profile: {where}
Loaded: messagesStore, network_store, message_queue; helpers: peers(), pending(),
        offer(), accept(code), complete(code), send(peer_or_conversation, text)
Pair:   here   code = await offer()          → paste the code on the other side
        there  await accept("volli1.…")      → prints an answer code; paste it back here
        here   await complete("volli1.…")
Debug:  messagesStore.network_store.peers     await messagesStore.sync_messages()
Top-level await works; Ctrl-D closes every connection and exits.
"""


class _TableView:
    """A table that prints as aligned text at the prompt."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __repr__(self) -> str:
        cols = self.table.columns
        rows = [[str(r.get(c, "")) for c in cols] for r in self.table.rows]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]

        def line(cells: list[str]) -> str:
            return "  ".join(v.ljust(wd) for v, wd in zip(cells, widths, strict=True)).rstrip()

        body = [line(r) for r in rows] or ["(none)"]
        return "\n".join([line(cols), *body])


def _namespace(store: MessagesStore) -> dict[str, Any]:
    async def offer() -> str:
        code = await store.create_pairing_code()
        print(code)
        return code

    async def accept(code: str) -> str:
        answer = await store.accept_pairing_code(code)
        print(answer)
        return answer

    async def complete(code: str) -> str:
        peer_id = await store.complete_pairing(code)
        await store.wait_connected(peer_id)
        print(f"connected to {peer_id}")
        return peer_id

    async def send(to: str, text: str) -> Any:
        return await store.send_message(to, text)

    return {
        "messagesStore": store,
        "network_store": store.network_store,
        "message_queue": store.message_queue,
        "peers": lambda: _TableView(peers_table(store, store.clock())),
        "pending": lambda: _TableView(queue_table(store, store.clock())),
        "offer": offer,
        "accept": accept,
        "complete": complete,
        "send": send,
        "asyncio": asyncio,
    }


def open_profile(args: argparse.Namespace) -> tuple[MessagesStore, str]:
    config = NetworkConfig(loopback_only=not args.lan)
    if args.profile:
        passphrase = os.environ.get(PASSPHRASE_ENV) or getpass.getpass(
            f"passphrase for {args.profile}: "
        )
        store = MessagesStore.open(
            args.profile, passphrase, name=args.name, kdf=KDF_MODERATE, config=config
        )
        return store, str(args.profile)
    tmp = Path(tempfile.mkdtemp(prefix="volli-shell-"))
    store = MessagesStore.open(
        tmp / "profile.sqlite", "volli-shell", name=args.name or "shell", kdf=KDF_MIN, config=config
    )
    return store, f"throwaway {tmp} (use --profile PATH to keep one)"


def _configure(repl: Any) -> None:
    repl.confirm_exit = False  # Ctrl-D means: close the connections and go


async def run(args: argparse.Namespace) -> int:
    from ptpython.repl import embed

    try:
        store, where = open_profile(args)
    except WrongPassphrase as exc:
        print(f"volli-shell: {exc}", file=sys.stderr)
        return 2
    store.start()
    print(BANNER.format(name=store.name, peer_id=store.peer_id, where=where), flush=True)
    try:
        await embed(
            globals=_namespace(store),
            return_asyncio_coroutine=True,
            patch_stdout=True,
            title="volli-shell",
            configure=_configure,
        )
    except EOFError:
        pass
    finally:
        try:
            await asyncio.wait_for(store.close(), 3)
        except TimeoutError:
            print("volli-shell: closing timed out", file=sys.stderr)
    print("volli-shell: closed every connection. Bye.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="volli-shell", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile", type=Path, help="a profile's SQLite file (asks its passphrase)"
    )
    parser.add_argument("--name", default=None, help="your display name")
    parser.add_argument(
        "--lan",
        action="store_true",
        help="offer interface addresses, not only 127.0.0.1 (other machines)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
