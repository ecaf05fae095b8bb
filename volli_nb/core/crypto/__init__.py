"""The cryptography in one import: identities, sessions, envelopes and the primitives.

A facade only: the code lives in identity.py (keys, peer ids, safety numbers),
handshake.py (the channel-bound session handshake), ratchet.py (the Double Ratchet),
channel_keys.py (one channel's ratchet and its owner rules), envelope.py and
envelope_wire.py (seal/open and the wire layout, parsed strictly) and primitives.py
(every libsodium call, shared with the known-answer tests).
"""

from __future__ import annotations

from volli_nb.core.crypto.channel_keys import ChannelKeys, seal_for
from volli_nb.core.crypto.envelope import OpenedBundle, OpenedMessage, Sealed, bundle, open_bundle
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
