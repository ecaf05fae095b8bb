"""Message bodies: compression before encryption, its limits, and hostile inputs."""

from __future__ import annotations

import json
import zlib

import pytest

from volli_nb.base.errors import MalformedBody, MalformedEnvelope, OversizedInput, UsageError
from volli_nb.core.body import (
    COMPRESS_MIN,
    MAX_TEXT_BYTES,
    RATIO_FREE,
    check_body,
    decode_body,
    encode_body,
    is_compressed,
    is_legacy,
    wire_body,
)
from volli_nb.lab import static_key_envelope as envelope


def deflate(data: bytes, prefix: bytes = b"\x00z") -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return prefix + packer.compress(data) + packer.flush()


def v1(text: str) -> bytes:
    """A version-1 body, as history stored before protocol 3 holds it."""
    return json.dumps({"type": "text", "text": text}, separators=(",", ":")).encode()


def test_a_short_text_is_a_kind_byte_and_its_utf8() -> None:
    body = encode_body("héllo")
    assert body == b"\x01" + "héllo".encode() and not is_legacy(body)
    assert decode_body(body, legacy=False) == "héllo"
    assert len(encode_body("x" * 126)) + 1 <= 128  # a 126-character line: the first bucket
    assert decode_body(b"\x01") == ""


def test_version_1_bodies_still_read_and_are_sent_as_version_2() -> None:
    old, packed = v1("from before"), deflate(v1("the same line\n" * 2000))
    assert is_legacy(old) and is_legacy(packed)
    assert decode_body(old) == "from before"  # stored history reads
    assert decode_body(packed) == "the same line\n" * 2000
    assert wire_body(old) == encode_body("from before")  # a queued row goes out as v2
    assert wire_body(packed) == encode_body("the same line\n" * 2000)
    assert is_compressed(wire_body(packed))
    body = encode_body("new")
    assert wire_body(body) is body
    for legacy in (old, packed):
        with pytest.raises(MalformedBody, match="upgrade both sides"):
            decode_body(legacy, legacy=False)  # the wire carries version 2 only


def test_text_that_is_not_unicode_is_the_callers_to_fix() -> None:
    with pytest.raises(UsageError, match="lone surrogate"):
        encode_body("half a pair \ud800")
    with pytest.raises(MalformedBody, match="UTF-8"):
        decode_body(b"\x01\xff\xfe")


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


@pytest.mark.parametrize("prefix", [b"\x00z", b"\x02"])
def test_a_decompression_bomb_is_refused_without_inflating_it_all(prefix: bytes) -> None:
    bomb = deflate(b"{" + b" " * (64 * 1024 * 1024), prefix)
    with pytest.raises(OversizedInput):
        check_body(bomb)


@pytest.mark.parametrize(
    "body",
    [
        b"\x00z" + b"not deflate at all",
        deflate(b'{"type":"text","text":"cut"}')[:-3],
        deflate(b'{"type":"text","text":"x"}') + b"trailing",
        deflate(b"\xff\xfe not utf-8"),
        b"\x02" + b"not deflate at all",
        deflate(b"cut short", b"\x02")[:-3],
    ],
)
def test_broken_compressed_bodies_get_a_typed_error(body: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        check_body(body)


def test_a_body_inflating_past_the_ratio_is_refused_on_the_wire_but_still_shown() -> None:
    """12 KiB that inflate to 12 MiB: refused on receipt (after inflating no more than the
    ratio allows); a body stored before the rule still reads."""
    bomb = deflate(b"a" * MAX_TEXT_BYTES, b"\x02")
    assert len(bomb) < 13 * 1024
    with pytest.raises(OversizedInput, match="64x"):
        check_body(bomb, legacy=False)
    assert decode_body(bomb) == "a" * MAX_TEXT_BYTES  # the display's decoder: read as stored
    short = deflate(b"a" * RATIO_FREE, b"\x02")  # any body may inflate to RATIO_FREE
    assert decode_body(short, legacy=False) == "a" * RATIO_FREE


def test_our_sender_never_deflates_past_what_a_receiver_accepts() -> None:
    """A text too repetitive for the ratio goes plain, and so does such a body queued
    before the rule; ordinary repetitive text still deflates."""
    text = "0,0,0,0,0,0\n" * 100_000  # 1.2 MB, deflates ~500:1
    body = encode_body(text)
    assert not is_compressed(body) and decode_body(body, legacy=False) == text
    queued = deflate(text.encode(), b"\x02")
    assert wire_body(queued) == body
    logs = "the same log line, again and again\n" * 2000  # under RATIO_FREE: deflated
    assert is_compressed(encode_body(logs))
    dpkg = "".join(f"12-07 22:{i % 60:02d} status installed pkg{i}\n" for i in range(20000))
    packed = encode_body(dpkg)
    assert is_compressed(packed) and wire_body(packed) is packed
    assert decode_body(packed, legacy=False) == dpkg
