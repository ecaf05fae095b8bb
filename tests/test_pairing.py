"""Pairing codes: round trip, and every kind of damaged paste gives BadPairingCode."""

from __future__ import annotations

import pytest

from volli_nb.base.errors import BadPairingCode
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.pairing_code import decode_code, encode_code

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"


def code(kind: str = "offer") -> tuple[str, Identity]:
    ident = Identity.generate()
    return encode_code(kind, SDP, ident.public, "alice", "pair-01"), ident  # type: ignore[arg-type]


def test_round_trip_keeps_everything() -> None:
    text, ident = code()
    parsed = decode_code(text, expect="offer")
    assert (parsed.kind, parsed.sdp, parsed.name, parsed.ref) == ("offer", SDP, "alice", "pair-01")
    assert parsed.identity == ident.public and parsed.peer_id == ident.peer_id
    assert text.startswith("volli1.") and len(text) < 2000


def test_whitespace_and_quotes_from_terminals_are_ignored() -> None:
    text, _ = code()
    wrapped = "\n".join(text[i : i + 60] for i in range(0, len(text), 60))
    assert decode_code(f"'{wrapped}'\n").sdp == SDP


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # last character lost
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: t.replace(".", "", 1),  # separator lost
        lambda t: t[:20] + ("A" if t[20] != "A" else "B") + t[21:],  # one character changed
        lambda t: "volli2" + t[6:],  # other version
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
    import zlib

    from volli_nb.core.encoding import b64encode, canonical_json
    from volli_nb.core.pairing_code import _check

    other = Identity.generate()
    body = {
        "kind": "offer",
        "sdp": SDP,
        "identity": {
            **Identity.generate().public.to_json(),
            "device_key": b64encode(other.public.device_key),
        },
        "name": None,
        "ref": None,
    }
    payload = b64encode(zlib.compress(canonical_json(body)))
    with pytest.raises(BadPairingCode, match="damaged"):
        decode_code(f"volli1.{payload}.{_check(payload)}")
