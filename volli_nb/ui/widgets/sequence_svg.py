"""A :class:`~volli_nb.ui.widgets.sequence_model.SequenceModel` drawn as SVG: one picture
for the live panel, exported notebooks and GitHub alike.

Hovering an arrow shows its details as a tooltip (SVG ``<title>``, which works wherever
the SVG is shown); clicking one pins a details box (CSS ``:focus`` and ``:has``, no
JavaScript), so an exported HTML file keeps the interaction.  The HTML form puts the
lifeline names in a header above a box that scrolls and opens at its bottom, where the
newest arrows are (``flex-direction: column-reverse``).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from itertools import count

from volli_nb.ui.widgets.sequence_model import Arrow, SequenceModel, label_for
from volli_nb.ui.widgets.sequence_steps import LIFELINES

GUTTER = 70  # the time column
COLUMN = 140  # five lifelines fit a JupyterLab output at 1,280 px, file browser open
ROW = 28
HEAD = 36
PAD = 12  # right of the last lifeline's column
CHAR = 6.6  # px per character of 11 px sans-serif text (DejaVu Sans, the widest common)
TIP_LINE = 15
TIP_CHAR = 6.8  # ids and digits run wider than the average label character
TONES = {
    "": "#333333",
    "wire": "#1f5fbf",
    "queue": "#b35c00",
    "ok": "#1d7f3a",
    "bad": "#c0262d",
    "key": "#6a3d9a",  # the session's keys: DH ratchet steps
}
_ids = count(1)

STYLE = """
.{u} {{font-family: system-ui, sans-serif; font-size: 11px}}
.{u} .life {{stroke: #999; stroke-dasharray: 4 4}}
.{u} .head rect {{fill: #eef3fb; stroke: #4a6fa5}}
.{u} .head text {{font-weight: 600; text-anchor: middle}}
.{u} .time {{fill: #777; font-family: ui-monospace, monospace; font-size: 10px}}
.{u} .arrow {{cursor: pointer; outline: none}}
.{u} .arrow .hit {{fill: transparent}}
.{u} .arrow:hover .hit, .{u} .arrow:focus .hit {{fill: #fff3c4}}
.{u} .arrow > text:not(.time) {{paint-order: stroke; stroke: #fff; stroke-width: 3px;
  stroke-linejoin: round}}
.{u} .arrow .reply line, .{u} .arrow path.reply {{stroke-dasharray: 5 3}}
.{u} .note rect {{fill: #fff8d6; stroke: #c9b458}}
.{u} .tip {{display: none}}
.{u} .tip rect {{fill: #fffef5; stroke: #555; filter: drop-shadow(1px 2px 2px #0003)}}
.{u} .tip .k {{fill: #555}}
.{u} .dropped {{fill: #777; font-style: italic}}
.{u} .volli-seq-details {{margin-top: 4px; min-height: 1.4em; max-width: 100%}}
.{u} .volli-seq-details .hint {{color: #777; font-style: italic}}
.{u} div.tip {{border: 1px solid #555; border-radius: 4px; background: #fffef5;
  padding: 4px 8px; line-height: 1.45; overflow-wrap: anywhere}}
.{u} div.tip .h {{font-weight: 600}}
.{u} div.tip .k {{color: #555}}
"""


def _fit(text: str, width: float) -> str:
    limit = max(4, int(width / CHAR))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _span(center: float, text: str, low: float, high: float) -> tuple[float, str]:
    """Where a label centred near ``center`` goes so that it stays within [low, high]: each
    arrow has a row of its own, so a label may run past its arrow's ends; it is cut only
    if it is wider than the whole drawing."""
    text = _fit(text, high - low)
    half = len(text) * CHAR / 2
    return min(max(center, low + half), high - half), text


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Drawing:
    """The SVG text of one model, for one set of names."""

    def __init__(
        self, model: SequenceModel, names: Callable[[str], str], uid: str, column: int = COLUMN
    ) -> None:
        self.model, self.names, self.uid, self.col = model, names, uid, column
        self.lifelines = model.lifelines()
        self.column = {name: i for i, name in enumerate(self.lifelines)}
        self.width = GUTTER + self.col * len(self.lifelines) + PAD
        self.top = HEAD + 10 + (ROW if model.dropped else 0)
        self.height = self.top + ROW * len(model.arrows) + 16

    def _x(self, index: int) -> float:
        return GUTTER + self.col * (index + 0.5)

    def title(self, lifeline: str) -> str:
        return lifeline if lifeline in LIFELINES else self.names(lifeline)

    def markers(self) -> str:
        return "".join(
            f'<marker id="{self.uid}-{tone or "plain"}" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
            for tone, color in TONES.items()
        )

    def header(self, y: float = 0) -> str:
        boxes = []
        for i, name in enumerate(self.lifelines):
            label = _fit(self.title(name), self.col - 16)
            boxes.append(
                f'<g class="head"><rect x="{self._x(i) - self.col / 2 + 8}" y="{y + 4}" '
                f'width="{self.col - 16}" height="26" rx="4"/>'
                f'<text x="{self._x(i)}" y="{y + 21}">{_e(label)}</text>'
                f"<title>{_e(name)}</title></g>"
            )
        return "".join(boxes)

    def lifeline_lines(self) -> str:
        xs = [self._x(i) for i in range(len(self.lifelines))]
        return "".join(
            f'<line class="life" x1="{x}" y1="{HEAD}" x2="{x}" y2="{self.height}"/>' for x in xs
        )

    def arrow(self, row: int, arrow: Arrow) -> str:
        y = self.top + ROW * row
        a, b = self.column[arrow.source], self.column[arrow.target]
        label = label_for(arrow, self.names)
        if arrow.style == "note":
            body = self._note(y, min(a, b), max(a, b), label, arrow)
        elif a == b:
            body = self._self_call(y, a, label, arrow)
        else:
            body = self._line(y, a, b, label, arrow)
        tooltip = "\n".join([label, *(f"{k}: {v}" for k, v in arrow.details)])
        return (
            f'<g class="arrow a{arrow.number}" tabindex="0" data-n="{arrow.number}" '
            f'data-kind="{_e(arrow.kind)}"><title>{_e(tooltip)}</title>'
            f'<rect class="hit" x="0" y="{y}" width="{self.width}" height="{ROW}"/>'
            f'<text class="time" x="4" y="{y + ROW / 2 + 4}">{_e(_since(arrow.shown_since))}</text>'
            f"{body}</g>"
        )

    def _stroke(self, arrow: Arrow) -> str:
        color = TONES.get(arrow.tone, TONES[""])
        marker = f"{self.uid}-{arrow.tone or 'plain'}"
        return f'stroke="{color}" stroke-width="1.5" marker-end="url(#{marker})"'

    def _bounds(self) -> tuple[float, float]:
        return GUTTER + 2, self.width - 2

    def _note(self, y: float, left: int, right: int, label: str, arrow: Arrow) -> str:
        reach = 0.42 if right > left else 0.7  # a note over one lifeline gets more room
        x0, x1 = self._x(left) - self.col * reach, self._x(right) + self.col * reach
        low, high = self._bounds()
        center, text = _span((x0 + x1) / 2, label, low + 8, high - 8)
        half = max((x1 - x0) / 2, len(text) * CHAR / 2 + 8)  # the box grows to its text
        x0, x1 = max(low, center - half), min(high, center + half)
        return (
            f'<g class="note"><rect x="{x0:.1f}" y="{y + 4}" width="{x1 - x0:.1f}" '
            f'height="{ROW - 8}" rx="2"/></g>'
            f'<text x="{center:.1f}" y="{y + ROW / 2 + 4}" text-anchor="middle" '
            f'fill="{TONES.get(arrow.tone, "")}">{_e(text)}</text>'
        )

    def _self_call(self, y: float, column: int, label: str, arrow: Arrow) -> str:
        x, dash = self._x(column), "reply" if arrow.style == "reply" else "call"
        low, high = self._bounds()
        text = _fit(label, high - low)
        start = x + 32
        if start + len(text) * CHAR > high:  # no room on the right: the label goes left
            start = max(low, x - 6 - len(text) * CHAR)
        return (
            f'<path class="{dash}" d="M{x},{y + 8} h26 v{ROW - 12} h-24" fill="none" '
            f"{self._stroke(arrow)}/>"
            f'<text x="{start:.1f}" y="{y + ROW / 2 + 4}" fill="{TONES.get(arrow.tone, "")}">'
            f"{_e(text)}</text>"
        )

    def _line(self, y: float, a: int, b: int, label: str, arrow: Arrow) -> str:
        x0, x1, mid = self._x(a), self._x(b), y + ROW * 0.62
        end = x1 - (2 if x1 > x0 else -2)
        dash = "reply" if arrow.style == "reply" else "call"
        center, text = _span((x0 + x1) / 2, label, *self._bounds())
        return (
            f'<g class="{dash}"><line x1="{x0}" y1="{mid}" x2="{end}" y2="{mid}" '
            f"{self._stroke(arrow)}/></g>"
            f'<text x="{center:.1f}" y="{mid - 5}" text-anchor="middle" '
            f'fill="{TONES.get(arrow.tone, "")}">{_e(text)}</text>'
        )

    def tip_lines(self, arrow: Arrow) -> list[tuple[str, str]]:
        lines = [("", label_for(arrow, self.names))]
        for key, value in arrow.details:
            name = self.names(value) if key == "peer" else value
            lines.append((key, f"{name} ({value})" if name != value else value))
        return lines

    def tips_html(self) -> str:
        """The pinned details as HTML under the scroll box, where no scrolling hides them."""
        boxes = []
        for arrow in self.model.arrows:
            head, *rest = self.tip_lines(arrow)
            rows = "".join(f'<div><span class="k">{_e(k)}:</span> {_e(v)}</div>' for k, v in rest)
            boxes.append(
                f'<div class="tip t{arrow.number}"><div class="h">{_e(head[1])}</div>{rows}</div>'
            )
        hint = '<div class="hint">click an arrow to pin its details here (hover: a tooltip)</div>'
        return f'<div class="volli-seq-details">{hint}{"".join(boxes)}</div>'

    def tip(self, row: int, arrow: Arrow) -> str:
        lines = self.tip_lines(arrow)
        longest = max(len(f"{k}: {v}") for k, v in lines)
        width = min(self.width - GUTTER - 8, 24 + TIP_CHAR * longest)
        height = TIP_LINE * len(lines) + 10
        below = self.top + ROW * (row + 1)
        y = below if below + height <= self.height else max(HEAD, self.top + ROW * row - height)
        x = GUTTER
        text = "".join(
            f'<text x="{x + 8}" y="{y + 16 + TIP_LINE * i}">'
            + (f'<tspan class="k">{_e(k)}: </tspan>' if k else '<tspan font-weight="600">')
            + (_e(v) if k else f"{_e(v)}</tspan>")
            + "</text>"
            for i, (k, v) in enumerate(lines)
        )
        return (
            f'<g class="tip t{arrow.number}"><rect x="{x}" y="{y}" width="{width}" '
            f'height="{height}" rx="4"/>{text}</g>'
        )

    def css(self) -> str:
        u = self.uid
        pins = "".join(
            f".{u}:has(.a{a.number}:focus) .t{a.number}{{display:inline}}"
            f"div.{u}:has(.a{a.number}:focus) div.t{a.number}{{display:block}}"
            for a in self.model.arrows
        )
        hide_hint = f"div.{u}:has(.arrow:focus) .hint{{display:none}}"
        return STYLE.format(u=u) + pins + hide_hint

    def body(self, *, tips: bool = True) -> str:
        rows = list(self.model.arrows)
        dropped = ""
        if self.model.dropped:
            dropped = (
                f'<text class="dropped" x="{GUTTER}" y="{HEAD + 10 + ROW / 2}">'
                f"… {self.model.dropped} earlier arrow(s) not shown (the cap is "
                f"{self.model.cap}; arrow numbers count from the start)</text>"
            )
        arrows = "".join(self.arrow(i, a) for i, a in enumerate(rows))
        pinned = "".join(self.tip(i, a) for i, a in enumerate(rows)) if tips else ""
        return f"<defs>{self.markers()}</defs>{self.lifeline_lines()}{dropped}{arrows}{pinned}"

    def svg(self, *, header: bool) -> str:
        """With ``header``, the lifeline names on top; without, only the arrows (the HTML
        form draws the names in a header of its own, which stays put while this scrolls)."""
        top = 0 if header else HEAD
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="volli-seq-svg {self.uid}" '
            f'width="{self.width}" height="{self.height - top}" '
            f'viewBox="0 {top} {self.width} {self.height - top}">'
            f"<style>{self.css()}</style>{self.header() if header else ''}"
            f"{self.body(tips=header)}</svg>"
        )


def _since(seconds: float) -> str:
    return f"+{seconds:.3f} s" if seconds < 100 else f"+{seconds:.1f} s"


def _box(max_height: int | None) -> str:
    if max_height is None:
        return ""
    return (
        f"max-height:{max_height}px;overflow:auto;display:flex;flex-direction:column-reverse;"
        "min-width:max-content"
    )


def new_uid() -> str:
    """A class name unique in this process: several diagrams may share one page."""
    return f"volli-seq-{next(_ids)}"


def render_svg(
    model: SequenceModel,
    names: Callable[[str], str] = str,
    uid: str = "",
    column: int = COLUMN,
) -> str:
    """The whole diagram, lifeline names on top, as one standalone SVG document."""
    return _Drawing(model, names, uid or new_uid(), column).svg(header=True)


def render_html(
    model: SequenceModel,
    names: Callable[[str], str] = str,
    *,
    uid: str = "",
    caption: str = "",
    max_height: int | None = 560,
    column: int = COLUMN,
) -> str:
    """The diagram for HTML pages: a fixed header, then the arrows in a scroll box that
    opens at the newest arrow (``max_height=None``: no box, the whole story at once)."""
    drawing = _Drawing(model, names, uid or new_uid(), column)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{drawing.uid}" width="{drawing.width}" '
        f'height="{HEAD}" viewBox="0 0 {drawing.width} {HEAD}">{drawing.header()}</svg>'
    )
    empty = ""
    if not model.arrows:
        empty = "<p><i>nothing yet: pair, send a message, and the arrows appear here</i></p>"
    note = f'<div class="volli-seq-caption">{_e(caption)}</div>' if caption else ""
    details = drawing.tips_html() if model.arrows else ""
    return (
        f'<div class="volli-seq {drawing.uid}" data-arrows="{len(model.arrows)}" '
        f'data-dropped="{model.dropped}">{note}<div style="overflow-x:auto">{head}'
        f'<div style="{_box(max_height)}">'
        f"<div>{drawing.svg(header=False)}</div></div></div>{empty}{details}</div>"
    )
