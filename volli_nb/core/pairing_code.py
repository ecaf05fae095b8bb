"""Copy-paste pairing codes: what the other side needs to rebuild our SDP, plus who we are.

A code is ``volli2.<payload>.<check>``, about 300 characters: the payload is a strict
binary layout, base64url-encoded — the kind (offer or answer), the essentials of the SDP
(:mod:`volli_nb.core.compact_sdp`: ICE credentials, DTLS fingerprint and role,
candidates), the sender's public identity (identity key, device key, the signature
linking them and its device epoch: 129 bytes, most of the code), its name and the
offer's pairing token.  The check is 8 base32 characters of a BLAKE2b over the payload,
so a mangled or truncated paste is caught before anything is parsed.  Whitespace, line
breaks and quotes around a pasted code are ignored (terminals wrap long lines).  The
code is not secret and not trusted: the identity in it is pinned, and once the data
channel opens both sides sign the DTLS certificates the handshake used (channel
binding), so a code altered in transit fails there.  ``volli1.`` codes (the whole SDP,
~1,130 characters) are retired.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from volli_nb.base.errors import BadPairingCode, PeerError, RefusedDescription, UsageError
from volli_nb.core import compact_sdp
from volli_nb.core.claimed_name import MAX_NAME_BYTES, claimed_name
from volli_nb.core.crypto.identity import MAX_DEVICE_EPOCH, PublicIdentity
from volli_nb.core.crypto.wire import Reader, uvarint

PREFIX = "volli2"
RETIRED = ("volli1",)
MAX_CODE_CHARS = 4096
Kind = Literal["offer", "answer"]
KINDS: tuple[Kind, Kind] = ("offer", "answer")
_TOKEN = re.compile(r"^pair-([0-9a-f]{12})$")  # ContactBook's offer tokens: 6 raw bytes
_REF_NONE, _REF_TOKEN, _REF_TEXT = 0, 1, 2
_ANSWER = 0x40  # in the first byte, beside compact_sdp's role bits


class _CodeError(PeerError):
    """Internal: converted to BadPairingCode at the API edge."""


@dataclass(frozen=True)
class PairingCode:
    kind: Kind
    sdp: str  # rebuilt from the code's essentials: what aiortc is handed
    identity: PublicIdentity
    name: str | None = None
    ref: str | None = None  # the offer's pairing token, echoed by its answer

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id


def _check(payload: str) -> str:
    digest = hashlib.blake2b(payload.encode("ascii"), digest_size=5, person=b"volli-pair").digest()
    return base64.b32encode(digest).decode("ascii").lower()


def _ref_bytes(ref: str | None) -> bytes:
    if ref is None:
        return bytes([_REF_NONE])
    token = _TOKEN.match(ref)
    if token is not None:
        return bytes([_REF_TOKEN]) + bytes.fromhex(token.group(1))
    raw = ref.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:
        raise UsageError(f"a pairing reference is at most {MAX_NAME_BYTES} bytes")
    return bytes([_REF_TEXT]) + uvarint(len(raw)) + raw


def encode_code(
    kind: Kind,
    sdp: str,
    identity: PublicIdentity,
    name: str | None = None,
    ref: str | None = None,
) -> str:
    """The code for our ``sdp`` (an aiortc data-channel offer or answer)."""
    if kind not in KINDS:
        raise UsageError(f"a pairing code is an offer or an answer, not {kind!r}")
    label = (claimed_name(name) or "").encode()
    essentials = compact_sdp.pack(compact_sdp.essentials(sdp))
    body = (
        bytes([essentials[0] | (_ANSWER if kind == "answer" else 0)])
        + essentials[1:]
        + identity.identity_key
        + identity.device_key
        + identity.device_signature
        + uvarint(identity.device_epoch)
        + uvarint(len(label))
        + label
        + _ref_bytes(ref)
    )
    payload = base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")
    return f"{PREFIX}.{payload}.{_check(payload)}"


def _split(code: object) -> tuple[str, str]:
    if not isinstance(code, str):
        raise BadPairingCode(f"a pairing code is a string starting with '{PREFIX}.'")
    if len(code) > MAX_CODE_CHARS:
        raise BadPairingCode(f"pairing code is longer than {MAX_CODE_CHARS} characters")
    compact = re.sub(r"\s+", "", code).strip("'\"")
    parts = compact.split(".")
    if parts[0] in RETIRED:
        raise BadPairingCode(
            f"this is a {parts[0]} code from an older volli_nb; codes are {PREFIX} now: "
            "ask the other side to update and make a new code"
        )
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadPairingCode(
            f"this is not a volli pairing code (expected '{PREFIX}.<payload>.<check>'); "
            f"copy the whole code, from '{PREFIX}.' to the end"
        )
    _, payload, check = parts
    if _check(payload) != check.lower():
        raise BadPairingCode(
            "pairing code checksum does not match: part of it was lost or changed "
            "while copying; copy it again in full"
        )
    return payload, check


def _read(payload: str) -> PairingCode:
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except ValueError:
        raise _CodeError("not base64url") from None
    if not raw:
        raise _CodeError("empty")
    kind = 1 if raw[0] & _ANSWER else 0  # the kind shares the first byte with the DTLS role
    reader = Reader(bytes([raw[0] & ~_ANSWER]) + raw[1:], _CodeError, "pairing code")
    essentials = compact_sdp.unpack(reader)
    identity = PublicIdentity(
        reader.take(32, "identity key"),
        reader.take(32, "device key"),
        reader.take(64, "signature"),
        reader.uvarint("device epoch", 0, MAX_DEVICE_EPOCH),
    )
    try:
        identity.verify()
    except PeerError as exc:
        raise _CodeError(str(exc)) from None
    name = claimed_name(reader.sized("name", 0, MAX_NAME_BYTES).decode("utf-8", "replace"))
    ref_kind = reader.byte("reference")
    ref: str | None = None
    if ref_kind == _REF_TOKEN:
        ref = "pair-" + reader.take(6, "token").hex()
    elif ref_kind == _REF_TEXT:
        ref = reader.sized("reference", 0, MAX_NAME_BYTES).decode("utf-8", "replace")
    elif ref_kind != _REF_NONE:
        raise reader.fail(f"unknown reference kind {ref_kind}")
    reader.end()
    session = int.from_bytes(hashlib.blake2b(raw, digest_size=4).digest(), "big")
    return PairingCode(KINDS[kind], compact_sdp.rebuild(essentials, session), identity, name, ref)


def decode_code(code: str, *, expect: Kind | None = None) -> PairingCode:
    """Parse a pasted code; any damage raises :class:`BadPairingCode` saying what to do."""
    payload, _ = _split(code)
    try:
        parsed = _read(payload)
    except RefusedDescription as exc:  # not damage: made so, or from a hostile peer
        raise BadPairingCode(f"pairing code refused: {exc}; ask for a new code") from None
    except PeerError as exc:
        raise BadPairingCode(f"pairing code is damaged ({exc}); copy it again in full") from None
    if expect is not None and parsed.kind != expect:
        hint = (
            "paste it into complete_pairing() on the side that made the offer"
            if parsed.kind == "answer"
            else "paste it into accept_pairing_code() on the other side"
        )
        raise BadPairingCode(f"this is an {parsed.kind} code, not an {expect} code; {hint}")
    return parsed


__all__ = ["PairingCode", "decode_code", "encode_code"]
