"""Copy-paste pairing codes: an SDP offer or answer plus the sender's identity.

A code is ``volli1.<payload>.<check>``: the payload is canonical JSON,
zlib-compressed and base64url-encoded; the check is 8 base32 characters of a
BLAKE2b over the payload, so a mangled or truncated paste is caught before
anything is parsed.  Whitespace and line breaks inside a pasted code are
ignored (terminals wrap long lines).  The code itself is not secret and not
trusted: the identity in it is pinned, and once the data channel opens both
sides sign the DTLS fingerprints (channel binding), so a code altered in
transit fails there.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Literal

from volli_nb.base.errors import BadPairingCode, PeerError
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.encoding import (
    b64decode,
    b64encode,
    canonical_json,
    require_fields,
    strict_loads,
)

PREFIX = "volli1"
MAX_CODE_CHARS = 64 * 1024
MAX_PAYLOAD_BYTES = 256 * 1024
Kind = Literal["offer", "answer"]


class _CodeError(PeerError):
    """Internal: converted to BadPairingCode at the API edge."""


@dataclass(frozen=True)
class PairingCode:
    kind: Kind
    sdp: str
    identity: PublicIdentity
    name: str | None = None
    ref: str | None = None  # the offer's pairing token, echoed by its answer

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id


def _check(payload: str) -> str:
    digest = hashlib.blake2b(payload.encode("ascii"), digest_size=5, person=b"volli-pair").digest()
    return base64.b32encode(digest).decode("ascii").lower()


def encode_code(
    kind: Kind,
    sdp: str,
    identity: PublicIdentity,
    name: str | None = None,
    ref: str | None = None,
) -> str:
    body = {"kind": kind, "sdp": sdp, "identity": identity.to_json(), "name": name, "ref": ref}
    payload = b64encode(zlib.compress(canonical_json(body), 9))
    return f"{PREFIX}.{payload}.{_check(payload)}"


def decode_code(code: str, *, expect: Kind | None = None) -> PairingCode:
    """Parse a pasted code; any damage raises :class:`BadPairingCode` saying what to do."""
    if not isinstance(code, str):
        raise BadPairingCode("a pairing code is a string starting with 'volli1.'")
    if len(code) > MAX_CODE_CHARS:
        raise BadPairingCode(f"pairing code is longer than {MAX_CODE_CHARS} characters")
    compact = re.sub(r"\s+", "", code).strip("'\"")
    parts = compact.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadPairingCode(
            "this is not a volli pairing code (expected 'volli1.<payload>.<check>'); "
            "copy the whole code, from 'volli1.' to the end"
        )
    _, payload, check = parts
    if _check(payload) != check.lower():
        raise BadPairingCode(
            "pairing code checksum does not match: part of it was lost or changed "
            "while copying; copy it again in full"
        )
    try:
        raw = zlib.decompressobj().decompress(
            b64decode(payload, what="pairing code", error=_CodeError), MAX_PAYLOAD_BYTES
        )
        body = strict_loads(raw, max_size=MAX_PAYLOAD_BYTES, what="pairing code", error=_CodeError)
        require_fields(
            body,
            {
                "kind": str,
                "sdp": str,
                "identity": dict,
                "name": (str, type(None)),
                "ref": (str, type(None)),
            },
            what="pairing code",
            error=_CodeError,
        )
        identity = PublicIdentity.from_json(body["identity"], error=_CodeError)
    except (zlib.error, PeerError) as exc:
        raise BadPairingCode(f"pairing code is damaged ({exc}); copy it again in full") from None
    kind = body["kind"]
    if kind not in ("offer", "answer"):
        raise BadPairingCode(f"unknown pairing code kind {kind!r}")
    if expect is not None and kind != expect:
        hint = (
            "paste it into complete_pairing() on the side that made the offer"
            if kind == "answer"
            else "paste it into accept_pairing_code() on the other side"
        )
        raise BadPairingCode(f"this is an {kind} code, not an {expect} code; {hint}")
    if "v=0" not in body["sdp"]:
        raise BadPairingCode("pairing code holds no session description")
    return PairingCode(
        kind=kind, sdp=body["sdp"], identity=identity, name=body["name"], ref=body["ref"]
    )


__all__ = ["PairingCode", "decode_code", "encode_code"]
