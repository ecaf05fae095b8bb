"""A :class:`~volli_nb.ui.widgets.ratchet_model.RatchetPicture` drawn as HTML and SVG: the
same picture for the live panel, exported notebooks and the tests.

A row per chain (→ ours, ← the peer's), a box per message key: grey and struck through
once used (deleted), amber while held as a skipped key (its time left under it), red
and dashed once dropped unused, blue and dashed for the next key, where the chain key
stands.  Rows made by the same DH step share a background.  Hover a box or a row's name
for what it is (SVG ``<title>``, which survives export).
"""

from __future__ import annotations

import html
from itertools import count

from volli_nb.core.crypto.session_view import SEND
from volli_nb.ui.widgets.ratchet_model import ChainRow, KeyBox, RatchetPicture

LABEL = 176  # the chain names' column
BOX, GAP, ROW = 26, 6, 46
HIDDEN = 44  # "+12 used" before the boxes of a long chain
_ids = count(1)

STYLE = """
.{u} {{font-family: system-ui, sans-serif; font-size: 11px; max-width: 100%; overflow: auto}}
.{u} .r-title {{font-weight: 600; margin: 4px 0 2px}}
.{u} .r-stats {{color: #444; margin-bottom: 4px}}
.{u} .r-legend {{color: #555; margin-top: 2px}}
.{u} .r-legend span {{margin-right: 12px; white-space: nowrap}}
.{u} svg text {{font-size: 11px}}
.{u} .name {{font-weight: 600}}
.{u} .current .name {{fill: #1f5fbf}}
.{u} .sub {{fill: #666}}
.{u} .band {{fill: #f4f6fa}}
.{u} .k rect {{stroke-width: 1.2}}
.{u} .k text {{text-anchor: middle}}
.{u} .k-used rect, .{u} .k-used_held rect {{fill: #ececec; stroke: #aaa}}
.{u} .k-used text, .{u} .k-used_held text {{fill: #888}}
.{u} .k-used_held rect {{stroke: #d29a00}}
.{u} .k-used line, .{u} .k-used_held line {{stroke: #999}}
.{u} .k-held rect {{fill: #ffe7a3; stroke: #d29a00}}
.{u} .k-expired rect, .{u} .k-evicted rect {{fill: #fff; stroke: #c0262d;
  stroke-dasharray: 3 2}}
.{u} .k-expired text, .{u} .k-evicted text {{fill: #c0262d}}
.{u} .k-next rect {{fill: #fff; stroke: #1f5fbf; stroke-dasharray: 4 2}}
.{u} .k-next text {{fill: #1f5fbf}}
.{u} .left {{fill: #8a6400; font-size: 9.5px; text-anchor: middle}}
"""

LEGEND = (
    ("k-used", "used once, then deleted"),
    ("k-held", "held as a skipped key (its time left under it)"),
    ("k-used_held", "held, then used late"),
    ("k-expired", "dropped unused"),
    ("k-next", "next: where the chain key stands"),
)


def new_uid() -> str:
    """A class name of its own per picture, so each one's style touches only itself."""
    return f"volli-ratchet-{next(_ids)}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _left(ms: int | None) -> str:
    """A held key's time left, short enough to sit under its box."""
    if ms is None:
        return ""
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    return (
        f"{seconds // 60}m" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    )


def _box(box: KeyBox, x: float, y: float) -> str:
    parts = [
        f'<g class="k k-{box.state}"><title>{_e(box.note)}</title>',
        f'<rect x="{x}" y="{y}" width="{BOX}" height="{BOX - 4}" rx="3"/>',
        f'<text x="{x + BOX / 2}" y="{y + 15}">{box.n}</text>',
    ]
    if box.state in ("used", "used_held"):
        parts.append(f'<line x1="{x + 3}" y1="{y + BOX - 7}" x2="{x + BOX - 3}" y2="{y + 3}"/>')
    if box.state == "held" and box.expires_in_ms is not None:
        left = _left(box.expires_in_ms)
        parts.append(f'<text class="left" x="{x + BOX / 2}" y="{y + BOX + 8}">{left}</text>')
    parts.append("</g>")
    return "".join(parts)


def _row(row: ChainRow, y: float, peer: str) -> str:
    arrow, whose = (
        ("→ sending", f"to {peer}") if row.direction == SEND else ("← receiving", f"from {peer}")
    )
    current = " (current)" if row.current else " (closed)"
    hover = (
        f"{'our' if row.direction == SEND else peer + chr(39) + 's'} chain under ratchet key "
        f"{row.chain}…, started by {row.started_by}{current}"
    )
    parts = [
        f'<g class="chain{" current" if row.current else ""}" data-chain="{_e(row.chain)}">',
        f"<title>{_e(hover)}</title>",
        f'<text class="name" x="6" y="{y + 17}">{arrow} {_e(row.chain)}</text>',
        f'<text class="sub" x="6" y="{y + 31}">{_e(whose)} · {_e(row.started_by)}</text>',
        "</g>",
    ]
    x = LABEL
    if row.hidden:
        parts.append(f'<text class="sub" x="{x}" y="{y + 21}">+{row.hidden} used</text>')
        x += HIDDEN
    for box in row.boxes:
        parts.append(_box(box, x, y + 6))
        x += BOX + GAP
    if not row.boxes:
        parts.append(f'<text class="sub" x="{x}" y="{y + 21}">no message on this chain</text>')
    return "".join(parts)


def render_html(picture: RatchetPicture, *, peer: str = "the peer", uid: str = "") -> str:
    """The picture: its title and counters as text, the chains as SVG, a legend."""
    uid = uid or new_uid()
    longest = max((len(r.boxes) + (1 if r.hidden else 0) for r in picture.rows), default=1)
    width = LABEL + longest * (BOX + GAP) + HIDDEN
    height = max(1, len(picture.rows)) * ROW + 6
    body = []
    steps = sorted({r.step for r in picture.rows})
    for i, row in enumerate(picture.rows):
        y = 3 + i * ROW
        if steps.index(row.step) % 2 == 1:
            body.append(f'<rect class="band" x="0" y="{y}" width="{width}" height="{ROW}"/>')
        body.append(_row(row, y, peer))
    earlier = (
        f'<div class="r-stats">{picture.earlier} earlier chain(s) not drawn</div>'
        if picture.earlier
        else ""
    )
    data = " ".join(f'data-{k}="{v}"' for k, v in picture.counts.items())
    legend = "".join(
        f'<span><svg width="14" height="12"><g class="k {cls}"><rect x="1" y="1" width="12" '
        f'height="10" rx="2"/></g></svg> {_e(text)}</span>'
        for cls, text in LEGEND
    )
    return (
        f"<style>{STYLE.format(u=uid)}</style>"
        f'<div class="volli-ratchet {uid}" {data}>'
        f'<div class="r-title">{_e(picture.title)}</div>'
        f'<div class="r-stats">{_e(" · ".join(picture.stats))}</div>{earlier}'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(body)}</svg>'
        f'<div class="r-legend">{legend}</div></div>'
    )


__all__ = ["new_uid", "render_html"]
