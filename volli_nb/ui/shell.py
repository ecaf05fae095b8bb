"""``volli-shell``: a ptpython prompt with a live ``messagesStore``, on the peer's own loop.

ptpython runs as a coroutine on the peer's own loop (what ``embed(...,
return_asyncio_coroutine=True)`` does, built here so the REPL gets one more toolbar):
top-level ``await`` works, and the retry loop and heartbeats keep running while the
prompt waits.  Long operations (a large message until its ACK, a backlog flush) show a
progress bar in a toolbar under the prompt, and one line above it when they end.
Ctrl-D closes every connection (bounded) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import UsageError, VolliError, WrongPassphrase
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MODERATE
from volli_nb.core.store.keyring import PASSPHRASE_ENV

CLOSE_TIMEOUT = 2.0  # Ctrl-D: every connection closed within this bound
PASSPHRASE_TRIES = 3

BANNER = """\
volli-shell — {name} ({peer_id})  profile: {where}
Loaded: messagesStore, network_store, message_queue
Helpers: peers()  pending()  candidates()  pair([code])  offer()  accept(code)
         complete(code)  send(peer_or_conversation, text)  verify()
Pair:   here   code = await offer()          → copy the code line to the other side
        there  await accept("volli2.…")      → prints an answer code; copy it back here
        here   await complete("volli2.…")    (or just `await pair(...)` each time)
Debug:  messagesStore.network_store.peers     await messagesStore.sync_messages()
        events([n])  (the event log, readable times)   diagram()  (mermaid sequence diagram)
ICE: {ice}.  Top-level await works; Ctrl-D closes every connection and exits.
"""


class TableView:
    """A table that prints as aligned text at the prompt (``.table`` has the rows)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __repr__(self) -> str:
        cols: list[str] = list(self.table.columns)
        rows = [[str(r.get(c, "")) for c in cols] for r in self.table.rows]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]

        def line(cells: list[str]) -> str:
            return "  ".join(v.ljust(wd) for v, wd in zip(cells, widths, strict=True)).rstrip()

        body = [line(r) for r in rows] or ["(none)"]
        return "\n".join([line(cols), *body])


def helpers(store: MessagesStore) -> dict[str, Any]:
    """The shell's namespace: the store, its parts, and short helpers."""

    def view(name: str, *, timed: bool = True) -> Callable[[], TableView]:
        def show() -> TableView:
            from volli_nb.ui.widgets import models

            make = getattr(models, name)
            return TableView(make(store, store.clock()) if timed else make(store))

        return show

    async def offer() -> str:
        code = await store.create_pairing_code()
        print(code)  # on its own line, for copying
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

    async def pair(code: str | None = None) -> str:
        """No code: make an offer.  An offer code: accept it.  An answer code: complete."""
        from volli_nb.core.pairing_code import decode_code

        if code is None:
            return await offer()
        if decode_code(code).kind == "offer":
            return await accept(code)
        return await complete(code)

    async def send(to: str, text: str) -> Any:
        return await store.send_message(to, text)

    return {
        "messagesStore": store,
        "network_store": store.network_store,
        "message_queue": store.message_queue,
        "peers": view("peers_table"),
        "pending": view("queue_table"),
        "candidates": view("candidates_table", timed=False),
        "pair": pair,
        "offer": offer,
        "accept": accept,
        "complete": complete,
        "send": send,
        "verify": store.verify,
        **_log_helpers(store),
        "asyncio": asyncio,
    }


