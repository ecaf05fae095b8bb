"""``SequencePanel(store)``: the seed's two sequence diagrams, drawn live from the event log.

Why plain ipywidgets and SVG rather than a JavaScript widget: an exported notebook and
GitHub need a static picture anyway, so the diagram is drawn once, in Python
(:mod:`sequence_svg`), and that same SVG is the live view, the export and what the tests
read.  Hover and click details are SVG titles and CSS, which survive export too.

Live, the diagram is an ``HTML`` widget updated through its trait from the running loop
(never ``with out:``).  nbconvert, though, prefers a widget view over any other form of an
output and cannot draw one without JavaScript from a CDN, and a display update sent from a
background task is dropped by nbclient (it carries the parent of the cell that started the
task).  So a displayed panel adds a static copy (text/html, mermaid as text/plain),
refreshed after each cell runs (IPython's ``post_run_cell``, inside the running cell, so it
reaches the file), and hidden by a style that only the rendered live widget carries: the
live page shows one diagram, an export shows the copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import ipywidgets as w

from volli_nb.base.errors import VolliError
from volli_nb.core.eventlog import LogEntry
from volli_nb.ui.widgets.panels import Panel
from volli_nb.ui.widgets.sequence_model import DEFAULT_CAP, SequenceModel
from volli_nb.ui.widgets.sequence_svg import COLUMN, new_uid, render_html, render_svg


def peer_names(store: Any) -> Callable[[str], str]:
    """Contact names for lifelines, the short peer id for strangers.  Names found are kept,
    so the diagram still draws (and shows the goodbyes) after the store is closed."""
    known: dict[str, str] = {}

    def name(peer_id: str) -> str:
        if peer_id not in known and peer_id != "peer":
            with contextlib.suppress(VolliError):
                contact = store.database.get_contact(peer_id)
                if contact is not None and contact.name:
                    known[peer_id] = contact.name
        return known.get(peer_id, peer_id[:8])

    return name


class SequenceDiagram:
    """A frozen copy of a diagram: what ``panel.snapshot()`` returns, for exports and files.

    Jupyter shows it as HTML with an SVG image and mermaid text alongside."""

    def __init__(
        self,
        model: SequenceModel,
        names: Callable[[str], str],
        caption: str = "",
        column: int = COLUMN,
    ) -> None:
        self.model, self.names, self.caption, self.column = model, names, caption, column

    def to_svg(self) -> str:
        return render_svg(self.model, self.names, column=self.column)

    def to_mermaid(self) -> str:
        return self.model.to_mermaid(self.names)

    def _repr_html_(self) -> str:
        return render_html(
            self.model, self.names, caption=self.caption, column=self.column, max_height=None
        )

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def __repr__(self) -> str:
        return self.to_mermaid()

    def save(self, path: str | Path) -> Path:
        """Write ``.svg``, ``.html`` or mermaid text (``.mmd``/``.md``), by the suffix."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".svg":
            target.write_text(self.to_svg())
        elif suffix in (".html", ".htm"):
            target.write_text(f"<!doctype html><meta charset=utf-8>{self._repr_html_()}")
        elif suffix == ".md":
            target.write_text(f"```mermaid\n{self.to_mermaid()}```\n")
        else:
            target.write_text(self.to_mermaid())
        return target


class SequencePanel(Panel):
    """UI, Store, Queue, Network and each peer; arrows appear as things happen.

    ``cap`` bounds the arrows kept (older ones fall off the top, counted); ``column`` is
    the width of a lifeline's column in pixels (narrower fits beside other output); **pause**
    freezes the picture so it can be read while the log goes on; **clear** starts over.
    Hover an arrow for its details, click it to pin them."""

    interval = 30.0  # it redraws when an event arrives; no countdowns to keep fresh

    def __init__(
        self,
        store: Any,
        *,
        cap: int = DEFAULT_CAP,
        max_height: int = 560,
        column: int = COLUMN,
    ) -> None:
        self.model = SequenceModel(cap=cap)
        self.model.extend(store.log)  # what happened before the panel existed
        self.names = peer_names(store)
        self.max_height, self.column = max_height, column
        self.uid = new_uid()
        self.pause = w.ToggleButton(description="pause", icon="pause", value=False)
        self.clear = w.Button(description="clear", icon="trash")
        self.status = w.HTML()
        self._unseen = 0  # arrows added while paused
        self._static: Any = None  # the display handle of the static copy
        self._hook: Any = None  # the IPython post_run_cell callback that refreshes it
        self._follow = store.log.subscribe(self._on_entry)
        super().__init__(store)
        self.pause.observe(lambda _c: self.refresh(), names="value")
        self.clear.on_click(lambda _b: self._clear())
        self.controls = w.HBox([self.pause, self.clear, self.status])
        self.widget = w.VBox([self.controls, self.view])

    def _on_entry(self, entry: LogEntry) -> None:
        added = self.model.add(entry)
        if added and self.paused:
            self._unseen += len(added)

    @property
    def paused(self) -> bool:
        return bool(getattr(self, "pause", None) is not None and self.pause.value)

    def _clear(self) -> None:
        self.model.clear()
        self._unseen = 0
        self.refresh()

    def render(self) -> str:
        return render_html(
            self.model, self.names, uid=self.uid, max_height=self.max_height, column=self.column
        )

    def _live(self, text_html: str) -> str:
        """The widget's HTML: the diagram, and a rule that hides the static copy."""
        return f"<style>.{self.uid}-static{{display:none}}</style>{text_html}"

    def _status(self) -> str:
        parts = [f"{len(self.model.arrows)} arrows"]
        if self.model.dropped:
            parts.append(f"{self.model.dropped} older ones dropped (cap {self.model.cap})")
        if self.paused:
            parts.append(f"<b>paused</b>: {self._unseen} new arrow(s) not drawn yet")
        return " · ".join(parts)

    def refresh(self) -> None:
        if hasattr(self, "status"):
            self.status.value = self._status()
        if self.paused and self._last:
            return
        self._unseen = 0
        self._last = self.render()
        self.view.value = self._live(self._last)

    def _static_bundle(self) -> dict[str, str]:
        copy = render_html(
            self.model, self.names, max_height=self.max_height, column=self.column
        )  # its own uid: the live widget's rules must not touch it
        return {
            "text/html": f'<div class="{self.uid}-static">{copy}</div>',
            "text/plain": self.model.to_mermaid(self.names),
        }

    def _after_cell(self, *_args: Any) -> None:
        try:
            self._static.update(self._static_bundle(), raw=True)
        except Exception:  # e.g. the store was closed: keep the last copy, stop refreshing
            self._unhook()

    def snapshot(self, caption: str = "") -> SequenceDiagram:
        """The diagram as it is now, frozen: for the end of a notebook, or a file."""
        return SequenceDiagram(deepcopy(self.model), self.names, caption, self.column)

    def to_mermaid(self) -> str:
        return self.model.to_mermaid(self.names)

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import display

        self.start()
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = f"SequencePanel({self.store.name}): {len(self.model.arrows)} arrows"
        display(bundle, raw=True)  # type: ignore[no-untyped-call]
        self._unhook()
        self._static = display(self._static_bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]
        shell = get_ipython()
        if shell is not None:
            self._hook = self._after_cell
            shell.events.register("post_run_cell", self._hook)

    def _unhook(self) -> None:
        from IPython import get_ipython

        shell = get_ipython()
        if self._hook is not None and shell is not None:
            with contextlib.suppress(ValueError):
                shell.events.unregister("post_run_cell", self._hook)
        self._hook = None

    def close(self) -> None:
        self._follow()
        self._unhook()
        super().close()
