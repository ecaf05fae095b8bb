"""Published known answers, passed THROUGH our own wrappers (volli_nb.core.crypto).

If libsodium or a wrapper ever changed behaviour, these fail: RFC 8032, RFC 7748,
draft-irtf-cfrg-xchacha-03, libsignal's fingerprint vector, and Wycheproof.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from volli_nb.base.errors import BadSignature, DecryptionFailed, LowOrderKey, UsageError, VolliError
from volli_nb.core.crypto import (
    aead_decrypt,
    aead_encrypt,
    ed25519_sign,
    ed25519_verify,
    safety_number,
    x25519,
)

VECTORS = Path(__file__).parent / "vectors"
Case = tuple[dict[str, Any], dict[str, Any]]


def wycheproof(name: str) -> list[Any]:
    """(group, test) pairs of one Wycheproof file, each with its tcId as the test id."""
    data = json.loads((VECTORS / f"{name}_test.json").read_text())
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}")
        for group in data["testGroups"]
        for test in group["tests"]
    ]


# --- libsignal safety number --------------------------------------------------

ALICE_KEY = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
BOB_KEY = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
SAFETY = "300354477692869396892869876765458257569162576843440918079131"


def test_libsignal_safety_number_known_answer() -> None:
    # The 33-byte keys (0x05 type prefix included) are the vector's own input bytes.
    assert safety_number(ALICE_KEY, b"+14152222222", BOB_KEY, b"+14153333333") == SAFETY
    assert safety_number(BOB_KEY, b"+14153333333", ALICE_KEY, b"+14152222222") == SAFETY


def test_safety_number_changes_with_a_key() -> None:
    other = BOB_KEY[:-1] + bytes([BOB_KEY[-1] ^ 1])
    assert safety_number(ALICE_KEY, b"+14152222222", other, b"+14153333333") != SAFETY


# --- RFC 8032 section 7.1, TEST 1 ---------------------------------------------

RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_test_1_sign_and_verify() -> None:
    assert ed25519_sign(RFC8032_SEED, b"") == RFC8032_SIGNATURE
    ed25519_verify(RFC8032_PUBLIC, b"", RFC8032_SIGNATURE)


@pytest.mark.parametrize(
    ("public", "message", "signature"),
    [
        (RFC8032_PUBLIC, b"\x00", RFC8032_SIGNATURE),
        (RFC8032_PUBLIC, b"", RFC8032_SIGNATURE[:-1] + b"\x0a"),
        (RFC8032_PUBLIC, b"", RFC8032_SIGNATURE[:63]),
        (RFC8032_PUBLIC[:31], b"", RFC8032_SIGNATURE),
        (bytes(32), b"", RFC8032_SIGNATURE),
    ],
    ids=["other message", "flipped signature", "short signature", "short key", "zero key"],
)
def test_rfc8032_refusals_are_bad_signature(
    public: bytes, message: bytes, signature: bytes
) -> None:
    with pytest.raises(BadSignature):
        ed25519_verify(public, message, signature)


def test_ed25519_sign_needs_a_32_byte_seed() -> None:
    with pytest.raises(UsageError):
        ed25519_sign(RFC8032_SEED[:31], b"")


# --- RFC 7748 section 6.1 -----------------------------------------------------

RFC7748 = {
    "alice_private": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    "alice_public": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    "bob_private": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    "bob_public": "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    "shared": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
}


def test_rfc7748_section_6_1() -> None:
    v = {k: bytes.fromhex(h) for k, h in RFC7748.items()}
    assert x25519(v["alice_private"], v["bob_public"]) == v["shared"]
    assert x25519(v["bob_private"], v["alice_public"]) == v["shared"]


@pytest.mark.parametrize(
    "public",
    [
        bytes(32),
        (1).to_bytes(32, "little"),
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],
    ids=["zero", "one", "order-8 point"],
)
def test_low_order_public_key_is_refused(public: bytes) -> None:
    with pytest.raises(LowOrderKey):
        x25519(bytes.fromhex(RFC7748["alice_private"]), public)


def test_x25519_wrong_lengths_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        x25519(bytes(31), bytes.fromhex(RFC7748["bob_public"]))


# --- draft-irtf-cfrg-xchacha-03 section A.3.1 ---------------------------------
# Typed from the draft's AEAD_XChaCha20_Poly1305 example (ciphertext, then tag
# c0875924c1c7987947deafd8780acf49); libsodium produces exactly these bytes.

XCHACHA_KEY = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
XCHACHA_NONCE = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
XCHACHA_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
XCHACHA_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
XCHACHA_CIPHERTEXT = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
)
XCHACHA_TAG = bytes.fromhex("c0875924c1c7987947deafd8780acf49")


def test_xchacha_draft_a_3_1() -> None:
    sealed = aead_encrypt(XCHACHA_KEY, XCHACHA_NONCE, XCHACHA_PLAINTEXT, XCHACHA_AAD)
    assert sealed == XCHACHA_CIPHERTEXT + XCHACHA_TAG
    assert aead_decrypt(XCHACHA_KEY, XCHACHA_NONCE, sealed, XCHACHA_AAD) == XCHACHA_PLAINTEXT


@pytest.mark.parametrize("where", ["ciphertext", "tag", "aad", "nonce", "key", "truncated"])
def test_xchacha_any_change_is_decryption_failed(where: str) -> None:
    key, nonce, aad = XCHACHA_KEY, XCHACHA_NONCE, XCHACHA_AAD
    sealed = XCHACHA_CIPHERTEXT + XCHACHA_TAG
    if where == "ciphertext":
        sealed = bytes([sealed[0] ^ 1]) + sealed[1:]
    elif where == "tag":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 0x80])
    elif where == "aad":
        aad = aad + b"\x00"
    elif where == "nonce":
        nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
    elif where == "key":
        key = bytes([key[0] ^ 1]) + key[1:]
    else:
        sealed = sealed[:15]
    with pytest.raises(DecryptionFailed):
        aead_decrypt(key, nonce, sealed, aad)


def test_xchacha_encrypt_needs_exact_sizes() -> None:
    with pytest.raises(UsageError):
        aead_encrypt(XCHACHA_KEY, XCHACHA_NONCE[:12], b"", b"")
    with pytest.raises(UsageError):
        aead_encrypt(XCHACHA_KEY[:16], XCHACHA_NONCE, b"", b"")


# --- Wycheproof -----------------------------------------------------------------


@pytest.mark.parametrize(("group", "case"), wycheproof("ed25519"))
def test_wycheproof_ed25519(group: dict[str, Any], case: dict[str, Any]) -> None:
    public = bytes.fromhex(group["publicKey"]["pk"])
    msg, sig = bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    assert case["result"] in ("valid", "invalid")  # the file has no "acceptable" cases
    if case["result"] == "valid":
        ed25519_verify(public, msg, sig)
    else:
        with pytest.raises(BadSignature):
            ed25519_verify(public, msg, sig)


@pytest.mark.parametrize(("group", "case"), wycheproof("x25519"))
def test_wycheproof_x25519(
    group: dict[str, Any], case: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    assert group["curve"] == "curve25519"
    private, public = bytes.fromhex(case["private"]), bytes.fromhex(case["public"])
    shared = bytes.fromhex(case["shared"])
    if shared == bytes(32):
        # Low-order public key: libsodium refuses, and so must we (a typed error).
        assert case["result"] == "acceptable" and "ZeroSharedSecret" in case["flags"]
        with pytest.raises(LowOrderKey):
            x25519(private, public)
    elif case["result"] == "valid":
        assert x25519(private, public) == shared
    elif case["result"] == "acceptable":
        # Either outcome is allowed (twist points, non-canonical u); record which we give.
        try:
            outcome = "same" if x25519(private, public) == shared else "different"
        except VolliError as exc:
            outcome = type(exc).__name__
        request.node.user_properties.append(("acceptable_outcome", outcome))
        assert outcome in ("same", "LowOrderKey")
    else:
        with pytest.raises(VolliError):
            x25519(private, public)


@pytest.mark.parametrize(("group", "case"), wycheproof("xchacha20_poly1305"))
def test_wycheproof_xchacha20_poly1305(group: dict[str, Any], case: dict[str, Any]) -> None:
    key, iv = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
    aad, msg = bytes.fromhex(case["aad"]), bytes.fromhex(case["msg"])
    sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
    assert case["result"] in ("valid", "invalid")
    if case["result"] == "valid":
        assert group["ivSize"] == 192 and group["keySize"] == 256
        assert aead_encrypt(key, iv, msg, aad) == sealed
        assert aead_decrypt(key, iv, sealed, aad) == msg
        return
    with pytest.raises(DecryptionFailed):
        aead_decrypt(key, iv, sealed, aad)
    if len(iv) != 24:  # "InvalidNonceSize": encrypting with it is the caller's mistake
        with pytest.raises(UsageError):
            aead_encrypt(key, iv, msg, aad)


def test_vector_files_are_complete() -> None:
    counts = {}
    for name in ("ed25519", "x25519", "xchacha20_poly1305"):
        data = json.loads((VECTORS / f"{name}_test.json").read_text())
        counts[name] = sum(len(g["tests"]) for g in data["testGroups"])
        assert counts[name] == data["numberOfTests"]
    assert counts == {"ed25519": 151, "x25519": 518, "xchacha20_poly1305": 315}
