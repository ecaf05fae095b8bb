"""ipywidgets panels over a MessagesStore, updating live from the kernel's running loop.

Each panel renders its model (see :mod:`models`) into an ``HTML`` widget.
``start()`` schedules a refresh task on the running asyncio loop (ipykernel 7
has one; no threads, no nest_asyncio): about once a second, and soon after
any event-log entry.  Updates go through traits (``HTML.value``), never
through ``with out:`` from a task.  Every panel also has ``_repr_html_`` so
exported notebooks and non-widget front ends show the tables.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import time
from typing import Any

import ipywidgets as w

from volli_nb.base.errors import StorageError, VolliError
from volli_nb.ui.widgets import models
from volli_nb.ui.widgets.cells import CSS, Names


class Panel:
    """A live view of one aspect of a store; ``widget`` is what Jupyter displays."""

    interval = 1.0

    def __init__(self, store: Any) -> None:
        self.store = store
        self.view = w.HTML()
        self._last = ""
        self.widget: w.Widget = w.VBox([self.view])
        self._task: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event() if _running_loop() else None
        self._unsubscribe = store.log.subscribe(lambda _entry: self._mark_dirty())
        self.refresh()

    def table(self) -> models.Table:
        raise NotImplementedError

    def now(self) -> float:
        clock = getattr(self.store, "clock", None)
        return float(clock()) if clock else time.time()

    def render(self) -> str:
        return CSS + self.table().to_html()

    def refresh(self) -> None:
        self.view.value = self._last = self.render()

    def _repr_html_(self) -> str:
        return self.render()

    def _ipython_display_(self) -> None:
        self.start()
        _display_live(self.widget, self.render())

    def _mark_dirty(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def start(self) -> Panel:
        """Refresh from the running loop until :meth:`close` (no-op without a loop)."""
        loop = _running_loop()
        if loop is not None and (self._task is None or self._task.done()):
            self._dirty = self._dirty or asyncio.Event()
            self._task = loop.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._dirty is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.interval)
            self._dirty.clear()
            try:
                self.refresh()
            except Exception as exc:  # a closed store, say: keep the last view, and stop
                self.view.value = self._last + _stopped(self.store, exc)
                return
            await asyncio.sleep(0.2)  # throttle bursts of events

    def close(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()


def _stopped(store: Any, exc: Exception) -> str:
    """The line under a panel's last view once it cannot refresh any more."""
    if isinstance(exc, StorageError) and "is closed" in str(exc):  # store.close() ran
        why = f"{store.name} was closed: this is its last view"
    else:
        why = f"panel stopped: {type(exc).__name__}: {exc}"
    return f'<p class="volli-empty">{html.escape(why)}</p>'


def _display_live(widget: Any, fallback_html: str) -> None:
    """The live widget for JupyterLab, plus static HTML for every other front end."""
    from IPython.display import display

    bundle = dict(widget._repr_mimebundle_() or {})
    bundle["text/html"] = fallback_html
    display(bundle, raw=True)  # type: ignore[no-untyped-call]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _spawn(coro: Any) -> None:
    loop = _running_loop()
    if loop is not None:
        loop.create_task(coro)


class PeersPanel(Panel):
    """Peers: states, selected pair, RTT, counters; a disconnect button per peer."""

    def __init__(self, store: Any) -> None:
        self.buttons = w.HBox([])
        super().__init__(store)
        self.widget = w.VBox([self.view, self.buttons])

    def table(self) -> models.Table:
        return models.peers_table(self.store, self.now())

    def refresh(self) -> None:
        super().refresh()
        peers = list(self.store.network_store.peers)
        if [b.tooltip for b in self.buttons.children] != peers:
            names = Names(self.store)
            buttons = []
            for peer_id in peers:
                button = w.Button(
                    description=f"disconnect {names.name(peer_id)}",
                    tooltip=peer_id,
                    button_style="warning",
                    layout=w.Layout(width="auto"),
                )
                button.on_click(
                    lambda _b, pid=peer_id: _spawn(self.store.network_store.disconnect(pid))
                )
                buttons.append(button)
            self.buttons.children = tuple(buttons)


class IcePanel(Panel):
    """ICE candidates per peer, selected pair first and highlighted."""

    def table(self) -> models.Table:
        return models.candidates_table(self.store)


class QueuePanel(Panel):
    """The outbox with countdowns; retry now, retry all stuck, discard (confirmed), sync."""

    def __init__(self, store: Any) -> None:
        fit = {"layout": w.Layout(width="auto")}  # a button as wide as its words
        self.row_id = w.BoundedIntText(
            description="row",
            min=0,
            max=2**62,
            value=0,
            style={"description_width": "initial"},
            layout=w.Layout(width="10em"),
        )
        self.retry = w.Button(description="retry now", **fit)
        self.retry_stuck = w.Button(description="retry all stuck", **fit)
        self.discard = w.Button(description="discard", button_style="danger", **fit)
        self.confirm = w.Checkbox(description="yes, discard it", value=False, indent=False, **fit)
        self.sync = w.Button(description="sync now", button_style="primary", **fit)
        self.status = w.HTML()
        super().__init__(store)
        self.retry.on_click(lambda _b: self._act(self._retry))
        self.retry_stuck.on_click(lambda _b: self._act(self._retry_stuck))
        self.discard.on_click(lambda _b: self._act(self._discard))
        self.sync.on_click(lambda _b: _spawn(self._sync()))
        controls = w.HBox(
            [self.row_id, self.retry, self.retry_stuck, self.discard, self.confirm, self.sync],
            layout=w.Layout(flex_flow="row wrap", align_items="center"),
        )
        self.widget = w.VBox([self.view, controls, self.status])

    def table(self) -> models.Table:
        return models.queue_table(self.store, self.now())

    def _act(self, action: Any) -> None:
        try:
            self.status.value = action()
        except Exception as exc:
            self.status.value = f"<b>{type(exc).__name__}</b>: {html.escape(str(exc))}"
        self.refresh()

    def _retry(self) -> str:
        self.store.message_queue.retry_now(self.row_id.value)
        return f"row {self.row_id.value} is due now"

    def _retry_stuck(self) -> str:
        return f"{self.store.message_queue.retry_all_stuck()} stuck row(s) are due now"

    def _discard(self) -> str:
        if not self.confirm.value:
            return "tick “yes, discard it” first: a discarded message is never sent"
        self.store.message_queue.discard(self.row_id.value)
        self.confirm.value = False
        return f"row {self.row_id.value} discarded"

    async def _sync(self) -> None:
        try:
            report = await self.store.sync_messages()
        except VolliError as exc:  # a button's task: say it here, or nobody sees it
            self.status.value = f"<b>{type(exc).__name__}</b>: {html.escape(str(exc))}"
            return
        self.status.value = f"sync: {report}"
        self.refresh()


