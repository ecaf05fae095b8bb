"""The cryptography in one import: identities, envelopes and the primitive wrappers.

A facade only: the code lives in identity.py (keys, peer ids, safety numbers),
envelope.py (seal/open), envelope_format.py (the wire shape, parsed strictly) and
primitives.py (every libsodium call, shared by the envelope code and the known-answer
tests).
"""

from __future__ import annotations

from volli_nb.core.crypto.envelope import OpenedMessage, open_envelope, seal
from volli_nb.core.crypto.envelope_format import (
    MAX_ENVELOPE_BYTES,
    KeyWrap,
    ParsedEnvelope,
    bucket_size,
    envelope_message_id,
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
    "Identity",
    "KeyWrap",
    "OpenedMessage",
    "ParsedEnvelope",
    "PublicIdentity",
    "aead_decrypt",
    "aead_encrypt",
    "bucket_size",
    "contact_safety_number",
    "ed25519_sign",
    "ed25519_verify",
    "envelope_message_id",
    "format_safety_number",
    "open_envelope",
    "parse_envelope",
    "peer_id_for",
    "safety_number",
    "seal",
    "verify",
    "x25519",
    "x25519_public",
]
