"""The cryptography in one import: identities, envelopes and the primitive wrappers."""

from __future__ import annotations

from .envelope import (
    MAX_ENVELOPE_BYTES,
    OpenedMessage,
    ParsedEnvelope,
    envelope_message_id,
    open_envelope,
    parse_envelope,
    seal,
)
from .identity import (
    Identity,
    PublicIdentity,
    contact_safety_number,
    format_safety_number,
    peer_id_for,
    safety_number,
    verify,
    x25519,
)
from .primitives import aead_decrypt, aead_encrypt, ed25519_sign, ed25519_verify

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "Identity",
    "OpenedMessage",
    "ParsedEnvelope",
    "PublicIdentity",
    "aead_decrypt",
    "aead_encrypt",
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
]
