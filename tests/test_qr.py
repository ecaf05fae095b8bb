"""Pairing codes as QR codes (segno, offline): small enough to scan, and the exact code."""

from __future__ import annotations

import re

from test_pairing import code

from volli_nb.ui.qr import pairing_qr


def test_a_pairing_code_makes_a_scannable_qr_code_with_its_text() -> None:
    text, _ = code()
    qr = pairing_qr("  " + text + "\n")
    assert qr.code == text
    assert qr.qr.mode == "byte"  # base64url: exactly these bytes, nothing re-cased
    assert int(qr.version.split("-")[0]) <= 15 and qr.version.endswith("M")  # phone-scannable
    page = qr._repr_html_()
    assert page.startswith('<div class="volli-qr"><svg') and text in page
    assert len(qr.text().splitlines()) > 20  # block characters for a terminal
    assert repr(qr) == text


def test_the_qr_code_holds_the_code_and_nothing_else() -> None:
    """segno's own matrix for the same data and level equals ours (same content)."""
    import segno

    text, _ = code()
    assert pairing_qr(text).qr.matrix == segno.make(text, error="m", boost_error=False).matrix
    other, _ = code()
    assert pairing_qr(other).qr.matrix != pairing_qr(text).qr.matrix
    assert re.fullmatch(r"volli2\.[A-Za-z0-9_-]+\.[a-z2-7]{8}", text)
