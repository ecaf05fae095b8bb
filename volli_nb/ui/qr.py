"""A pairing code as a QR code, for notebooks (and a terminal), made offline with segno.

Two people in two Binder sessions usually sit at two screens: scanning the code with a
phone and pasting it into the other notebook is easier than retyping 300 characters.
segno is pure Python with no dependencies, so it works on Binder without a network.
"""

from __future__ import annotations

import html
import io

import segno

ERROR_LEVEL = "m"  # 15 % of the symbol can be damaged; a ~300-character code is version 13


class PairingQr:
    """Displays as an inline SVG QR code with the code's text under it."""

    def __init__(self, code: str, *, scale: int = 3) -> None:
        self.code = code.strip()
        self.scale = scale
        self.qr = segno.make(self.code, error=ERROR_LEVEL, boost_error=False)

    @property
    def version(self) -> str:
        return str(self.qr.designator)  # e.g. "13-M"

    def svg(self) -> str:
        return str(self.qr.svg_inline(scale=self.scale, border=2))

    def text(self) -> str:
        """The QR code drawn with block characters, for a terminal."""
        out = io.StringIO()
        self.qr.terminal(out=out, compact=True, border=2)
        return out.getvalue()

    def _repr_html_(self) -> str:
        caption = html.escape(self.code)
        return (
            f'<div class="volli-qr">{self.svg()}'
            f'<pre style="white-space:pre-wrap;word-break:break-all;max-width:60em">'
            f"{caption}</pre></div>"
        )

    def __repr__(self) -> str:
        return self.code


def pairing_qr(code: str, *, scale: int = 3) -> PairingQr:
    """``pairing_qr(await store.create_pairing_code())``: the code as a QR code and text."""
    return PairingQr(code, scale=scale)
