"""The cryptography in one import: identities, sessions, envelopes and the primitives.

A facade only: the code lives in identity.py (keys, peer ids, safety numbers),
handshake.py (the channel-bound session handshake), ratchet.py (the Double Ratchet),
channel_keys.py (one channel's ratchet and its owner rules), envelope.py and
envelope_wire.py (seal/open and the wire layout, parsed strictly) and primitives.py
(every libsodium call, shared with the known-answer tests).  Names load on first use
(PEP 562), so importing one submodule does not import them all: that eager import made
``core.message_id`` → ``crypto.identity`` → this package → ``envelope_wire`` →
``core.message_id`` a cycle for whichever module came first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from volli_nb.core.crypto.channel_keys import ChannelKeys, seal_for
    from volli_nb.core.crypto.envelope import (
        OpenedBundle,
        OpenedMessage,
        Sealed,
        bundle,
        open_bundle,
    )
    from volli_nb.core.crypto.envelope_wire import (
        MAX_ENVELOPE_BYTES,
        KeyWrap,
        ParsedBundle,
        ParsedEnvelope,
        parse_bundle,
        parse_envelope,
    )
    from volli_nb.core.crypto.identity import (
        Identity,
        PublicIdentity,
        contact_safety_number,
        format_safety_number,
        peer_id_for,
        safety_number,
        verify,
    )
    from volli_nb.core.crypto.primitives import (
        aead_decrypt,
        aead_encrypt,
        ed25519_sign,
        ed25519_verify,
        x25519,
        x25519_public,
    )

_HOME = {
    **dict.fromkeys(("ChannelKeys", "seal_for"), "channel_keys"),
    **dict.fromkeys(
        ("OpenedBundle", "OpenedMessage", "Sealed", "bundle", "open_bundle"), "envelope"
    ),
    **dict.fromkeys(
        (
            "MAX_ENVELOPE_BYTES",
            "KeyWrap",
            "ParsedBundle",
            "ParsedEnvelope",
            "parse_bundle",
            "parse_envelope",
        ),
        "envelope_wire",
    ),
    **dict.fromkeys(
        (
            "Identity",
            "PublicIdentity",
            "contact_safety_number",
            "format_safety_number",
            "peer_id_for",
            "safety_number",
            "verify",
        ),
        "identity",
    ),
    **dict.fromkeys(
        (
            "aead_decrypt",
            "aead_encrypt",
            "ed25519_sign",
            "ed25519_verify",
            "x25519",
            "x25519_public",
        ),
        "primitives",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "MAX_ENVELOPE_BYTES",
    "ChannelKeys",
    "Identity",
    "KeyWrap",
    "OpenedBundle",
    "OpenedMessage",
    "ParsedBundle",
    "ParsedEnvelope",
    "PublicIdentity",
    "Sealed",
    "aead_decrypt",
    "aead_encrypt",
    "bundle",
    "contact_safety_number",
    "ed25519_sign",
    "ed25519_verify",
    "format_safety_number",
    "open_bundle",
    "parse_bundle",
    "parse_envelope",
    "peer_id_for",
    "safety_number",
    "seal_for",
    "verify",
    "x25519",
    "x25519_public",
]
