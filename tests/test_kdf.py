"""HKDF against RFC 5869's test vectors, and the ratchet KDFs against their definitions."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto import kdf

# RFC 5869 appendix A: (hash, IKM, salt, info, L, PRK, OKM); salt None = "not provided".
VECTORS = [
    (
        "sha256",
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        "sha256",
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "sha256",
        "0b" * 22,
        "",
        "",
        42,
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
    (
        "sha1",
        "0b" * 11,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "9b6c18c432a7bf8f0e71c8eb88f4b30baa2ba243",
        "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896",
    ),
    (
        "sha1",
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "8adae09a2a307059478d309b26c4115a224cfaf6",
        "0bd770a74d1160f7c9f12cd5912a06ebff6adcae899d92191fe4305673ba2ffe"
        "8fa3f1a4e5ad79f3f334b3b202b2173c486ea37ce3d397ed034c7f9dfeb15c5e"
        "927336d0441f4c4300e2cff0d0900b52d3b4",
    ),
    (
        "sha1",
        "0b" * 22,
        "",
        "",
        42,
        "da8c8a73c7fa77288ec6f5e7c297786aa0d32d01",
        "0ac1af7002b3d761d1e55298da9d0506b9ae52057220a306e07b6b87e8df21d0ea00033de03984d34918",
    ),
    (
        "sha1",
        "0c" * 22,
        None,
        "",
        42,
        "2adccada18779e7c2077ad2eb19d3f3e731385dd",
        "2c91117204d745f3500d636a62f64f0ab3bae548aa53d423b0d1f27ebba6f5e5673a081d70cce7acfc48",
    ),
]


@pytest.mark.parametrize("vector", VECTORS, ids=[f"A.{i + 1}" for i in range(len(VECTORS))])
def test_rfc5869_vectors(vector: tuple[str, str, str | None, str, int, str, str]) -> None:
    hash_name, ikm, salt, info, length, prk, okm = vector
    salt_bytes = b"" if salt is None else bytes.fromhex(salt)
    assert kdf.hkdf_extract(salt_bytes, bytes.fromhex(ikm), hash_name).hex() == prk
    assert kdf.hkdf_expand(bytes.fromhex(prk), bytes.fromhex(info), length, hash_name).hex() == okm
    out = kdf.hkdf(
        bytes.fromhex(ikm),
        salt=salt_bytes,
        info=bytes.fromhex(info),
        length=length,
        hash_name=hash_name,
    )
    assert out.hex() == okm


def test_expand_length_bounds() -> None:
    prk = bytes(32)
    assert len(kdf.hkdf_expand(prk, b"", 255 * 32)) == 255 * 32
    for bad in (0, 255 * 32 + 1):
        with pytest.raises(UsageError):
            kdf.hkdf_expand(prk, b"", bad)


def test_chain_kdf_is_the_specs_hmac_construction() -> None:
    ck = bytes(range(32))
    next_ck, mk = kdf.kdf_ck(ck)
    assert mk == hmac.new(ck, b"\x01", hashlib.sha256).digest()
    assert next_ck == hmac.new(ck, b"\x02", hashlib.sha256).digest()
    assert next_ck != mk


def test_root_kdf_splits_hkdf_output() -> None:
    rk, dh = bytes(range(32)), bytes(range(32, 64))
    out = kdf.hkdf(dh, salt=rk, info=b"volli-ratchet-root-v1", length=64)
    assert kdf.kdf_rk(rk, dh) == (out[:32], out[32:])
