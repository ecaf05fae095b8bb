"""The cryptography of storage at rest: a passphrase unlocks a random database key.

A profile's rows are sealed with a random 32-byte *database key*.  The key is
stored only wrapped, under a key derived from the passphrase with Argon2id, so a
passphrase change re-wraps 32 bytes instead of re-encrypting every row, and a
wrong passphrase is detected by the wrap's AEAD tag before anything is read.

Every sealed field carries its own random 24-byte nonce and is bound, through the
associated data, to ``table|column|row id|schema version``: a ciphertext copied
to another row or column, or left over from another schema, does not open.  From
schema 2 a sealed value is padded first, to the envelope's size buckets, so the file
shows a body's bucket and not its length.

Rows whose *clear* columns carry trust (contact keys, ``verified``, conversation
members, a message's sender and direction) get a MAC instead: keyed BLAKE2b under a key
derived from the database key, over the table, the schema version and every covered
column (primary key included), each tagged and length-prefixed (:func:`row_mac`).  They
stay readable with any SQLite tool, but an edit without the passphrase is detected.

The keyring's Argon2id cost is read from the file before the passphrase can be checked,
so it is capped at four times MODERATE (:data:`MAX_OPSLIMIT`, :data:`MAX_MEMLIMIT`): a
hostile file cannot make opening it cost more than that.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from volli_nb.base.errors import (
    DecryptionFailed,
    MalformedEnvelope,
    StorageError,
    UsageError,
    WrongPassphrase,
)
from volli_nb.core.crypto import padding
from volli_nb.core.crypto.primitives import (
    AEAD_KEY_BYTES,
    AEAD_NONCE_BYTES,
    ARGON2_MEMLIMIT_MIN,
    ARGON2_MEMLIMIT_MODERATE,
    ARGON2_OPSLIMIT_MIN,
    ARGON2_OPSLIMIT_MODERATE,
    ARGON2_SALT_BYTES,
    Random,
    aead_decrypt,
    aead_encrypt,
    argon2id,
)

KEYRING_DOMAIN = b"volli-keyring-v1"
PASSPHRASE_ENV = "VOLLI_PASSPHRASE"  # where the shell, the magics and peer processes look for it

PAD_BUCKET = 256  # sealed values are padded to the envelope's buckets (from 256 bytes)
ROW_MAC_DOMAIN = b"volli-row-mac-v1"
ROW_MAC_BYTES = 32

# A damaged or hostile file must not make us compute (or allocate) more than 4x MODERATE.
MAX_OPSLIMIT = 4 * ARGON2_OPSLIMIT_MODERATE
MAX_MEMLIMIT = 4 * ARGON2_MEMLIMIT_MODERATE


class KdfCost(NamedTuple):
    """Argon2id work factors: passes over memory, and bytes of memory."""

    opslimit: int
    memlimit: int


KDF_MODERATE = KdfCost(ARGON2_OPSLIMIT_MODERATE, ARGON2_MEMLIMIT_MODERATE)
"""Production default: about half a second and 256 MiB per unlock."""

KDF_MIN = KdfCost(ARGON2_OPSLIMIT_MIN, ARGON2_MEMLIMIT_MIN)
"""For tests and throw-away demo profiles only: offers no protection against guessing."""


def passphrase_bytes(passphrase: str | bytes) -> bytes:
    """UTF-8 of the NFC form, so the same typed passphrase unlocks on every system."""
    if isinstance(passphrase, bytes):
        return passphrase
    if isinstance(passphrase, str):
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    raise UsageError(f"a passphrase must be str or bytes, not {type(passphrase).__name__}")


def check_cost(kdf: KdfCost, *, error: type[Exception] = UsageError) -> KdfCost:
    """Refuse work factors libsodium rejects or that would take unreasonable time."""
    ops, mem = kdf
    if not (ARGON2_OPSLIMIT_MIN <= ops <= MAX_OPSLIMIT) or not (
        ARGON2_MEMLIMIT_MIN <= mem <= MAX_MEMLIMIT
    ):
        raise error(
            f"Argon2id cost opslimit={ops} memlimit={mem} is out of range "
            f"(opslimit {ARGON2_OPSLIMIT_MIN}..{MAX_OPSLIMIT}, "
            f"memlimit {ARGON2_MEMLIMIT_MIN}..{MAX_MEMLIMIT}); use KDF_MODERATE or KDF_MIN"
        )
    return KdfCost(int(ops), int(mem))


def aead_seal(
    key: bytes, associated: bytes, plaintext: bytes, random: Random, *, pad: bool = False
) -> bytes:
    """``nonce || ciphertext || tag`` with a fresh random nonce; with ``pad``, the
    plaintext is first padded to the envelope's size buckets."""
    nonce = random(AEAD_NONCE_BYTES)
    if pad:
        plaintext = padding.pad(plaintext, PAD_BUCKET)
    return nonce + aead_encrypt(key, nonce, plaintext, associated)


def aead_open(key: bytes, associated: bytes, sealed: bytes, padded: bool = False) -> bytes | None:
    """The plaintext, or None if the tag does not verify (wrong key, data or place) or
    (``padded``) the padding is not exactly the bucket's."""
    try:
        plain = aead_decrypt(key, sealed[:AEAD_NONCE_BYTES], sealed[AEAD_NONCE_BYTES:], associated)
        return padding.unpad(plain, PAD_BUCKET) if padded else plain
    except (DecryptionFailed, MalformedEnvelope):
        return None


