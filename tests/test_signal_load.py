"""300 clients with churn and hostile frames: the server stays up and presence stays right."""

from __future__ import annotations

import asyncio

import pytest

from volli_nb.lab.signal_load import run_load

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_three_hundred_clients_see_correct_presence_and_memory_stays_bounded() -> None:
    report = asyncio.run(asyncio.wait_for(run_load(clients=300, rooms=10), 180))
    assert report.server_alive
    assert report.views_checked >= 200 and report.views_wrong == 0
    assert report.presence_frames > 0
    # Memory levels off: a third full wave of 300 clients adds (almost) nothing.
    assert report.rss_third_wave_mb < report.rss_second_wave_mb + 5, report
