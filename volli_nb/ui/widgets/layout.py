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
    """Panels (kept live), widgets, or anything with an HTML or text form, in one row."""
    boxes = []
    for item in items:
        box = _as_widget(item)
        boxes.append(w.Box([box], layout=w.Layout(margin="0 16px 0 0", overflow="auto")))
    return w.HBox(boxes, layout=w.Layout(align_items="flex-start"))
