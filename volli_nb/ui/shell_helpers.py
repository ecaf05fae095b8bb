"""What ``volli-shell`` preloads: the store, its parts, and helpers that read well at a
prompt.

Each helper that waits (``offer``, ``accept``, ``complete``, ``pair``, ``send``) starts
its work at once and can be typed either way: ``await send("bob", "hi")`` gives the
message back; ``send("bob", "hi")`` alone keeps the prompt and prints one line when the
work is done (a coroutine typed without ``await`` would print ``<coroutine …>`` and send
nothing).  Contacts can be named by their name (``"bob"``) wherever a peer id is taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from volli_nb.base.errors import UsageError
from volli_nb.core.eventlog import clip


class TableView:
    """A table that prints as aligned text at the prompt (``.table`` has the rows).

    ``columns`` maps a header to a row key, for a shorter view than a panel's."""

    def __init__(self, table: Any, columns: dict[str, str] | None = None) -> None:
        self.table = table
        self.columns = columns or {c: c for c in table.columns}

    def __repr__(self) -> str:
        heads = list(self.columns)
        rows = [[str(r.get(key, "")) for key in self.columns.values()] for r in self.table.rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads)]

        def line(cells: list[str]) -> str:
            return "  ".join(v.ljust(wd) for v, wd in zip(cells, widths, strict=True)).rstrip()

        body = [line(r) for r in rows] or ["(none)"]
        return "\n".join([line(heads), *body])


class Printed:
    """Text the prompt shows as lines (a ``str`` result would be echoed quoted, on one)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class Shown(str):
    """A string a helper already printed on its own line (a pairing code, to copy): the
    prompt does not echo it a second time.  Otherwise an ordinary ``str``."""


class Running:
    """A helper's work, started at once on the shell's loop.

    ``await`` it for the result (the usual way); left alone it runs on and prints one
    line when done, or why it failed, above the prompt."""

    def __init__(
        self, what: str, work: Coroutine[Any, Any, Any], done: Callable[[Any], str | None]
    ) -> None:
        self.what, self._line = what, done
        self.awaited = False
        self.task = asyncio.get_running_loop().create_task(work)
        self.task.add_done_callback(self._finished)

    def __await__(self) -> Generator[Any, None, Any]:
        self.awaited = True
        return self.task.__await__()

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so asyncio does not warn about it
        if self.awaited:
            return
        if error is not None:
            print(f"{self.what} failed: {type(error).__name__}: {error}", flush=True)
            return
        line = self._line(task.result())
        if line:
            print(line, flush=True)

    def __getattr__(self, name: str) -> Any:
        """``m = send(...)`` then ``m.message_id``: the result's attributes, once done."""
        if name.startswith("_") or not self.task.done():
            raise AttributeError(f"{self.what} is still running; `await` it first ({name})")
        return getattr(self.task.result(), name)

    def __repr__(self) -> str:
        if not self.task.done():
            return f"{self.what}: started; one line prints when it is done (or `await` it)"
        if self.task.cancelled():
            return f"{self.what}: cancelled"
        error = self.task.exception()
        if error is not None:
            return f"{self.what} failed: {type(error).__name__}: {error}"
        return repr(self.task.result())


def either_way(
    what: Callable[..., str], done: Callable[[Any], str | None] = lambda _r: None
) -> Callable[
    [Callable[..., Coroutine[Any, Any, Any]]],
    Callable[..., Running],
]:
    """Make an async helper start at once and return a :class:`Running` (awaitable)."""

    def wrap(helper: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Running]:
        def start(*args: Any, **kwargs: Any) -> Running:
            return Running(what(*args, **kwargs), helper(*args, **kwargs), done)

        start.__name__, start.__doc__ = helper.__name__, helper.__doc__
        return start

    return wrap


