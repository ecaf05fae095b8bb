"""``beside(a, b, …)``: outputs side by side, e.g. a debug command's result next to the
live sequence diagram (notebook 04)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from volli_nb.ui.widgets.panels import Panel


def _as_widget(item: Any) -> w.Widget:
    if isinstance(item, Panel):
        item.start()
        return item.widget
    if isinstance(item, w.Widget):
        return item
    rich = getattr(item, "_repr_html_", None)
    if callable(rich):
        return w.HTML(rich())
    text = item if isinstance(item, str) else repr(item)
    return w.HTML(f"<pre style='margin:0'>{html.escape(text, quote=False)}</pre>")


def beside(*items: Any) -> w.HBox:
    """Panels (kept live), widgets, or anything with an HTML or text form, in one row.

    The last item takes the room that is left and scrolls sideways if it needs more (a
    sequence diagram is wide); the others keep their own width."""
    boxes = []
    for i, item in enumerate(items):
        last = i == len(items) - 1
        layout = w.Layout(
            margin="0 16px 0 0",
            overflow="auto",
            flex="1 1 auto" if last else "0 0 auto",
            min_width="0" if last else None,
            max_width=None if last else "40%",
        )
        boxes.append(w.Box([_as_widget(item)], layout=layout))
    return w.HBox(boxes, layout=w.Layout(align_items="flex-start", width="100%"))