class Printed:
    """Text the prompt shows as lines (a ``str`` result would be echoed quoted, on one)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _log_helpers(store: MessagesStore) -> dict[str, Callable[..., Printed]]:
    """``events()`` and ``diagram()``: the event log, read at the prompt."""

    def events(n: int = 20) -> Printed:
        """The last ``n`` events: wall-clock time (ms), time since the first, what."""
        return Printed(store.log.tail(n))

    def diagram(cap: int = 60) -> Printed:
        """The last ``cap`` steps as a mermaid sequence diagram (paste into GitHub)."""
        from volli_nb.ui.widgets.sequence_model import SequenceModel

        model = SequenceModel(cap=cap)
        model.extend(store.log)
        return Printed(model.to_mermaid(store.contact_book.display_name).rstrip())

    return {"events": events, "diagram": diagram}


def _ask_new_passphrase(path: Path) -> str:
    print(f"volli-shell: {path} does not exist; a new profile will be created there.")
    for _ in range(PASSPHRASE_TRIES):
        first = getpass.getpass("choose a passphrase: ")
        if not first:
            print("volli-shell: an empty passphrase would leave the profile unprotected")
        elif getpass.getpass("repeat it: ") == first:
            return first
        else:
            print("volli-shell: the two passphrases differ; again")
    raise UsageError("no passphrase chosen; nothing was created")


def open_profile(args: argparse.Namespace) -> tuple[MessagesStore, str]:
    """The store, and a description of where it lives for the banner."""
    config = NetworkConfig(loopback_only=not args.lan)
    if args.profile is None:
        store = MessagesStore.scratch(args.name or "shell", config=config)
        where = (
            f"throwaway in {store.scratch_dir} "
            "(weak KDF_MIN key, deleted on exit; --profile PATH keeps one)"
        )
        return store, where
    path: Path = args.profile

    def open_with(passphrase: str) -> MessagesStore:
        return MessagesStore.open(path, passphrase, name=args.name, kdf=KDF_MODERATE, config=config)

    given = os.environ.get(PASSPHRASE_ENV)
    if given is not None:  # scripted use: no second chance
        return open_with(given), str(path)
    if not path.exists():
        return open_with(_ask_new_passphrase(path)), f"{path} (new)"
    for attempt in range(1, PASSPHRASE_TRIES + 1):
        try:
            return open_with(getpass.getpass(f"passphrase for {path}: ")), str(path)
        except WrongPassphrase as exc:
            if attempt == PASSPHRASE_TRIES:
                raise
            print(f"volli-shell: {exc}", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


async def _verify(store: MessagesStore) -> int:
    """``--verify``: check the profile file, say what was found, exit 0 (ok) or 1."""
    report = store.verify()
    print(report, flush=True)
    await store.close()
    return 0 if report.ok else 1


def _configure(repl: Any) -> None:
    repl.confirm_exit = False  # Ctrl-D means: close the connections and go


async def _repl(namespace: dict[str, Any], store: MessagesStore) -> None:
    """ptpython on this loop, with a progress toolbar that shows only while work runs."""
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.layout import ConditionalContainer, FormattedTextControl, Window
    from prompt_toolkit.patch_stdout import patch_stdout
    from ptpython.repl import PythonRepl

    from volli_nb.ui.progress import outcome_line, toolbar_text

    feed = store.progress
    lines = toolbar_text(feed, shutil.get_terminal_size().columns - 1)
    toolbar = ConditionalContainer(
        Window(
            FormattedTextControl(lambda: [("class:volli-progress", lines())]),
            height=lambda: min(3, max(1, len(feed.active))),
        ),
        filter=Condition(lambda: bool(feed.active)),
    )
    repl = PythonRepl(
        get_globals=lambda: namespace, get_locals=lambda: namespace, _extra_toolbars=[toolbar]
    )
    repl.terminal_title = "volli-shell"
    _configure(repl)

    def on_progress(update: Any) -> None:
        repl.app.invalidate()
        if update.finished:
            print(outcome_line(update), flush=True)

    remove = feed.subscribe(on_progress)
    try:
        with patch_stdout():
            await repl.run_async()
    finally:
        remove()


async def run(args: argparse.Namespace) -> int:
    try:
        store, where = open_profile(args)
    except (VolliError, EOFError, KeyboardInterrupt) as exc:
        reason = f"{exc}" if isinstance(exc, VolliError) else "no passphrase given"
        print(f"volli-shell: {reason}", file=sys.stderr)
        return 2
    if args.verify:
        return await _verify(store)
    store.start()
    ice = "loopback only (127.0.0.1; --lan offers interface addresses)"
    if args.lan:
        ice = "interface addresses (--lan)"
    print(BANNER.format(name=store.name, peer_id=store.peer_id, where=where, ice=ice), flush=True)
    try:
        await _repl(helpers(store), store)
    except EOFError:
        pass
    finally:
        try:
            await asyncio.wait_for(store.close(), CLOSE_TIMEOUT)
            print("volli-shell: closed every connection. Bye.", flush=True)
        except TimeoutError:
            print(f"volli-shell: closing took over {CLOSE_TIMEOUT:g} s; gave up", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="volli-shell",
        description="A ptpython prompt with a live messagesStore, on the peer's own loop.",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help=f"a profile's SQLite file (asks its passphrase, or reads ${PASSPHRASE_ENV}); "
        "created if missing.  Without it: a throwaway profile",
    )
    p.add_argument("--name", default=None, help="your display name")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the profile (SQLite quick_check, every sealed value), print what was "
        "found and exit: 0 if it is sound, 1 if not",
    )
    p.add_argument(
        "--lan",
        action="store_true",
        help="offer interface addresses, not only 127.0.0.1 (to pair with other machines)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
