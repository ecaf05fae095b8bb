"""How large a profile grows per thousand messages, and how much free space it needs.

    .venv/bin/python tools/profile_size.py [--messages N] [--text-bytes B]

Writes what receiving and sending do to a profile (a real SQLite file, KDF_MIN):
each received message is a sealed ``messages`` row plus a ``seen`` row; each sent one
is a sealed ``messages`` row plus an ``outbox`` row that the signed ACK turns into
metadata (payload erased).  Batches of 50 per commit, as a busy link's bundles are.
Prints, per thousand messages each way, the main file's growth and the largest the
``-wal`` file got, first with nothing pruned, then with the pruner keeping the seen-set
and delivered rows bounded (the history stays: it is the user's).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from volli_nb.base.clock import VirtualClock
from volli_nb.core.body import encode_body
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue
from volli_nb.core.store.retention import Pruner, Retention

BATCH = 50  # messages per commit (one bundle)
TABLES = {  # each table with its indexes
    "messages": ("messages", "sqlite_autoindex_messages_1", "messages_by_time"),
    "seen": ("seen", "sqlite_autoindex_seen_1", "seen_by_time"),
    "outbox": ("outbox", "outbox_due", "outbox_message_recipient"),
}


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def table_bytes(db: Database) -> dict[str, int]:
    pages = dict(db.fetch("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    return {table: sum(pages.get(n, 0) for n in names) for table, names in TABLES.items()}


def run(folder: Path, messages: int, text: str, prune: bool, rate: float) -> dict[str, object]:
    clock = VirtualClock(1_700_000_000.0)
    path = folder / ("pruned.sqlite" if prune else "unpruned.sqlite")
    db = Database.open(path, "measure", kdf=KDF_MIN, clock=clock)
    queue = PersistentMessageQueue(db, clock=clock)
    pruner = Pruner(db, Retention(delivered_for=600.0)) if prune else None
    wal = path.with_name(path.name + "-wal")
    start, wal_peak, body = size(path), 0, encode_body(text)
    for first in range(0, messages, BATCH):
        with db.transaction():
            for n in range(first, min(first + BATCH, messages)):
                inbound, outbound = (2 * n).to_bytes(16, "big"), (2 * n + 1).to_bytes(16, "big")
                db.store_received(inbound, "conv", "bob", n, int(clock.now * 1000), body)
                db.store_sent(outbound, "conv", "me", n, int(clock.now * 1000), body)
                queue.enqueue(OutgoingMessage(outbound, "conv", "bob", body, n))
                queue.acknowledge(outbound, "bob")
        clock.advance(BATCH / rate)
        if pruner is not None:
            pruner.tick(clock.now)
        wal_peak = max(wal_peak, size(wal))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    grown = size(path) - start
    rows = {t: db.fetch(f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}
    tables = table_bytes(db)
    free = db.fetch("PRAGMA freelist_count")[0][0] * db.fetch("PRAGMA page_size")[0][0]
    db.close()
    return {"grown": grown, "wal_peak": wal_peak, "rows": rows, "tables": tables, "free": free}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="each way")
    parser.add_argument("--text-bytes", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="messages/s each way")
    args = parser.parse_args()
    n, text = args.messages, "x" * args.text_bytes
    span = n / args.rate
    print(f"{n} messages each way, {args.text_bytes}-character texts, {args.rate:g}/s ({span:g} s)")
    with tempfile.TemporaryDirectory() as tmp:
        for prune in (False, True):
            r = run(Path(tmp), n, text, prune, args.rate)
            per = {t: b / (n / 1000) / 1024 for t, b in r["tables"].items()}  # type: ignore[attr-defined]
            print(
                f"{'pruned  ' if prune else 'unpruned'}  file grew {r['grown'] / 2**20:6.2f} MiB "  # type: ignore[operator]
                f"({r['grown'] / (n / 1000) / 1024:6.1f} KiB per 1000 each way); "  # type: ignore[operator]
                f"-wal peak {r['wal_peak'] / 2**20:5.2f} MiB; free pages "
                f"{r['free'] / 2**20:5.2f} MiB; rows {r['rows']}"  # type: ignore[operator]
            )
            print(
                "          per 1000 each way: "
                + ", ".join(f"{t} {kib:.1f} KiB" for t, kib in per.items())
            )


if __name__ == "__main__":
    main()
