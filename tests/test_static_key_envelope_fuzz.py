"""Fuzzing: whatever bytes arrive, only VolliError subclasses come out.

Three sources of hostile input: arbitrary bytes, byte-level mutations of valid
envelopes, and JSON-level mutations (replace, delete, insert at any depth),
sent both as they are and re-signed by the genuine sender so they reach the
deeper checks (recipient set, freshness, unwrap, commitment, decrypt, unpad).
"""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from volli_nb.base.errors import VolliError
from volli_nb.core.crypto import Identity, PublicIdentity
from volli_nb.core.encoding import b64decode, b64encode, canonical_json
from volli_nb.lab import static_key_envelope as env
from volli_nb.lab.static_key_envelope import open_envelope, parse_envelope, seal

NOW = 1_800_000_000_000
_rng = random.Random(99)
ALICE, BOB, CAROL = (Identity.generate(_rng.randbytes) for _ in range(3))
PINNED: dict[str, PublicIdentity] = {i.peer_id: i.public for i in (ALICE, BOB, CAROL)}
ENVELOPES = [
    seal(
        ALICE,
        [p.public for p in people],
        conversation_id="fuzz",
        plaintext=text,
        counter=1,
        timestamp_ms=NOW,
        random=_rng.randbytes,
    )
    for people, text in (((BOB,), b"hello"), ((BOB, CAROL), b"x" * 300))
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def attempt(data: bytes) -> str:
    """Parse and open ``data``; return the outcome, failing on any non-VolliError."""
    try:
        parse_envelope(data)
        env.envelope_message_id(data)
    except VolliError:
        pass
    try:
        opened = open_envelope(data, BOB, contacts=PINNED.get, now_ms=NOW)
    except VolliError as exc:
        event(type(exc).__name__)  # see --hypothesis-show-statistics
        return type(exc).__name__
    assert opened.sender == ALICE.public
    event("opened")
    return "opened"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=20)
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


def containers(obj: Any) -> list[dict[str, Any]]:
    """Every JSON object inside ``obj`` (itself included), where a mutation can land."""
    found: list[dict[str, Any]] = []
    if isinstance(obj, dict):
        found.append(obj)
        for value in obj.values():
            found.extend(containers(value))
    return found


def b64_tweaks(value: str) -> st.SearchStrategy[str]:
    try:
        raw = b64decode(value)
    except VolliError:  # not base64 (e.g. a conversation id): tweak its UTF-8 bytes
        raw = value.encode("utf-8", "surrogatepass")
    return st.sampled_from(
        [
            value + "=",
            value[:-1],
            value + "A",
            b64encode(raw[:-1]),
            b64encode(raw + b"\x00"),
            value.replace("-", "+").replace("_", "/"),
        ]
    )


@st.composite
def json_mutations(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(draw(st.sampled_from(ENVELOPES)))
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(containers(obj)))
        action = draw(st.sampled_from(["replace", "delete", "insert", "b64"]))
        if action == "insert" or not target:
            target[draw(st.text(max_size=10))] = draw(json_values)
            continue
        key = draw(st.sampled_from(sorted(target)))
        if action == "delete":
            del target[key]
        elif action == "b64" and isinstance(target[key], str):
            target[key] = draw(b64_tweaks(target[key]))
        else:
            target[key] = draw(json_values)
    return obj


def serialize(obj: dict[str, Any], canonical: bool) -> bytes:
    if canonical:
        try:
            return canonical_json(obj)
        except UnicodeEncodeError:  # a lone surrogate: send it escaped
            pass
    return json.dumps(obj).encode()


@FUZZ
@given(st.binary(max_size=3000))
@example(b"")
@example(b"{}")
@example(b"\xef\xbb\xbf{}")
@example(b"[" * 100_000)
@example(b'{"v":1e999}')
@example(b'{"v":' + b"9" * 5000 + b"}")
def test_arbitrary_bytes(data: bytes) -> None:
    assert attempt(data) != "opened"


