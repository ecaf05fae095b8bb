"""``%load_ext volli_nb``: the ``%volli`` line magics.

Async work (pairing, sync) is scheduled on the kernel's running loop (ipykernel 7
has one) and its output updated in place when done; nothing here nests event
loops or applies nest_asyncio.  Without a running loop (a plain terminal IPython)
the magic says which coroutine to ``await`` instead.  The magics act on
``messagesStore`` in the user namespace (``%volli new NAME`` or ``%volli open
PATH`` creates it).
"""

from __future__ import annotations

import asyncio
import getpass
import html
import os
import shlex
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import HTML, display

from volli_nb.core.store.keyring import PASSPHRASE_ENV

HELP = """%volli — Volli P2P from IPython

  %volli new [NAME]        a throwaway profile (loopback only) as `messagesStore`
                           (NAME: how others see you; default notebook-<pid>)
  %volli open PATH [NAME]  open (or create) a profile; passphrase from $VOLLI_PASSPHRASE
                           or a prompt
  %volli dashboard         all panels, live (peers, ICE, queue, chat, events)
  %volli peers             peers and their connection/ICE states
  %volli queue             the pending queue (getPending() as a table)
  %volli events [N]        the last N events (20), wall-clock time and time since the first
  %volli diagram           the live sequence diagram (UI, Store, Queue, Network, peers)
  %volli pair              make a pairing code (an offer) and show it
  %volli pair CODE         an offer code: accept it and show the answer code to paste back;
                           an answer code: complete the pairing and wait for the connection
  %volli send PEER TEXT…   send the rest of the line to a contact (its name or peer id),
                           or a conversation; shown once it is queued
  %volli history [PEER] [N]  the last N messages (20) with a contact, oldest first
  %volli sync              force a sync attempt now (syncMessages())
  %volli group …           groups: `%volli group help` lists new, add, remove, leave, send
  %volli close             close every connection and the profile
  %volli help              this text

Magics that wait (pair, send, sync) run on the kernel's loop and update their output when done.
Long operations (a large message until its ACK, a backlog flush) show progress bars.
"""


def _html(text: str) -> Any:
    return HTML(text)  # type: ignore[no-untyped-call]


def _show(obj: Any, **kw: Any) -> Any:
    return display(obj, **kw)  # type: ignore[no-untyped-call]


class Note:
    """A short result with an HTML and a plain-text form (for any front end)."""

    def __init__(self, text: str, html_text: str | None = None) -> None:
        self.text = text
        self.html = html_text if html_text is not None else html.escape(text, quote=False)

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.html


def _error(exc: BaseException) -> Note:
    name, message = type(exc).__name__, str(exc)
    return Note(f"{name}: {message}", f"<b>{name}</b>: {html.escape(message, quote=False)}")


def _widgets() -> Any:
    """``volli_nb.ui.widgets`` if it is importable (it needs ipywidgets), else None."""
    try:
        from volli_nb.ui import widgets
    except ImportError:
        return None
    return widgets