class ChatPanel(Panel):
    """Conversation list (by contact name), history with delivery marks, a text box, send."""

    def __init__(self, store: Any) -> None:
        self.conversation = w.Dropdown(description="chat with")
        self.text = w.Text(placeholder="message", continuous_update=False)
        self.send = w.Button(description="send", button_style="primary")
        self.status = w.HTML()  # why the last send was refused, if it was
        super().__init__(store)
        self.send.on_click(lambda _b: _spawn(self._send()))
        self.conversation.observe(lambda _c: self.refresh(), names="value")
        self.widget = w.VBox(
            [self.conversation, self.view, w.HBox([self.text, self.send]), self.status]
        )

    def _options(self) -> list[tuple[str, str]]:
        """(label, conversation id): ``bob (fboimzj2)``, not ``dm-<id>-<id>``."""
        names = Names(self.store)
        return [
            (models.conversation_label(self.store, c, names), c.id)
            for c in self.store.conversations()
        ]

    def render(self) -> str:
        conversation = self.conversation.value if hasattr(self, "conversation") else None
        options = self._options()
        if not conversation:
            conversation = self._preferred()
        if conversation is None:
            return CSS + "<p class='volli-empty'>no conversation yet: pair with someone first</p>"
        label = dict((v, k) for k, v in options).get(conversation, conversation)
        lines = models.chat_lines(self.store, conversation, times=True)
        body = "<br>".join(
            f"<span class='sub'>{html.escape(line[:8])}</span>{html.escape(line[8:])}"
            for line in lines
        )
        return CSS + (
            f"<div class='volli-chat tex2jax_ignore mathjax_ignore' style='line-height:1.5'>"
            f"<div class='volli-title' title='{html.escape(conversation)}'>{html.escape(label)}"
            f"</div>{body or '<i>no messages yet</i>'}</div>"
        )

    def refresh(self) -> None:
        if hasattr(self, "conversation"):
            options = self._options()
            if list(self.conversation.options) != options:
                current = self.conversation.value
                self.conversation.options = options
                ids = [v for _, v in options]
                if current in ids:
                    self.conversation.value = current
                elif ids:
                    self.conversation.value = self._preferred()
        self.view.value = self._last = self.render()

    def _preferred(self) -> str | None:
        """The conversation shown first: the newest with a member online now, else the
        newest.  The oldest was: after a kernel restart and a new pairing, the contact
        left behind, offline, where a message sent waits for good."""
        conversations = self.store.conversations()[::-1]
        online = set(self.store.network_store.connected_peers())
        for conversation in conversations:
            if online.intersection(conversation.members):
                return str(conversation.id)
        return str(conversations[0].id) if conversations else None

    async def _send(self) -> None:
        """Send the typed text.  A refusal shows under the box, and the text stays: the
        button runs this as a task, whose exception nobody would see."""
        if self.conversation.value and self.text.value:
            try:
                await self.store.send_message(self.conversation.value, self.text.value)
            except VolliError as exc:
                why = f"not sent: {type(exc).__name__}: {exc}"
                self.status.value = f'<p class="volli-empty">{html.escape(why)}</p>'
                return
            self.text.value = ""
        self.status.value = ""
        self.refresh()


class EventLogPanel(Panel):
    """Timestamped events with a filter, and the whole log as a JSON download."""

    def __init__(self, store: Any) -> None:
        self.category = w.Dropdown(options=["", *_categories()], description="category")
        self.filter = w.Text(placeholder="filter text", continuous_update=True)
        self.download = w.HTML()
        super().__init__(store)
        for control in (self.category, self.filter):
            control.observe(lambda _c: self.refresh(), names="value")
        self.widget = w.VBox([w.HBox([self.category, self.filter, self.download]), self.view])

    def table(self) -> models.Table:
        category = self.category.value if hasattr(self, "category") else None
        text = self.filter.value if hasattr(self, "filter") else ""
        return models.events_table(
            self.store.log, category=category, text=text, names=Names(self.store)
        )

    def refresh(self) -> None:
        super().refresh()
        if hasattr(self, "download"):
            data = base64.b64encode(self.store.log.to_json().encode()).decode()
            self.download.value = (
                f'<a download="volli-events.json" href="data:application/json;base64,{data}">'
                "download JSON</a>"
            )


def _categories() -> list[str]:
    from volli_nb.core.eventlog import CATEGORIES

    return list(CATEGORIES)