@FUZZ
@given(st.text(max_size=500))
def test_arbitrary_text_and_json_like_text(text: str) -> None:
    assert attempt(text.encode("utf-8", "surrogatepass")) != "opened"
    assert attempt(b'{"v":1,' + text.encode("utf-8", "surrogatepass") + b"}") != "opened"


@FUZZ
@given(st.sampled_from(ENVELOPES), st.data())
def test_byte_mutations_of_valid_envelopes(original: bytes, data: st.DataObject) -> None:
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if kind == "flip":
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            raw[i] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del raw[i : i + data.draw(st.integers(1, 8))]
    outcome = attempt(bytes(raw))
    # Canonical bytes plus a signature over everything: no change is harmless.
    assert outcome != "opened" or bytes(raw) == original


@FUZZ
@given(json_mutations(), st.booleans())
def test_json_mutations(obj: dict[str, Any], canonical: bool) -> None:
    data = serialize(obj, canonical)
    outcome = attempt(data)
    assert outcome != "opened" or data in ENVELOPES


@FUZZ
@given(json_mutations())
def test_json_mutations_re_signed_by_the_sender(obj: dict[str, Any]) -> None:
    """A genuine sender sending nonsense: the deep checks must refuse it cleanly."""
    # Without a usable ciphertext or header it is sent as it is.
    with contextlib.suppress(VolliError, KeyError):
        obj["signature"] = b64encode(
            ALICE.sign(
                env.SIGN_DOMAIN,
                env._to_sign(env.header_bytes(obj), b64decode(obj["ciphertext"])),
            )
        )
    attempt(serialize(obj, canonical=True))


def leaves(obj: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(obj, dict):
        return [p for key, value in obj.items() for p in leaves(value, (*path, key))]
    return [path]


@st.composite
def well_formed_mutations(draw: st.DrawFn) -> dict[str, Any]:
    """Change leaf values but keep every type and length, then re-sign as the sender:
    these pass parsing and the signature, and exercise the checks after them."""
    obj: dict[str, Any] = json.loads(draw(st.sampled_from(ENVELOPES)))
    for _ in range(draw(st.integers(1, 2))):
        *parents, name = draw(st.sampled_from([p for p in leaves(obj) if p[-1] != "signature"]))
        target = obj
        for key in parents:
            target = target[key]
        value = target[name]
        if isinstance(value, int):
            target[name] = draw(st.integers(1, 2**53 - 1) | st.sampled_from([NOW, NOW + 1]))
        elif name in ("peer_id", "conversation_id"):
            target[name] = draw(st.sampled_from([BOB.peer_id, CAROL.peer_id, ALICE.peer_id, "x"]))
        else:
            raw = bytearray(b64decode(value))
            if draw(st.booleans()):
                raw = bytearray(draw(st.binary(min_size=len(raw), max_size=len(raw))))
            else:
                raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
            target[name] = b64encode(bytes(raw))
    if draw(st.booleans()) and len(obj["recipients"]) > 1:  # swap two recipients' entries
        a, b = sorted(obj["recipients"])
        obj["recipients"][a], obj["recipients"][b] = obj["recipients"][b], obj["recipients"][a]
    obj["signature"] = b64encode(
        ALICE.sign(
            env.SIGN_DOMAIN, env._to_sign(env.header_bytes(obj), b64decode(obj["ciphertext"]))
        )
    )
    return obj


@FUZZ
@given(well_formed_mutations())
def test_well_formed_mutations_re_signed_by_the_sender(obj: dict[str, Any]) -> None:
    attempt(canonical_json(obj))


@FUZZ
@given(st.sampled_from(ENVELOPES), st.integers(0, 3000), st.integers(-(2**70), 2**70))
def test_open_parameters_never_crash(data: bytes, max_size: int, now_ms: int) -> None:
    for max_age, max_skew in ((0, 0), (env.DEFAULT_MAX_AGE_MS, env.DEFAULT_MAX_SKEW_MS)):
        with contextlib.suppress(VolliError):
            open_envelope(
                data,
                BOB,
                contacts=PINNED.get,
                now_ms=now_ms,
                max_size=max_size,
                max_age_ms=max_age,
                max_skew_ms=max_skew,
            )