def field_context(table: str, column: str, row_id: str | int, schema_version: int) -> bytes:
    """Associated data of a sealed field.

    Table and column are identifiers without ``|`` and the version is an integer,
    so the row id (which may contain anything) is still unambiguous.
    """
    if "|" in table or "|" in column:
        raise UsageError(f"table and column names may not contain '|': {table!r}.{column!r}")
    return f"{table}|{column}|{row_id}|{schema_version}".encode()


def row_mac_key(database_key: bytes) -> bytes:
    """The key of the row MACs, derived from (and rotating with) the database key."""
    return hashlib.blake2b(ROW_MAC_DOMAIN, key=database_key, digest_size=32).digest()


_LENGTH = struct.Struct(">Q").pack  # 8 bytes, big-endian


def _tagged(value: object) -> bytes:
    """One column value, tagged by type and length-prefixed: no two rows encode alike."""
    if isinstance(value, bytes):  # the common types first: five MACs a message use this
        return b"B" + _LENGTH(len(value)) + value
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"S" + _LENGTH(len(data)) + data
    if isinstance(value, int):  # bool too: SQLite stores it as 0 or 1
        data = str(int(value)).encode()
        return b"I" + _LENGTH(len(data)) + data
    if value is None:
        return b"N" + bytes(8)
    raise UsageError(f"a MAC'd column holds text, an integer, bytes or NULL, not {value!r}")


@functools.lru_cache(maxsize=256)
def _tagged_name(name: str) -> bytes:
    return _tagged(name)


@functools.lru_cache(maxsize=256)
def _prefix(table: str, schema_version: int) -> bytes:
    return _tagged(table) + _tagged(schema_version)


def row_mac(
    mac_key: bytes, table: str, schema_version: int, columns: Sequence[tuple[str, object]]
) -> bytes:
    """MAC of one row's covered ``(column, value)`` pairs, bound to table and schema."""
    parts = [_prefix(table, schema_version)]
    for name, value in columns:
        parts += (_tagged_name(name), _tagged(value))
    return hashlib.blake2b(b"".join(parts), key=mac_key, digest_size=ROW_MAC_BYTES).digest()


@dataclass(frozen=True)
class WrappedKey:
    """The database key encrypted under Argon2id(passphrase, salt); stored in clear."""

    salt: bytes
    opslimit: int
    memlimit: int
    wrapped: bytes  # nonce || ciphertext || tag

    @classmethod
    def wrap(
        cls, database_key: bytes, passphrase: str | bytes, kdf: KdfCost, random: Random
    ) -> WrappedKey:
        ops, mem = check_cost(kdf)
        salt = random(ARGON2_SALT_BYTES)
        kek = _derive(passphrase, salt, ops, mem)
        blob = aead_seal(kek, _keyring_context(salt, ops, mem), database_key, random)
        return cls(salt, ops, mem, blob)

    def unwrap(self, passphrase: str | bytes) -> bytes:
        """The database key; :class:`WrongPassphrase` if the tag refuses it.

        A tampered salt or cost also lands here (they are in the associated
        data); either way the file was not changed and nothing was decrypted.
        """
        kek = _derive(passphrase, self.salt, self.opslimit, self.memlimit)
        key = aead_open(
            kek, _keyring_context(self.salt, self.opslimit, self.memlimit), self.wrapped
        )
        if key is None or len(key) != AEAD_KEY_BYTES:
            raise WrongPassphrase(
                "the passphrase does not unlock this profile; check it (it is case- and "
                "space-sensitive) and try again; nothing in the file was changed"
            )
        return key

    @classmethod
    def from_row(cls, row: dict[str, object]) -> WrappedKey:
        """Validate a keyring row read from disk (it is untrusted until unwrapped)."""
        salt, ops, mem, wrapped = (row.get(k) for k in ("salt", "opslimit", "memlimit", "wrapped"))
        if not (
            isinstance(salt, bytes)
            and len(salt) == ARGON2_SALT_BYTES
            and isinstance(ops, int)
            and isinstance(mem, int)
            and isinstance(wrapped, bytes)
        ):
            raise StorageError("the profile's keyring row is damaged; restore the file from backup")
        check_cost(KdfCost(ops, mem), error=StorageError)
        return cls(salt, ops, mem, wrapped)

    def to_row(self) -> dict[str, object]:
        return {
            "id": 1,
            "kdf": "argon2id13",
            "aead": "xchacha20poly1305-ietf",
            "salt": self.salt,
            "opslimit": self.opslimit,
            "memlimit": self.memlimit,
            "wrapped": self.wrapped,
        }


def _keyring_context(salt: bytes, ops: int, mem: int) -> bytes:
    return KEYRING_DOMAIN + f"|{ops}|{mem}|".encode() + salt


def _derive(passphrase: str | bytes, salt: bytes, ops: int, mem: int) -> bytes:
    return argon2id(AEAD_KEY_BYTES, passphrase_bytes(passphrase), salt, opslimit=ops, memlimit=mem)
