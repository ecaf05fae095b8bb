"""Pairing codes: round trip, and every kind of damaged paste gives BadPairingCode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sample_sdp import SDP

from volli_nb.base.errors import BadPairingCode, UsageError
from volli_nb.core import sdp
from volli_nb.core.compact_sdp import essentials, pack
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.pairing_code import decode_code, encode_code

TOKEN = "pair-0123456789ab"


def code(kind: str = "offer") -> tuple[str, Identity]:
    ident = Identity.generate()
    return encode_code(kind, SDP, ident.public, "alice", TOKEN), ident  # type: ignore[arg-type]


def test_round_trip_keeps_what_the_other_side_needs() -> None:
    text, ident = code()
    parsed = decode_code(text, expect="offer")
    assert (parsed.kind, parsed.name, parsed.ref) == ("offer", "alice", TOKEN)
    assert parsed.identity == ident.public and parsed.peer_id == ident.peer_id
    again = essentials(parsed.sdp)  # credentials, fingerprint, role, candidates, SCTP
    assert pack(again) == pack(essentials(SDP))
    assert [(c.address, c.port, c.type, c.priority) for c in sdp.candidates(parsed.sdp)] == [
        ("192.0.2.2", 50347, "host", 2130706431),
        ("fd00::2", 47490, "host", 2130706431),
        ("203.0.113.1", 49152, "relay", 16777215),
    ]
    assert sdp.fingerprint(parsed.sdp) == sdp.fingerprint(SDP)
    assert "a=setup:actpass" in parsed.sdp and "a=ice-pwd:93z5HWvwbnfwiQor5yWnVA" in parsed.sdp


def test_a_code_is_about_300_characters() -> None:
    """Issue 15 item 5: volli1 codes were ~1,130 characters.  A relay-only code (one
    candidate) is under 300, one with IPv4 and IPv6 host candidates and a relay about 320;
    the identity (128 bytes: two keys and the signature linking them) is most of it."""
    text, _ = code()
    assert text.startswith("volli2.")
    assert len(text) <= 325, len(text)
    relay_only = "".join(
        line + "\r\n" for line in SDP.split("\r\n") if line and " typ host" not in line
    )
    short = encode_code("answer", relay_only, Identity.generate().public, "alice", TOKEN)
    assert len(short) <= 300, len(short)
    assert decode_code(short).kind == "answer"


def test_a_non_default_priority_survives() -> None:
    odd = SDP.replace("2130706431 192.0.2.2", "2130706000 192.0.2.2")
    parsed = decode_code(encode_code("offer", odd, Identity.generate().public))
    assert sdp.candidates(parsed.sdp)[0].priority == 2130706000
    assert parsed.name is None and parsed.ref is None


def test_what_cannot_be_shortened_is_refused_by_the_encoder() -> None:
    ident = Identity.generate().public
    for bad, why in [
        (SDP.replace("a=setup:actpass", "a=setup:holdconn"), "setup"),
        (SDP + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n", "one data-channel section"),
        (SDP.replace("a=fingerprint:sha-256", "a=fingerprint:sha-1"), "sha-256"),
        (SDP.replace("192.0.2.2 50347", "host.local 50347"), "not an IP address"),
    ]:
        with pytest.raises(UsageError, match=why):
            encode_code("offer", bad, ident)


def test_whitespace_and_quotes_from_terminals_are_ignored() -> None:
    text, _ = code()
    wrapped = "\n".join(text[i : i + 60] for i in range(0, len(text), 60))
    assert decode_code(f"'{wrapped}'\n") == decode_code(text)


def test_an_old_volli1_code_says_to_make_a_new_one() -> None:
    with pytest.raises(BadPairingCode, match=r"older volli_nb.*make a new code"):
        decode_code("volli1.eJzLSM3JyQcABiwCFQ.abcdefgh")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # last character lost
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: t.replace(".", "", 1),  # separator lost
        lambda t: t[:20] + ("A" if t[20] != "A" else "B") + t[21:],  # one character changed
        lambda t: "volli3" + t[6:],  # other version
        lambda t: t.replace(".", "x", 1),  # prefix damaged
        lambda t: "",
        lambda t: "hello",
    ],
)
def test_mangled_codes_raise_bad_pairing_code(mangle: object) -> None:
    text, _ = code()
    with pytest.raises(BadPairingCode):
        decode_code(mangle(text))  # type: ignore[operator]


def test_wrong_kind_says_where_to_paste_it() -> None:
    text, _ = code("answer")
    with pytest.raises(BadPairingCode, match="complete_pairing"):
        decode_code(text, expect="offer")


def test_forged_identity_inside_a_valid_checksum_is_refused() -> None:
    """A device key swapped for another inside a code with a recomputed checksum: the
    signature linking identity and device key no longer verifies."""
    import base64

    from volli_nb.core.pairing_code import _check

    text, _ = code()
    raw = bytearray(base64.urlsafe_b64decode(text.split(".")[1] + "=="))
    name_at = raw.index(b"alice") - 1  # its length byte; before it: keys (32, 32), signature
    device_at = name_at - 64 - 32
    raw[device_at : device_at + 32] = Identity.generate().public.device_key
    payload = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(BadPairingCode, match="damaged"):
        decode_code(f"volli2.{payload}.{_check(payload)}")


def test_trailing_bytes_inside_a_valid_checksum_are_refused() -> None:
    import base64

    from volli_nb.core.pairing_code import _check

    text, _ = code()
    payload = text.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "==") + b"\x00"
    forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(BadPairingCode, match="trailing"):
        decode_code(f"volli2.{forged}.{_check(forged)}")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 300), st.binary(min_size=1, max_size=3))
def test_any_payload_with_a_valid_checksum_is_a_code_or_bad_pairing_code(
    noise: bytes, at: int, edit: bytes
) -> None:
    """Random payloads, and real ones with bytes replaced, behind a correct checksum:
    decoding gives a PairingCode or BadPairingCode, never another exception."""
    import base64

    from volli_nb.core.pairing_code import _check

    real = base64.urlsafe_b64decode(CODE_TEXT.split(".")[1] + "==")
    edited = real[:at] + edit + real[at + len(edit) :]
    for raw in (noise, edited):
        payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        try:
            parsed = decode_code(f"volli2.{payload}.{_check(payload)}")
        except BadPairingCode:
            continue
        assert parsed.kind in ("offer", "answer") and "a=ice-ufrag:" in parsed.sdp


CODE_TEXT = code()[0]


def test_a_code_made_by_a_hostile_client_cannot_put_escapes_in_a_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our encoder strips them; a code from someone else's is stripped when read (a name
    is printed in terminals: an escape sequence there rewrites the screen)."""
    import volli_nb.core.pairing_code as pairing_code

    monkeypatch.setattr(pairing_code, "claimed_name", lambda name: name)  # a raw encoder
    code = encode_code("offer", SDP, Identity.generate().public, "\x1b[2J\x1b[1;1Hbob\u202e")
    monkeypatch.undo()
    assert decode_code(code).name == "[2J[1;1Hbob"
