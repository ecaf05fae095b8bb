"""A post-compromise timeline: two people's messages in the order they crossed, which of
them a thief holding a copied ratchet state could read, and when it stopped.

Why a picture of its own: the sequence diagram shows one side's steps, this shows one
attacker's view of both directions.  Each message is an arrow from its sender's lane to
the other's, red if the thief read it, grey if not; ⟳ marks a message sent under a new
ratchet key (it makes a DH step when it arrives); a dashed line marks the theft, and a
green one the first message the thief could no longer read.  Plain data in, SVG and text
out (no widget): the notebook passes what ``volli_nb.lab.thief.read_along`` found.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

LEFT, STEP, TOP, LANE = 96, 58, 58, 92
READ, CLOSED, KEY, HEALED = "#c0262d", "#9a9a9a", "#6a3d9a", "#1d7f3a"


@dataclass(frozen=True)
class Beat:
    """One message: who sent it, a short label, and what the thief made of it."""

    sender: str
    label: str
    readable: bool
    new_key: bool = False  # sent under a ratchet key the receiver had not seen


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class CompromiseTimeline:
    """``beats`` between ``names`` (two), the theft of ``victim``'s state before beat
    ``copied_at`` (its index); HTML with an SVG in Jupyter, lines of text elsewhere."""

    def __init__(
        self, beats: Sequence[Beat], *, names: tuple[str, str], victim: str, copied_at: int
    ) -> None:
        self.beats, self.names, self.victim, self.copied_at = list(beats), names, victim, copied_at

    @property
    def healed_at(self) -> int | None:
        """The first message after the theft that the thief could not read."""
        after = range(self.copied_at, len(self.beats))
        return next((i for i in after if not self.beats[i].readable), None)

    @property
    def read_after(self) -> list[str]:
        return [b.label for b in self.beats[self.copied_at :] if b.readable]

    def __repr__(self) -> str:
        lines = []
        for i, beat in enumerate(self.beats):
            if i == self.copied_at:
                lines.append(f"── the thief copies {self.victim}'s live ratchet state ──")
            if i == self.healed_at:
                lines.append("── healed: the thief reads no more ──")
            other = self.names[1] if beat.sender == self.names[0] else self.names[0]
            seen = "READ by the thief" if beat.readable else "closed"
            key = "  (new ratchet key)" if beat.new_key else ""
            lines.append(f"{beat.sender:>8} → {other:<8} {beat.label:10} {seen}{key}")
        return "\n".join(lines)

    def _x(self, i: int) -> float:
        return LEFT + i * STEP

    def _beat(self, i: int, beat: Beat, lanes: dict[str, int]) -> str:
        x = self._x(i)
        y0, y1 = (
            lanes[beat.sender],
            lanes[self.names[1] if beat.sender == self.names[0] else self.names[0]],
        )
        color = READ if beat.readable else CLOSED
        end = y1 - 6 if y1 > y0 else y1 + 6
        seen = "the thief read it" if beat.readable else "the thief could not read it"
        seen += ", sent under a new ratchet key" if beat.new_key else ""
        parts = [
            f'<g class="beat {"read" if beat.readable else "closed"}">'
            f"<title>{_e(beat.label)}: {seen}</title>",
            f'<line x1="{x}" y1="{y0}" x2="{x + STEP * 0.6}" y2="{end}" stroke="{color}" '
            f'stroke-width="2" marker-end="url(#tl-{"r" if beat.readable else "c"})"/>',
            f'<text x="{x + STEP * 0.3 + 6}" y="{(y0 + y1) / 2 + 4}" fill="{color}">'
            f"{'✓' if beat.readable else '✗'}</text>",
            f'<text class="lbl" x="{x + STEP * 0.3}" y="{TOP + LANE + 34}">{_e(beat.label)}</text>',
        ]
        if beat.new_key:
            parts.append(
                f'<text x="{x - 4}" y="{y0 + (-8 if y1 > y0 else 16)}" fill="{KEY}">⟳</text>'
            )
        parts.append("</g>")
        return "".join(parts)

    def _mark(self, i: int, color: str, text: str, y: int) -> str:
        x = self._x(i) - STEP * 0.2
        return (
            f'<line x1="{x}" y1="{y - 4}" x2="{x}" y2="{TOP + LANE + 18}" stroke="{color}" '
            f'stroke-dasharray="5 3" stroke-width="1.5"/>'
            f'<text x="{x + 4}" y="{y}" fill="{color}" font-weight="600">{_e(text)}</text>'
        )

    def _repr_html_(self) -> str:
        lanes = {self.names[0]: TOP, self.names[1]: TOP + LANE}
        width = self._x(len(self.beats)) + 150
        height = TOP + LANE + 44
        parts = [
            "<defs>"
            + "".join(
                f'<marker id="tl-{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                f'fill="{c}"/></marker>'
                for k, c in (("r", READ), ("c", CLOSED))
            )
            + "</defs>"
        ]
        for name, y in lanes.items():
            parts.append(
                f'<line x1="{LEFT - 20}" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#bbb"/>'
                f'<text class="lane" x="6" y="{y + 4}">{_e(name)}</text>'
            )
        parts.extend(self._beat(i, b, lanes) for i, b in enumerate(self.beats))
        parts.append(self._mark(self.copied_at, READ, f"thief copies {self.victim}'s state", 14))
        if self.healed_at is not None:
            parts.append(self._mark(self.healed_at, HEALED, "healed", 30))
        read = ", ".join(self.read_after) or "nothing"
        return (
            '<div class="volli-timeline" style="max-width:100%;overflow:auto;'
            'font-family:system-ui,sans-serif;font-size:11px">'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><style>.lane{{font-weight:600;font-size:12px}}'
            f".lbl{{fill:#555;text-anchor:middle;font-size:10px}}</style>{''.join(parts)}</svg>"
            f"<div>after the theft the thief read: {_e(read)} · ⟳ a new ratchet key (a DH "
            "step where it arrives)</div></div>"
        )


__all__ = ["Beat", "CompromiseTimeline"]
