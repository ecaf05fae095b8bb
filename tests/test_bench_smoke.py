"""The benchmarks run and report every figure (speed is reported, never asserted)."""

from __future__ import annotations

import asyncio

import pytest

from volli_nb.lab.bench import core as bench_core
from volli_nb.lab.bench import run as bench


@pytest.mark.network
def test_p2p_bench_reports_every_row_with_a_ratio() -> None:
    run = bench.run(messages=50, bulk_mb=0.5, quick=True, flush=200)
    rows = asyncio.run(asyncio.wait_for(run, 240))
    assert [r.metric for r in rows] == [
        "setup",
        "round trip",
        "100-byte messages",
        "bulk",
        "fan-out to 1",
        "fan-out to 10",
        "fan-out to 100",
        "flush 200 pending",
        "round trip, impaired",
        "100-byte, impaired",
        "dead peer noticed",
    ]
    for row in rows[:-1]:
        assert row.aiortc and row.aiortc > 0 and row.volli and row.volli > 0
        assert row.ratio == pytest.approx(row.volli / row.aiortc)
    assert rows[-1].volli is not None and rows[-1].volli > 0  # volli_nb's heartbeat
    assert "setup" in bench.format_table(rows)


def test_core_bench_reports_positive_rates() -> None:
    result = bench_core.run(quick=True)
    for n in ("1", "10", "100"):
        assert result["envelopes"][n]["seal_per_s"] > 0
        assert result["envelopes"][n]["open_per_s"] > 0
    assert result["envelopes"]["100"]["bytes"] > result["envelopes"]["1"]["bytes"]
    assert result["queue"]["enqueue_per_s"] > 0 and result["queue"]["mark_delivered_per_s"] > 0
    assert "recipients" in bench_core.format_table(result)
