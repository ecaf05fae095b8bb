"""Message bodies: compression before encryption, its limits, and hostile inputs."""

from __future__ import annotations

import json
import zlib

import pytest

from volli_nb.base.errors import MalformedEnvelope, OversizedInput
from volli_nb.core.body import COMPRESS_MIN, check_body, decode_body, encode_body, is_compressed
from volli_nb.lab import static_key_envelope as envelope


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"\x00z" + packer.compress(data) + packer.flush()


def test_short_texts_stay_plain_json() -> None:
    body = encode_body("hello")
    assert json.loads(body) == {"type": "text", "text": "hello"}
    assert decode_body(body) == "hello"


def test_a_large_repetitive_text_is_deflated_into_a_smaller_bucket() -> None:
    text = "the same log line, again and again\n" * 2000
    body = encode_body(text)
    assert is_compressed(body)
    plain = encode_body(text, compress=False)
    assert envelope.bucket_size(len(body)) < envelope.bucket_size(len(plain))
    assert decode_body(body) == text


def test_compression_is_skipped_when_it_would_not_change_the_bucket() -> None:
    import base64
    import random

    text = base64.b64encode(random.Random(1).randbytes(5250)).decode()  # 7,000 characters
    assert len(encode_body(text, compress=False)) > COMPRESS_MIN
    assert not is_compressed(encode_body(text))  # deflates to ~75 %: still the 8 KiB bucket


def test_a_decompression_bomb_is_refused_without_inflating_it_all() -> None:
    bomb = deflate(b"{" + b" " * (64 * 1024 * 1024))
    with pytest.raises(OversizedInput):
        check_body(bomb)


@pytest.mark.parametrize(
    "body",
    [
        b"\x00z" + b"not deflate at all",
        deflate(b'{"type":"text","text":"cut"}')[:-3],
        deflate(b'{"type":"text","text":"x"}') + b"trailing",
        deflate(b"\xff\xfe not utf-8"),
    ],
)
def test_broken_compressed_bodies_get_a_typed_error(body: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        check_body(body)
