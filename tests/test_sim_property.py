"""The simulator: exactly-once delivery under loss, duplication and reordering."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from volli_nb.lab.simulator import LinkConditions, Simulator


@settings(max_examples=12, deadline=None)
@given(
    loss=st.floats(0.0, 0.4),
    duplicate=st.floats(0.0, 0.3),
    reorder=st.floats(0.0, 0.5),
    jitter=st.floats(0.0, 0.05),
    seed=st.integers(0, 2**16),
)
def test_500_messages_each_reach_the_application_exactly_once(
    loss: float, duplicate: float, reorder: float, jitter: float, seed: int
) -> None:
    sim = Simulator(LinkConditions(0.05, jitter, loss, duplicate, reorder, seed))
    sent = {"A": [], "B": []}  # type: dict[str, list[bytes]]
    for i in range(500):
        side = "A" if i % 2 == 0 else "B"
        sent[side].append(sim.send(side, f"m{i}".encode()))  # type: ignore[arg-type]
        if i % 25 == 0:
            sim.run(until=sim.now + 0.01)
    sim.run(until=sim.now + 100_000)
    for sender, receiver in (("A", "B"), ("B", "A")):
        got = Counter(d.message_id for d in sim.delivered[receiver])  # type: ignore[index]
        assert set(got) == set(sent[sender]) and set(got.values()) == {1}
    assert sim.pending == 0
    if loss > 0.1:
        assert sim.frames_lost > 0 and sim.retransmissions() > 0


def test_same_seed_same_trace() -> None:
    def trace(seed: int) -> list[str]:
        sim = Simulator(LinkConditions(0.02, 0.01, 0.2, 0.1, 0.2, seed))
        for i in range(30):
            sim.send("A", bytes([i]))
        sim.run()
        return sim.trace

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_lossless_delivery_latency_is_the_configured_latency() -> None:
    sim = Simulator(LinkConditions(latency=0.2))
    sim.send("A", b"hello")
    sim.run()
    (delivery,) = sim.delivered["B"]
    assert abs(delivery.latency - 0.2) < 1e-9
    assert delivery.payload == b"hello"
    assert any("A→B MESSAGE" in line for line in sim.trace)
    assert any("B→A ACK" in line for line in sim.trace)
