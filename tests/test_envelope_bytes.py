"""Notebook 01's field-by-field tables (lab/envelope_bytes.py): the fields are the wire's
bytes, in order, and add up to the envelope."""

from __future__ import annotations

import random

from volli_nb.core.body import encode_body
from volli_nb.core.crypto.envelope_wire import parse_bundle
from volli_nb.lab.channel_pair import ChannelPair
from volli_nb.lab.envelope_bytes import table, v1_fields, v2_fields
from volli_nb.lab.static_key_envelope import seal


def test_v2_and_v1_fields_are_the_envelopes_bytes() -> None:
    lab = ChannelPair(random=random.Random(1).randbytes)
    letter = lab.send("alice", "meet at noon")
    raw = parse_bundle(letter.bundle).envelopes[0].raw
    v2 = v2_fields(raw)
    assert b"".join(value for _, value in v2) == raw
    names = [name for name, _ in v2]
    assert names[0] == "version" and names[-1].startswith("ciphertext")
    header = dict(v2)["  nonce = ratchet header (key, pn, n)"]
    assert (
        header == letter.header.encode() and len(dict(v2)["  encryptedKey (nonce, K, tag)"]) == 72
    )
    alice, bob = lab.identities["alice"], lab.identities["bob"]
    v1 = seal(alice, [bob.public], conversation_id="lab", plaintext=encode_body("meet at noon"),
              counter=1, timestamp_ms=lab.now_ms)  # fmt: skip
    fields = v1_fields(v1)
    assert sum(len(value) for _, value in fields) == len(v1)
    text = table("v1", fields, text=True)
    assert '"timestamp":<ms: 2027-01-15 08:00:00>' in text  # a date, not a raw epoch
    assert str(lab.now_ms) not in text
    assert text.splitlines()[-1].split() == ["total", str(len(v1))]
    assert table("v2", v2).splitlines()[-1].split() == ["total", str(len(raw))]
