"""Progress bars for long operations, where they fit.

The network and the app report progress on a :class:`~volli_nb.core.progress.ProgressFeed`
(a large message sending until its signed ACK, a large message arriving, a backlog
flushed after a reconnect); this module draws it: ``tqdm.auto`` bars in a notebook, a
tqdm bar on stderr in a terminal, and nothing where nobody watches (a script writing to
a file, a test).  ``volli-shell`` draws the same updates in its bottom toolbar instead
(:func:`toolbar_text`), since a bar on stderr would fight the prompt.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm as terminal_tqdm

from volli_nb.base.console import Target, progress_target
from volli_nb.core.progress import ProgressFeed, ProgressUpdate
from volli_nb.core.shown_text import shown


def _feed(source: Any) -> ProgressFeed:
    feed = getattr(source, "progress", source)
    if not isinstance(feed, ProgressFeed):
        raise TypeError(f"expected a store or a ProgressFeed, not {type(source).__name__}")
    return feed


Names = Callable[[str], str]


def store_names(source: Any) -> Names | None:
    """A store's contact names by peer id (None for a bare feed)."""
    book = getattr(source, "contact_book", None)
    return None if book is None else book.display_name


def described(update: ProgressUpdate, names: Names | None) -> str:
    """The task's description with the peer's short id replaced by its name: a task's key
    ends with the peer id (``send:<message>:<peer>``, ``flush:<peer>``)."""
    peer_id = update.key.rsplit(":", 1)[-1]
    if names is None or len(peer_id) < 8 or peer_id[:8] not in update.description:
        return update.description
    try:
        name = names(peer_id)
    except Exception:  # a closed store: keep the id
        return update.description
    return update.description.replace(peer_id[:8], name)


class ProgressBars:
    """One tqdm bar per task of a feed; finished bars stay, with their outcome."""

    def __init__(
        self,
        feed: ProgressFeed,
        target: Target,
        *,
        file: TextIO | None = None,
        names: Names | None = None,
    ) -> None:
        self.feed, self.target, self.names = feed, target, names
        self.file = file if file is not None else sys.stderr
        self.bars: dict[str, Any] = {}
        self._remove = feed.subscribe(self._on_update)

    def _make(self, update: ProgressUpdate) -> Any:
        kind: Any = terminal_tqdm
        if self.target == "notebook":
            from tqdm.notebook import tqdm as notebook_tqdm

            kind = notebook_tqdm
        desc = shown(described(update, self.names))  # may hold a peer's name
        options: dict[str, Any] = {
            "total": update.total,
            "unit": update.unit,
            "unit_scale": update.unit == "B",
            "leave": True,
            "mininterval": 0.2,
        }
        if self.target == "terminal":
            options.update(desc=desc, file=self.file, dynamic_ncols=True)
        bar = kind(**options)
        if self.target == "notebook":  # tqdm's notebook bar puts a desc given when it is
            bar.set_description_str(desc)  # made into its HTML as is; this path escapes it
        return bar

    def _on_update(self, update: ProgressUpdate) -> None:
        bar = self.bars.get(update.key)
        if bar is None:
            if update.finished:
                return
            bar = self.bars[update.key] = self._make(update)
        if update.total is not None and bar.total != update.total:
            bar.reset(total=update.total)  # reset() also resizes a notebook bar
        if update.stage:
            stage = update.stage if not update.finished else update.outcome
            bar.set_postfix_str(shown(stage), False)
        bar.update(update.done - bar.n)  # tqdm throttles redraws to ``mininterval``
        if update.finished:
            bar.set_postfix_str(shown(update.outcome), False)
            if update.failed and self.target == "notebook":
                bar.colour = "#c0262d"
            bar.close()
            del self.bars[update.key]

    def close(self) -> None:
        self._remove()
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def __repr__(self) -> str:
        return f"<progress bars ({self.target}): {len(self.bars)} running>"

    def _ipython_display_(self) -> None:
        """Shown as nothing: the bars appear by themselves when an operation runs (a cell
        ending in ``show_progress(store)`` would otherwise print an object's address)."""


def show_progress(
    source: Any, *, target: Target | str | None = "auto", file: TextIO | None = None
) -> ProgressBars | None:
    """Draw ``source``'s progress (a store or a feed) where it fits; returns the bars (call
    ``.close()`` to stop) or None where no bar belongs (no kernel and no terminal)."""
    chosen = progress_target(file) if target == "auto" else target
    if chosen is None:
        return None
    if chosen not in ("notebook", "terminal"):
        raise ValueError(f"target must be 'auto', 'notebook', 'terminal' or None: {chosen!r}")
    bars = ProgressBars(_feed(source), chosen, file=file, names=store_names(source))  # type: ignore[arg-type]
    return bars


def bar_line(update: ProgressUpdate, width: int = 80, names: Names | None = None) -> str:
    """One task as one line of text (the shell's toolbar); ``started`` is on the feed's
    default clock, ``time.monotonic``."""
    text = terminal_tqdm.format_meter(
        update.done,
        update.total,
        max(0.0, time.monotonic() - update.started),
        ncols=max(40, width - len(update.stage) - 3),
        prefix=described(update, names),
        unit=update.unit,
        unit_scale=update.unit == "B",
    )
    return f"{text}  {update.stage}" if update.stage else text


def toolbar_text(
    feed: ProgressFeed, width: int = 100, names: Names | None = None
) -> Callable[[], str]:
    """A callable giving the running tasks as lines, for a prompt_toolkit toolbar."""

    def text() -> str:
        return "\n".join(bar_line(u, width, names) for u in list(feed.active.values())[:3])

    return text


def outcome_line(update: ProgressUpdate, names: Names | None = None) -> str:
    """What a finished task printed once: ``✓ 3f2a… → bob: acknowledged (10.0 MB, 3.1 s)``."""
    seconds = time.monotonic() - update.started
    size = terminal_tqdm.format_sizeof(update.done, "B" if update.unit == "B" else "")
    amount = size if update.unit == "B" else f"{update.done:,.0f} {update.unit}"
    mark = "✗" if update.failed else "✓"
    line = f"{mark} {described(update, names)}: {update.outcome} ({amount}, {seconds:.1f} s)"
    return shown(line)  # an outcome may quote the peer (its goodbye)
