"""Known answers, through our own wrappers (volli_nb.primitives / identity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from volli_nb.errors import BadSignature, DecryptionFailed, LowOrderKey
from volli_nb.identity import safety_number, x25519
from volli_nb.primitives import aead_decrypt, aead_encrypt, ed25519_sign, ed25519_verify

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    data = json.loads((VECTORS / f"{name}_test.json").read_text())
    return [(group, test) for group in data["testGroups"] for test in group["tests"]]


def test_libsignal_safety_number_known_answer() -> None:
    alice = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
    bob = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
    expected = "300354477692869396892869876765458257569162576843440918079131"
    assert safety_number(alice, b"+14152222222", bob, b"+14153333333") == expected
    assert safety_number(bob, b"+14153333333", alice, b"+14152222222") == expected


def test_rfc8032_test_1() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert ed25519_sign(seed, b"") == signature
    ed25519_verify(public, b"", signature)
    with pytest.raises(BadSignature):
        ed25519_verify(public, b"x", signature)


def test_rfc7748_section_6_1() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert x25519(alice, bob_public) == shared


def test_xchacha_draft_a_3_1() -> None:
    key = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    nonce = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        b"the future, sunscreen would be it."
    )
    expected = bytes.fromhex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49"
    )
    assert aead_encrypt(key, nonce, plaintext, aad) == expected
    assert aead_decrypt(key, nonce, expected, aad) == plaintext
    with pytest.raises(DecryptionFailed):
        aead_decrypt(key, nonce, expected[:-1] + bytes([expected[-1] ^ 1]), aad)


@pytest.mark.parametrize(("group", "case"), load("ed25519"), ids=lambda v: str(v.get("tcId", "")))
def test_wycheproof_ed25519(group: dict[str, Any], case: dict[str, Any]) -> None:
    public = bytes.fromhex(group["publicKey"]["pk"])
    msg, sig = bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    if case["result"] == "valid":
        ed25519_verify(public, msg, sig)
    else:
        with pytest.raises(BadSignature):
            ed25519_verify(public, msg, sig)


@pytest.mark.parametrize(("group", "case"), load("x25519"), ids=lambda v: str(v.get("tcId", "")))
def test_wycheproof_x25519(group: dict[str, Any], case: dict[str, Any]) -> None:
    private, public = bytes.fromhex(case["private"]), bytes.fromhex(case["public"])
    shared = bytes.fromhex(case["shared"])
    if shared == bytes(32):
        # libsodium refuses low-order keys: a typed error, never an all-zero secret.
        with pytest.raises(LowOrderKey):
            x25519(private, public)
    elif case["result"] in ("valid", "acceptable"):
        assert x25519(private, public) == shared
    else:
        with pytest.raises(LowOrderKey):
            x25519(private, public)


@pytest.mark.parametrize(
    ("group", "case"), load("xchacha20_poly1305"), ids=lambda v: str(v.get("tcId", ""))
)
def test_wycheproof_xchacha20_poly1305(group: dict[str, Any], case: dict[str, Any]) -> None:
    key, iv = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
    aad, msg = bytes.fromhex(case["aad"]), bytes.fromhex(case["msg"])
    sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
    if len(key) != 32 or len(iv) != 24:
        with pytest.raises(DecryptionFailed):
            aead_decrypt(key, iv, sealed, aad)
        return
    if case["result"] == "valid":
        assert aead_encrypt(key, iv, msg, aad) == sealed
        assert aead_decrypt(key, iv, sealed, aad) == msg
    else:
        with pytest.raises(DecryptionFailed):
            aead_decrypt(key, iv, sealed, aad)
