"""What each row of ``volli-nb bench`` measures, built from every run's samples.

A benchmark row measured over several runs: median, min and max for each side.

One run of a row is noise-prone on a shared 2-core machine, so ``volli-nb bench`` runs
every row ``--runs`` times (3 by default) and reports the median with the range; the
ratio is median over median.  A side that could not measure a row in some run (aiortc
never noticing a dead peer, say) is reported over the runs that did.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from volli_nb.lab.relay import Conditions

FANOUT = (1, 10, 100)


@dataclass
class Row:
    metric: str
    unit: str
    aiortc_runs: Sequence[float | None]
    volli_runs: Sequence[float | None]
    higher_is_better: bool
    note: str = ""
    runs: int = field(default=0)

    def __post_init__(self) -> None:
        self.runs = self.runs or max(len(self.aiortc_runs), len(self.volli_runs))

    @staticmethod
    def _measured(samples: Sequence[float | None]) -> list[float]:
        return [s for s in samples if s is not None]

    @classmethod
    def _median(cls, samples: Sequence[float | None]) -> float | None:
        measured = cls._measured(samples)
        return statistics.median(measured) if measured else None

    @property
    def aiortc(self) -> float | None:
        return self._median(self.aiortc_runs)

    @property
    def volli(self) -> float | None:
        return self._median(self.volli_runs)

    @property
    def ratio(self) -> float | None:
        if not self.aiortc or self.volli is None:
            return None
        return self.volli / self.aiortc

    def span(self, side: str) -> tuple[float, float] | None:
        """(min, max) of ``side`` ("aiortc" or "volli") over its measured runs."""
        measured = self._measured(self.aiortc_runs if side == "aiortc" else self.volli_runs)
        return (min(measured), max(measured)) if measured else None

    def to_json(self) -> dict[str, Any]:
        """The row format (metric, unit, aiortc, volli, ratio) plus runs and each side's
        min and max."""
        spans = {side: self.span(side) for side in ("aiortc", "volli")}
        return {
            "metric": self.metric,
            "unit": self.unit,
            "aiortc": self.aiortc,
            "volli": self.volli,
            "ratio": self.ratio,
            "runs": self.runs,
            "min": {side: s[0] if s else None for side, s in spans.items()},
            "max": {side: s[1] if s else None for side, s in spans.items()},
            "higher_is_better": self.higher_is_better,
            "note": self.note,
        }


def _cell(row: Row, side: str) -> str:
    median = row.aiortc if side == "aiortc" else row.volli
    if median is None:
        return "—"
    span = row.span(side)
    if row.runs < 2 or span is None:
        return f"{median:,.1f}"
    return f"{median:,.1f} ({span[0]:,.1f}–{span[1]:,.1f})"


def format_table(rows: list[Row]) -> str:
    """Median (min–max) per side, the ratio of the medians, and what the row measures."""
    runs = max((row.runs for row in rows), default=1)
    width = 10 if runs < 2 else 30
    lines = [
        f"{'metric':<21} {'unit':<7} {'aiortc':>{width}} {'volli_nb':>{width}} {'ratio':>7}  "
        f"note ({runs} run{'s' if runs != 1 else ''}: median (min–max))"
    ]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"{row.metric:<21} {row.unit:<7} {_cell(row, 'aiortc'):>{width}} "
            f"{_cell(row, 'volli'):>{width}} {ratio:>7}  {row.note}"
        )
    return "\n".join(lines)


Samples = dict[str, list[float | None]]


def collect(runs: list[dict[str, Any]]) -> Samples:
    """One list of samples per measurement, one sample per run."""
    keys = {key for run in runs for key in run}
    return {key: [run.get(key) for run in runs] for key in sorted(keys)}


def _scaled(samples: list[float | None], scale: float) -> list[float | None]:
    return [None if s is None else s * scale for s in samples]


def _row(spec: tuple[str, str, str, bool, str], base: Samples, ours: Samples) -> Row:
    """A row of ``key``'s samples; seconds are shown as milliseconds."""
    metric, unit, key, higher, note = spec
    scale = 1000.0 if unit == "ms" else 1.0
    return Row(
        metric,
        unit,
        _scaled(base.get(key, []), scale),
        _scaled(ours.get(key, []), scale),
        higher,
        note,
    )


