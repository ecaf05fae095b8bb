"""Table values for the panels: a :class:`Cell` that reads one way as text and another in
HTML, a :class:`Table` of them, names for peer ids, and the style the panels share.

Why a cell has two forms: the shell prints a table as aligned text (one line a row), the
tests read the text, and a panel at 1,280 px needs some cells on two short lines (a
selected pair, a name over its short id) to fit its columns without clipping or wrapping
a cell over ten lines.  So a cell is a ``str`` (its text) that also carries the lines
HTML draws and a hover title (the full id, what a column means).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Cells keep to one line (nowrap) unless a column is marked to wrap (prose such as an
# error); the table sits in a box that scrolls sideways rather than clipping, and the
# widget's 28 px line height is brought back to text size.
CSS = """<style>
.volli-box{max-width:100%;overflow:auto}
.volli-table{border-collapse:collapse;font-size:12px;line-height:1.35;
  font-family:var(--jp-ui-font-family,system-ui,sans-serif);margin:0}
.volli-table th,.volli-table td{border:1px solid #ccc;padding:3px 6px;text-align:left;
  vertical-align:top;white-space:nowrap}
.volli-table td.wrap{white-space:normal;min-width:14em;max-width:40em}
.volli-table th{background:#f0f0f0;font-weight:600}
.volli-table th[title]{text-decoration:underline dotted #999}
.volli-table .mono{font-family:var(--jp-code-font-family,monospace);font-size:11.5px}
.volli-table .sub,.volli-chat .sub{color:#666}
.volli-title{font-weight:600;margin:4px 0 6px}
.volli-empty{color:#555;font-style:italic}
</style>"""


class Cell(str):
    """Text (what ``str()`` and the shell give) with the lines a panel draws instead.

    ``sub``: the lines after the first are secondary (grey), e.g. a short id under a
    name; ``mono``: drawn in a fixed-width font (ids, addresses); ``hover``: its hover text."""

    lines: tuple[str, ...]
    hover: str
    sub: bool
    mono: bool

    def __new__(
        cls,
        text: str,
        lines: Sequence[str] = (),
        *,
        hover: str = "",
        sub: bool = False,
        mono: bool = False,
    ) -> Cell:
        cell = super().__new__(cls, text)
        cell.lines, cell.hover, cell.sub, cell.mono = tuple(lines) or (text,), hover, sub, mono
        return cell

    def to_html(self) -> str:
        parts = [html.escape(self.lines[0])]
        for line in self.lines[1:]:
            text = html.escape(line)
            parts.append(f'<span class="sub">{text}</span>' if self.sub else text)
        return "<br>".join(parts)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[dict[str, Any]]
    highlight: frozenset[int] = frozenset()  # row indexes shown highlighted
    title: str = ""
    notes: dict[str, str] = field(default_factory=dict)  # column → what it means (hover)
    wrap: frozenset[str] = frozenset()  # columns whose text may wrap (prose)
    empty: str = "none"  # what an empty table says
    max_height: int | None = None  # px; the box scrolls beyond it

    def to_html(self) -> str:
        head = "".join(_th(c, self.notes.get(c, "")) for c in self.columns)
        body = []
        for i, row in enumerate(self.rows):
            cells = "".join(_td(row.get(c, ""), c in self.wrap) for c in self.columns)
            selected = ' class="volli-selected" style="font-weight:bold;background:#fff3c4"'
            body.append(f"<tr{selected if i in self.highlight else ''}>{cells}</tr>")
        empty = (
            f'<tr><td colspan="{len(self.columns)}" class="volli-empty">'
            f"{html.escape(self.empty)}</td></tr>"
        )
        title = f'<div class="volli-title">{html.escape(self.title)}</div>' if self.title else ""
        height = f' style="max-height:{self.max_height}px"' if self.max_height else ""
        return (
            f'{title}<div class="volli-box"{height}><table class="volli-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body) or empty}</tbody></table></div>"
        )


def _th(column: str, note: str) -> str:
    title = f' title="{html.escape(note)}"' if note else ""
    return f"<th{title}>{html.escape(column)}</th>"


def _td(value: Any, wrap: bool) -> str:
    classes = ["wrap"] if wrap else []
    if isinstance(value, Cell):
        classes += ["mono"] if value.mono else []
        title = f' title="{html.escape(value.hover)}"' if value.hover else ""
        kind = f' class="{" ".join(classes)}"' if classes else ""
        return f"<td{kind}{title}>{value.to_html()}</td>"
    kind = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{kind}>{html.escape(str(value))}</td>"


class Names:
    """Contact names for peer ids, read once per table: ``bob`` where a name is known,
    else the short id; a panel draws the name over the short id, the full id on hover."""

    def __init__(self, store: Any) -> None:
        self.me = getattr(store, "peer_id", "")
        contacts = list(store.contacts)
        self.contacts = {c.peer_id for c in contacts}
        self.by_id: dict[str, str] = {c.peer_id: c.name for c in contacts if c.name}

    def name(self, peer_id: str) -> str:
        if peer_id == self.me:
            return "me"
        return self.by_id.get(peer_id) or peer_id[:8]

    def cell(self, peer_id: str | None, *, compact: bool = False) -> Cell:
        """Text: the full id (what you type); drawn: the name over the short id (only the
        name if ``compact``: a long log reads better one line a row)."""
        if not peer_id:
            return Cell("")
        if peer_id.startswith("pair-"):  # an offer not answered yet: no peer id so far
            return Cell(peer_id, ("pairing…",), hover=f"pairing token {peer_id}")
        name = self.by_id.get(peer_id)
        if name is None:
            return Cell(peer_id, (peer_id[:8],), hover=peer_id, mono=True)
        lines = (name,) if compact else (name, peer_id[:8])
        return Cell(peer_id, lines, hover=peer_id, sub=True)

    def label(self, peer_id: str) -> str:
        """``bob (fboimzj2)``, or the short id alone for a stranger."""
        name = self.by_id.get(peer_id)
        return f"{name} ({peer_id[:8]})" if name else peer_id[:8]


def human_size(n: float) -> str:
    """``819 B``, ``1.9 KB``, ``4.20 MB`` (decimal units, as the frame trace writes them)."""
    if n < 1000:
        return f"{n:.0f} B"
    return f"{n / 1000:.1f} KB" if n < 1_000_000 else f"{n / 1_000_000:.2f} MB"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
