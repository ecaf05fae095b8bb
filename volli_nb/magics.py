"""``%load_ext volli_nb``: the ``%volli`` line magics.

Async work (pairing, sync) is scheduled on the kernel's running loop and its
result displayed when ready; nothing here nests event loops.  The magics act
on ``messagesStore`` in the user namespace (``%volli new NAME`` or
``%volli open PATH`` creates it).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import HTML, display

HELP = """%volli — Volli P2P from IPython

  %volli new [NAME]        a throwaway profile (loopback only) as `messagesStore`
  %volli open PATH         open a profile (passphrase from $VOLLI_PASSPHRASE or a prompt)
  %volli dashboard         all panels, live (peers, ICE, queue, chat, events)
  %volli peers             peers and their connection/ICE states
  %volli queue             the pending queue (getPending as a table)
  %volli pair              make a pairing code (offer) and show it
  %volli pair CODE         accept an offer (shows the answer) or complete with an answer
  %volli sync              force a sync attempt now (syncMessages)
  %volli help              this text
"""


def _html(text: str) -> Any:
    return HTML(text)  # type: ignore[no-untyped-call]


def _show(obj: Any, **kw: Any) -> Any:
    return display(obj, **kw)  # type: ignore[no-untyped-call]


@magics_class
class VolliMagics(Magics):
    def _ns(self) -> dict[str, Any]:
        shell: Any = self.shell
        namespace: dict[str, Any] = shell.user_ns
        return namespace

    def _store(self) -> Any:
        store = self._ns().get("messagesStore")
        if store is None:
            raise RuntimeError("no messagesStore yet: run `%volli new` or `%volli open PATH`")
        return store

    def _later(self, coro: Any, show: Any) -> None:
        """Run ``coro`` on the running loop; display ``show(result)`` when it is done."""
        handle = _show(_html("<i>working…</i>"), display_id=True)

        async def runner() -> None:
            try:
                result = show(await coro)
            except Exception as exc:
                result = _html(f"<b>{type(exc).__name__}</b>: {exc}")
            handle.update(result)

        asyncio.get_running_loop().create_task(runner())

    @line_magic
    def volli(self, line: str) -> Any:
        args = shlex.split(line)
        command, rest = (args[0], args[1:]) if args else ("help", [])
        try:
            return self._dispatch(command, rest)
        except Exception as exc:
            _show(_html(f"<b>{type(exc).__name__}</b>: {exc}"))
            return None

    def _dispatch(self, command: str, rest: list[str]) -> Any:
        from .messages import MessagesStore
        from .netconfig import NetworkConfig
        from .storage import KDF_MIN, KDF_MODERATE
        from .widgets import Dashboard, PeersPanel, QueuePanel

        if command == "help":
            print(HELP)
        elif command == "new":
            name = rest[0] if rest else "notebook"
            tmp = Path(tempfile.mkdtemp(prefix="volli-"))
            store = MessagesStore.open(
                tmp / f"{name}.sqlite",
                "volli",
                name=name,
                kdf=KDF_MIN,
                config=NetworkConfig(loopback_only=True),
            )
            store.start()
            self._ns()["messagesStore"] = store
            print(f"messagesStore = {store!r}")
        elif command == "open":
            if not rest:
                raise ValueError("usage: %volli open PATH")
            import getpass

            passphrase = os.environ.get("VOLLI_PASSPHRASE") or getpass.getpass("passphrase: ")
            store = MessagesStore.open(
                rest[0], passphrase, kdf=KDF_MODERATE, config=NetworkConfig(loopback_only=True)
            )
            store.start()
            self._ns()["messagesStore"] = store
            print(f"messagesStore = {store!r}")
        elif command == "dashboard":
            return Dashboard(self._store())
        elif command == "peers":
            return PeersPanel(self._store())
        elif command == "queue":
            return QueuePanel(self._store())
        elif command == "sync":
            self._later(self._store().sync_messages(), lambda r: _html(f"<pre>{r}</pre>"))
        elif command == "pair":
            self._pair(rest[0] if rest else None)
        else:
            raise ValueError(f"unknown command {command!r}; see %volli help")
        return None

    def _pair(self, code: str | None) -> None:
        from .pairing import decode_code

        store = self._store()

        def show_code(label: str) -> Any:
            return lambda c: _html(
                f"<b>{label}</b><br><textarea rows=4 cols=100 readonly>{c}</textarea>"
            )

        if code is None:
            self._later(
                store.create_pairing_code(),
                show_code("offer code — paste it into the other side's %volli pair CODE"),
            )
        elif decode_code(code).kind == "offer":
            self._later(store.accept_pairing_code(code), show_code("answer code — paste it back"))
        else:

            async def complete() -> str:
                peer: str = await store.complete_pairing(code)
                await store.wait_connected(peer)
                return peer

            self._later(complete(), lambda p: _html(f"connected to <b>{p}</b>"))


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(VolliMagics)
