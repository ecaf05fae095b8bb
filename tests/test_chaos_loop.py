"""Issue 29's acceptance, short: every kind of fault once, on three ``volli-signal``
processes sharing a real redis-server, each peer behind its own fault balancer.

``volli-nb chaos --faults 20`` is the long run (docs/operations.md has its figures); this
one asserts what must hold whatever the timing: every round comes back (each peer in
the room as the server sees it, its own view the truth, every pair connected), and
every message arrives exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine import require_engine
from test_network import arun

from volli_nb.lab.chaos_loop import KINDS, run_fault_loop

pytestmark = pytest.mark.network


def test_one_round_of_each_fault_comes_back_and_loses_nothing(tmp_path: Path) -> None:
    require_engine()
    report = arun(lambda: run_fault_loop(1, 3, workdir=tmp_path, bound=30.0), timeout=300)
    assert [r.kind for r in report.rounds] == list(KINDS)
    assert [r.kind for r in report.rounds if not r.recovered] == [], report.text()
    assert report.sent == len(KINDS) * 3 * 2
    assert (report.delivered_once, report.lost, report.duplicated) == (report.sent, 0, 0)
    assert report.ok
