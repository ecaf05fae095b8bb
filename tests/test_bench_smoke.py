"""The benchmarks run and report every figure (speed is reported, never asserted)."""

from __future__ import annotations

import asyncio
import json

import pytest

from volli_nb.lab.bench import core as bench_core
from volli_nb.lab.bench import run as bench
from volli_nb.lab.bench.rows import Row

COUNTED = {"SQL statements"}  # aiortc stores nothing: no ratio


@pytest.mark.network
def test_p2p_bench_reports_every_row_with_a_ratio() -> None:
    run = bench.run(messages=50, bulk_mb=0.5, quick=True, flush=200, runs=1)
    rows = asyncio.run(asyncio.wait_for(run, 240))
    assert [r.metric for r in rows] == [
        "setup",
        "round trip",
        "100-byte messages",
        "CPU, sender",
        "CPU, receiver",
        "SQL statements",
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
        assert row.volli and row.volli > 0 and row.runs == 1
        if row.metric in COUNTED:
            assert row.aiortc == 0 and row.ratio is None
            continue
        assert row.aiortc and row.aiortc > 0
        assert row.ratio == pytest.approx(row.volli / row.aiortc)
    assert rows[-1].volli is not None and rows[-1].volli > 0  # volli_nb's heartbeat
    assert "setup" in bench.format_table(rows)
    for entry in json.loads(json.dumps([row.to_json() for row in rows])):
        assert {"metric", "unit", "aiortc", "volli", "ratio", "runs", "min", "max"} <= set(entry)


def test_rows_report_median_and_range_of_their_runs() -> None:
    row = Row("round trip", "ms", [3.0, 1.0, 2.0], [9.0, None, 5.0], False)
    assert (row.aiortc, row.volli, row.runs) == (2.0, 7.0, 3)
    assert row.ratio == pytest.approx(3.5)
    entry = row.to_json()
    assert entry["min"] == {"aiortc": 1.0, "volli": 5.0}
    assert entry["max"] == {"aiortc": 3.0, "volli": 9.0}
    assert "2.0 (1.0–3.0)" in bench.format_table([row])
    assert Row("x", "s", [None], [1.0], False).ratio is None  # a side never measured


def test_core_bench_reports_positive_rates() -> None:
    result = bench_core.run(quick=True)
    for n in ("1", "10", "100"):
        assert result["envelopes"][n]["seal_per_s"] > 0
        assert result["envelopes"][n]["open_per_s"] > 0
    assert result["envelopes"]["100"]["bytes"] > result["envelopes"]["1"]["bytes"]
    assert result["queue"]["enqueue_per_s"] > 0 and result["queue"]["mark_delivered_per_s"] > 0
    assert "recipients" in bench_core.format_table(result)


@pytest.mark.network
def test_group_bench_reports_a_row_per_group_size() -> None:
    """`volli-nb bench --groups`, small: members in their own processes, both sides timed."""
    from volli_nb.lab.bench import groups as group_bench

    rows = asyncio.run(asyncio.wait_for(group_bench.run((2, 3), repeats=1), 240))
    assert [r.metric for r in rows] == ["group send, 2 members", "group send, 3 members"]
    for row in rows:
        assert row.volli and row.volli > 0 and row.aiortc and row.aiortc > 0 and row.ratio
