"""Per-operation microseconds and sizes of the session core (a quick timing script, not a test).

    .venv/bin/python tools/time_sessions.py [--repeat N]

Each figure is the median of 5 runs of N operations on this machine; the v1 envelope
(``seal`` / ``open_envelope``) is measured in the same run for comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable

from volli_nb.core.crypto import Identity
from volli_nb.lab.static_key_envelope import open_envelope, seal
from volli_nb.core.crypto import envelope as v2
from volli_nb.core.crypto import handshake as hs
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.ratchet_state import decode_state, encode_state, open_state, seal_state
from volli_nb.core.message_id import new_message_id

NOW = 1_800_000_000_000
TEXT = b"x" * 100


def timed(label: str, repeat: int, make: Callable[[], Callable[[], object]], per: int = 1) -> None:
    """Median microseconds per operation; ``make`` prepares fresh inputs for each run."""
    runs = []
    for _ in range(5):
        op = make()
        start = time.perf_counter_ns()
        for _ in range(repeat):
            op()
        runs.append((time.perf_counter_ns() - start) / repeat / per / 1000)
    print(f"{label:<58} {statistics.median(runs):9.1f} µs")


def pair() -> tuple[Identity, Identity, hs.HandshakeResult, hs.HandshakeResult]:
    a, b = Identity.generate(), Identity.generate()
    ca, cb = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    pa = hs.start(a, b.public, local_certificate=ca, remote_certificate=cb)
    pb = hs.start(b, a.public, local_certificate=cb, remote_certificate=ca)
    return a, b, hs.finish(pa, pb.hello), hs.finish(pb, pa.hello)


def handshake(repeat: int) -> None:
    a, b = Identity.generate(), Identity.generate()
    ca, cb = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    timed("handshake start (2 key pairs, 1 signature)", repeat,
          lambda: lambda: hs.start(a, b.public, local_certificate=ca, remote_certificate=cb))
    pb = hs.start(b, a.public, local_certificate=cb, remote_certificate=ca)

    def finish() -> Callable[[], object]:
        pa = hs.start(a, b.public, local_certificate=ca, remote_certificate=cb)
        return lambda: hs.finish(pa, pb.hello)

    timed("handshake finish (verify, 3 DH, HKDF, ratchet init)", repeat, finish)


def ratchet_ops(repeat: int) -> None:
    _a, _b, ra, rb = pair()
    sender, receiver = ra.state, rb.state

    def encrypt() -> Callable[[], object]:
        state = [sender]

        def op() -> None:
            state[0], _h, _c = ratchet.encrypt(state[0], bytes(32))

        return op

    timed("ratchet encrypt (32-byte key, same chain)", repeat, encrypt)
    messages = []
    s = sender
    for _ in range(repeat):
        s, h, c = ratchet.encrypt(s, bytes(32))
        messages.append((h, c))

    def decrypt() -> Callable[[], object]:
        state, it = [receiver], iter(messages)

        def op() -> None:
            h, c = next(it)
            state[0], _p = ratchet.decrypt(state[0], h, c, now_ms=NOW)

        return op

    timed("ratchet decrypt (same chain)", repeat, decrypt)

    def decrypt_step() -> Callable[[], object]:
        replies = []
        s, r = sender, receiver
        for _ in range(repeat):  # round trips: each reply carries a new ratchet key
            s, h, c = ratchet.encrypt(s, b"k")
            r, _ = ratchet.decrypt(r, h, c, now_ms=NOW)
            r, h2, c2 = ratchet.encrypt(r, b"r")
            replies.append((s, h2, c2))
            s, _ = ratchet.decrypt(s, h2, c2, now_ms=NOW)
        it = iter(replies)

        def op() -> None:
            s2, h2, c2 = next(it)
            ratchet.decrypt(s2, h2, c2, now_ms=NOW)

        return op

    timed("ratchet decrypt with a DH step (new ratchet key)", repeat, decrypt_step)
    data = encode_state(receiver)
    key = os.urandom(32)
    sealed = seal_state(receiver, key, b"ctx")
    timed("ratchet state encode", repeat, lambda: lambda: encode_state(receiver))
    timed("ratchet state decode (checks the public key)", repeat, lambda: lambda: decode_state(data))
    timed("ratchet state seal (encode + AEAD)", repeat, lambda: lambda: seal_state(receiver, key, b"ctx"))
    timed("ratchet state open (AEAD + decode)", repeat, lambda: lambda: open_state(sealed, key, b"ctx"))


def envelopes(repeat: int) -> None:
    a, b, ra, rb = pair()
    cid = "dm-" + "-".join(sorted((a.peer_id, b.peer_id)))

    def sealer() -> Callable[[], object]:
        states = [{b.peer_id: ra.state}]

        def op() -> None:
            item = v2.seal(states[0], sender=a.peer_id, conversation_id=cid,
                           message_id=new_message_id(a.peer_id), counter=1, timestamp_ms=NOW,
                           plaintext=TEXT)
            states[0] = dict(item.states)

        return op

    timed("v2 seal, 100-byte text, 1 recipient", repeat, sealer)
    for count in (1, 100):
        items, states = [], {b.peer_id: ra.state}
        for i in range(count):
            item = v2.seal(states, sender=a.peer_id, conversation_id=cid,
                           message_id=new_message_id(a.peer_id), counter=i + 1, timestamp_ms=NOW,
                           plaintext=TEXT)
            states = dict(item.states)
            items.append(item)
        timed(f"v2 bundle of {count} (one signature), per message", max(repeat // count, 3),
              lambda items=items: lambda: v2.bundle(a, items), per=count)
        data = v2.bundle(a, items)
        timed(f"v2 open_bundle of {count}, per message (verify, unwrap, open)",
              max(repeat // count, 3),
              lambda data=data: lambda: v2.open_bundle(data, me=b.peer_id, peer=a.public,
                                                      state=rb.state, now_ms=NOW), per=count)
        print(f"{'  bytes: bundle of ' + str(count) + ', per message':<58} {len(data) / count:9.1f} B")
    old = seal(a, [b.public], conversation_id=cid, plaintext=TEXT, counter=1, timestamp_ms=NOW)
    timed("v1 seal, 100-byte text, 1 recipient", repeat, lambda: lambda: seal(
        a, [b.public], conversation_id=cid, plaintext=TEXT, counter=1, timestamp_ms=NOW))
    pinned = {a.peer_id: a.public}
    timed("v1 open_envelope", repeat,
          lambda: lambda: open_envelope(old, b, contacts=pinned.get, now_ms=NOW))
    print(f"{'  bytes: v1 envelope':<58} {len(old):9.1f} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=400)
    args = parser.parse_args()
    handshake(max(args.repeat // 4, 1))
    ratchet_ops(args.repeat)
    envelopes(args.repeat)


if __name__ == "__main__":
    main()
