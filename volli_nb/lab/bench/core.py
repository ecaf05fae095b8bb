"""``volli-nb bench --core``: the pure core's speed, no network.

Envelope seal and open per second for 1, 10 and 100 recipients, and the
outbox's enqueue and mark-delivered per second on a real SQLite file.
Figures, not assertions: machines are noisy.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.message_id import new_message_id
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue
from volli_nb.lab.static_key_envelope import open_envelope, seal

NOW_MS = 1_800_000_000_000


def _rate(fn: Callable[[], object], *, min_time: float = 0.5, min_runs: int = 3) -> float:
    """Operations per second of ``fn`` over at least ``min_time`` seconds."""
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= min_runs:
            return runs / elapsed


def envelope_rates(recipients: int, min_time: float = 0.5) -> dict[str, float]:
    sender = Identity.generate()
    people = [Identity.generate() for _ in range(recipients)]
    pinned: dict[str, PublicIdentity] = {sender.peer_id: sender.public}
    body = b"x" * 100

    def make() -> bytes:
        return seal(
            sender,
            [p.public for p in people],
            conversation_id="bench",
            plaintext=body,
            counter=1,
            timestamp_ms=NOW_MS,
        )

    data = make()
    seal_rate = _rate(make, min_time=min_time)
    open_rate = _rate(
        lambda: open_envelope(data, people[0], contacts=pinned.get, now_ms=NOW_MS),
        min_time=min_time,
    )
    return {"seal_per_s": seal_rate, "open_per_s": open_rate, "bytes": float(len(data))}


def queue_rates(count: int = 2000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp) / "bench.sqlite", "bench", kdf=KDF_MIN)
        queue = PersistentMessageQueue(db)
        start = time.perf_counter()
        ids = [
            queue.enqueue(OutgoingMessage(new_message_id(), "c", "peer", b"x" * 100, i + 1))
            for i in range(count)
        ]
        enqueue = count / (time.perf_counter() - start)
        start = time.perf_counter()
        for row_id in ids:
            queue.mark_delivered(row_id)
        delivered = count / (time.perf_counter() - start)
        db.close()
    return {"enqueue_per_s": enqueue, "mark_delivered_per_s": delivered}


def run(quick: bool = False) -> dict[str, Any]:
    min_time = 0.2 if quick else 1.0
    return {
        "envelopes": {str(n): envelope_rates(n, min_time) for n in (1, 10, 100)},
        "queue": queue_rates(300 if quick else 2000),
    }


def format_table(result: dict[str, Any]) -> str:
    lines = ["recipients   seal/s     open/s    envelope bytes"]
    for n, row in result["envelopes"].items():
        lines.append(
            f"{n:>10} {row['seal_per_s']:>8.0f} {row['open_per_s']:>10.0f} {row['bytes']:>12.0f}"
        )
    q = result["queue"]
    lines.append(
        f"\noutbox on a SQLite file (WAL, synchronous=NORMAL): enqueue {q['enqueue_per_s']:.0f}/s, "
        f"mark_delivered {q['mark_delivered_per_s']:.0f}/s"
    )
    return "\n".join(lines)


def main(as_json: bool = False, quick: bool = False) -> int:
    result = run(quick)
    print(json.dumps(result, indent=1) if as_json else format_table(result))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main("--json" in sys.argv, "--quick" in sys.argv))