def _plain_table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> Any:
    """A static HTML table, for when the widget panels are unavailable."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    empty = f'<tr><td colspan="{len(columns)}"><i>none</i></td></tr>'
    return _html(
        f"<h4>{html.escape(title)}</h4><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body or empty}</tbody></table>"
    )


def _plain_peers(store: Any) -> Any:
    rows = [
        {"peer": pid, "connection": pc.connectionState, "ice": pc.iceConnectionState}
        for pid, pc in store.network_store.peers.items()
    ]
    return _plain_table("Peers", ["peer", "connection", "ice"], rows)


def _plain_queue(store: Any) -> Any:
    from volli_nb.core.eventlog import wall_clock

    times = ("next_attempt_at", "created_at", "updated_at")  # clock times, not epoch floats
    rows = [
        {k: (wall_clock(v) if v is not None else "—") if k in times else v for k, v in r.items()}
        for r in (q.to_row() for q in store.message_queue.get_pending())
    ]
    columns = list(rows[0]) if rows else ["id", "recipient", "status", "attempts"]
    return _plain_table("Pending queue", columns, rows)


def _plain_diagram(store: Any) -> Any:
    """Mermaid text of the sequence diagram, for when the widget panels are unavailable."""
    try:  # the model is pure, but its package loads ipywidgets
        from volli_nb.ui.widgets.sequence_model import SequenceModel
    except ImportError:
        return _html(f"<pre>{html.escape(store.log.tail(40), quote=False)}</pre>")
    model = SequenceModel()
    model.extend(store.log)
    return _html(f"<pre>{html.escape(model.to_mermaid(), quote=False)}</pre>")


def _code_view(label: str) -> Callable[[str], Note]:
    def view(code: str) -> Note:
        from volli_nb.ui.qr import pairing_qr

        return Note(
            f"{label}:\n{code}",
            f"<b>{html.escape(label)}</b><br>"
            f'<textarea rows="4" cols="100" readonly>{html.escape(code)}</textarea><br>'
            + pairing_qr(code).svg(),  # to scan on the other screen
        )

    return view


@magics_class
class VolliMagics(Magics):
    """``%volli COMMAND``: see :data:`HELP`."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._tasks: set[asyncio.Task[None]] = set()  # keep references until done
        self._made: Any = None  # the last store a magic made (closed when replaced)

    def _ns(self) -> dict[str, Any]:
        shell: Any = self.shell
        namespace: dict[str, Any] = shell.user_ns
        return namespace

    def _store(self) -> Any:
        store = self._ns().get("messagesStore")
        if store is None:
            raise RuntimeError("no messagesStore yet: run `%volli new` or `%volli open PATH`")
        return store

    def _later(
        self, coro: Coroutine[Any, Any, Any], show: Callable[[Any], Any], awaitable: str
    ) -> bool:
        """Run ``coro`` on the running loop; replace a placeholder by ``show(result)``.
        False (and a hint to await ``awaitable``) when no loop is running."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            print(f"no running event loop here: run `{awaitable}` yourself")
            return False
        waiting = f"working… ({awaitable})"
        handle = _show(Note(waiting, f"<i>{html.escape(waiting)}</i>"), display_id=True)

        async def runner() -> None:
            try:
                result = show(await coro)
            except Exception as exc:
                result = _error(exc)
            handle.update(result)

        task = loop.create_task(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    @line_magic
    def volli(self, line: str) -> Any:
        """Volli P2P: ``%volli help`` lists the commands."""
        head, _, tail = line.strip().partition(" ")
        try:
            if head == "send":  # the text as typed: an apostrophe is not a shell quote
                return self._send(line.strip())
            if head == "group":  # `group send G TEXT…` too
                return self._group(tail)
            args = shlex.split(line)
            command, rest = (args[0], args[1:]) if args else ("help", [])
            return self._dispatch(command, rest)
        except Exception as exc:
            _show(_error(exc))
            return None

    def _dispatch(self, command: str, rest: list[str]) -> Any:
        if command == "help":
            print(HELP)
        elif command == "new":  # a default two notebooks do not share
            self._new(rest[0] if rest else f"notebook-{os.getpid()}")
        elif command == "open":
            if not rest:
                raise ValueError("usage: %volli open PATH [NAME]")
            self._open(Path(rest[0]), rest[1] if len(rest) > 1 else None)
        elif command in ("dashboard", "peers", "queue", "diagram"):
            return self._panel(command, self._store())
        elif command == "events":
            text = self._store().log.tail(int(rest[0]) if rest else 20)
            _show(Note(text, f"<pre>{html.escape(text, quote=False)}</pre>"))
        elif command == "sync":
            self._later(
                self._store().sync_messages(),
                lambda r: Note(repr(r), f"<pre>{html.escape(repr(r))}</pre>"),
                "await messagesStore.sync_messages()",
            )
        elif command == "pair":
            self._pair(rest[0] if rest else None)
        elif command == "history":
            from volli_nb.ui.shell_helpers import chat_helpers

            n = int(rest[1]) if len(rest) > 1 else 20
            text = repr(chat_helpers(self._store())["history"](rest[0] if rest else None, n))
            _show(Note(text, f"<pre>{html.escape(text, quote=False)}</pre>"))
        elif command == "close":
            store = self._store()
            if self._later(store.close(), lambda _: Note("closed"), "await messagesStore.close()"):
                del self._ns()["messagesStore"]
                self._made = None if self._made is store else self._made
        else:
            raise ValueError(f"unknown command {command!r}; see %volli help")
        return None

    def _send(self, line: str) -> None:
        """``%volli send PEER TEXT…``, as the shell's ``send`` (read as ``%volli group send``
        reads its words: PEER may be quoted, TEXT is as typed)."""
        from volli_nb.ui.group_commands import magic_words
        from volli_nb.ui.shell_helpers import resolve, sent_line

        words = magic_words(line)
        if len(words) != 3:
            raise ValueError("usage: %volli send PEER TEXT… (the text runs to the end of the line)")
        store, to, text = self._store(), words[1], words[2]

        def sent(message: Any) -> Note:
            said = sent_line(message)
            return Note(said, html.escape(said))

        self._later(store.send_message(resolve(store, to), text), sent,
                    f"await messagesStore.send_message({to!r}, …)")  # fmt: skip

    @staticmethod
    def _panel(command: str, store: Any) -> Any:
        """A live widget panel, or a static HTML table without ``volli_nb.ui.widgets``."""
        widgets = _widgets()
        if widgets is not None:
            kind = {
                "dashboard": "Dashboard",
                "peers": "PeersPanel",
                "queue": "QueuePanel",
                "diagram": "SequencePanel",
                "groups": "GroupsPanel",
            }
            return getattr(widgets, kind[command])(store)
        if command == "diagram":
            return _plain_diagram(store)
        if command == "peers":
            return _plain_peers(store)
        if command == "queue":
            return _plain_queue(store)
        if command == "groups":
            rows = [
                {"name": g.name, "version": g.version, "members": len(g.members), "id": g.group_id}
                for g in store.groups()
            ]
            return _plain_table("Groups", ["name", "version", "members", "id"], rows)
        return _html(_plain_peers(store).data + _plain_queue(store).data)

    def _group(self, line: str) -> Any:
        """``%volli group …`` (:mod:`volli_nb.ui.group_commands`)."""
        from volli_nb.ui.group_commands import GROUP_HELP, group_magic, magic_words

        rest = magic_words(line)
        if rest[:1] == ["help"]:
            print(GROUP_HELP)
            return None
        store = self._store()
        what, work, shown = group_magic(store, rest)
        if what == "panel":
            return self._panel("groups", store)
        if work is None:
            _show(Note(str(shown), f"<pre>{html.escape(str(shown), quote=False)}</pre>"))
            return None
        self._later(work, lambda result: Note(repr(result)), f"await messagesStore.{what}")
        return None

    def _install(self, store: Any) -> None:
        """Make ``store`` the ``messagesStore``; close the previous one a magic made."""
        from volli_nb.ui.progress import show_progress

        previous, self._made = self._made, store
        self._ns()["messagesStore"] = store
        show_progress(store)  # bars in a notebook; nothing where none fits
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            print("(no running event loop: the retry loop starts with the first await)")
        else:
            store.start()
        if previous is not None and previous is not store:
            self._later(
                previous.close(),
                lambda _: Note("previous profile closed"),
                "await <the previous messagesStore>.close()",
            )
        print(f"messagesStore = {store!r}")

    def _new(self, name: str) -> None:
        from volli_nb.app.messages_store import MessagesStore

        self._install(MessagesStore.scratch(name))

    def _open(self, path: Path, name: str | None) -> None:
        from volli_nb.app.messages_store import MessagesStore
        from volli_nb.core.netconfig import NetworkConfig
        from volli_nb.core.store.database import KDF_MODERATE

        current = self._made
        if current is not None and current.database.path.resolve() == path.resolve():
            print(f"messagesStore is that profile already: {current!r}")  # one owner each
            return
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if passphrase is None:
            passphrase = getpass.getpass(f"passphrase for {path}: ")
        self._install(
            MessagesStore.open(
                path,
                passphrase,
                name=name or path.stem,
                kdf=KDF_MODERATE,
                config=NetworkConfig(loopback_only=True),
            )
        )

    def _pair(self, code: str | None) -> None:
        from volli_nb.core.pairing_code import decode_code

        store = self._store()
        if code is None:
            self._later(
                store.create_pairing_code(),
                _code_view("offer code — paste it into the other side's %volli pair CODE"),
                "await messagesStore.create_pairing_code()",
            )
        elif decode_code(code).kind == "offer":
            self._later(
                store.accept_pairing_code(code),
                _code_view("answer code — paste it back into the other side's %volli pair CODE"),
                "await messagesStore.accept_pairing_code(code)",
            )
        else:

            async def complete() -> str:
                peer: str = await store.complete_pairing(code)
                await store.wait_connected(peer)
                return peer

            def connected(peer: str) -> Note:
                name = store.contact_book.display_name(peer)
                return Note(
                    f"connected to {name} ({peer})",
                    f"connected to <b>{html.escape(name)}</b> ({html.escape(peer)})",
                )

            self._later(
                complete(),
                connected,
                "await messagesStore.wait_connected(await messagesStore.complete_pairing(code))",
            )


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(VolliMagics)
