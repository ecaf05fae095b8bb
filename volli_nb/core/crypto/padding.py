"""Padding a body to a size bucket, so the wire shows the bucket and not the length.

Buckets: the next power of two holding ``len + 1`` bytes (``sodium_pad`` always adds
at least its 0x80 marker), at least ``min_bucket``, up to 1 MiB; above that the next
multiple of 1 MiB, so a 10 MB message costs at most 1 MiB of padding.  The receiver
refuses a body that is not a bucket or whose padding is not minimal, so every
plaintext has exactly one padded form.

Envelope v2 starts at 128 bytes (a 100-byte text fits the first bucket); envelope v1
uses the same buckets from 256 bytes (:mod:`volli_nb.lab.static_key_envelope_format`).
"""

from __future__ import annotations

from volli_nb.base.errors import MalformedEnvelope
from volli_nb.core.crypto import primitives

BIG_BUCKET = 1024 * 1024


def bucket_size(length: int, min_bucket: int) -> int:
    """The padded size for a ``length``-byte plaintext."""
    if length + 1 > BIG_BUCKET:
        return -(-(length + 1) // BIG_BUCKET) * BIG_BUCKET
    size = min_bucket
    while size < length + 1:
        size *= 2
    return size


def is_bucket(size: int, min_bucket: int) -> bool:
    if size > BIG_BUCKET:
        return size % BIG_BUCKET == 0
    return size >= min_bucket and size & (size - 1) == 0


def pad(plaintext: bytes, min_bucket: int) -> bytes:
    return primitives.pad(plaintext, bucket_size(len(plaintext), min_bucket))


def unpad(padded: bytes, min_bucket: int) -> bytes:
    """Inverse of :func:`pad`; bad or non-minimal padding is ``MalformedEnvelope``."""
    plaintext = primitives.unpad(padded, error=MalformedEnvelope)
    if bucket_size(len(plaintext), min_bucket) != len(padded):
        raise MalformedEnvelope("the decrypted body is not padded to its size bucket")
    return plaintext


__all__ = ["BIG_BUCKET", "bucket_size", "is_bucket", "pad", "unpad"]
