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
import builtins
import getpass
import inspect
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import UsageError, VolliError, WrongPassphrase
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.shown_text import shown
from volli_nb.core.store.database import KDF_MODERATE
from volli_nb.core.store.keyring import PASSPHRASE_ENV
from volli_nb.ui.group_commands import group_helpers
from volli_nb.ui.shell_helpers import (
    Printed,
    Running,
    Shown,
    TableView,
    chat_helpers,
    incoming_line,
    pairing_helpers,
)
from volli_nb.ui.typeahead import ctrl_d_kept

CLOSE_TIMEOUT = 2.0  # Ctrl-D: every connection closed within this bound
PASSPHRASE_TRIES = 3

BANNER = """\
volli-shell — {name} ({peer_id})  profile: {where}
Loaded: messagesStore, network_store, message_queue
Helpers: peers()  pending()  candidates()  history([name])  send(name_or_peer, text)
         pair([code])  offer()  accept(code)  complete(code)  verify()
Groups: groups()  group(g)  new_group(name, *members)  add(g, m)  remove(g, m)  leave(g)
        send(group, text)  history(group)
Pair:   here   code = await offer()          → copy the code line to the other side
        there  await accept("volli2.…")      → prints an answer code; copy it back here
        here   await complete("volli2.…")    (or just `await pair(...)` each time)
Debug:  messagesStore.network_store.peers     await messagesStore.sync_messages()
        events([n])  (the event log, readable times)   diagram()  (mermaid sequence diagram)
Incoming messages print above the prompt.  Helpers run with or without `await`.  `help`: this list.
ICE: {ice}.  Top-level await works; Ctrl-D closes every connection and exits.
"""
# peers() and pending() at the prompt: one short line a row (a header → a row key).
SHELL_PEERS = {
    "name": "name",
    "peer": "peer",
    "verified": "verified",
    "connection": "connection",
    "ice": "ice",
    "rtt": "rtt",
    "last seen": "last seen",
}
SHELL_QUEUE = {
    "row": "row",
    "message": "message",
    "to": "to name",
    "status": "status",
    "attempts": "attempts",
    "next retry": "next retry",
    "last error": "last error",
}


class _Help(Printed):
    """``help`` at the prompt: the banner's list of what is loaded (Python's own help
    only told a newcomer to call ``help()``); ``help(obj)`` is Python's help on obj."""

    def __call__(self, *args: Any) -> None:
        if args:
            builtins.help(*args)
        else:
            print(self.text)


HELP = "\n".join(BANNER.splitlines()[1:-1]) + "\nhelp(obj): Python's help on obj."


def helpers(store: MessagesStore) -> dict[str, Any]:
    """The shell's namespace: the store, its parts, and short helpers."""

    def view(
        name: str, *, timed: bool = True, columns: dict[str, str] | None = None
    ) -> Callable[[], TableView]:
        def show() -> TableView:
            from volli_nb.ui.widgets import models

            make = getattr(models, name)
            return TableView(make(store, store.clock()) if timed else make(store), columns)

        show.__name__ = name.removesuffix("_table")
        return show

    return {
        "messagesStore": store,
        "network_store": store.network_store,
        "message_queue": store.message_queue,
        "peers": view("peers_table", columns=SHELL_PEERS),
        "pending": view("queue_table", columns=SHELL_QUEUE),
        "candidates": view("candidates_table", timed=False),
        **pairing_helpers(store),
        **chat_helpers(store),
        **group_helpers(store),
        "verify": store.verify,
        **_log_helpers(store),
        "asyncio": asyncio,
        "help": _Help(HELP),
    }


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


def default_name(profile: Path | None) -> str:
    """A name the other side can tell apart from its own: the profile file's name, or
    this host and process (two throwaway shells on one machine are not both "shell")."""
    if profile is not None:
        return profile.stem
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}"


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
        store = MessagesStore.scratch(args.name or default_name(None), config=config)
        where = (
            f"throwaway in {store.scratch_dir} "
            "(weak KDF_MIN key, deleted on exit; --profile PATH keeps one)"
        )
        return store, where
    path: Path = args.profile

    def open_with(passphrase: str) -> MessagesStore:
        name = args.name or default_name(path)
        return MessagesStore.open(path, passphrase, name=name, kdf=KDF_MODERATE, config=config)

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


