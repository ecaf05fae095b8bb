"""Fuzzing the decoders of issue 26, item 4: whatever comes in, only a typed error comes out.

The shared JSON decoding (``strict_loads``, ``canonical_loads``), the signaling frames of
both directions (and the registration and TURN credentials they carry), public
identities, pairing codes (random payloads behind a valid checksum, so the binary
reader is reached) and sealed values.  Hostile leaves are mixed into well-formed JSON:
``NaN``, ``Infinity``, ``1e999`` and half surrogate pairs, which used to escape as a bare
``ValueError``.  (Control frames and envelopes are fuzzed in test_frames_fuzz.py and
test_envelope_fuzz.py.)
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_sdp import SDP  # aiortc's offer, recorded

from volli_nb.base.errors import (
    BadPairingCode,
    MalformedFrame,
    PeerError,
    StorageError,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.encoding import canonical_loads, strict_loads
from volli_nb.core.pairing_code import _check, decode_code, encode_code
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.keyring import WrappedKey
from volli_nb.net.signaling.turn import TurnCredentials, vet_turn_urls
from volli_nb.net.signaling.wire import (
    SignalingError,
    parse_challenge,
    parse_client_frame,
    parse_server_frame,
    verify_registration,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOSTILE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", '"\\ud800"', '"\\udfff x"',
           "1" * 5000, "[" * 3000 + "]" * 3000]  # fmt: skip
ALICE = Identity.generate(random.Random(26).randbytes)
PEER = ALICE.peer_id
KEYS = ["type", "to", "room", "data", "identity", "signature", "urls", "username",
        "credential", "expires", "ttl", "nonce", "server", "request", "members", "from",
        "peer", "peer_id", "code", "message", "event", "kind", "sdp", "x"]  # fmt: skip
TYPES = ["register", "join", "leave", "list", "signal", "ping", "challenge", "registered",
         "joined", "presence", "members", "queued", "turn", "pong", "error", "left"]  # fmt: skip


def _leaf() -> st.SearchStrategy[str]:
    """One JSON value as text: ordinary, or one of the values that used to escape."""
    plain = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.text(max_size=12).map(json.dumps),
        st.sampled_from([json.dumps(t) for t in TYPES] + [json.dumps(PEER), "true", "null"]),
    )
    return st.one_of(plain, st.sampled_from(HOSTILE))


JSON_TEXT = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.dictionaries(st.sampled_from(KEYS).map(json.dumps), inner, max_size=6).map(
            lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=12,
)
OBJECT_TEXT = st.dictionaries(st.sampled_from(KEYS).map(json.dumps), JSON_TEXT, max_size=7).map(
    lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
)
INPUT = st.one_of(
    OBJECT_TEXT, JSON_TEXT, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
)
IDENTITY_TEXT = json.dumps(ALICE.public.to_json())


@st.composite
def client_frames(draw: st.DrawFn) -> str:
    """Well-formed client frames of every type, hostile values where values are free."""
    kind = draw(st.sampled_from(["register", "join", "leave", "list", "signal", "ping"]))
    fields = {"type": json.dumps(kind)}
    if kind in ("join", "leave", "list"):
        fields["room"] = draw(st.one_of(_leaf(), st.just('"\\udfffroom"')))
    elif kind == "signal":
        fields["to"] = draw(st.sampled_from([json.dumps(PEER)] * 4 + ['"\\ud800"', "1e999"]))
        one = st.sampled_from(HOSTILE).map(lambda v: '{"x":' + v + "}")  # alone: reached
        fields["data"] = draw(st.one_of(one, one, one, OBJECT_TEXT))
    elif kind == "register":
        fields["identity"] = draw(st.one_of(OBJECT_TEXT, st.just(IDENTITY_TEXT)))
        fields["signature"] = draw(_leaf())
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


@SETTINGS
@given(text=INPUT)
def test_shared_json_decoding_lets_only_the_callers_error_out(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    for decode in (strict_loads, canonical_loads):
        try:
            value = decode(data, max_size=64 * 1024, what="input", error=MalformedFrame)
        except MalformedFrame:
            continue
        json.dumps(value, allow_nan=False).encode("utf-8")  # what came out writes back


@SETTINGS
@given(text=st.one_of(client_frames(), client_frames(), INPUT))
def test_client_frames_and_registrations_yield_only_signaling_errors(text: str) -> None:
    try:
        frame = parse_client_frame(text.encode("utf-8", "surrogatepass"))
    except SignalingError:
        return
    if frame["type"] == "register":
        with contextlib.suppress(PeerError):
            verify_registration(frame, b"\x00" * 32, "server")


@SETTINGS
@given(text=INPUT)
def test_server_frames_challenges_and_turn_credentials_yield_only_peer_errors(
    text: str,
) -> None:
    """MalformedFrame for the frame itself; an identity in it may also be BadSignature."""
    try:
        frame = parse_server_frame(text.encode("utf-8", "surrogatepass"))
        if frame["type"] == "challenge":
            parse_challenge(frame)
        if frame["type"] == "turn":
            vet_turn_urls(TurnCredentials.from_frame(frame), "wss://s.example.org", None)
        for member in frame.get("members", []):
            PublicIdentity.from_json(member, error=MalformedFrame)
    except PeerError:
        pass


IDENTITY = ALICE.public.to_json()


@SETTINGS
@given(
    changes=st.dictionaries(
        st.sampled_from([*IDENTITY, "extra"]),
        st.one_of(
            st.integers(-(2**65), 2**65),
            st.text(max_size=90),
            st.none(),
            st.booleans(),
            st.floats(),
            st.lists(st.integers(), max_size=2),
        ),
        max_size=3,
    )
)
def test_public_identities_yield_only_peer_errors(changes: dict[str, Any]) -> None:
    with contextlib.suppress(PeerError):
        PublicIdentity.from_json({**IDENTITY, **changes}, error=MalformedFrame)


CODE = encode_code("offer", SDP, ALICE.public, "alice", "pair-" + "ab" * 6)
PAYLOAD = base64.urlsafe_b64decode(CODE.split(".")[1] + "==")  # what mutations start from


@SETTINGS
@given(data=st.data())
def test_pairing_code_payloads_behind_a_valid_checksum_yield_only_bad_pairing_code(
    data: st.DataObject,
) -> None:
    raw = bytearray(PAYLOAD)
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and where < len(raw):
            raw[where] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[where : where + data.draw(st.integers(1, 40))]
        else:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=8))
    payload = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with contextlib.suppress(BadPairingCode):
        decode_code(f"volli2.{payload}.{_check(payload)}")


@SETTINGS
@given(text=st.text(max_size=300))
def test_pasted_text_yields_only_bad_pairing_code(text: str) -> None:
    with contextlib.suppress(BadPairingCode):
        decode_code(text)


@pytest.fixture(scope="module")
def sealed_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = Database.open(Path(tmp_path_factory.mktemp("sealed")) / "p.sqlite", "pw", kdf=KDF_MIN)
    yield db
    db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(sealed=st.one_of(st.binary(max_size=400), st.integers(), st.text(max_size=5), st.none()))
def test_sealed_values_yield_only_storage_errors(sealed_db: Database, sealed: Any) -> None:
    genuine = sealed_db.seal("messages", "body", "ab", b"hello")
    for value in (sealed, genuine[: len(genuine) // 2], genuine + b"x"):
        with pytest.raises(StorageError):
            sealed_db.unseal("messages", "body", "ab", value)
    assert sealed_db.unseal("messages", "body", "ab", genuine) == b"hello"


@SETTINGS
@given(
    row=st.fixed_dictionaries(
        {},
        optional={
            k: st.one_of(st.binary(max_size=40), st.integers(-(2**64), 2**64), st.text(max_size=4))
            for k in ("salt", "opslimit", "memlimit", "wrapped")
        },
    )
)
def test_keyring_rows_yield_only_storage_errors(row: dict[str, object]) -> None:
    with contextlib.suppress(StorageError):
        WrappedKey.from_row(row)
