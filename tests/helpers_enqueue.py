"""Run by test_queue: open a profile, enqueue one message, print its row id, then hang.

The parent kills this process with SIGKILL as soon as it reads the id, to show
that a message is durable once ``enqueue`` has returned.

usage: python tests/helpers_enqueue.py PROFILE PASSPHRASE PAYLOAD_HEX
"""

from __future__ import annotations

import sys
import time

from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue


def main() -> None:
    path, passphrase, payload_hex = sys.argv[1:4]
    db = Database.open(path, passphrase, kdf=KDF_MIN)
    queue = PersistentMessageQueue(db)
    row_id = queue.enqueue(
        OutgoingMessage(b"\x42" * 16, "conv", "bob", bytes.fromhex(payload_hex), counter=1)
    )
    print(row_id, flush=True)
    time.sleep(60)  # keep the connection open: the parent kills us mid-session


if __name__ == "__main__":
    main()