class _Text:
    """A repr made already (on the loop's thread), for ptpython's printer."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


async def _repr(value: object) -> str:
    return repr(value)


def _printable(result: object, loop: asyncio.AbstractEventLoop) -> object | None:
    """What ptpython prints for ``result``, on its worker thread.  Nothing for a code
    already printed on its own line, or work that prints its own line when done (a helper
    typed without ``await``).  Else the repr, made on the loop's thread: it may read the
    profile, and SQLite is that thread's."""
    if isinstance(result, Shown | Running):
        return None
    if inspect.iscoroutine(result):  # an async method called without ``await``
        result.close()
        return _Text(f"{result.__qualname__}(…) did not run: put `await` before it")
    if hasattr(result, "__pt_repr__"):
        return result
    return _Text(asyncio.run_coroutine_threadsafe(_repr(result), loop).result())


def _error_line(error: BaseException) -> str | None:
    """One line for what a person meets at the prompt, instead of a traceback through our
    modules and asyncio: a volli error's message says what to do; a CancelledError is the
    Ctrl-C that ptpython turns into cancelling the awaited task.  Anything else: None."""
    if isinstance(error, VolliError):
        return f"{type(error).__name__}: {shown(str(error))}"
    if isinstance(error, asyncio.CancelledError):
        return (
            "KeyboardInterrupt: the await was cancelled (connections, retries and the "
            "outbox carry on)"
        )
    return None


def _repl_class(loop: asyncio.AbstractEventLoop) -> Any:
    """ptpython's REPL, printing results (:func:`_printable`) and errors
    (:func:`_error_line`) as a person at the prompt reads them."""
    from ptpython.repl import PythonRepl

    class Repl(PythonRepl):
        def _show_result(self, result: object) -> None:
            printable = _printable(result, loop)
            if printable is not None:
                super()._show_result(printable)

        async def run_and_show_expression_async(self, text: str) -> Any:
            with ctrl_d_kept():  # a Ctrl-D pressed meanwhile reaches the next prompt
                return await super().run_and_show_expression_async(text)

        def _handle_exception(self, e: BaseException) -> None:
            line = _error_line(e)
            if line is None:
                super()._handle_exception(e)
                return
            sys.last_type, sys.last_value, sys.last_traceback = type(e), e, e.__traceback__
            print(line, flush=True)

    return Repl


async def _repl(namespace: dict[str, Any], store: MessagesStore) -> None:
    """ptpython on this loop, with a progress toolbar that shows only while work runs."""
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.layout import ConditionalContainer, FormattedTextControl, Window
    from prompt_toolkit.patch_stdout import patch_stdout

    from volli_nb.ui.progress import outcome_line, toolbar_text

    feed = store.progress
    # The toolbar is drawn on prompt_toolkit's own thread, where SQLite may not be used:
    # names are looked up on the loop's thread, as each task starts, and kept here.
    known: dict[str, str] = {}

    def name(peer_id: str) -> str:
        return known.get(peer_id, peer_id[:8])

    lines = toolbar_text(feed, shutil.get_terminal_size().columns - 1, name)
    toolbar = ConditionalContainer(
        Window(
            FormattedTextControl(lambda: [("class:volli-progress", lines())]),
            height=lambda: min(3, max(1, len(feed.active))),
        ),
        filter=Condition(lambda: bool(feed.active)),
    )

    repl = _repl_class(asyncio.get_running_loop())(
        get_globals=lambda: namespace, get_locals=lambda: namespace, _extra_toolbars=[toolbar]
    )
    repl.terminal_title = "volli-shell"
    _configure(repl)

    def on_progress(update: Any) -> None:  # on the loop's thread
        peer_id = update.key.rsplit(":", 1)[-1]
        if peer_id not in known:
            known[peer_id] = store.contact_book.display_name(peer_id)
        repl.app.invalidate()
        if update.finished:
            print(outcome_line(update, name), flush=True)

    def on_message(message: Any) -> None:  # one line above the prompt (patch_stdout)
        print(incoming_line(store, message, shutil.get_terminal_size().columns - 1), flush=True)

    removers = [feed.subscribe(on_progress), store.on_message(on_message)]
    try:
        with patch_stdout():
            await repl.run_async()
    finally:
        for remove in removers:
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
    p.add_argument(
        "--name",
        default=None,
        help="your display name (default: the profile file's name, or this host and process)",
    )
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