def rows(base: Samples, ours: Samples, bulk_mb: float, flush: int) -> list[Row]:
    sql = [
        f"{statistics.median(x for x in ours[k] if x is not None):.1f}"
        for k in ("sql_sender", "sql_receiver")
    ]
    cpu = "process CPU over the 100-byte row / messages delivered"
    specs = [
        ("setup", "ms", "setup", False, "aiortc: offer→channel open; volli_nb: offer→first "
         "signed ACK (aim ≤ 1.5x)"),
        ("round trip", "ms", "rtt", False, "aiortc: echo; volli_nb: send→signed ACK (median)"),
        ("100-byte messages", "msg/s", "msgs", True, "aiortc: plaintext, paced by "
         "bufferedAmount, counted at the receiver; volli_nb: bundled, delivered+ACKed "
         "(aim ≥ 2x)"),
        ("CPU, sender", "µs/msg", "cpu_sender", False, cpu),
        ("CPU, receiver", "µs/msg", "cpu_receiver", False, cpu),
        ("SQL statements", "per msg", "sql", False, f"both processes over the 100-byte row "
         f"(sender {sql[0]}, receiver {sql[1]}); aiortc stores nothing (aim ≤ 3)"),
        ("bulk", "MB/s", "bulk", True, f"{bulk_mb:g} MB: aiortc 64 KiB plaintext chunks; "
         "volli_nb one encrypted message"),
        *(
            (f"fan-out to {n}", "ms", f"fanout{n}", False, f"one 100-byte message, {n} "
             f"recipient(s): aiortc sends it {n}x in plaintext; volli_nb seals once for all, "
             "until the live one's ACK (median of 5)")
            for n in FANOUT
        ),
        (f"flush {flush:,} pending", "s", "flush", False, "queued while the peer was away: "
         "volli_nb from reconnect to the last ACK (aim < 2 s); aiortc: sending that many, "
         "paced, until the last arrived"),
    ]  # fmt: skip
    return [_row(spec, base, ours) for spec in specs]


def condition_rows(conditions: Conditions | None, base: Samples, ours: Samples) -> list[Row]:
    if conditions is None or "impaired_rtt" not in ours:
        return []
    where = f"{2 * conditions.latency_ms:g} ms RTT, {100 * conditions.loss:g} % loss"
    timeouts = sum(t or 0 for t in ours["impaired_timeouts"])
    specs = [
        ("round trip, impaired", "ms", "impaired_rtt", False, f"{where}: aiortc echo; "
         "volli_nb send→signed ACK (median)"),
        ("100-byte, impaired", "msg/s", "impaired_msgs", True, f"{where}: aiortc plaintext, "
         f"paced; volli_nb delivered+ACKed ({timeouts:.0f} ACK timeouts)"),
    ]  # fmt: skip
    return [_row(spec, base, ours) for spec in specs]


def dead_row(base: Samples, ours: Samples, quick: bool) -> Row:
    missed = sum(d is None for d in base["dead"])
    if quick:
        note = "aiortc not measured (--quick)"
    elif missed:
        note = f"aiortc alone: gave up after 40 s in {missed} of {len(base['dead'])} run(s)"
    else:
        note = "SIGKILL → aiortc state change / volli_nb heartbeat (aim ≤ 3 s)"
    return Row("dead peer noticed", "s", base["dead"], ours["dead"], False, note)


__all__ = [
    "FANOUT",
    "Row",
    "Samples",
    "collect",
    "condition_rows",
    "dead_row",
    "format_table",
    "rows",
]
