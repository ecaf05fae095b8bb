"""Issue 12, item 1 (pure part): SDP fingerprint lines are read ASCII-only, exact names."""

from __future__ import annotations

import hashlib

import pytest

from volli_nb.core.sdp import fingerprint, fingerprints, format_fingerprint

REAL = ":".join(f"{b:02X}" for b in hashlib.sha256(b"real certificate").digest())
FAKE = ":".join(f"{b:02X}" for b in hashlib.sha256(b"attacker certificate").digest())

# An offer as Chromium writes it (data channel only), trimmed to the lines that matter.
CHROMIUM_OFFER = (
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=candidate:1467250027 1 udp 2122260223 192.168.1.5 46243 typ host generation 0\r\n"
    "a=ice-ufrag:Oy4j\r\n"
    "a=ice-pwd:pD7fSbpGzqsaHJ8oYUoUqUaZ\r\n"
    "a=ice-options:trickle\r\n"
    f"a=fingerprint:sha-256 {REAL}\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=sctp-port:5000\r\n"
    "a=max-message-size:262144\r\n"
)


def test_a_browser_offer_yields_its_sha256_fingerprint() -> None:
    assert fingerprint(CHROMIUM_OFFER) == REAL
    assert fingerprints(CHROMIUM_OFFER) == [("sha-256", REAL)]


@pytest.mark.parametrize("name", ["\u017fha-256", "sha\u2011256", "SHA-256\u200b", "ｓha-256"])
def test_a_hash_name_that_only_case_folds_to_sha256_is_not_sha256(name: str) -> None:
    """Attack: ``a=fingerprint:ſha-256 <victim>`` before the attacker's real line.

    aiortc skips the look-alike and verifies the certificate against the second line; a
    Unicode-aware, case-insensitive reader took the first, and bound to the victim's."""
    sdp = f"v=0\r\na=fingerprint:{name} {REAL}\r\na=fingerprint:sha-256 {FAKE}\r\n"
    assert fingerprint(sdp) == FAKE  # the line aiortc verifies, never the look-alike
    assert all(value != REAL for _, value in fingerprints(sdp))


def test_two_different_sha256_lines_are_ambiguous() -> None:
    sdp = f"v=0\r\na=fingerprint:sha-256 {REAL}\r\na=fingerprint:sha-256 {FAKE}\r\n"
    assert fingerprint(sdp) is None


def test_ascii_case_and_other_algorithms() -> None:
    sdp = f"v=0\r\na=fingerprint:SHA-256 {REAL.lower()}\r\na=fingerprint:sha-1 AB:CD\r\n"
    assert fingerprint(sdp) == REAL  # ABNF literals are ASCII case-insensitive
    assert fingerprint(sdp, "sha-1") == "AB:CD"
    assert fingerprint("v=0\r\na=fingerprint:sha-256 not:hex\r\n") is None


def test_format_fingerprint_writes_digests_as_sdp_does() -> None:
    digest = hashlib.sha256(b"real certificate").digest()
    assert format_fingerprint(digest) == REAL