def resolve(store: Any, to: str) -> str:
    """A contact's name (any case, if only one contact has it) as its peer id, else a
    group's name as its id; anything else (a peer id, a conversation id) as given."""
    if not isinstance(to, str):
        raise UsageError(f"name a contact, a peer id or a conversation, not {type(to).__name__}")
    contacts = list(store.contacts)
    if any(c.peer_id == to for c in contacts):
        return to
    named = [c.peer_id for c in contacts if c.name and c.name.casefold() == to.casefold()]
    if len(named) > 1:
        raise UsageError(f"{len(named)} contacts are named {to!r}; use a peer id: {named}")
    if not named and hasattr(store, "groups"):  # a group's name: its id
        named = [g.group_id for g in store.groups() if g.name.casefold() == to.casefold()][:1]
    return named[0] if named else to


def incoming_line(store: Any, message: Any, width: int = 100) -> str:
    """The line an incoming message prints above the prompt."""
    from volli_nb.ui.widgets.cells import Names

    who = Names(store).name(message.sender)
    return clip(f"← {message.time} {who}: {message.text}", max(20, width))


def sent_line(message: Any) -> str:
    """What a send shows once its message is queued (the shell's ``send``, ``%volli send``)."""
    return f"→ sent {message.short_id} ({message.status}): {clip(message.text, 60)!r}"


def chat_helpers(store: Any) -> dict[str, Any]:
    """``send`` and ``history``: the conversation side of the shell."""
    from volli_nb.ui.widgets import models
    from volli_nb.ui.widgets.cells import Names

    @either_way(lambda to, text, **_: f"send to {to}", sent_line)
    async def send(to: str, text: str, *, compress: bool = True) -> Any:
        """Send ``text`` to a contact (its name or peer id) or a conversation."""
        return await store.send_message(resolve(store, to), text, compress=compress)

    def history(peer: str | None = None, n: int = 20) -> Printed:
        """The last ``n`` messages with a contact (its name or peer id), oldest first."""
        conversations = store.conversations()
        names = Names(store)
        if peer is None:
            if len(conversations) != 1:
                who = ", ".join(models.conversation_label(store, c, names) for c in conversations)
                return Printed(
                    f"which one? history(name) with one of: {who}"
                    if conversations
                    else "(no conversation yet: pair with someone first)"
                )
            conversation = conversations[0].id
        else:
            conversation = resolve(store, peer)
        lines = models.chat_lines(store, conversation, times=True)[-n:]
        return Printed("\n".join(lines) or "(no messages yet)")

    return {"send": send, "history": history}


def pairing_helpers(store: Any) -> dict[str, Any]:
    """``offer``, ``accept``, ``complete`` and ``pair``: each prints its code once."""
    from volli_nb.ui.widgets.cells import Names

    @either_way(lambda: "offer()")
    async def offer() -> Shown:
        """Make a pairing code (an offer) and print it, to paste on the other side."""
        code = await store.create_pairing_code()
        print(code, flush=True)  # on its own line, for copying
        return Shown(code)

    @either_way(lambda code: "accept(code)")
    async def accept(code: str) -> Shown:
        """Accept the other side's offer code; prints the answer code to paste back."""
        answer = await store.accept_pairing_code(code)
        print(answer, flush=True)
        return Shown(answer)

    @either_way(lambda code: "complete(code)")
    async def complete(code: str) -> Shown:
        """Apply the other side's answer code and wait for the connection."""
        peer_id = await store.complete_pairing(code)
        await store.wait_connected(peer_id)
        print(f"connected to {Names(store).label(peer_id)}: {peer_id}", flush=True)
        return Shown(peer_id)

    @either_way(lambda code=None: "pair()" if code is None else "pair(code)")
    async def pair(code: str | None = None) -> Shown:
        """No code: make an offer.  An offer code: accept it.  An answer code: complete."""
        from volli_nb.core.pairing_code import decode_code

        if code is None:
            return Shown(await offer())
        if decode_code(code).kind == "offer":
            return Shown(await accept(code))
        return Shown(await complete(code))

    return {"offer": offer, "accept": accept, "complete": complete, "pair": pair}
