"""Make tests/data/profile-schema2-{alice,bob}.sqlite: two paired profiles of an old main.

The fixtures test_upgrade.py opens were made with main at 96531e5 (schema 2, envelope
v1), so they must be made by *that* code: check it out beside this one and run this
script with its venv, from its root::

    git worktree add /tmp/old 96531e5 && cd /tmp/old && make .venv/.installed
    .venv/bin/volli-nb netns -- .venv/bin/python /path/to/tools/make_upgrade_fixtures.py OUT

Alice and Bob pair, exchange three messages, then Bob closes and Alice queues two more,
which wait in her outbox.  The profiles open with "alice passphrase" / "bob passphrase"
(``open_store`` of that main's tests/netutil.py, KDF_MIN); copy them from OUT.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "tests"))
from netutil import open_store, pair  # noqa: E402  (the old checkout's test helpers)


async def main(out: Path) -> None:
    alice, bob = open_store(out, "alice"), open_store(out, "bob")
    await pair(alice, bob)
    for text in ("hello bob", "how are you?"):
        sent = await alice.send_message(bob.peer_id, text)
        await alice.wait_delivered(sent.message_id)
    sent = await bob.send_message(alice.peer_id, "fine, thanks")
    await bob.wait_delivered(sent.message_id)
    await bob.close()
    await asyncio.sleep(1.0)
    for text in ("are you there?", "ping when back"):  # bob is gone: these wait
        await alice.send_message(bob.peer_id, text)
    print("alice", alice.peer_id, "bob", bob.peer_id, "schema", alice.database.schema_version)
    await alice.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
